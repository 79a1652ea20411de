package test

// Text messages and phone calls end to end: the real binary and slapd,
// radclient and the Go client, and a fake Twilio on loopback that records
// what the bridge sends and plays the phone (test/harness/twilio.go).

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"layeh.com/radius"
	"layeh.com/radius/rfc2865"

	"github.com/mfabridge/mfabridge/test/harness"
)

const (
	twSID    = "AC5f0e1d2c3b4a59687766554433221100"
	twToken  = "Tw1l1oAuthT0kenNeverInAnyLog9a8b"
	twFrom   = "+441234567890"
	twMobile = "+447700900123"
	twIssuer = "Example NHS Trust"
)

// twConf is a test configuration with factors.twilio pointing at a fake.
type twConf struct {
	conf
	Twilio  string // more keys under factors.twilio, indented by four spaces
	Factors string // more keys under factors (sms:, voice:), indented by two
	// Fake is the fake Twilio to use, for bridges that share one; nil:
	// one of its own.
	Fake *harness.FakeTwilio
}

// twBridge is a running bridge with its fake Twilio.
type twBridge struct {
	*bridge
	fake   *harness.FakeTwilio
	public string // server.public_url, which reaches admin_listen

	mu      sync.Mutex
	secrets []string // passwords to look for in the logs
}

