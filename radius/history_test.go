package radius

import (
	"context"
	"sync"
	"testing"
	"time"

	"layeh.com/radius"
	"layeh.com/radius/rfc2865"

	"github.com/mfabridge/mfabridge/factors"
	"github.com/mfabridge/mfabridge/internal/audit"
)

// recordingEnrolments is fakeEnrolments that keeps the history it is
// given.
type recordingEnrolments struct {
	*fakeEnrolments
	mu   sync.Mutex
	seen map[string][]factors.SignIn
}

func (r *recordingEnrolments) RecordSignIn(user string, s factors.SignIn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen[user] = append(r.seen[user], s)
}

func (r *recordingEnrolments) of(user string) []factors.SignIn {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]factors.SignIn(nil), r.seen[user]...)
}

// Final decisions about a user the directory found go into the user's
// history; challenges and names nobody holds do not.
func TestDecisionsGoIntoTheUsersHistory(t *testing.T) {
	f := newConvFixture(t, fixtureOptions{})
	rec := &recordingEnrolments{fakeEnrolments: f.enr, seen: map[string][]factors.SignIn{}}
	f.conv.enrolments, f.conv.signins = rec, rec
	f.ask("alice", "wrong", withStation("10.1.2.3"))
	resp := f.ask("ALICE", rightPassword, withStation("10.1.2.3"))
	f.ask("alice", goodCode, withState(rfc2865.State_Get(resp)), withStation("10.1.2.3"))
	f.ask("unknown-mallory", "guess")
	got := rec.of("alice")
	if len(got) != 2 || got[0].Reason != string(audit.ReasonBadCredentials) || got[0].Outcome != audit.Reject ||
		got[1].Reason != string(audit.ReasonMFA) || got[1].Method != factors.TOTP || got[1].Station != "10.1.2.3" || got[1].Client != f.client.Name {
		t.Fatalf("alice's history: %+v", got)
	}
	if len(rec.seen) != 1 {
		t.Errorf("history kept for %d names, want alice's alone: %v", len(rec.seen), rec.seen)
	}
	// Through the portal, too.
	step := f.conv.Web(context.Background(), "default", f.client.Prefix.Addr(), "alice", "wrong", nil)
	if step.Outcome != audit.Reject || len(rec.of("alice")) != 3 || rec.of("alice")[2].Client != WebClient {
		t.Errorf("a portal sign-in: %+v, history %+v", step, rec.of("alice"))
	}
}

// A user who said a sign-in was not theirs is refused before any bind,
// with the reply of a wrong password, also for a challenge opened before;
// a reset lifts it.
func TestReportedUserIsRefused(t *testing.T) {
	f := newConvFixture(t, fixtureOptions{})
	open := f.ask("alice", rightPassword)
	f.enr.mu.Lock()
	f.enr.m["alice"].Reported = time.Now()
	f.enr.mu.Unlock()
	binds := f.dir.calls.Load()
	resp := f.ask("alice", rightPassword)
	if resp.Code != radius.CodeAccessReject || f.last().Reason != audit.ReasonReportedByUser {
		t.Fatalf("a login after the report: %v %q", resp.Code, f.last().Reason)
	}
	if msg := rfc2865.ReplyMessage_GetString(resp); msg != msgFailed {
		t.Errorf("Reply-Message %q tells more than a wrong password's", msg)
	}
	if f.dir.calls.Load() != binds {
		t.Error("a bind was spent for a reported user")
	}
	if resp := f.ask("alice", goodCode, withState(rfc2865.State_Get(open))); resp.Code != radius.CodeAccessReject ||
		f.last().Reason != audit.ReasonReportedByUser {
		t.Fatalf("the answer to a challenge opened before the report: %v %q", resp.Code, f.last().Reason)
	}
	f.enr.mu.Lock()
	f.enr.m["alice"].Reported = time.Time{}
	f.enr.mu.Unlock()
	if resp := f.ask("alice", rightPassword); resp.Code != radius.CodeAccessChallenge {
		t.Fatalf("after the reset: %v", resp.Code)
	}
}
