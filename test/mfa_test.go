package test

import (
	"bytes"
	"crypto/rand"
	"encoding/base32"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"layeh.com/radius"
	"layeh.com/radius/rfc2865"

	"github.com/mfabridge/mfabridge/factors"
	"github.com/mfabridge/mfabridge/factors/otp"
	"github.com/mfabridge/mfabridge/test/harness"
)

// token plays an authenticator app holding secret.
type token struct {
	cred factors.Credential
}

func newToken(secret []byte) token {
	return token{cred: factors.Credential{Method: factors.TOTP, Secret: secret, Algorithm: "SHA1", Digits: 6, Period: 30, Active: true}}
}

// code returns the code for now plus offset time steps.
func (tk token) code(offset int64) string {
	return otp.Generate(tk.cred, uint64(time.Now().Unix()/30+offset))
}

func (tk token) base32() string {
	return base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(tk.cred.Secret)
}

// enrolTOTP enrols user with a fresh secret through the CLI and returns
// the token.
func (b *bridge) enrolTOTP(t *testing.T, user string) token {
	t.Helper()
	secret := make([]byte, 20)
	copy(secret, []byte(user+"-totp-secret-0123456789"))
	tk := newToken(secret)
	out, stderr, code := mfabridge(t, b.env(), "enrol", "totp", "--config", b.ConfigFile, "--user", user, "--secret", tk.base32())
	if code != 0 {
		t.Fatalf("enrol totp: %d %s %s", code, out, stderr)
	}
	return tk
}

func (b *bridge) env() []string {
	return []string{"LOCAL_SECRET=" + secretLocal, "OTHER_SECRET=" + secretOther, "LDAP_PASSWORD=" + harness.ServicePass, "STORE_KEY=" + storeKey}
}

const mfaPolicy = `  default:
    mfa: required
    factors: [totp, hotp]`

func TestTOTPChallengeThroughRadclient(t *testing.T) {
	b := startBridge(t, conf{Policies: mfaPolicy})
	u := newUser(t)
	tk := b.enrolTOTP(t, u.UID)

	r := b.radclient(t, "auth", secretLocal, pap(u.UID, u.Password))
	if r.Code != "Access-Challenge" {
		t.Fatalf("got %q, want Access-Challenge\n%s", r.Code, r.Out)
	}
	if msg := r.Attrs["Reply-Message"]; len(msg) != 1 || !strings.Contains(msg[0], "authenticator app") {
		t.Errorf("prompt = %v", msg)
	}
	state := r.Attrs["State"]
	if len(state) != 1 || len(state[0]) != 2+32 {
		t.Fatalf("State = %v, want 16 bytes", state)
	}
	r = b.radclient(t, "auth", secretLocal, pap(u.UID, tk.code(0))+", State = "+state[0])
	if r.Code != "Access-Accept" {
		t.Fatalf("answer: got %q\n%s", r.Code, r.Out)
	}
	rec := b.lastAudit(t, u.UID)
	if rec.Reason != "mfa_passed" {
		t.Errorf("audit %+v", rec)
	}
	// The State worked once.
	r = b.radclient(t, "auth", secretLocal, pap(u.UID, tk.code(0))+", State = "+state[0])
	if r.Code != "Access-Reject" || b.lastAudit(t, u.UID).Reason != "unknown_state" {
		t.Fatalf("reused State: %q %+v", r.Code, b.lastAudit(t, u.UID))
	}
}

func TestTestAuthAnswersChallenge(t *testing.T) {
	b := startBridge(t, conf{Policies: mfaPolicy})
	u := newUser(t)
	tk := b.enrolTOTP(t, u.UID)
	out, stderr, code := mfabridge(t, nil, "test-auth", "--server", b.Radius, "--secret", secretLocal, "--user", u.UID,
		"--password", u.Password, "--answer", tk.code(0))
	if code != 0 || !strings.Contains(out, "Access-Challenge") || !strings.Contains(out, "Access-Accept") {
		t.Fatalf("status %d\n%s%s", code, out, stderr)
	}
	if strings.Contains(out, tk.code(0)) {
		t.Errorf("test-auth printed the code")
	}
}

// ---- The conversation end to end: challenge, append, remember, lockout ----

