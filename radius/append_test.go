package radius

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"layeh.com/radius"
	"layeh.com/radius/rfc2865"

	"github.com/mfabridge/mfabridge/config"
	"github.com/mfabridge/mfabridge/factors"
	"github.com/mfabridge/mfabridge/internal/audit"
	"github.com/mfabridge/mfabridge/internal/state"
)

// fixedFactor takes codes of its length; only its method matters here.
type fixedFactor struct {
	codeFactor
	m      factors.Method
	digits int
}

func (f *fixedFactor) Method() factors.Method       { return f.m }
func (f *fixedFactor) CodeLength(*factors.User) int { return f.digits }
func (f *fixedFactor) Enrolled(u *factors.User) bool {
	_, ok := u.Enrolment.Credential(f.m)
	return ok
}

// The readings of what a user typed in append mode: the code's length
// cut off the end when it is digits, cheapest first; the whole as a
// password only when nothing else fits, or first inside a remember window.
func TestAppendCandidates(t *testing.T) {
	c := &Conversation{factors: map[factors.Method]factors.Factor{
		factors.TOTP: &fixedFactor{m: factors.TOTP, digits: 6},
		factors.HOTP: &fixedFactor{m: factors.HOTP, digits: 8},
	}}
	pol := &policy{Policy: config.Policy{Mode: config.ModeAppend, Factors: []string{"totp", "hotp"}}}
	enrolled := func(ms ...factors.Method) *factors.User {
		e := &factors.Enrolment{}
		for _, m := range ms {
			e.Credentials = append(e.Credentials, factors.Credential{Method: m, Active: true})
		}
		return &factors.User{Name: "alice", Enrolment: e}
	}
	totp, both, none := enrolled(factors.TOTP), enrolled(factors.TOTP, factors.HOTP), enrolled()
	type cand = candidate
	for _, tc := range []struct {
		name       string
		u          *factors.User
		typed      string
		remembered bool
		want       []cand
	}{
		{"password and TOTP code", totp, "Secret1234567", false, []cand{{"Secret1", "234567"}}},
		{"no digits at the end", totp, "Secret-pass", false, []cand{{"Secret-pass", ""}}},
		{"too short to hold a code", totp, "123456", false, []cand{{"123456", ""}}},
		{"five digits are no code", totp, "Secret12345x", false, []cand{{"Secret12345x", ""}}},
		{"a password ending in digits is read as one with a code", totp, "Summer2026123456", false, []cand{{"Summer2026", "123456"}}},
		{"both methods: each length, TOTP's first", both, "pw1234567890", false, []cand{{"pw1234", "567890"}, {"pw12", "34567890"}}},
		{"both methods, only the short one fits", both, "pass!123456", false, []cand{{"pass!", "123456"}}},
		{"remembered: the whole first", totp, "Secret1234567", true, []cand{{"Secret1234567", ""}, {"Secret1", "234567"}}},
		{"remembered, no code", totp, "Secret-pass", true, []cand{{"Secret-pass", ""}}},
		{"nothing enrolled: the whole", none, "Secret1234567", false, []cand{{"Secret1234567", ""}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := c.candidates(pol, tc.u, tc.typed, tc.remembered)
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("candidates(%q) = %v, want %v", tc.typed, got, tc.want)
			}
		})
	}
	challenge := &policy{Policy: config.Policy{Mode: config.ModeChallenge, Factors: []string{"totp"}}}
	if got := c.candidates(challenge, totp, "Secret1234567", false); len(got) != 1 || got[0].code != "" {
		t.Errorf("challenge mode: %v, want the whole as the password", got)
	}
}

func TestAskedMethod(t *testing.T) {
	for typed, want := range map[string]string{
		"pw,sms": "pw sms", "pw,SMS": "pw sms", "pw,text": "pw sms", "pw,call": "pw voice", "pw,phone": "pw voice",
		"pw,voice": "pw voice", "a,b,call": "a,b voice", "pw,fax": "", ",sms": "", "pw": "", "pw,": "",
	} {
		pw, m, ok := askedMethod(typed)
		got := ""
		if ok {
			got = pw + " " + string(m)
		}
		if got != want {
			t.Errorf("askedMethod(%q) = %q, want %q", typed, got, want)
		}
	}
}

