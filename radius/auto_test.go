package radius

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"layeh.com/radius"

	"github.com/mfabridge/mfabridge/config"
	"github.com/mfabridge/mfabridge/factors"
	"github.com/mfabridge/mfabridge/internal/audit"
)

// callFactor is a phone call answered out of band: each Start places a
// call with a ref of its own; answer decides what the call comes to.
type callFactor struct {
	mu     sync.Mutex
	calls  atomic.Int32
	answer map[string]factors.Approval // ref → outcome once "pressed"
	taken  map[string]bool
	press  factors.Approval // what every call comes to, set before the login
}

func (c *callFactor) Method() factors.Method                             { return factors.Voice }
func (c *callFactor) Label(*factors.User) string                         { return "a phone call" }
func (c *callFactor) Enrolled(*factors.User) bool                        { return true }
func (c *callFactor) Check(context.Context, *factors.User, string) error { return factors.ErrWrongCode }

func (c *callFactor) Start(context.Context, *factors.User) (factors.Prompt, error) {
	n := c.calls.Add(1)
	ref := fmt.Sprintf("call-%d", n)
	c.mu.Lock()
	c.answer[ref] = c.press
	c.mu.Unlock()
	return factors.Prompt{Text: "Calling you.", Ref: ref}, nil
}

func (c *callFactor) Approval(_ context.Context, _ *factors.User, ref string) (factors.Approval, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	a, ok := c.answer[ref]
	if !ok {
		return factors.Pending, factors.ErrExpired
	}
	return a, nil
}

func (c *callFactor) Take(_ context.Context, _ *factors.User, ref string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.taken[ref] || c.answer[ref] != factors.Approved {
		return factors.ErrExpired
	}
	c.taken[ref] = true
	return nil
}

// Auto mode holds the request for the call: approved is an Accept,
// refused and unanswered are rejects with their reasons, and the next
// login places a call of its own.
func TestAutoModeHoldsTheRequestForTheCall(t *testing.T) {
	f := newConvFixture(t, fixtureOptions{policy: func(p *config.Policy) {
		p.Mode = config.ModeAuto
		p.Factors = []string{"voice"}
	}})
	call := &callFactor{answer: map[string]factors.Approval{}, taken: map[string]bool{}}
	f.conv.factors[factors.Voice] = call
	f.conv.approveTimeout, f.conv.approvePoll, f.conv.sendWindow = 300*time.Millisecond, 10*time.Millisecond, time.Minute
	for i, tc := range []struct {
		press  factors.Approval
		code   radius.Code
		reason audit.Reason
	}{
		{factors.Approved, radius.CodeAccessAccept, audit.ReasonMFA},
		{factors.Refused, radius.CodeAccessReject, audit.ReasonRefused},
		{factors.Pending, radius.CodeAccessReject, audit.ReasonApprovalTimeout},
		{factors.Approved, radius.CodeAccessAccept, audit.ReasonMFA},
	} {
		call.press = tc.press
		resp := f.ask("carol", rightPassword, withStation("10.0.0.9"))
		if resp.Code != tc.code || f.last().Reason != tc.reason {
			t.Fatalf("login %d: %v %q, want %v %q", i+1, resp.Code, f.last().Reason, tc.code, tc.reason)
		}
		if n := call.calls.Load(); n != int32(i+1) {
			t.Fatalf("login %d placed %d calls in all, want one each", i+1, n)
		}
	}
}

// Append mode: "password,sms" sends a code and refuses with a message
// saying so; an unknown method or one the user lacks is refused.
func TestAppendAsksForASend(t *testing.T) {
	f := newConvFixture(t, fixtureOptions{policy: func(p *config.Policy) {
		p.Mode = config.ModeAppend
		p.Factors = []string{"totp", "sms"}
	}})
	phone := &countingPhone{}
	f.conv.factors[factors.SMS] = phone
	f.dir.mobile = "+447700900123"
	resp := f.ask("alice", rightPassword+",sms")
	if resp.Code != radius.CodeAccessReject || f.last().Reason != audit.ReasonCodeSent || phone.sent.Load() != 1 {
		t.Fatalf("password,sms: %v %q, %d sent", resp.Code, f.last().Reason, phone.sent.Load())
	}
	if resp := f.ask("alice", rightPassword+",call"); resp.Code != radius.CodeAccessReject || f.last().Reason != audit.ReasonMethodUnavailable {
		t.Fatalf("password,call without calls: %v %q", resp.Code, f.last().Reason)
	}
	if resp := f.ask("alice", "wrong,sms"); resp.Code != radius.CodeAccessReject || f.last().Reason != audit.ReasonBadCredentials || phone.sent.Load() != 1 {
		t.Fatalf("a wrong password with ,sms: %v %q, %d sent", resp.Code, f.last().Reason, phone.sent.Load())
	}
}