// Policies used below. Each names its factors so that a test does not
// depend on the default list.
const (
	appendPolicy = `  default:
    mode: append
    mfa: required
    factors: [totp, hotp]`

	// twoModeClients puts a VPN (challenge) on 127.0.0.1 and a mail
	// gateway (append) on 127.0.0.5.
	twoModeClients = `  - name: local
    address: 127.0.0.1
    secret: env:LOCAL_SECRET
    policy: vpn
  - name: mail
    address: 127.0.0.5
    secret: env:OTHER_SECRET
    policy: mail`
	twoModePolicies = `  vpn:
    mode: challenge
    mfa: required
    factors: [totp, hotp]
  mail:
    mode: append
    mfa: required
    factors: [totp, hotp]`

	lockoutExtra = `lockout: {max_failures: 3, max_code_failures: 2, window: 1m, duration: 1m}`
)

// wrong returns a six-digit code that is none of the token's codes for
// the steps around now.
func (tk token) wrong() string {
	for n := 0; ; n++ {
		s := fmt.Sprintf("%06d", (n*137911+424242)%1000000)
		clash := false
		for off := int64(-3); off <= 3; off++ {
			clash = clash || tk.code(off) == s
		}
		if !clash {
			return s
		}
	}
}

// enrolTOTPSecret enrols user with a random secret through the CLI.
func (b *bridge) enrolRandomTOTP(t *testing.T, user string) token {
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

// hotpToken plays a hardware token.
type hotpToken struct{ cred factors.Credential }

func (h hotpToken) code(counter uint64) string { return otp.Generate(h.cred, counter) }

// enrolHOTP enrols user with a random 20-byte seed, given to the CLI in
// hex, at counter.
func (b *bridge) enrolHOTP(t *testing.T, user string, counter uint64) hotpToken {
	t.Helper()
	seed := make([]byte, 20)
	if _, err := rand.Read(seed); err != nil {
		t.Fatal(err)
	}
	out, stderr, code := mfabridge(t, b.env(), "enrol", "hotp", "--config", b.ConfigFile, "--user", user,
		"--secret", hex.EncodeToString(seed), "--counter", fmt.Sprint(counter))
	if code != 0 {
		t.Fatalf("enrol hotp: %d %s %s", code, out, stderr)
	}
	return hotpToken{cred: factors.Credential{Method: factors.HOTP, Secret: seed, Algorithm: "SHA1", Digits: 6}}
}

func withState(st []byte) func(*radius.Packet) {
	return func(p *radius.Packet) { rfc2865.State_Set(p, st) }
}

func withStation(s string) func(*radius.Packet) {
	return func(p *radius.Packet) { rfc2865.CallingStationID_SetString(p, s) }
}

// waitRecord waits for audit record number n (from 0) for user. The
// bridge writes the record just after the reply, so a test that has its
// reply must still wait for the record.
func (b *bridge) waitRecord(t *testing.T, user string, n int) auditRecord {
	t.Helper()
	var recs []auditRecord
	if !harness.Eventually(5*time.Second, func() bool {
		recs = filterAudit(b.audit(t), user)
		return len(recs) > n
	}) {
		t.Fatalf("audit record %d for %q never came; audit:\n%s", n, user, b.Stdout())
	}
	return recs[n]
}

// send sends one signed Access-Request for user from c and returns the
// reply and the audit record the request caused.
func (b *bridge) send(t *testing.T, c *harness.Client, user, password string, more ...func(*radius.Packet)) (*radius.Packet, auditRecord) {
	t.Helper()
	n := len(filterAudit(b.audit(t), user))
	resp, _, err := c.Exchange(harness.Request(string(c.Secret), user, password, true, more...), 5*time.Second)
	if err != nil {
		t.Fatalf("request for %s: %v", user, err)
	}
	return resp, b.waitRecord(t, user, n)
}

// want checks a reply's code (fatal: what follows depends on it) and the
// reason of its audit record (not fatal).
func want(t *testing.T, what string, resp *radius.Packet, rec auditRecord, code radius.Code, reason string) {
	t.Helper()
	if resp.Code != code {
		t.Fatalf("%s: got %v (audit reason %q, Reply-Message %q), want %v", what, resp.Code, rec.Reason,
			rfc2865.ReplyMessage_GetString(resp), code)
	}
	if rec.Reason != reason {
		t.Errorf("%s: audit reason %q, want %q (record %+v)", what, rec.Reason, reason, rec)
	}
}

// challenged logs in with the password and returns the State and prompt of
// the Access-Challenge.
func (b *bridge) challenged(t *testing.T, c *harness.Client, user, password string, more ...func(*radius.Packet)) ([]byte, string) {
	t.Helper()
	resp, rec := b.send(t, c, user, password, more...)
	want(t, "login of "+user, resp, rec, radius.CodeAccessChallenge, "challenge_sent")
	st := rfc2865.State_Get(resp)
	if len(st) != 16 {
		t.Fatalf("State of the challenge is %d bytes, want 16", len(st))
	}
	return st, rfc2865.ReplyMessage_GetString(resp)
}

func TestWrongCodeRetriesThenAttemptsExhausted(t *testing.T) {
	t.Parallel()
	b := startBridge(t, conf{Policies: mfaPolicy + "\n    attempts: 2"})
	u := newUser(t)
	tk := b.enrolTOTP(t, u.UID)
	c := b.client(t, "127.0.0.1", secretLocal)

	st1, _ := b.challenged(t, c, u.UID, u.Password)
	resp, rec := b.send(t, c, u.UID, tk.wrong(), withState(st1))
	want(t, "first wrong code", resp, rec, radius.CodeAccessChallenge, "wrong_code_retry")
	st2 := rfc2865.State_Get(resp)
	if len(st2) != 16 || bytes.Equal(st1, st2) {
		t.Fatalf("retry State %x, want a new 16-byte State (the first was %x)", st2, st1)
	}
	if msg := rfc2865.ReplyMessage_GetString(resp); !containsAll(msg, "Wrong code", "authenticator app") {
		t.Errorf("retry prompt = %q", msg)
	}

	resp, rec = b.send(t, c, u.UID, tk.wrong(), withState(st2))
	want(t, "second wrong code", resp, rec, radius.CodeAccessReject, "attempts_exhausted")
	if st := rfc2865.State_Get(resp); st != nil {
		t.Errorf("Access-Reject carries a State %x", st)
	}

	// Neither State works again, even with the right code.
	for i, st := range [][]byte{st1, st2} {
		resp, rec = b.send(t, c, u.UID, tk.code(0), withState(st))
		want(t, fmt.Sprintf("old State %d with the right code", i+1), resp, rec, radius.CodeAccessReject, "unknown_state")
	}
}

func TestCodeReplayRefused(t *testing.T) {
	t.Parallel()
	b := startBridge(t, conf{Clients: twoModeClients, Policies: twoModePolicies})
	u := newUser(t)
	tk := b.enrolRandomTOTP(t, u.UID)
	vpn := b.client(t, "127.0.0.1", secretLocal)
	mail := b.client(t, "127.0.0.5", secretOther)

	code := tk.code(0)
	st, _ := b.challenged(t, vpn, u.UID, u.Password)
	resp, rec := b.send(t, vpn, u.UID, code, withState(st))
	want(t, "first use", resp, rec, radius.CodeAccessAccept, "mfa_passed")

	// The same code in a second login, in append mode: refused as a replay.
	resp, rec = b.send(t, mail, u.UID, u.Password+code)
	want(t, "replay in append mode", resp, rec, radius.CodeAccessReject, "code_replayed")

	// And as the answer to a new challenge: never accepted. (It counts as
	// a wrong answer, so the user may try again.)
	st, _ = b.challenged(t, vpn, u.UID, u.Password)
	resp, rec = b.send(t, vpn, u.UID, code, withState(st))
	if resp.Code == radius.CodeAccessAccept {
		t.Fatalf("replayed code accepted as a challenge answer (audit %+v)", rec)
	}
	t.Logf("replay as a challenge answer: %v, audit reason %q", resp.Code, rec.Reason)
}

func TestConcurrentAnswersWithOneCodeAcceptOnce(t *testing.T) {
	t.Parallel()
	b := startBridge(t, conf{Policies: mfaPolicy})
	u := newUser(t)
	tk := b.enrolRandomTOTP(t, u.UID)
	clients := []*harness.Client{b.client(t, "127.0.0.1", secretLocal), b.client(t, "127.0.0.1", secretLocal)}
	states := make([][]byte, len(clients))
	for i, c := range clients {
		states[i], _ = b.challenged(t, c, u.UID, u.Password)
	}
	before := len(filterAudit(b.audit(t), u.UID))

	code := tk.code(0)
	reqs := make([][]byte, len(clients))
	for i := range clients {
		raw, err := harness.Request(secretLocal, u.UID, code, true, withState(states[i])).Encode()
		if err != nil {
			t.Fatal(err)
		}
		reqs[i] = raw
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	codes := make([]radius.Code, len(clients))
	errs := make([]error, len(clients))
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if errs[i] = c.Send(reqs[i]); errs[i] != nil {
				return
			}
			var resp *radius.Packet
			if resp, _, errs[i] = c.ReplyTo(reqs[i], 5*time.Second); errs[i] == nil {
				codes[i] = resp.Code
			}
		}()
	}
	close(start)
	wg.Wait()
	accepts := 0
	for i := range clients {
		if errs[i] != nil {
			t.Fatalf("answer %d: %v", i, errs[i])
		}
		if codes[i] == radius.CodeAccessAccept {
			accepts++
		}
	}
	if accepts != 1 {
		t.Fatalf("%d Access-Accepts for one code answered twice at once (%v), want exactly 1", accepts, codes)
	}
	b.waitRecord(t, u.UID, before+1)
	passed := 0
	for _, r := range filterAudit(b.audit(t), u.UID)[before:] {
		if r.Reason == "mfa_passed" {
			passed++
		}
	}
	if passed != 1 {
		t.Errorf("%d mfa_passed audit records, want 1", passed)
	}
}