// Each mode, with and without an enrolment, answered each way: the reply
// and the reason of its audit record.
func TestFlows(t *testing.T) {
	type step struct {
		password string // "" with state: answer the challenge before
		code     string // the reply code wanted
		reason   audit.Reason
	}
	for _, tc := range []struct {
		name   string
		policy func(*config.Policy)
		user   string
		steps  []step
	}{
		{"challenge, enrolled, right code", nil, "alice", []step{
			{rightPassword, "Access-Challenge", audit.ReasonChallenge}, {goodCode, "Access-Accept", audit.ReasonMFA}}},
		{"challenge, enrolled, wrong then right", nil, "alice", []step{
			{rightPassword, "Access-Challenge", audit.ReasonChallenge}, {"000000", "Access-Challenge", audit.ReasonRetry},
			{goodCode, "Access-Accept", audit.ReasonMFA}}},
		{"challenge, enrolled, attempts exhausted", func(p *config.Policy) { p.Attempts = 2 }, "alice", []step{
			{rightPassword, "Access-Challenge", audit.ReasonChallenge}, {"000000", "Access-Challenge", audit.ReasonRetry},
			{"000000", "Access-Reject", audit.ReasonAttemptsExhausted}}},
		{"challenge, wrong password", nil, "alice", []step{{"nope", "Access-Reject", audit.ReasonBadCredentials}}},
		{"challenge, not enrolled", nil, "bob", []step{{rightPassword, "Access-Reject", audit.ReasonNotEnrolled}}},
		{"challenge, not enrolled, allowed", func(p *config.Policy) { p.Unenrolled = config.UnenrolledAllow }, "bob", []step{
			{rightPassword, "Access-Accept", audit.ReasonUnenrolledAllowed}}},
		{"optional, not enrolled", func(p *config.Policy) { p.MFA = config.MFAOptional }, "bob", []step{
			{rightPassword, "Access-Accept", audit.ReasonOptionalNoMethods}}},
		{"optional, enrolled: still asked", func(p *config.Policy) { p.MFA = config.MFAOptional }, "alice", []step{
			{rightPassword, "Access-Challenge", audit.ReasonChallenge}}},
		{"mfa off", func(p *config.Policy) { p.MFA = config.MFAOff }, "bob", []step{{rightPassword, "Access-Accept", audit.ReasonMFAOffPolicy}}},
		{"bypass group", func(p *config.Policy) { p.BypassGroups = []string{"staff"} }, "alice", []step{
			{rightPassword, "Access-Accept", audit.ReasonBypassGroup}}},
		{"deny group first", func(p *config.Policy) { p.DenyGroups, p.BypassGroups = []string{"staff"}, []string{"staff"} }, "alice", []step{
			{rightPassword, "Access-Reject", audit.ReasonDeniedGroup}}},
		{"required group missing", func(p *config.Policy) { p.RequireGroups = []string{"admins"} }, "alice", []step{
			{rightPassword, "Access-Reject", audit.ReasonNotInRequired}}},
		{"append, password and code", func(p *config.Policy) { p.Mode = config.ModeAppend }, "alice", []step{
			{rightPassword + goodCode, "Access-Accept", audit.ReasonMFA}}},
		{"append, password alone", func(p *config.Policy) { p.Mode = config.ModeAppend }, "alice", []step{
			{rightPassword, "Access-Reject", audit.ReasonCodeMissing}}},
		{"append, wrong code", func(p *config.Policy) { p.Mode = config.ModeAppend }, "alice", []step{
			{rightPassword + "000000", "Access-Reject", audit.ReasonWrongCode}}},
		{"append, not enrolled", func(p *config.Policy) { p.Mode = config.ModeAppend }, "bob", []step{
			{rightPassword, "Access-Reject", audit.ReasonNotEnrolled}}},
		{"empty password", nil, "alice", []step{{"", "Access-Reject", audit.ReasonEmptyPassword}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newConvFixture(t, fixtureOptions{policy: tc.policy})
			var state []byte
			for i, st := range tc.steps {
				var more []func(*radius.Packet)
				if state != nil {
					more = append(more, withState(state))
				}
				resp := f.ask(tc.user, st.password, more...)
				rec := f.last()
				if resp.Code.String() != st.code || rec.Reason != st.reason {
					t.Fatalf("step %d: %v %q, want %s %q", i+1, resp.Code, rec.Reason, st.code, st.reason)
				}
				state = rfc2865.State_Get(resp)
			}
		})
	}
}

