package radius

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"layeh.com/radius"
	"layeh.com/radius/rfc2865"

	"github.com/mfabridge/mfabridge/config"
	"github.com/mfabridge/mfabridge/factors"
	"github.com/mfabridge/mfabridge/internal/audit"
	"github.com/mfabridge/mfabridge/internal/state"
)

// The conversation driven directly: a request in, a reply and an audit
// record out, over a directory that finds users by more than one name.

// aliasDirectory is fakeDirectory where a name may be an alias of
// another user (as a filter on uid or mail finds one entry by both).
type aliasDirectory struct {
	*fakeDirectory
	alias map[string]string // login → canonical
}

func (d *aliasDirectory) Find(ctx context.Context, login string) (*factors.User, error) {
	if name, ok := d.alias[login]; ok {
		return &factors.User{Name: name, Login: login, DN: "uid=" + name + ",dc=example,dc=org"}, nil
	}
	return d.fakeDirectory.Find(ctx, login)
}

// fakeEnrolments holds credentials by canonical name.
type fakeEnrolments struct {
	mu sync.Mutex
	m  map[string]*factors.Enrolment
}

func (e *fakeEnrolments) Enrolment(_ context.Context, user string) (*factors.Enrolment, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if x, ok := e.m[user]; ok {
		return x.Clone(), nil
	}
	return &factors.Enrolment{}, nil
}

func (e *fakeEnrolments) Used(context.Context, string, factors.Method) error { return nil }

func (e *fakeEnrolments) reset(user string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if x, ok := e.m[user]; ok {
		x.LockoutEpoch++
	}
}

// codeFactor is a TOTP stand-in: goodCode passes for an enrolled user.
type codeFactor struct{ checks atomic.Int32 }

const goodCode = "123456"

func (f *codeFactor) Method() factors.Method       { return factors.TOTP }
func (f *codeFactor) Label(*factors.User) string   { return "the code from your authenticator app" }
func (f *codeFactor) CodeLength(*factors.User) int { return 6 }
func (f *codeFactor) Enrolled(u *factors.User) bool {
	_, ok := u.Enrolment.Credential(factors.TOTP)
	return ok
}
func (f *codeFactor) Check(_ context.Context, u *factors.User, code string) error {
	f.checks.Add(1)
	if code == goodCode {
		return nil
	}
	return factors.ErrWrongCode
}

// convFixture is a conversation with alice enrolled for the code factor.
type convFixture struct {
	t      *testing.T
	conv   *Conversation
	dir    *aliasDirectory
	enr    *fakeEnrolments
	code   *codeFactor
	state  State
	mem    *state.Memory
	audit  *bytes.Buffer
	auditM sync.Mutex
	m      *Metrics
	client *Client
}

func totpEnrolment() *factors.Enrolment {
	return &factors.Enrolment{Credentials: []factors.Credential{{Method: factors.TOTP, Active: true, Digits: 6}}}
}

type fixtureOptions struct {
	policy  func(*config.Policy)
	lockout config.Lockout
	state   func(State) State
	clients []config.Client
	extra   map[string]config.Policy
}

func newConvFixture(t *testing.T, o fixtureOptions) *convFixture {
	t.Helper()
	f := &convFixture{t: t, dir: &aliasDirectory{fakeDirectory: newFakeDirectory(), alias: map[string]string{"alice@mail.example.org": "alice"}},
		enr:  &fakeEnrolments{m: map[string]*factors.Enrolment{"alice": totpEnrolment()}},
		code: &codeFactor{}, audit: &bytes.Buffer{}, m: NewMetrics(nil)}
	f.dir.release()
	f.mem = state.NewMemory(state.MemoryOptions{Sweep: -1})
	f.state = f.mem
	if o.state != nil {
		f.state = o.state(f.mem)
	}
	p := config.DefaultPolicy()
	p.Factors = []string{"totp"}
	if o.policy != nil {
		o.policy(&p)
	}
	lo := o.lockout
	if lo.Window == 0 {
		lo = config.Lockout{MaxFailures: 3, MaxCodeFailures: 3, Window: time.Minute, Duration: time.Minute, KnownStationTTL: time.Hour}
	}
	if o.clients == nil {
		o.clients = testClients()
	}
	policies := map[string]config.Policy{"default": p, "other": config.DefaultPolicy()}
	for n, x := range o.extra {
		policies[n] = x
	}
	c, err := NewConversation(ConversationOptions{Directory: f.dir, Enrolments: f.enr, State: f.state,
		Factors: []factors.Factor{f.code}, Policies: policies, Clients: o.clients, Username: config.Username{Lowercase: true},
		Lockout: lo, Audit: audit.New(lockedBuffer{&f.auditM, f.audit}), Metrics: f.m})
	if err != nil {
		t.Fatal(err)
	}
	f.conv = c
	tbl := NewClientTable(o.clients)
	f.client = tbl.Lookup(netip.MustParseAddr("127.0.0.1"))
	return f
}