func TestStateBoundToClientUserAndLifetime(t *testing.T) {
	t.Parallel()
	b := startBridge(t, conf{Policies: mfaPolicy, ServerExtra: "  challenge_timeout: 1s"})
	u := newUser(t)
	other := newUser(t)
	tk := b.enrolTOTP(t, u.UID)
	b.enrolRandomTOTP(t, other.UID)
	c := b.client(t, "127.0.0.1", secretLocal)
	legacy := b.client(t, "127.0.0.4", secretOther)

	st, _ := b.challenged(t, c, u.UID, u.Password)
	resp, rec := b.send(t, legacy, u.UID, tk.code(0), withState(st))
	want(t, "State from another client", resp, rec, radius.CodeAccessReject, "state_mismatch")
	if rec.Client != "legacy" {
		t.Errorf("audit client %q, want legacy", rec.Client)
	}

	st, _ = b.challenged(t, c, u.UID, u.Password)
	resp, rec = b.send(t, c, other.UID, tk.code(0), withState(st))
	want(t, "State for another user", resp, rec, radius.CodeAccessReject, "state_mismatch")

	st, _ = b.challenged(t, c, u.UID, u.Password)
	time.Sleep(1500 * time.Millisecond) // challenge_timeout is 1s
	resp, rec = b.send(t, c, u.UID, tk.code(0), withState(st))
	want(t, "State after challenge_timeout", resp, rec, radius.CodeAccessReject, "unknown_state")

	// A State this server never issued.
	resp, rec = b.send(t, c, u.UID, tk.code(0), withState(bytes.Repeat([]byte{0xab}, 16)))
	want(t, "made-up State", resp, rec, radius.CodeAccessReject, "unknown_state")
}