// startTwilioBridge starts a fake Twilio and a bridge using it. It picks
// the admin port itself, so that server.public_url can name it (Twilio
// posts the key pressed in a call there). When the test ends it checks
// that no log holds the auth token, a code sent or a password.
func startTwilioBridge(t *testing.T, tc twConf) *twBridge {
	t.Helper()
	fake := tc.Fake
	if fake == nil {
		fake = harness.NewFakeTwilio(twSID, twToken)
		t.Cleanup(fake.Close)
	}
	rp, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	ap, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	c := tc.conf
	c.Radius, c.Admin = "127.0.0.1:"+strconv.Itoa(rp), "127.0.0.1:"+strconv.Itoa(ap)
	public := "http://" + c.Admin
	c.ServerExtra = fmt.Sprintf("  public_url: %q\n", public) + c.ServerExtra
	c.Extra = fmt.Sprintf(`factors:
  totp: {issuer: %q}
  twilio:
    account_sid: env:TWILIO_SID
    auth_token: env:TWILIO_TOKEN
    from: %q
    api_url: %q
    timeout: 2s
%s
%s
%s`, twIssuer, twFrom, fake.URL, tc.Twilio, tc.Factors, c.Extra)
	def := func(s *string, d string) {
		if *s == "" {
			*s = d
		}
	}
	def(&c.Clients, defaultClients)
	def(&c.URLs, `"`+env.slapd.URL+`"`)
	def(&c.Timeout, "3s")
	def(&c.Policies, defaultPolicies)
	def(&c.CA, env.slapd.CA.CertFile)
	def(&c.ServiceDN, harness.ServiceDN)
	def(&c.PeopleDN, harness.PeopleDN)
	dir := t.TempDir()
	c.Dir = dir
	var sb strings.Builder
	if err := baseConfig.Execute(&sb, c); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "mfabridge.yaml")
	if err := os.WriteFile(path, []byte(sb.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	tb := &twBridge{fake: fake, public: public}
	b, err := harness.StartBridge(env.bin, path, tb.env()...)
	if err != nil {
		t.Fatal(err)
	}
	tb.bridge = &bridge{Bridge: b, Radius: c.Radius, Admin: c.Admin, dir: dir}
	t.Cleanup(func() {
		if !b.Exited() {
			if code, err := b.Stop(); err != nil || code != 0 {
				t.Errorf("mfabridge exit status %d after SIGTERM (%v)", code, err)
			}
		}
		tb.checkRequests(t)
		tb.checkSecrets(t)
		if t.Failed() {
			t.Logf("mfabridge log:\n%s\naudit:\n%s", b.Logs(), b.Stdout())
			for i, r := range fake.Requests() {
				t.Logf("twilio request %d: %s %s → %d %v", i, r.Method, r.Path, r.Status, r.Form)
			}
		}
	})
	return tb
}

func (b *twBridge) env() []string {
	return []string{"LOCAL_SECRET=" + secretLocal, "OTHER_SECRET=" + secretOther, "LDAP_PASSWORD=" + harness.ServicePass,
		"STORE_KEY=" + storeKey, "TWILIO_SID=" + twSID, "TWILIO_TOKEN=" + twToken}
}

// secret adds strings that must never appear in a log.
func (b *twBridge) secret(s ...string) {
	b.mu.Lock()
	b.secrets = append(b.secrets, s...)
	b.mu.Unlock()
}

// checkRequests: everything that reached Twilio was an authenticated POST
// to the account's Messages or Calls, with the Host of Twilio's API.
func (b *twBridge) checkRequests(t *testing.T) {
	t.Helper()
	for i, r := range b.fake.Requests() {
		if r.Method != http.MethodPost || !r.Authorized || r.User != twSID || r.Host != "api.twilio.com" ||
			(r.Path != "/2010-04-01/Accounts/"+twSID+"/Messages.json" && r.Path != "/2010-04-01/Accounts/"+twSID+"/Calls.json") {
			t.Errorf("twilio request %d: %s %s Host %q user %q authorized %t", i, r.Method, r.Path, r.Host, r.User, r.Authorized)
		}
	}
}

// sentCodes returns every code the bridge gave Twilio, delivered or not.
func (b *twBridge) sentCodes() []string {
	var codes []string
	for _, r := range b.fake.Requests() {
		if body := r.Form.Get("Body"); body != "" {
			if c := (harness.TwilioMessage{Body: body}).Code(); c != "" {
				codes = append(codes, c)
			}
		}
		if tw := r.Form.Get("Twiml"); tw != "" {
			codes = append(codes, harness.TwilioCall{Twiml: tw}.SpokenCodes()...)
		}
	}
	return codes
}

// checkSecrets: no log or audit record holds the auth token, a code sent
// (as a number of its own), a password, a message body or a TwiML.
func (b *twBridge) checkSecrets(t *testing.T) {
	t.Helper()
	logs := b.Logs() + "\n" + b.Stdout()
	if strings.Contains(logs, twToken) {
		t.Errorf("the Twilio auth token is in the log")
	}
	for _, code := range b.sentCodes() {
		if regexp.MustCompile(`(^|[^0-9])` + code + `([^0-9]|$)`).MatchString(logs) {
			t.Errorf("a code sent (%s) is in the log", code)
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, s := range b.secrets {
		if strings.Contains(logs, s) {
			t.Errorf("secret %q is in the log", s)
		}
	}
	for _, r := range b.fake.Requests() {
		if tw := r.Form.Get("Twiml"); tw != "" && strings.Contains(logs, "<Response>") {
			t.Errorf("TwiML is in the log")
		}
		if body := r.Form.Get("Body"); body != "" && strings.Contains(logs, body) {
			t.Errorf("a message body is in the log")
		}
	}
}

// enrolTOTP enrols user with a random secret through the CLI.
func (b *twBridge) enrolTOTP(t *testing.T, user string) token {
	t.Helper()
	secret := make([]byte, 20)
	if _, err := rand.Read(secret); err != nil {
		t.Fatal(err)
	}
	tk := newToken(secret)
	if out, stderr, code := mfabridge(t, b.env(), "enrol", "totp", "--config", b.ConfigFile, "--user", user, "--secret", tk.base32()); code != 0 {
		t.Fatalf("enrol totp: %d %s %s", code, out, stderr)
	}
	return tk
}

// setDefault makes method the user's default through the CLI.
func (b *twBridge) setDefault(t *testing.T, user, method string) {
	t.Helper()
	if out, stderr, code := mfabridge(t, b.env(), "user", "default", "--config", b.ConfigFile, "--user", user, method); code != 0 {
		t.Fatalf("user default %s: %d %s %s", method, code, out, stderr)
	}
}

// newPhoneUser adds a directory user with mobile (none when "").
func (b *twBridge) newPhoneUser(t *testing.T, mobile string) harness.User {
	t.Helper()
	n := userSeq.Add(1)
	u := harness.User{UID: fmt.Sprintf("u%d-%s", n, strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-"))),
		Password: fmt.Sprintf("Pw-%d-Tw-secret", n), Mobile: mobile}
	if len(u.UID) > 60 {
		u.UID = u.UID[:60]
	}
	if err := env.slapd.AddUsers(u); err != nil {
		t.Fatal(err)
	}
	b.secret(u.Password)
	return u
}

// uniqueMobile is a UK mobile number no other test uses.
func uniqueMobile() string {
	return fmt.Sprintf("+447700%06d", 100000+userSeq.Add(1)%800000)
}

func masked(number string) string { return "******" + number[len(number)-4:] }

// exchange sends one request and waits up to timeout for the reply and
// its audit record: for requests held longer than send's 5 seconds.
func (b *twBridge) exchange(t *testing.T, c *harness.Client, user string, p *radius.Packet, timeout time.Duration) (*radius.Packet, []byte, auditRecord) {
	t.Helper()
	n := len(filterAudit(b.audit(t), user))
	resp, raw, err := c.Exchange(p, timeout)
	if err != nil {
		t.Fatalf("request for %s: %v", user, err)
	}
	return resp, raw, b.waitRecord(t, user, n)
}

func msgOf(p *radius.Packet) string { return rfc2865.ReplyMessage_GetString(p) }

// logLine returns the last operational log line with msg for user.
// The log reaches the test through a pipe, so a line written just before
// a reply may arrive just after it: logLine waits up to 2s for it.
func (b *twBridge) logLine(t *testing.T, msg, user string) map[string]any {
	t.Helper()
	var found map[string]any
	harness.Eventually(2*time.Second, func() bool {
		for _, line := range strings.Split(b.Logs(), "\n") {
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) != nil {
				continue
			}
			if m["msg"] == msg && m["user"] == user {
				found = m
			}
		}
		return found != nil
	})
	return found
}

func wantMsg(t *testing.T, what string, p *radius.Packet, subs ...string) {
	t.Helper()
	if m := msgOf(p); !containsAll(m, subs...) {
		t.Errorf("%s: Reply-Message %q, want it to contain %q", what, m, subs)
	}
}

// ---- text messages ----

const smsOnlyPolicy = `  default:
    mfa: required
    factors: [sms]`

func TestSMSChallengeThroughRadclient(t *testing.T) {
	t.Parallel()
	b := startTwilioBridge(t, twConf{conf: conf{Policies: smsOnlyPolicy}})
	u := b.newPhoneUser(t, twMobile)

	r := b.radclient(t, "auth", secretLocal, pap(u.UID, u.Password))
	if r.Code != "Access-Challenge" {
		t.Fatalf("got %q, want Access-Challenge\n%s", r.Code, r.Out)
	}
	if msg := r.Attrs["Reply-Message"]; len(msg) != 1 || !containsAll(msg[0], "text message", "sent to ******0123") ||
		strings.Contains(msg[0], "+44") || strings.Contains(msg[0], "900123") {
		t.Errorf("prompt = %q, want a text message sent to ******0123, and no more of the number", msg)
	}
	if rec := b.lastAudit(t, u.UID); rec.Reason != "challenge_sent" || rec.Outcome != "challenge" {
		t.Errorf("audit %+v", rec)
	}
	msgs := b.fake.Messages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages sent, want 1", len(msgs))
	}
	m := msgs[0]
	code := m.Code()
	if m.To != twMobile || m.From != twFrom || !strings.Contains(m.Body, twIssuer) || len(code) != 6 {
		t.Fatalf("message %+v: want to %s from %s, with the issuer and a 6-digit code", m, twMobile, twFrom)
	}
	if m.Body != "Your "+twIssuer+" code is "+code {
		t.Errorf("body %q, want the default message", m.Body)
	}
	state := r.Attrs["State"]
	if len(state) != 1 {
		t.Fatalf("State %v", state)
	}

	r = b.radclient(t, "auth", secretLocal, pap(u.UID, code)+", State = "+state[0])
	if r.Code != "Access-Accept" {
		t.Fatalf("answer with the code: %q\n%s", r.Code, r.Out)
	}
	if rec := b.lastAudit(t, u.UID); rec.Reason != "mfa_passed" || rec.Factor != "sms" {
		t.Errorf("audit %+v, want mfa_passed by sms", rec)
	}

	// The same code in a new login is refused; that login sent its own.
	r = b.radclient(t, "auth", secretLocal, pap(u.UID, u.Password))
	if r.Code != "Access-Challenge" || len(b.fake.Messages()) != 2 {
		t.Fatalf("second login: %q, %d messages", r.Code, len(b.fake.Messages()))
	}
	if b.fake.Messages()[1].Code() == code {
		t.Skip("the new code happens to equal the old one")
	}
	r = b.radclient(t, "auth", secretLocal, pap(u.UID, code)+", State = "+r.Attrs["State"][0])
	if r.Code == "Access-Accept" {
		t.Fatalf("a used code was accepted again")
	}
	if rec := b.lastAudit(t, u.UID); rec.Reason != "wrong_code_retry" {
		t.Errorf("reused code: audit %+v", rec)
	}
}

const menuPolicy = `  default:
    mfa: required
    factors: [totp, sms, voice]`

func TestSMSAndVoiceMenu(t *testing.T) {
	t.Parallel()
	b := startTwilioBridge(t, twConf{conf: conf{Policies: menuPolicy}})
	u := b.newPhoneUser(t, twMobile)
	tk := b.enrolTOTP(t, u.UID)
	c := b.client(t, "127.0.0.1", secretLocal)

	st, prompt := b.challenged(t, c, u.UID, u.Password)
	wantPrompt := "Enter the code from your authenticator app, or reply 1 for a text message to ******0123, 2 for a phone call to ******0123."
	if prompt != wantPrompt {
		t.Errorf("prompt %q,\nwant   %q", prompt, wantPrompt)
	}
	if n, k := len(b.fake.Messages()), len(b.fake.Calls()); n+k != 0 {
		t.Fatalf("%d messages and %d calls before a choice", n, k)
	}

	// 1: a text message.
	resp, rec := b.send(t, c, u.UID, "1", withState(st))
	if resp.Code != radius.CodeAccessChallenge || rec.Reason != "method_started" {
		t.Fatalf("reply 1: %v %q %q", resp.Code, rec.Reason, msgOf(resp))
	}
	wantMsg(t, "reply 1", resp, "A text message with a code was sent to ******0123.", "authenticator app", "phone call")
	st1 := rfc2865.State_Get(resp)
	if len(st1) != 16 || bytes.Equal(st1, st) {
		t.Fatalf("State after a choice %x (before %x)", st1, st)
	}
	msgs := b.fake.Messages()
	if len(msgs) != 1 || len(b.fake.Calls()) != 0 {
		t.Fatalf("after reply 1: %d messages, %d calls", len(msgs), len(b.fake.Calls()))
	}
	resp, rec = b.send(t, c, u.UID, msgs[0].Code(), withState(st1))
	want(t, "the texted code", resp, rec, radius.CodeAccessAccept, "mfa_passed")
	if rec.Factor != "sms" {
		t.Errorf("factor %q, want sms", rec.Factor)
	}

	// 2 in another login: a call that reads the code twice.
	st, _ = b.challenged(t, c, u.UID, u.Password)
	resp, rec = b.send(t, c, u.UID, "2", withState(st))
	if resp.Code != radius.CodeAccessChallenge || rec.Reason != "method_started" {
		t.Fatalf("reply 2: %v %q %q", resp.Code, rec.Reason, msgOf(resp))
	}
	wantMsg(t, "reply 2", resp, "A call to ******0123 will read you a code.")
	calls := b.fake.Calls()
	if len(calls) != 1 || len(b.fake.Messages()) != 1 {
		t.Fatalf("after reply 2: %d calls, %d messages", len(calls), len(b.fake.Messages()))
	}
	call := calls[0]
	if call.To != twMobile || call.From != twFrom {
		t.Errorf("call to %s from %s", call.To, call.From)
	}
	spoken := call.SpokenCodes()
	if len(spoken) != 2 || spoken[0] != spoken[1] || len(spoken[0]) != 6 {
		t.Fatalf("codes read %q, want one 6-digit code twice:\n%s", spoken, call.Twiml)
	}
	if !strings.Contains(call.Twiml, strings.Join(strings.Split(spoken[0], ""), ", ")) {
		t.Errorf("the code is not read digit by digit: %s", call.Twiml)
	}
	if _, ok := call.Gather(); ok {
		t.Errorf("a code call has a Gather")
	}
	resp, rec = b.send(t, c, u.UID, spoken[0], withState(rfc2865.State_Get(resp)))
	want(t, "the code read out", resp, rec, radius.CodeAccessAccept, "mfa_passed")
	if rec.Factor != "voice" {
		t.Errorf("factor %q, want voice", rec.Factor)
	}

	// The app code still works at a menu, and nothing is sent for it.
	st, _ = b.challenged(t, c, u.UID, u.Password)
	resp, rec = b.send(t, c, u.UID, tk.code(0), withState(st))
	want(t, "app code at the menu", resp, rec, radius.CodeAccessAccept, "mfa_passed")
	if n, k := len(b.fake.Messages()), len(b.fake.Calls()); n != 1 || k != 1 {
		t.Errorf("%d messages and %d calls, want 1 and 1", n, k)
	}
}

func TestSMSDefaultMethodSentAtOnce(t *testing.T) {
	t.Parallel()
	b := startTwilioBridge(t, twConf{conf: conf{Policies: menuPolicy}})
	u := b.newPhoneUser(t, twMobile)
	b.enrolTOTP(t, u.UID)
	b.setDefault(t, u.UID, "sms")
	c := b.client(t, "127.0.0.1", secretLocal)

	st, prompt := b.challenged(t, c, u.UID, u.Password)
	if !strings.HasPrefix(prompt, "A text message with a code was sent to ******0123.") ||
		!containsAll(prompt, "authenticator app", "reply 1 for a phone call to ******0123") || strings.Contains(prompt, "2 for") {
		t.Errorf("prompt %q", prompt)
	}
	msgs := b.fake.Messages()
	if len(msgs) != 1 || len(b.fake.Calls()) != 0 {
		t.Fatalf("%d messages, %d calls at the first challenge; want the message sent at once", len(msgs), len(b.fake.Calls()))
	}
	resp, rec := b.send(t, c, u.UID, msgs[0].Code(), withState(st))
	want(t, "the code", resp, rec, radius.CodeAccessAccept, "mfa_passed")
	if rec.Factor != "sms" {
		t.Errorf("factor %q", rec.Factor)
	}
}

// A NAS that resends a request must not cause a second message.
func TestSMSRetransmissionSendsOnce(t *testing.T) {
	t.Parallel()
	b := startTwilioBridge(t, twConf{conf: conf{Policies: `  default:
    mfa: required
    factors: [totp, sms]`}})
	c := b.client(t, "127.0.0.1", secretLocal)

	resend := func(t *testing.T, user string, p *radius.Packet, wantCount int) *radius.Packet {
		t.Helper()
		raw, err := p.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Send(raw); err != nil {
			t.Fatal(err)
		}
		resp1, rb1, err := c.ReplyTo(raw, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(b.fake.Messages()); n != wantCount {
			t.Fatalf("%d messages after the request, want %d", n, wantCount)
		}
		if err := c.Send(raw); err != nil {
			t.Fatal(err)
		}
		_, rb2, err := c.ReplyTo(raw, 5*time.Second)
		if err != nil {
			t.Fatalf("retransmission: %v", err)
		}
		if !bytes.Equal(rb1, rb2) {
			t.Errorf("the retransmission got another reply:\n%x\n%x", rb1, rb2)
		}
		time.Sleep(300 * time.Millisecond)
		if n := len(b.fake.Messages()); n != wantCount {
			t.Fatalf("%d messages after a retransmission, want %d", n, wantCount)
		}
		if got := len(b.fake.MessagesTo(twMobile)); got != wantCount {
			t.Fatalf("messages to the user %d", got)
		}
		return resp1
	}

	t.Run("first login with sms the default", func(t *testing.T) {
		u := b.newPhoneUser(t, twMobile)
		b.enrolTOTP(t, u.UID)
		b.setDefault(t, u.UID, "sms")
		before := len(b.fake.Messages())
		resp := resend(t, u.UID, harness.Request(secretLocal, u.UID, u.Password, true), before+1)
		if resp.Code != radius.CodeAccessChallenge {
			t.Fatalf("%v %q", resp.Code, msgOf(resp))
		}
		if recs := filterAudit(b.audit(t), u.UID); len(recs) != 1 {
			t.Errorf("%d audit records for a request and its retransmission, want 1", len(recs))
		}
	})
	t.Run("menu choice", func(t *testing.T) {
		u := b.newPhoneUser(t, twMobile)
		b.enrolTOTP(t, u.UID)
		before := len(b.fake.Messages())
		st, _ := b.challenged(t, c, u.UID, u.Password)
		resp := resend(t, u.UID, harness.Request(secretLocal, u.UID, "1", true, withState(st)), before+1)
		if resp.Code != radius.CodeAccessChallenge {
			t.Fatalf("%v %q", resp.Code, msgOf(resp))
		}
		// And the answer, resent, is accepted once and sends nothing.
		code := b.fake.Messages()[before].Code()
		resp = resend(t, u.UID, harness.Request(secretLocal, u.UID, code, true, withState(rfc2865.State_Get(resp))), before+1)
		if resp.Code != radius.CodeAccessAccept {
			t.Fatalf("answer: %v %q", resp.Code, msgOf(resp))
		}
	})
}

func TestSMSPerUserLimit(t *testing.T) {
	t.Parallel()
	b := startTwilioBridge(t, twConf{conf: conf{Policies: `  default:
    mfa: required
    factors: [totp, sms]`}, Factors: `  sms: {max_per_hour: 2}`})
	c := b.client(t, "127.0.0.1", secretLocal)
	// Each login comes from a device of its own: the same login from one
	// device inside duplicate_window is one login, which sends once
	// (TestSendOnceAcrossInstances).
	device := 0
	from := func() func(*radius.Packet) {
		device++
		return withStation(fmt.Sprintf("10.9.0.%d", device))
	}

	t.Run("sms only", func(t *testing.T) {
		number := uniqueMobile()
		u := b.newPhoneUser(t, number)
		for i := range 2 {
			b.challenged(t, c, u.UID, u.Password, from())
			if n := len(b.fake.MessagesTo(number)); n != i+1 {
				t.Fatalf("login %d: %d messages", i+1, n)
			}
		}
		resp, rec := b.send(t, c, u.UID, u.Password, from())
		want(t, "third login in the hour", resp, rec, radius.CodeAccessReject, "send_failed")
		wantMsg(t, "third login", resp, "Too many codes")
		if n := len(b.fake.MessagesTo(number)); n != 2 {
			t.Fatalf("%d messages, want 2", n)
		}
	})
	t.Run("with an app", func(t *testing.T) {
		number := uniqueMobile()
		u := b.newPhoneUser(t, number)
		tk := b.enrolTOTP(t, u.UID)
		b.setDefault(t, u.UID, "sms")
		for range 2 {
			b.challenged(t, c, u.UID, u.Password, from())
		}
		st, prompt := b.challenged(t, c, u.UID, u.Password, from())
		if !containsAll(prompt, "Too many codes", "authenticator app") || strings.Contains(prompt, "reply") {
			t.Errorf("prompt past the limit %q: want the limit told and the app code offered", prompt)
		}
		if n := len(b.fake.MessagesTo(number)); n != 2 {
			t.Fatalf("%d messages, want 2", n)
		}
		resp, rec := b.send(t, c, u.UID, tk.code(0), withState(st))
		want(t, "app code past the limit", resp, rec, radius.CodeAccessAccept, "mfa_passed")
	})
	t.Run("every spelling of the name counts on one limit", func(t *testing.T) {
		number := uniqueMobile()
		u := b.newPhoneUser(t, number)
		names := []string{strings.ToUpper(u.UID), fullwidth(u.UID[:1]) + u.UID[1:], fullwidth(u.UID)}
		var last *radius.Packet
		var rec auditRecord
		for _, name := range names {
			n := len(filterAudit(b.audit(t), u.UID))
			resp, _, err := c.Exchange(harness.Request(secretLocal, name, u.Password, true, from()), replyWait)
			if err != nil {
				t.Fatal(err)
			}
			last, rec = resp, b.waitRecord(t, u.UID, n)
		}
		want(t, "third login in the hour, under a third spelling", last, rec, radius.CodeAccessReject, "send_failed")
		if n := len(b.fake.MessagesTo(number)); n != 2 {
			t.Fatalf("%d messages to one user under three spellings, want the limit of 2", n)
		}
	})
	if v := b.metric(t, `mfabridge_factor_sends_total{factor="sms",result="rate_limited"}`); v < 3 {
		t.Errorf("rate_limited sends counted %v, want 3", v)
	}
	if v := b.metric(t, `mfabridge_factor_sends_total{factor="sms",result="sent"}`); v != 6 {
		t.Errorf("sent counted %v, want 6", v)
	}
}

// waitMinuteStart waits, if needed, so that need fits in the current
// wall-clock minute (the global limit counts per minute).
func waitMinuteStart(t *testing.T, need time.Duration) {
	now := time.Now()
	next := now.Truncate(time.Minute).Add(time.Minute)
	if next.Sub(now) < need {
		t.Logf("waiting %s for a new minute", next.Sub(now).Round(time.Millisecond))
		time.Sleep(next.Sub(now) + 100*time.Millisecond)
	}
}

func TestSMSGlobalCeiling(t *testing.T) {
	t.Parallel()
	b := startTwilioBridge(t, twConf{conf: conf{Policies: smsOnlyPolicy}, Twilio: `    max_per_minute: 2`})
	c := b.client(t, "127.0.0.1", secretLocal)
	a, bb := b.newPhoneUser(t, uniqueMobile()), b.newPhoneUser(t, uniqueMobile())
	waitMinuteStart(t, 15*time.Second)
	start := time.Now()
	b.challenged(t, c, a.UID, a.Password)
	b.challenged(t, c, bb.UID, bb.Password)
	for _, u := range []harness.User{a, bb} {
		// From another device: a new login, not the same one again.
		resp, rec := b.send(t, c, u.UID, u.Password, withStation("10.9.1.1"))
		want(t, "past the ceiling", resp, rec, radius.CodeAccessReject, "send_failed")
		wantMsg(t, "past the ceiling", resp, "Too many codes")
	}
	if time.Now().Truncate(time.Minute) != start.Truncate(time.Minute) {
		t.Fatalf("the test crossed a minute boundary; the counts are not comparable")
	}
	if n := len(b.fake.Messages()); n != 2 {
		t.Fatalf("%d messages, want 2 (max_per_minute)", n)
	}
	if v := b.metric(t, `mfabridge_factor_sends_total{factor="sms",result="rate_limited"}`); v != 2 {
		t.Errorf("rate_limited %v, want 2", v)
	}
}

func TestSMSNothingSentBeforeThePassword(t *testing.T) {
	t.Parallel()
	b := startTwilioBridge(t, twConf{conf: conf{Policies: smsOnlyPolicy,
		Extra: `lockout: {max_failures: 2, max_code_failures: 5, window: 1m, duration: 1m}`}})
	c := b.client(t, "127.0.0.1", secretLocal)
	u := b.newPhoneUser(t, twMobile)

	for i := range 2 {
		resp, rec := b.send(t, c, u.UID, "wrong-"+u.Password)
		want(t, fmt.Sprintf("wrong password %d", i+1), resp, rec, radius.CodeAccessReject, "bad_credentials")
	}
	resp, rec := b.send(t, c, u.UID, u.Password)
	want(t, "right password while locked out", resp, rec, radius.CodeAccessReject, "locked_out_password")
	resp, rec = b.send(t, c, "nobody-"+u.UID, u.Password)
	want(t, "unknown user", resp, rec, radius.CodeAccessReject, "bad_credentials")
	time.Sleep(200 * time.Millisecond)
	if n := len(b.fake.Requests()); n != 0 {
		t.Fatalf("%d requests reached Twilio, want none", n)
	}
}

// ---- Twilio failing ----

func TestTwilioSendFailures(t *testing.T) {
	t.Parallel()
	b := startTwilioBridge(t, twConf{conf: conf{Policies: `  default:
    mfa: required
    factors: [totp, sms]`}})
	c := b.client(t, "127.0.0.1", secretLocal)

	withApp := func(t *testing.T) (harness.User, token) {
		u := b.newPhoneUser(t, uniqueMobile())
		tk := b.enrolTOTP(t, u.UID)
		b.setDefault(t, u.UID, "sms")
		return u, tk
	}
	checkLog := func(t *testing.T, user string, code, status float64) {
		t.Helper()
		line := b.logLine(t, "send failed", user)
		if line == nil {
			t.Fatalf("no \"send failed\" log line for %s", user)
		}
		if line["service_code"] != code || line["http_status"] != status || line["factor"] != "sms" || line["level"] != "ERROR" {
			t.Errorf("log line %v: want service_code %v, http_status %v", line, code, status)
		}
	}
	// appOffered: the failure is told, the app code still asked for.
	appOffered := func(t *testing.T, u harness.User, tk token, timeout time.Duration) {
		t.Helper()
		resp, _, rec := b.exchange(t, c, u.UID, harness.Request(secretLocal, u.UID, u.Password, true), timeout)
		want(t, "login", resp, rec, radius.CodeAccessChallenge, "challenge_sent")
		wantMsg(t, "login", resp, "The text message could not be sent.", "authenticator app")
		if strings.Contains(msgOf(resp), "reply") {
			t.Errorf("the failed method is still offered: %q", msgOf(resp))
		}
		resp, rec = b.send(t, c, u.UID, tk.code(0), withState(rfc2865.State_Get(resp)))
		want(t, "app code", resp, rec, radius.CodeAccessAccept, "mfa_passed")
		if rec.Factor != "totp" {
			t.Errorf("factor %q", rec.Factor)
		}
	}
	smsOnly := func(t *testing.T, timeout time.Duration) string {
		t.Helper()
		u := b.newPhoneUser(t, uniqueMobile())
		resp, _, rec := b.exchange(t, c, u.UID, harness.Request(secretLocal, u.UID, u.Password, true), timeout)
		want(t, "login", resp, rec, radius.CodeAccessReject, "send_failed")
		wantMsg(t, "login", resp, "The text message could not be sent.")
		return u.UID
	}

	t.Run("500 with an app", func(t *testing.T) {
		u, tk := withApp(t)
		b.fake.FailNext(1, 500, 20500, "Internal Server Error")
		appOffered(t, u, tk, 5*time.Second)
		checkLog(t, u.UID, 20500, 500)
	})
	t.Run("400 invalid number, sms only", func(t *testing.T) {
		b.fake.FailNext(1, 400, 21211, "Invalid 'To' Phone Number")
		user := smsOnly(t, 5*time.Second)
		checkLog(t, user, 21211, 400)
	})
	t.Run("timeout with an app", func(t *testing.T) {
		u, tk := withApp(t)
		b.fake.HangNext(1, 8*time.Second)
		start := time.Now()
		appOffered(t, u, tk, 10*time.Second)
		if took := time.Since(start); took > 6*time.Second {
			t.Errorf("the reply took %s with factors.twilio.timeout 2s", took)
		}
		checkLog(t, u.UID, 0, 0)
		if line := b.logLine(t, "send failed", u.UID); line != nil && !strings.Contains(fmt.Sprint(line["err"]), "in time") {
			t.Errorf("timeout log line %v", line)
		}
	})
	t.Run("timeout, sms only", func(t *testing.T) {
		b.fake.HangNext(1, 8*time.Second)
		user := smsOnly(t, 10*time.Second)
		checkLog(t, user, 0, 0)
	})
	t.Run("recovered", func(t *testing.T) {
		u := b.newPhoneUser(t, uniqueMobile())
		b.challenged(t, c, u.UID, u.Password)
		if len(b.fake.MessagesTo(u.Mobile)) != 1 {
			t.Fatal("no message once Twilio answers again")
		}
	})
	if v := b.metric(t, `mfabridge_factor_sends_total{factor="sms",result="failed"}`); v != 4 {
		t.Errorf("failed sends counted %v, want 4", v)
	}
}

// ---- phone calls answered with # ----

const approvePolicy = `  default:
    mfa: required
    factors: [voice]`

const approveFactors = `  voice: {mode: approve}`

// approveLogin logs u in and returns the State and the call's index.
func (b *twBridge) approveLogin(t *testing.T, c *harness.Client, u harness.User) ([]byte, int) {
	t.Helper()
	st, prompt := b.challenged(t, c, u.UID, u.Password)
	if !containsAll(prompt, "Answer the call to "+masked(u.Mobile)+" and press # to approve.", "Press Enter") {
		t.Errorf("prompt %q", prompt)
	}
	idx, ok := b.fake.WaitCallTo(u.Mobile, 0, 5*time.Second)
	if !ok {
		t.Fatal("no call placed")
	}
	return st, idx
}

func TestVoiceApproveChallenge(t *testing.T) {
	t.Parallel()
	b := startTwilioBridge(t, twConf{conf: conf{Policies: approvePolicy}, Factors: approveFactors})
	c := b.client(t, "127.0.0.1", secretLocal)
	press := func(t *testing.T, idx int, digits string, forge bool) (int, string) {
		t.Helper()
		code, body, err := b.fake.PressKey(idx, digits, forge)
		if err != nil {
			t.Fatal(err)
		}
		return code, body
	}
	enter := func(t *testing.T, u harness.User, st []byte) (*radius.Packet, auditRecord) {
		t.Helper()
		return b.send(t, c, u.UID, "", withState(st))
	}

	t.Run("hash approves", func(t *testing.T) {
		u := b.newPhoneUser(t, uniqueMobile())
		st, idx := b.approveLogin(t, c, u)
		call := b.fake.Calls()[idx]
		g, ok := call.Gather()
		if !ok || g.NumDigits != "1" || g.FinishOnKey == nil || *g.FinishOnKey != "" || g.Method != "POST" ||
			!regexp.MustCompile(`^`+regexp.QuoteMeta(b.public)+`/twilio/voice/[0-9a-f]{32}$`).MatchString(g.Action) {
			t.Fatalf("Gather %+v, want numDigits 1, finishOnKey empty, POST to %s/twilio/voice/<token>:\n%s", g, b.public, call.Twiml)
		}
		if says, ok := call.Says(); !ok || len(says) != 2 || !strings.Contains(says[0], twIssuer) {
			t.Errorf("Says %q (well-formed %t)", says, ok)
		}
		code, body := press(t, idx, "#", false)
		if code != http.StatusOK || !strings.Contains(body, "Approved") {
			t.Fatalf("webhook %d %q", code, body)
		}
		resp, rec := enter(t, u, st)
		want(t, "Enter after #", resp, rec, radius.CodeAccessAccept, "mfa_passed")
		if rec.Factor != "voice" {
			t.Errorf("factor %q", rec.Factor)
		}
		// The call is used up: # again is too late.
		if code, body := press(t, idx, "#", false); code != http.StatusOK || !strings.Contains(body, "expired") {
			t.Errorf("# after the login: %d %q", code, body)
		}
	})
	t.Run("forged signature", func(t *testing.T) {
		u := b.newPhoneUser(t, uniqueMobile())
		st, idx := b.approveLogin(t, c, u)
		if code, _ := press(t, idx, "#", true); code != http.StatusForbidden {
			t.Fatalf("forged webhook: %d, want 403", code)
		}
		resp, rec := enter(t, u, st)
		want(t, "Enter after a forged #", resp, rec, radius.CodeAccessChallenge, "approval_pending")
		wantMsg(t, "Enter after a forged #", resp, "not been answered with # yet")
		if !b.WaitLog("Twilio webhook with a bad signature refused", time.Second) {
			t.Error("no log line for the forged webhook")
		}
		// The real # still works.
		if code, _ := press(t, idx, "#", false); code != http.StatusOK {
			t.Fatalf("real webhook %d", code)
		}
		resp, rec = enter(t, u, rfc2865.State_Get(resp))
		want(t, "Enter after the real #", resp, rec, radius.CodeAccessAccept, "mfa_passed")
	})
	t.Run("another call's CallSid", func(t *testing.T) {
		u := b.newPhoneUser(t, uniqueMobile())
		st, idx := b.approveLogin(t, c, u)
		call := b.fake.Calls()[idx]
		form := url.Values{"CallSid": {"CA" + strings.Repeat("0", 32)}, "Digits": {"#"}, "From": {call.From}, "To": {call.To}, "AccountSid": {twSID}}
		code, body, err := b.fake.PressKeyForm(idx, form, false)
		if err != nil || code != http.StatusOK || !strings.Contains(body, "expired") {
			t.Fatalf("webhook with another CallSid: %d %q %v", code, body, err)
		}
		resp, rec := enter(t, u, st)
		want(t, "Enter", resp, rec, radius.CodeAccessChallenge, "approval_pending")
	})
	t.Run("another key refuses", func(t *testing.T) {
		u := b.newPhoneUser(t, uniqueMobile())
		st, idx := b.approveLogin(t, c, u)
		code, body := press(t, idx, "1", false)
		if code != http.StatusOK || !strings.Contains(body, "refused") {
			t.Fatalf("webhook %d %q", code, body)
		}
		resp, rec := enter(t, u, st)
		want(t, "Enter after 1", resp, rec, radius.CodeAccessReject, "call_refused")
		wantMsg(t, "Enter after 1", resp, "refused on the phone")
	})
	t.Run("GET refused", func(t *testing.T) {
		u := b.newPhoneUser(t, uniqueMobile())
		_, idx := b.approveLogin(t, c, u)
		g, _ := b.fake.Calls()[idx].Gather()
		resp, err := http.Get(g.Action + "?Digits=%23")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("GET %d, want 405", resp.StatusCode)
		}
	})
}

func TestVoiceApproveAfterTheChallengeExpired(t *testing.T) {
	t.Parallel()
	b := startTwilioBridge(t, twConf{conf: conf{Policies: approvePolicy, ServerExtra: "  challenge_timeout: 1s"}, Factors: approveFactors})
	c := b.client(t, "127.0.0.1", secretLocal)
	u := b.newPhoneUser(t, uniqueMobile())
	st, idx := b.approveLogin(t, c, u)
	time.Sleep(2 * time.Second)
	code, body, err := b.fake.PressKey(idx, "#", false)
	if err != nil {
		t.Fatal(err)
	}
	if code != http.StatusOK || !strings.Contains(body, "expired") {
		t.Errorf("# after the challenge expired: %d %q, want 200 and that it expired", code, body)
	}
	resp, rec := b.send(t, c, u.UID, "", withState(st))
	want(t, "Enter after expiry", resp, rec, radius.CodeAccessReject, "unknown_state")
}

// An approval belongs to the challenge that placed the call: another
// login of the same user (someone else who knows the password, at the
// same time) must not be let in by it.
func TestVoiceApproveBoundToItsChallenge(t *testing.T) {
	t.Parallel()
	b := startTwilioBridge(t, twConf{conf: conf{Policies: `  default:
    mfa: required
    factors: [totp, voice]`}, Factors: approveFactors})
	c := b.client(t, "127.0.0.1", secretLocal)
	u := b.newPhoneUser(t, uniqueMobile())
	b.enrolTOTP(t, u.UID)

	// The user's own login: choose the call.
	stA, prompt := b.challenged(t, c, u.UID, u.Password)
	if !strings.Contains(prompt, "reply 1 for a phone call") {
		t.Fatalf("prompt %q", prompt)
	}
	resp, rec := b.send(t, c, u.UID, "1", withState(stA))
	if resp.Code != radius.CodeAccessChallenge || rec.Reason != "method_started" {
		t.Fatalf("reply 1: %v %q", resp.Code, rec.Reason)
	}
	stA2 := rfc2865.State_Get(resp)
	idx, ok := b.fake.WaitCallTo(u.Mobile, 0, 5*time.Second)
	if !ok {
		t.Fatal("no call")
	}
	// Another login with the password, which never asked for a call.
	stB, _ := b.challenged(t, c, u.UID, u.Password)
	// The user presses # for their own login.
	if code, _, err := b.fake.PressKey(idx, "#", false); err != nil || code != http.StatusOK {
		t.Fatalf("webhook %d %v", code, err)
	}
	for _, answer := range []string{"", "000000"} {
		resp, rec = b.send(t, c, u.UID, answer, withState(stB))
		if resp.Code == radius.CodeAccessAccept {
			t.Fatalf("a login that placed no call was accepted with %q by the # pressed for another (audit %+v)", answer, rec)
		}
		if resp.Code == radius.CodeAccessChallenge {
			stB = rfc2865.State_Get(resp)
		}
	}
	resp, rec = b.send(t, c, u.UID, "", withState(stA2))
	want(t, "the user's own Enter", resp, rec, radius.CodeAccessAccept, "mfa_passed")
}

// ---- append mode ----

func TestSMSAppendMode(t *testing.T) {
	t.Parallel()
	b := startTwilioBridge(t, twConf{conf: conf{Policies: `  default:
    mode: append
    mfa: required
    factors: [totp, sms, voice]`}})
	c := b.client(t, "127.0.0.1", secretLocal)

	// codeSent asks for a code with password,what and returns the login's
	// reply checks done.
	codeSent := func(t *testing.T, u harness.User, what, says string) {
		t.Helper()
		resp, rec := b.send(t, c, u.UID, u.Password+","+what)
		want(t, "password,"+what, resp, rec, radius.CodeAccessReject, "code_sent")
		wantMsg(t, "password,"+what, resp, says, "password followed by the code")
	}

	t.Run("refusals send nothing", func(t *testing.T) {
		u := b.newPhoneUser(t, uniqueMobile())
		resp, rec := b.send(t, c, u.UID, u.Password)
		want(t, "password alone", resp, rec, radius.CodeAccessReject, "code_missing")
		wantMsg(t, "password alone", resp, ",sms", ",call")
		resp, rec = b.send(t, c, u.UID, "wrong-"+u.Password+",sms")
		want(t, "wrong password,sms", resp, rec, radius.CodeAccessReject, "bad_credentials")
		if n := len(b.fake.MessagesTo(u.Mobile)) + len(b.fake.CallsTo(u.Mobile)); n != 0 {
			t.Fatalf("%d sends for a wrong password", n)
		}
	})
	t.Run("phone only: password,sms then password+code", func(t *testing.T) {
		u := b.newPhoneUser(t, twMobile)
		codeSent(t, u, "sms", "A text message with a code was sent to ******0123.")
		m, ok := b.fake.WaitMessageTo(twMobile, 0, time.Second)
		if !ok {
			t.Fatal("no message")
		}
		resp, rec := b.send(t, c, u.UID, u.Password+m.Code())
		want(t, "password+code", resp, rec, radius.CodeAccessAccept, "mfa_passed")
		if rec.Factor != "sms" {
			t.Errorf("factor %q", rec.Factor)
		}
	})
	t.Run("with an app: sms and call", func(t *testing.T) {
		number := uniqueMobile()
		u := b.newPhoneUser(t, number)
		b.enrolTOTP(t, u.UID)
		codeSent(t, u, "sms", "A text message with a code was sent to "+masked(number)+".")
		m, ok := b.fake.WaitMessageTo(number, 0, time.Second)
		if !ok {
			t.Fatal("no message")
		}
		resp, rec := b.send(t, c, u.UID, u.Password+m.Code())
		want(t, "password+code", resp, rec, radius.CodeAccessAccept, "mfa_passed")
		if rec.Factor != "sms" {
			t.Errorf("factor %q", rec.Factor)
		}
		resp, rec = b.send(t, c, u.UID, u.Password+m.Code())
		if resp.Code == radius.CodeAccessAccept {
			t.Fatalf("the texted code worked twice (audit %+v)", rec)
		}

		codeSent(t, u, "call", "A call to "+masked(number)+" will read you a code.")
		idx, ok := b.fake.WaitCallTo(number, 0, time.Second)
		if !ok {
			t.Fatal("no call")
		}
		spoken := b.fake.Calls()[idx].SpokenCodes()
		if len(spoken) != 2 {
			t.Fatalf("codes read %q", spoken)
		}
		resp, rec = b.send(t, c, u.UID, u.Password+spoken[0])
		want(t, "password+code read out", resp, rec, radius.CodeAccessAccept, "mfa_passed")
		if rec.Factor != "voice" {
			t.Errorf("factor %q", rec.Factor)
		}
	})
}

// ---- auto mode: the request is held for the # ----

func TestAutoModeHeldForApproval(t *testing.T) {
	t.Parallel()
	b := startTwilioBridge(t, twConf{conf: conf{Policies: `  default:
    mode: auto
    mfa: required
    factors: [voice]`}, Factors: `  voice: {mode: approve, approve_timeout: 3s}`})

	// send sends the login and returns its raw bytes and when it went.
	send := func(t *testing.T, c *harness.Client, u harness.User) []byte {
		raw, err := harness.Request(secretLocal, u.UID, u.Password, true).Encode()
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Send(raw); err != nil {
			t.Fatal(err)
		}
		return raw
	}

	t.Run("group", func(t *testing.T) {
		t.Run("hash", func(t *testing.T) {
			t.Parallel()
			c := b.client(t, "127.0.0.1", secretLocal)
			u := b.newPhoneUser(t, uniqueMobile())
			start := time.Now()
			raw := send(t, c, u)
			idx, ok := b.fake.WaitCallTo(u.Mobile, 0, 5*time.Second)
			if !ok {
				t.Fatal("no call")
			}
			// A NAS resends after 2 seconds: absorbed, no second call.
			time.Sleep(time.Until(start.Add(2 * time.Second)))
			if err := c.Send(raw); err != nil {
				t.Fatal(err)
			}
			time.Sleep(300 * time.Millisecond)
			if code, body, err := b.fake.PressKey(idx, "#", false); err != nil || code != http.StatusOK || !strings.Contains(body, "Approved") {
				t.Fatalf("webhook %d %q %v", code, body, err)
			}
			resp, rb1, err := c.ReplyTo(raw, 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			rec := b.waitRecord(t, u.UID, 0)
			want(t, "held login", resp, rec, radius.CodeAccessAccept, "mfa_passed")
			if rec.Factor != "voice" {
				t.Errorf("factor %q", rec.Factor)
			}
			if n := len(b.fake.CallsTo(u.Mobile)); n != 1 {
				t.Fatalf("%d calls, want 1", n)
			}
			// Once answered, a retransmission gets the same reply.
			if err := c.Send(raw); err != nil {
				t.Fatal(err)
			}
			_, rb2, err := c.ReplyTo(raw, 5*time.Second)
			if err != nil || !bytes.Equal(rb1, rb2) {
				t.Errorf("retransmission after the answer: %v, same reply %t", err, bytes.Equal(rb1, rb2))
			}
			if n := len(b.fake.CallsTo(u.Mobile)); n != 1 {
				t.Fatalf("%d calls after retransmissions, want 1", n)
			}
			if recs := filterAudit(b.audit(t), u.UID); len(recs) != 1 {
				t.Errorf("%d audit records, want 1", len(recs))
			}
		})
		t.Run("other key", func(t *testing.T) {
			t.Parallel()
			c := b.client(t, "127.0.0.1", secretLocal)
			u := b.newPhoneUser(t, uniqueMobile())
			raw := send(t, c, u)
			idx, ok := b.fake.WaitCallTo(u.Mobile, 0, 5*time.Second)
			if !ok {
				t.Fatal("no call")
			}
			if code, _, err := b.fake.PressKey(idx, "7", false); err != nil || code != http.StatusOK {
				t.Fatalf("webhook %d %v", code, err)
			}
			resp, _, err := c.ReplyTo(raw, 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			want(t, "refused", resp, b.waitRecord(t, u.UID, 0), radius.CodeAccessReject, "call_refused")
			wantMsg(t, "refused", resp, "refused on the phone")
		})
		t.Run("forged then nothing", func(t *testing.T) {
			t.Parallel()
			c := b.client(t, "127.0.0.1", secretLocal)
			u := b.newPhoneUser(t, uniqueMobile())
			start := time.Now()
			raw := send(t, c, u)
			idx, ok := b.fake.WaitCallTo(u.Mobile, 0, 5*time.Second)
			if !ok {
				t.Fatal("no call")
			}
			if code, _, err := b.fake.PressKey(idx, "#", true); err != nil || code != http.StatusForbidden {
				t.Fatalf("forged webhook %d %v", code, err)
			}
			resp, _, err := c.ReplyTo(raw, 10*time.Second)
			took := time.Since(start)
			if err != nil {
				t.Fatal(err)
			}
			want(t, "no key", resp, b.waitRecord(t, u.UID, 0), radius.CodeAccessReject, "approval_timeout")
			wantMsg(t, "no key", resp, "not answered with # in time")
			if took < 3*time.Second || took > 5*time.Second {
				t.Errorf("answered after %s, want approve_timeout (3s) to 5s", took)
			}
		})
	})
	// Twilio takes a second to queue the call; the request is still
	// refused at approve_timeout, and a # pressed after that approves
	// nothing.
	t.Run("late hash", func(t *testing.T) {
		c := b.client(t, "127.0.0.1", secretLocal)
		u := b.newPhoneUser(t, uniqueMobile())
		b.fake.DelayNext(1, time.Second)
		start := time.Now()
		raw := send(t, c, u)
		resp, _, err := c.ReplyTo(raw, 10*time.Second)
		took := time.Since(start)
		if err != nil {
			t.Fatal(err)
		}
		want(t, "no key", resp, b.waitRecord(t, u.UID, 0), radius.CodeAccessReject, "approval_timeout")
		if took > 5*time.Second {
			t.Errorf("answered after %s, want at most approve_timeout + 2s", took)
		}
		idx, ok := b.fake.WaitCallTo(u.Mobile, 0, time.Second)
		if !ok {
			t.Fatal("no call")
		}
		if code, body, _ := b.fake.PressKey(idx, "#", false); code != http.StatusOK || !strings.Contains(body, "expired") {
			t.Errorf("# after the held request was refused: %d %q, want 200 and that it expired", code, body)
		}
	})
}

// ---- numbers from the directory ----

func TestTwilioPhoneNumbersFromDirectory(t *testing.T) {
	t.Parallel()
	b := startTwilioBridge(t, twConf{conf: conf{
		Clients: `  - name: local
    address: 127.0.0.1
    secret: env:LOCAL_SECRET
    policy: all
  - name: other
    address: 127.0.0.5
    secret: env:OTHER_SECRET
    policy: smsonly`,
		Policies: `  all:
    mfa: required
    factors: [totp, sms, voice]
  smsonly:
    mfa: required
    factors: [sms]`}, Twilio: `    default_country_code: "44"`})
	all := b.client(t, "127.0.0.1", secretLocal)
	smsonly := b.client(t, "127.0.0.5", secretOther)

	t.Run("no number: no menu", func(t *testing.T) {
		u := b.newPhoneUser(t, "")
		b.enrolTOTP(t, u.UID)
		_, prompt := b.challenged(t, all, u.UID, u.Password)
		if prompt != "Enter the code from your authenticator app." {
			t.Errorf("prompt %q, want the app code alone", prompt)
		}
		resp, rec := b.send(t, smsonly, u.UID, u.Password)
		want(t, "sms only, no number", resp, rec, radius.CodeAccessReject, "not_enrolled")
	})
	t.Run("unusable number", func(t *testing.T) {
		u := b.newPhoneUser(t, "ask reception")
		resp, rec := b.send(t, smsonly, u.UID, u.Password)
		want(t, "sms only, no usable number", resp, rec, radius.CodeAccessReject, "not_enrolled")
	})
	t.Run("national number", func(t *testing.T) {
		u := b.newPhoneUser(t, "07700 900123")
		_, prompt := b.challenged(t, smsonly, u.UID, u.Password)
		if !strings.Contains(prompt, "******0123") {
			t.Errorf("prompt %q", prompt)
		}
		if _, ok := b.fake.WaitMessageTo(twMobile, 0, time.Second); !ok {
			t.Fatalf("no message to %s; sent %+v", twMobile, b.fake.Messages())
		}
	})
	if n := len(b.fake.Requests()); n != 1 {
		t.Errorf("%d Twilio requests, want 1", n)
	}
}

// ---- secrets ----

func TestTwilioSecretsNeverLogged(t *testing.T) {
	t.Parallel()
	b := startTwilioBridge(t, twConf{conf: conf{Policies: `  default:
    mfa: required
    factors: [sms, voice]`}})
	c := b.client(t, "127.0.0.1", secretLocal)
	u := b.newPhoneUser(t, twMobile)

	// A text message, a wrong code, the right one.
	st, _ := b.challenged(t, c, u.UID, u.Password)
	code := b.fake.Messages()[0].Code()
	resp, _ := b.send(t, c, u.UID, wrongSix(code), withState(st))
	resp, rec := b.send(t, c, u.UID, code, withState(rfc2865.State_Get(resp)))
	want(t, "sms", resp, rec, radius.CodeAccessAccept, "mfa_passed")
	// A call, through the menu after a failed message.
	b.fake.FailNext(1, 400, 21211, "Invalid 'To' Phone Number")
	st, prompt := b.challenged(t, c, u.UID, u.Password)
	if !strings.Contains(prompt, "could not be sent") {
		t.Errorf("prompt %q", prompt)
	}
	resp, rec = b.send(t, c, u.UID, "1", withState(st))
	if resp.Code != radius.CodeAccessChallenge {
		t.Fatalf("menu: %v %q", resp.Code, rec.Reason)
	}
	spoken := b.fake.Calls()[0].SpokenCodes()
	resp, rec = b.send(t, c, u.UID, spoken[0], withState(rfc2865.State_Get(resp)))
	want(t, "voice", resp, rec, radius.CodeAccessAccept, "mfa_passed")
	// check-config shows the configuration without the token.
	out, stderr, status := mfabridge(t, b.env(), "check-config", "--config", b.ConfigFile)
	if status != 0 || strings.Contains(out+stderr, twToken) {
		t.Errorf("check-config: status %d, token shown %t\n%s%s", status, strings.Contains(out+stderr, twToken), out, stderr)
	}

	b.checkSecrets(t) // also run at the end; here so that the test says it
	logs := b.Logs() + b.Stdout()
	for _, s := range []string{twToken, u.Password, code, spoken[0], "Your " + twIssuer + " code is"} {
		if strings.Contains(logs, s) {
			t.Errorf("%q is in the log", s)
		}
	}

	// What the bridge sends to Twilio, for the record.
	seen := map[string]bool{}
	var lines []string
	for _, r := range b.fake.Requests() {
		var keys []string
		for k := range r.Form {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		l := fmt.Sprintf("%s %s %v", r.Method, strings.Replace(r.Path, twSID, "{AccountSid}", 1), keys)
		if !seen[l] {
			seen[l] = true
			lines = append(lines, l)
		}
	}
	t.Logf("Twilio endpoints and form fields used:\n%s", strings.Join(lines, "\n"))
}

// wrongSix returns a six-digit code other than code.
func wrongSix(code string) string {
	b := []byte(code)
	b[0] = '0' + (b[0]-'0'+1)%10
	return string(b)
}

// With server.webhook_listen, Twilio's webhook is served there (and
// checks the signature), and no longer on admin_listen beside /metrics.
func TestTwilioWebhookOnItsOwnListener(t *testing.T) {
	t.Parallel()
	wp, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	hook := "127.0.0.1:" + strconv.Itoa(wp)
	b := startTwilioBridge(t, twConf{conf: conf{ServerExtra: fmt.Sprintf("  webhook_listen: %q\n", hook), Policies: smsOnlyPolicy}})
	form := url.Values{"CallSid": {"CA00000000000000000000000000000000"}, "Digits": {"#"}}
	var code int
	if !harness.Eventually(5*time.Second, func() bool {
		code, _, err = b.fake.PostWebhook("http://"+hook+"/twilio/voice/approve", form, false)
		return err == nil
	}) {
		t.Fatalf("webhook_listen does not answer: %v", err)
	}
	if code == http.StatusNotFound || code == http.StatusOK {
		t.Errorf("a post signed for another address on webhook_listen: %d, want it refused by the signature check", code)
	}
	if code, _, err := b.fake.PostWebhook("http://"+b.Admin+"/twilio/voice/approve", form, false); err != nil || code != http.StatusNotFound {
		t.Errorf("the webhook on admin_listen: %d %v, want 404", code, err)
	}
}