type lockedBuffer struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (l lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// replyWriter keeps what the conversation wrote.
type replyWriter struct{ p *radius.Packet }

func (w *replyWriter) Write(p *radius.Packet) error { w.p = p; return nil }

// ask sends one request and returns the reply.
func (f *convFixture) ask(user, password string, more ...func(*radius.Packet)) *radius.Packet {
	f.t.Helper()
	p := radius.New(radius.CodeAccessRequest, f.client.Secret)
	rfc2865.UserName_SetString(p, user)
	rfc2865.UserPassword_SetString(p, password)
	for _, m := range more {
		m(p)
	}
	info := &requestInfo{client: f.client, from: netip.MustParseAddrPort("127.0.0.1:5000"), received: time.Now()}
	req := (&radius.Request{Packet: p}).WithContext(context.WithValue(context.Background(), infoKey{}, info))
	w := &replyWriter{}
	f.conv.ServeRADIUS(w, req)
	if w.p == nil {
		f.t.Fatalf("no reply to %s", user)
	}
	return w.p
}

// records returns the audit records so far.
func (f *convFixture) records() []audit.Record {
	f.auditM.Lock()
	defer f.auditM.Unlock()
	var out []audit.Record
	for _, line := range strings.Split(strings.TrimSpace(f.audit.String()), "\n") {
		if line == "" {
			continue
		}
		var r audit.Record
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			f.t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

func (f *convFixture) last() audit.Record {
	recs := f.records()
	if len(recs) == 0 {
		f.t.Fatal("no audit record")
	}
	return recs[len(recs)-1]
}

func withState(st []byte) func(*radius.Packet) {
	return func(p *radius.Packet) { rfc2865.State_Set(p, st) }
}
func withStation(s string) func(*radius.Packet) {
	return func(p *radius.Packet) { rfc2865.CallingStationID_SetString(p, s) }
}

func TestConversationOneIdentityForEveryName(t *testing.T) {
	f := newConvFixture(t, fixtureOptions{policy: func(p *config.Policy) { p.Unenrolled = config.UnenrolledAllow }})
	for _, name := range []string{"alice", "ALICE", "Ａlice", "alice@mail.example.org", "ALICE@MAIL.EXAMPLE.ORG"} {
		resp := f.ask(name, rightPassword)
		rec := f.last()
		if resp.Code != radius.CodeAccessChallenge || rec.User != "alice" {
			t.Errorf("%q: %v, audit user %q reason %q; want alice's challenge", name, resp.Code, rec.User, rec.Reason)
		}
		st := rfc2865.State_Get(resp)
		resp = f.ask(name, goodCode, withState(st))
		if resp.Code != radius.CodeAccessAccept || rfc2865.UserName_GetString(resp) != "alice" {
			t.Errorf("%q answered: %v with User-Name %q; want Access-Accept for alice", name, resp.Code, rfc2865.UserName_GetString(resp))
		}
	}
	if rec := f.last(); rec.Login != "alice@mail.example.org" {
		t.Errorf("audit login %q, want the name as typed", rec.Login)
	}
	// The State of a challenge is the name's it was issued for, or the
	// user's: not another user's.
	st := rfc2865.State_Get(f.ask("alice@mail.example.org", rightPassword))
	if resp := f.ask("bob", goodCode, withState(st)); resp.Code != radius.CodeAccessReject || f.last().Reason != audit.ReasonStateMismatch {
		t.Errorf("alice's State answered as bob: %v %q", resp.Code, f.last().Reason)
	}
}

func TestConversationUnknownNamesKeepNoState(t *testing.T) {
	f := newConvFixture(t, fixtureOptions{})
	for i := range 200 {
		if resp := f.ask("unknown-"+strings.Repeat("x", i%7)+string(rune('a'+i%26))+strings.Repeat("y", i/26), "guess"); resp.Code != radius.CodeAccessReject {
			t.Fatalf("unknown name: %v", resp.Code)
		}
	}
	if n := f.mem.Len(); n != 0 {
		t.Errorf("%d state entries after 200 unknown names, want none", n)
	}
	if got := f.dir.decoys.Load(); got != 200 {
		t.Errorf("%d decoy binds, want 200 (one per unknown name)", got)
	}
	if r := f.last(); r.Reason != audit.ReasonBadCredentials {
		t.Errorf("reason %q: an unknown name must look like a wrong password", r.Reason)
	}
}

func TestConversationConcurrentGuessesStopAtTheLimit(t *testing.T) {
	f := newConvFixture(t, fixtureOptions{})
	var wg sync.WaitGroup
	for range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.ask("alice", "wrong")
		}()
	}
	wg.Wait()
	if n := f.dir.calls.Load(); n != 3 {
		t.Errorf("%d binds for 30 concurrent wrong passwords, want max_failures (3)", n)
	}
	if resp := f.ask("alice", rightPassword); resp.Code != radius.CodeAccessReject || f.last().Reason != audit.ReasonLockedPassword {
		t.Errorf("right password afterwards: %v %q, want locked_out_password", resp.Code, f.last().Reason)
	}
}

func TestConversationConcurrentCodesStopAtTheLimit(t *testing.T) {
	f := newConvFixture(t, fixtureOptions{policy: func(p *config.Policy) { p.Attempts = 10 }})
	var states [][]byte
	for range 20 {
		states = append(states, rfc2865.State_Get(f.ask("alice", rightPassword)))
	}
	var wg sync.WaitGroup
	for _, st := range states {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.ask("alice", "000000", withState(st))
		}()
	}
	wg.Wait()
	if n := f.code.checks.Load(); n != 3 {
		t.Errorf("%d codes checked from 20 open challenges at once, want max_code_failures (3)", n)
	}
}