func TestAppendMode(t *testing.T) {
	t.Parallel()
	b := startBridge(t, conf{Policies: appendPolicy})
	u := newUser(t)
	tk := b.enrolRandomTOTP(t, u.UID)
	c := b.client(t, "127.0.0.1", secretLocal)

	binds := env.slapd.BindCount(u.DN())
	resp, rec := b.send(t, c, u.UID, u.Password+tk.code(0))
	want(t, "password+code", resp, rec, radius.CodeAccessAccept, "mfa_passed")
	if rec.Factor != "totp" {
		t.Errorf("audit factor %q, want totp", rec.Factor)
	}
	if n := env.slapd.BindCount(u.DN()) - binds; n != 1 {
		t.Errorf("slapd saw %d binds for one append login, want 1", n)
	}

	resp, rec = b.send(t, c, u.UID, u.Password)
	want(t, "password alone", resp, rec, radius.CodeAccessReject, "code_missing")
	if msg := rfc2865.ReplyMessage_GetString(resp); !containsAll(msg, "password followed by") {
		t.Errorf("code_missing Reply-Message = %q", msg)
	}

	resp, rec = b.send(t, c, u.UID, "not-the-password"+tk.code(1))
	want(t, "wrong password + right code", resp, rec, radius.CodeAccessReject, "bad_credentials")

	// A password that itself ends in six digits never skips the code.
	d := harness.User{UID: fmt.Sprintf("digits%d", userSeq.Add(1)), Password: "Secret123456"}
	if err := env.slapd.AddUsers(d); err != nil {
		t.Fatal(err)
	}
	dtk := b.enrolRandomTOTP(t, d.UID)
	resp, rec = b.send(t, c, d.UID, d.Password)
	if resp.Code != radius.CodeAccessReject {
		t.Fatalf("a password ending in digits, alone: got %v (audit %+v), want Access-Reject", resp.Code, rec)
	}
	t.Logf("password ending in digits, alone: audit reason %q", rec.Reason)
	resp, rec = b.send(t, c, d.UID, d.Password+dtk.code(0))
	want(t, "password ending in digits + code", resp, rec, radius.CodeAccessAccept, "mfa_passed")
}