// Retransmissions of a wrong password count once: the reply cache
// answers them, and the conversation never sees them.
func TestLockoutCountsARetransmitOnce(t *testing.T) {
	lo := config.Lockout{MaxFailures: 2, MaxCodeFailures: 2, Window: time.Minute, Duration: time.Minute}
	dir := newFakeDirectory()
	dir.release()
	ts := startServer(t, func(o *Options) {
		c, err := NewConversation(ConversationOptions{Directory: dir, State: state.NewMemory(state.MemoryOptions{Sweep: -1}),
			Policies: testPolicies(), Username: config.Username{Lowercase: true}, Lockout: lo, Metrics: NewMetrics(nil)})
		if err != nil {
			t.Fatal(err)
		}
		o.Handler = c
	})
	one := ts.dial(t, "127.0.0.1")
	wrong := request{id: 1, user: "carol", password: "wrong"}.encode(t, secretOne)
	for range 5 {
		one.send(wrong)
		one.read()
	}
	right := request{id: 2, user: "carol", password: rightPassword}.encode(t, secretOne)
	one.send(right)
	checkReply(t, one.read(), right, secretOne, radius.CodeAccessAccept)
	wrong2 := request{id: 3, user: "carol", password: "wrong"}.encode(t, secretOne)
	one.send(wrong2)
	one.read()
	one.send(right) // the same bytes again: answered from the cache
	checkReply(t, one.read(), right, secretOne, radius.CodeAccessAccept)
	fresh := request{id: 4, user: "carol", password: rightPassword, randomAuth: true}.encode(t, secretOne)
	one.send(fresh)
	checkReply(t, one.read(), fresh, secretOne, radius.CodeAccessReject)
}

// In append mode, one request whose typed text reads two ways (a 6- and
// an 8-digit code after the password) costs two binds, and both count:
// with max_failures 3, it and one more wrong password lock the user out,
// and the lockout is counted for the security team's alert.
func TestAppendCountsEveryFailedReading(t *testing.T) {
	f := newConvFixture(t, fixtureOptions{policy: func(p *config.Policy) {
		p.Mode = config.ModeAppend
		p.Factors = []string{"totp", "hotp"}
	}})
	f.conv.factors[factors.HOTP] = &fixedFactor{m: factors.HOTP, digits: 8}
	f.enr.mu.Lock()
	f.enr.m["alice"].Credentials = append(f.enr.m["alice"].Credentials, factors.Credential{Method: factors.HOTP, Active: true, Digits: 8})
	f.enr.mu.Unlock()
	f.ask("alice", "not-it12345678")
	if n := f.dir.calls.Load(); n != 2 {
		t.Fatalf("%d binds for a text that reads two ways, want 2", n)
	}
	f.ask("alice", "wrong")
	if resp := f.ask("alice", rightPassword+goodCode); resp.Code != radius.CodeAccessReject || f.last().Reason != audit.ReasonLockedPassword {
		t.Fatalf("after 3 failed readings: %v %q, want locked_out_password", resp.Code, f.last().Reason)
	}
	if n := testutil.ToFloat64(f.m.Lockouts.WithLabelValues("password")); n != 1 {
		t.Errorf("mfabridge_lockouts_total{limit=password} = %v, want 1", n)
	}
}