// failingState refuses to count.
type failingState struct{ State }

func (failingState) Incr(context.Context, string, time.Duration) (int64, error) {
	return 0, errors.New("state store down")
}

func TestConversationLockoutFailsClosed(t *testing.T) {
	f := newConvFixture(t, fixtureOptions{state: func(s State) State { return failingState{s} }})
	resp := f.ask("alice", rightPassword)
	if resp.Code != radius.CodeAccessReject || f.last().Reason != audit.ReasonStateDown {
		t.Errorf("with no way to count guesses: %v %q, want a refusal (state_unavailable)", resp.Code, f.last().Reason)
	}
	if n := f.dir.calls.Load(); n != 0 {
		t.Errorf("%d binds spent while guesses could not be counted", n)
	}
}

func TestConversationKnownStationIsThrottledNotLockedOut(t *testing.T) {
	f := newConvFixture(t, fixtureOptions{policy: func(p *config.Policy) { p.MFA = config.MFAOff }})
	home := withStation("home-pc")
	if resp := f.ask("alice", rightPassword, home); resp.Code != radius.CodeAccessAccept {
		t.Fatalf("first login: %v", resp.Code)
	}
	for range 3 {
		f.ask("alice", "wrong", withStation("elsewhere"))
	}
	if resp := f.ask("alice", rightPassword, withStation("elsewhere")); f.last().Reason != audit.ReasonLockedPassword {
		t.Fatalf("locked out elsewhere: %v %q", resp.Code, f.last().Reason)
	}
	if resp := f.ask("alice", rightPassword); f.last().Reason != audit.ReasonLockedPassword {
		t.Fatalf("locked out without a station: %v %q", resp.Code, f.last().Reason)
	}
	start := time.Now()
	resp := f.ask("alice", rightPassword, home)
	if resp.Code != radius.CodeAccessAccept {
		t.Fatalf("the known station during the lockout: %v %q, want Access-Accept after a delay", resp.Code, f.last().Reason)
	}
	if d := time.Since(start); d < time.Second {
		t.Errorf("the known station got in after %v, want a delay of at least 1s", d)
	}
	if got := testutilCount(f.m.Throttled); got != 1 {
		t.Errorf("throttled counted %v, want 1", got)
	}
	// A user reset forgets known stations, as it ends remembered logins.
	f.enr.reset("alice")
	for range 3 {
		f.ask("alice", "wrong", withStation("elsewhere"))
	}
	if f.ask("alice", rightPassword, home); f.last().Reason != audit.ReasonLockedPassword {
		t.Errorf("a station known before the reset: %q, want locked_out_password", f.last().Reason)
	}
}