func TestRememberAfterMFA(t *testing.T) {
	t.Parallel()
	b := startBridge(t, conf{Policies: appendPolicy + "\n    remember: 1m"})
	u := newUser(t)
	tk := b.enrolRandomTOTP(t, u.UID)
	c := b.client(t, "127.0.0.1", secretLocal)
	legacy := b.client(t, "127.0.0.4", secretOther)
	const stationA, stationB = "02-00-5e-00-53-0a", "02-00-5e-00-53-0b"

	resp, rec := b.send(t, c, u.UID, u.Password, withStation(stationA))
	want(t, "password alone before any MFA", resp, rec, radius.CodeAccessReject, "code_missing")

	resp, rec = b.send(t, c, u.UID, u.Password+tk.code(0), withStation(stationA))
	want(t, "password+code from A", resp, rec, radius.CodeAccessAccept, "mfa_passed")

	resp, rec = b.send(t, c, u.UID, u.Password, withStation(stationA))
	want(t, "password alone from A", resp, rec, radius.CodeAccessAccept, "remembered")
	if rec.CallingStation != stationA {
		t.Errorf("audit calling_station %q", rec.CallingStation)
	}

	resp, rec = b.send(t, c, u.UID, "not-the-password", withStation(stationA))
	want(t, "wrong password from A", resp, rec, radius.CodeAccessReject, "bad_credentials")

	resp, rec = b.send(t, c, u.UID, u.Password, withStation(stationB))
	want(t, "password alone from B", resp, rec, radius.CodeAccessReject, "code_missing")

	resp, rec = b.send(t, c, u.UID, u.Password)
	want(t, "password alone without Calling-Station-Id", resp, rec, radius.CodeAccessReject, "code_missing")

	resp, rec = b.send(t, legacy, u.UID, u.Password, withStation(stationA))
	want(t, "password alone from A through another client", resp, rec, radius.CodeAccessReject, "code_missing")
}