func TestConversationRememberEndsWithReset(t *testing.T) {
	f := newConvFixture(t, fixtureOptions{policy: func(p *config.Policy) { p.Remember = time.Hour; p.Mode = config.ModeAppend }})
	st := withStation("10.0.0.9")
	if resp := f.ask("alice", rightPassword+goodCode, st); resp.Code != radius.CodeAccessAccept {
		t.Fatalf("login with a code: %v %q", resp.Code, f.last().Reason)
	}
	if resp := f.ask("alice", rightPassword, st); resp.Code != radius.CodeAccessAccept || f.last().Reason != audit.ReasonRemembered {
		t.Fatalf("remembered: %v %q", resp.Code, f.last().Reason)
	}
	f.enr.reset("alice")
	if resp := f.ask("alice", rightPassword, st); resp.Code == radius.CodeAccessAccept {
		t.Errorf("remembered after user reset: %v %q", resp.Code, f.last().Reason)
	}
}

func TestConversationPolicyByNASIdentifier(t *testing.T) {
	clients := []config.Client{{Name: "proxy", Prefix: netip.MustParsePrefix("127.0.0.1/32"), Secret: config.NewSecret(secretOne),
		Policy: "default", Proxy: true, NAS: []config.NASPolicy{{Identifier: "asa-london", Policy: "open"}}}}
	open := config.DefaultPolicy()
	open.MFA = config.MFAOff
	f := newConvFixture(t, fixtureOptions{clients: clients, extra: map[string]config.Policy{"open": open}})
	nas := func(id string) func(*radius.Packet) {
		return func(p *radius.Packet) { rfc2865.NASIdentifier_SetString(p, id) }
	}
	if resp := f.ask("bob", rightPassword, nas("asa-london")); resp.Code != radius.CodeAccessAccept || f.last().Policy != "open" {
		t.Errorf("from asa-london: %v policy %q", resp.Code, f.last().Policy)
	}
	if f.last().NASIdentifier != "asa-london" {
		t.Errorf("audit nas_identifier %q", f.last().NASIdentifier)
	}
	if resp := f.ask("bob", rightPassword, nas("asa-paris")); resp.Code == radius.CodeAccessAccept || f.last().Policy != "default" {
		t.Errorf("from another NAS: %v policy %q, want the client's policy", resp.Code, f.last().Policy)
	}
}

func TestConversationPhoneMethodsOnlyWithoutApp(t *testing.T) {
	f := newConvFixture(t, fixtureOptions{policy: func(p *config.Policy) {
		p.Factors, p.PhoneMethods = []string{"totp", "sms"}, config.PhoneOnlyWithoutApp
	}})
	sms := &phoneFactor{}
	f.conv.factors[factors.SMS] = sms
	app := &factors.User{Name: "alice", Mobile: "+447700900001", Enrolment: totpEnrolment()}
	if got := f.conv.offered(f.conv.policies["default"], app); len(got) != 1 || got[0] != factors.TOTP {
		t.Errorf("an app user is offered %v, want only totp", got)
	}
	noApp := &factors.User{Name: "bob", Mobile: "+447700900002", Enrolment: &factors.Enrolment{}}
	if got := f.conv.offered(f.conv.policies["default"], noApp); len(got) != 1 || got[0] != factors.SMS {
		t.Errorf("a user without an app is offered %v, want sms", got)
	}
}

// phoneFactor is enrolled for whoever has a mobile number.
type phoneFactor struct{}

func (phoneFactor) Method() factors.Method        { return factors.SMS }
func (phoneFactor) Label(*factors.User) string    { return "a text message" }
func (phoneFactor) Enrolled(u *factors.User) bool { return u.Mobile != "" }
func (phoneFactor) Check(context.Context, *factors.User, string) error {
	return factors.ErrWrongCode
}
func (phoneFactor) Start(context.Context, *factors.User) (factors.Prompt, error) {
	return factors.Prompt{Text: "sent"}, nil
}

func testutilCount(c prometheus.Collector) float64 { return testutil.ToFloat64(c) }

// Behind a proxy, the NAS-IP-Address passed on is in the audit record.
func TestAuditNamesTheNASBehindAProxy(t *testing.T) {
	f := newConvFixture(t, fixtureOptions{})
	f.ask("alice", rightPassword, func(p *radius.Packet) { rfc2865.NASIPAddress_Set(p, net.IPv4(192, 0, 2, 44)) })
	if got := f.last().NASIP; got != "192.0.2.44" {
		t.Errorf("audit nas_ip %q, want 192.0.2.44", got)
	}
}