func TestUnenrolledOptionalAndTwoMethods(t *testing.T) {
	t.Parallel()
	b := startBridge(t, conf{
		Clients: `  - {name: local, address: 127.0.0.1, secret: env:LOCAL_SECRET, policy: strict}
  - {name: lenient, address: 127.0.0.4, secret: env:OTHER_SECRET, policy: lenient}
  - {name: optional, address: 127.0.0.5, secret: env:OTHER_SECRET, policy: optional}`,
		Policies: `  strict: {mfa: required, factors: [totp, hotp], unenrolled: reject}
  lenient: {mfa: required, factors: [totp, hotp], unenrolled: allow}
  optional: {mfa: optional, factors: [totp, hotp]}`,
	})
	strict := b.client(t, "127.0.0.1", secretLocal)
	lenient := b.client(t, "127.0.0.4", secretOther)
	optional := b.client(t, "127.0.0.5", secretOther)
	u := newUser(t)

	resp, rec := b.send(t, strict, u.UID, u.Password)
	want(t, "unenrolled: reject", resp, rec, radius.CodeAccessReject, "not_enrolled")
	if msg := rfc2865.ReplyMessage_GetString(resp); !containsAll(msg, "none enrolled") {
		t.Errorf("not_enrolled Reply-Message = %q", msg)
	}
	resp, rec = b.send(t, lenient, u.UID, u.Password)
	want(t, "unenrolled: allow", resp, rec, radius.CodeAccessAccept, "unenrolled_allowed")
	resp, rec = b.send(t, optional, u.UID, u.Password)
	want(t, "mfa: optional, nothing enrolled", resp, rec, radius.CodeAccessAccept, "mfa_optional_unenrolled")

	// Two methods: the prompt names both, and either code passes.
	tk := b.enrolRandomTOTP(t, u.UID)
	ht := b.enrolHOTP(t, u.UID, 0)
	st, prompt := b.challenged(t, strict, u.UID, u.Password)
	if !containsAll(prompt, "authenticator app", "hardware token") {
		t.Errorf("prompt %q does not name both methods", prompt)
	}
	resp, rec = b.send(t, strict, u.UID, ht.code(0), withState(st))
	want(t, "HOTP answer", resp, rec, radius.CodeAccessAccept, "mfa_passed")
	if rec.Factor != "hotp" {
		t.Errorf("audit factor %q, want hotp", rec.Factor)
	}
	st, _ = b.challenged(t, strict, u.UID, u.Password)
	resp, rec = b.send(t, strict, u.UID, tk.code(0), withState(st))
	want(t, "TOTP answer", resp, rec, radius.CodeAccessAccept, "mfa_passed")
	if rec.Factor != "totp" {
		t.Errorf("audit factor %q, want totp", rec.Factor)
	}

	// Once enrolled, mfa: optional asks for the code too.
	b.challenged(t, optional, u.UID, u.Password)
}

func TestHOTPLookAheadAndReplay(t *testing.T) {
	t.Parallel()
	b := startBridge(t, conf{Policies: `  default:
    mode: append
    mfa: required
    factors: [hotp]`})
	u := newUser(t)
	seed := []byte("hotp-seed-" + u.UID[:min(len(u.UID), 10)])
	seed = append(seed, make([]byte, 20-len(seed))...)
	secret := hex.EncodeToString(seed) // 40 hex digits
	out, stderr, code := mfabridge(t, b.env(), "enrol", "hotp", "--config", b.ConfigFile, "--user", u.UID,
		"--secret", secret, "--counter", "5")
	if code != 0 || !strings.Contains(out, "counter 5") {
		t.Fatalf("enrol hotp: %d %s %s", code, out, stderr)
	}
	if strings.Contains(out+stderr, secret) {
		t.Errorf("enrol hotp printed the seed")
	}
	ht := hotpToken{cred: factors.Credential{Method: factors.HOTP, Secret: seed, Algorithm: "SHA1", Digits: 6}}
	c := b.client(t, "127.0.0.1", secretLocal)

	resp, rec := b.send(t, c, u.UID, u.Password+ht.code(8))
	want(t, "counter 8 (look-ahead from 5)", resp, rec, radius.CodeAccessAccept, "mfa_passed")
	resp, rec = b.send(t, c, u.UID, u.Password+ht.code(8))
	want(t, "counter 8 again", resp, rec, radius.CodeAccessReject, "code_replayed")
	resp, rec = b.send(t, c, u.UID, u.Password+ht.code(9))
	want(t, "counter 9", resp, rec, radius.CodeAccessAccept, "mfa_passed")
	// Counter 6 was skipped by the resynchronisation, never used: refused
	// as a wrong code (or as a replay, were codes behind the counter so
	// reported).
	resp, rec = b.send(t, c, u.UID, u.Password+ht.code(6))
	if resp.Code != radius.CodeAccessReject || (rec.Reason != "wrong_code" && rec.Reason != "code_replayed") {
		t.Errorf("counter 6, behind the counter: %v %q, want Access-Reject wrong_code", resp.Code, rec.Reason)
	}

	out, stderr, code = mfabridge(t, b.env(), "user", "show", "--config", b.ConfigFile, "--user", u.UID)
	if code != 0 || !strings.Contains(out, "counter 10") {
		t.Errorf("user show after counters 8 and 9: %d %s %s", code, out, stderr)
	}
}

func TestLockout(t *testing.T) {
	t.Parallel()
	b := startBridge(t, conf{Policies: mfaPolicy, Extra: lockoutExtra})
	c := b.client(t, "127.0.0.1", secretLocal)

	t.Run("passwords", func(t *testing.T) {
		u := newUser(t)
		b.enrolRandomTOTP(t, u.UID)
		for i := range 3 {
			resp, rec := b.send(t, c, u.UID, fmt.Sprintf("wrong-%d", i))
			want(t, fmt.Sprintf("wrong password %d", i+1), resp, rec, radius.CodeAccessReject, "bad_credentials")
		}
		binds := env.slapd.BindCount(u.DN())
		resp, rec := b.send(t, c, u.UID, u.Password)
		want(t, "right password while locked", resp, rec, radius.CodeAccessReject, "locked_out_password")
		if msg := rfc2865.ReplyMessage_GetString(resp); msg != "Authentication failed." {
			t.Errorf("locked-out Reply-Message %q differs from a wrong password's", msg)
		}
		if n := env.slapd.BindCount(u.DN()) - binds; n != 0 {
			t.Errorf("slapd saw %d binds for a locked-out user, want 0", n)
		}
		if out, stderr, code := mfabridge(t, b.env(), "user", "reset", "--config", b.ConfigFile, "--user", u.UID); code != 0 {
			t.Fatalf("user reset: %d %s %s", code, out, stderr)
		}
		b.challenged(t, c, u.UID, u.Password)
	})

	t.Run("codes", func(t *testing.T) {
		u := newUser(t)
		tk := b.enrolRandomTOTP(t, u.UID)
		st, _ := b.challenged(t, c, u.UID, u.Password)
		resp, rec := b.send(t, c, u.UID, tk.wrong(), withState(st))
		want(t, "wrong code 1", resp, rec, radius.CodeAccessChallenge, "wrong_code_retry")
		pending := rfc2865.State_Get(resp)

		st, _ = b.challenged(t, c, u.UID, u.Password)
		resp, rec = b.send(t, c, u.UID, tk.wrong(), withState(st))
		want(t, "wrong code 2, in another challenge", resp, rec, radius.CodeAccessReject, "locked_out_code")

		binds := env.slapd.BindCount(u.DN())
		resp, rec = b.send(t, c, u.UID, u.Password)
		want(t, "right password while code-locked", resp, rec, radius.CodeAccessReject, "locked_out_code")
		resp, rec = b.send(t, c, u.UID, tk.code(0), withState(pending))
		want(t, "right code to a pending challenge while code-locked", resp, rec, radius.CodeAccessReject, "locked_out_code")
		if n := env.slapd.BindCount(u.DN()) - binds; n != 0 {
			t.Errorf("slapd saw %d binds for a locked-out user, want 0", n)
		}

		if _, _, code := mfabridge(t, b.env(), "user", "reset", "--config", b.ConfigFile, "--user", u.UID); code != 0 {
			t.Fatalf("user reset: %d", code)
		}
		st, _ = b.challenged(t, c, u.UID, u.Password)
		resp, rec = b.send(t, c, u.UID, tk.code(0), withState(st))
		want(t, "right code after reset", resp, rec, radius.CodeAccessAccept, "mfa_passed")
	})

	t.Run("a retransmitted wrong password counts once", func(t *testing.T) {
		u := newUser(t)
		rc := b.client(t, "127.0.0.1", secretLocal)
		raw, err := harness.Request(secretLocal, u.UID, "wrong-retransmitted", true).Encode()
		if err != nil {
			t.Fatal(err)
		}
		for range 3 { // while the first is in hand: absorbed
			if err := rc.Send(raw); err != nil {
				t.Fatal(err)
			}
		}
		if resp, _, err := rc.ReplyTo(raw, 5*time.Second); err != nil || resp.Code != radius.CodeAccessReject {
			t.Fatalf("retransmitted wrong password: %v %v", resp, err)
		}
		for range 2 { // after it: the cached reply
			if err := rc.Send(raw); err != nil {
				t.Fatal(err)
			}
			if resp, _, err := rc.ReplyTo(raw, 5*time.Second); err != nil || resp.Code != radius.CodeAccessReject {
				t.Fatalf("retransmitted wrong password: %v %v", resp, err)
			}
		}
		if rec := b.waitRecord(t, u.UID, 0); rec.Reason != "bad_credentials" {
			t.Errorf("audit reason %q", rec.Reason)
		}
		if n := env.slapd.BindCount(u.DN()); n != 1 {
			t.Errorf("slapd saw %d binds for one request sent five times, want 1", n)
		}
		if n := len(filterAudit(b.audit(t), u.UID)); n != 1 {
			t.Errorf("%d audit records for one request sent five times, want 1", n)
		}
		// Two more wrong passwords make three failures: the last locks, but
		// is itself answered as a wrong password.
		for i := range 2 {
			resp, rec := b.send(t, c, u.UID, fmt.Sprintf("wrong-%d", i))
			want(t, fmt.Sprintf("distinct wrong password %d", i+1), resp, rec, radius.CodeAccessReject, "bad_credentials")
		}
		resp, rec := b.send(t, c, u.UID, "wrong-2")
		want(t, "distinct wrong password 3", resp, rec, radius.CodeAccessReject, "locked_out_password")
	})
}

func TestSecretsNeverLogged(t *testing.T) {
	t.Parallel()
	b := startBridge(t, conf{Clients: twoModeClients, Policies: twoModePolicies})
	u := newUser(t)
	tk := b.enrolRandomTOTP(t, u.UID)
	vpn := b.client(t, "127.0.0.1", secretLocal)
	mail := b.client(t, "127.0.0.5", secretOther)

	wrongPassword := "Wrong-Pw-" + u.Password
	wrongCode := tk.wrong()
	var codes []string

	// Challenge login, with a wrong code first.
	st, _ := b.challenged(t, vpn, u.UID, u.Password)
	resp, rec := b.send(t, vpn, u.UID, wrongCode, withState(st))
	want(t, "wrong code", resp, rec, radius.CodeAccessChallenge, "wrong_code_retry")
	code := tk.code(0)
	codes = append(codes, code)
	resp, rec = b.send(t, vpn, u.UID, code, withState(rfc2865.State_Get(resp)))
	want(t, "challenge login", resp, rec, radius.CodeAccessAccept, "mfa_passed")

	// Append login (the next time step, since the first is spent), and a
	// wrong password.
	code = tk.code(1)
	codes = append(codes, code)
	resp, rec = b.send(t, mail, u.UID, u.Password+code)
	want(t, "append login", resp, rec, radius.CodeAccessAccept, "mfa_passed")
	resp, rec = b.send(t, mail, u.UID, wrongPassword+tk.code(0))
	want(t, "append login with a wrong password", resp, rec, radius.CodeAccessReject, "bad_credentials")
	codes = append(codes, tk.code(0), wrongCode)

	if status, err := b.Stop(); err != nil || status != 0 {
		t.Fatalf("stop: %d %v", status, err)
	}
	all := b.Logs() + "\n" + b.Stdout()
	secrets := map[string]string{
		"password":                 u.Password,
		"wrong password":           wrongPassword,
		"base32 secret":            tk.base32(),
		"hex secret":               hex.EncodeToString(tk.cred.Secret),
		"local shared secret":      secretLocal,
		"other shared secret":      secretOther,
		"store key":                storeKey,
		"LDAP service password":    harness.ServicePass,
		"base32 secret lower case": strings.ToLower(tk.base32()),
	}
	for what, s := range secrets {
		if strings.Contains(all, s) {
			t.Errorf("the %s %q appears in the logs", what, s)
		}
	}
	for _, code := range codes {
		// A code is six digits: look for it standing alone, so that a
		// timestamp that happens to contain it does not count.
		if regexp.MustCompile(`(^|[^0-9])` + code + `([^0-9]|$)`).MatchString(all) {
			t.Errorf("the code %s appears in the logs", code)
		}
	}
}
