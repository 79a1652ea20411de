package portal

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/mfabridge/mfabridge/config"
	"github.com/mfabridge/mfabridge/factors"
	"github.com/mfabridge/mfabridge/factors/otp"
	"github.com/mfabridge/mfabridge/factors/recovery"
	"github.com/mfabridge/mfabridge/internal/audit"
	"github.com/mfabridge/mfabridge/internal/state"
	"github.com/mfabridge/mfabridge/internal/store"
	"github.com/mfabridge/mfabridge/radius"
)

// fakeConversation stands in for radius.Conversation: users with a
// password, some holding a method whose code is always 246810.
type fakeConversation struct {
	mu       sync.Mutex
	password map[string]string
	enrolled map[string]bool
	states   map[string]string // State → user
}

const fakeCode = "246810"

func (f *fakeConversation) Web(_ context.Context, _ string, _ netip.Addr, login, secret string, st []byte) radius.WebStep {
	f.mu.Lock()
	defer f.mu.Unlock()
	if st != nil {
		user, ok := f.states[string(st)]
		delete(f.states, string(st))
		switch {
		case !ok || user != login:
			return radius.WebStep{Outcome: audit.Reject, Reason: audit.ReasonUnknownState, Message: "Authentication failed."}
		case secret == fakeCode:
			return radius.WebStep{Outcome: audit.Accept, Reason: audit.ReasonMFA, User: user, Factor: factors.TOTP}
		}
		return radius.WebStep{Outcome: audit.Reject, Reason: audit.ReasonWrongCode, Message: "Authentication failed."}
	}
	if pw, ok := f.password[login]; !ok || pw != secret {
		return radius.WebStep{Outcome: audit.Reject, Reason: audit.ReasonBadCredentials, Message: "Authentication failed."}
	}
	if !f.enrolled[login] {
		return radius.WebStep{Outcome: audit.Reject, Reason: audit.ReasonNotEnrolled, User: login,
			Message: "A second factor is required and you have none enrolled. Contact the service desk."}
	}
	s := "state-" + login + "-" + random(4)
	f.states[s] = login
	return radius.WebStep{Outcome: audit.Challenge, Reason: audit.ReasonChallenge, User: login, State: []byte(s),
		Message: "Enter the code from your authenticator app."}
}

type fixture struct {
	t      testing.TB
	srv    *httptest.Server
	store  *store.Store
	conv   *fakeConversation
	now    time.Time
	nowMu  sync.Mutex
	audits *bytes.Buffer
	auMu   *sync.Mutex
	mem    *state.Memory
}

func (f *fixture) clock() time.Time {
	f.nowMu.Lock()
	defer f.nowMu.Unlock()
	return f.now
}

func (f *fixture) advance(d time.Duration) {
	f.nowMu.Lock()
	f.now = f.now.Add(d)
	f.nowMu.Unlock()
}

type fixtureOptions struct {
	first   []string
	trusted []string
	policy  config.Policy
}

func newFixture(t testing.TB, o fixtureOptions) *fixture {
	t.Helper()
	f := &fixture{t: t, now: time.Now(), audits: &bytes.Buffer{}, auMu: &sync.Mutex{}}
	st, err := store.Open(filepath.Join(t.TempDir(), "store.db"), bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f.store = st
	mem := state.NewMemory(state.MemoryOptions{Sweep: -1, Now: f.clock})
	t.Cleanup(func() { mem.Close() })
	f.mem = mem
	f.conv = &fakeConversation{password: map[string]string{"alice": "alice-pw", "newbie": "newbie-pw"},
		enrolled: map[string]bool{"alice": true}, states: map[string]string{}}
	pc := config.Default().Portal
	pc.Listen, pc.PublicURL, pc.InsecureHTTPLoopback, pc.Policy = "127.0.0.1:0", "http://localhost", true, "portal"
	pc.FirstMethod = []string{config.FirstInvite}
	if o.first != nil {
		pc.FirstMethod = o.first
	}
	for _, n := range o.trusted {
		pc.TrustedPrefixes = append(pc.TrustedPrefixes, netip.MustParsePrefix(n))
	}
	if o.policy.MFA == "" {
		o.policy = config.DefaultPolicy()
	}
	p, err := New(Options{Config: pc, Policy: o.policy, TOTP: config.Default().Factors.TOTP, HOTP: config.Default().Factors.HOTP, Conversation: f.conv,
		Enrolments: st, State: mem, Codes: otp.NewTOTP(1, mem, f.clock), Audit: audit.New(lockedWriter{f.auMu, f.audits}),
		Now: f.clock})
	if err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewServer(p.Handler())
	t.Cleanup(f.srv.Close)
	return f
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

func (f *fixture) auditLog() string {
	f.auMu.Lock()
	defer f.auMu.Unlock()
	return f.audits.String()
}

// browser is a client with its own cookies that does not follow
// redirects, so that each step's answer can be read.
type browser struct {
	f      *fixture
	c      *http.Client
	csrf   string
	origin string
}

func (f *fixture) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{f: f, origin: "http://localhost", c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// get fetches path and remembers the page's CSRF token.
func (b *browser) get(path string) (int, string, http.Header) {
	b.f.t.Helper()
	resp, err := b.c.Get(b.f.srv.URL + path)
	if err != nil {
		b.f.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if m := csrfRE.FindSubmatch(body); m != nil {
		b.csrf = string(m[1])
	}
	return resp.StatusCode, string(body), resp.Header
}

// post sends a form with the last page's token and returns the status
// and where it redirects.
func (b *browser) post(path string, form url.Values) (int, string) {
	b.f.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	if !form.Has("csrf") {
		form.Set("csrf", b.csrf)
	}
	req, _ := http.NewRequest("POST", b.f.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if b.origin != "" {
		req.Header.Set("Origin", b.origin)
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.f.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Location")
}

func (b *browser) cookie() *http.Cookie {
	u, _ := url.Parse(b.f.srv.URL)
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == "mfabridge-session" {
			return c
		}
	}
	return nil
}

// signIn signs alice in with her password and code.
func (b *browser) signIn(user, password string) {
	b.f.t.Helper()
	b.get("/signin")
	if _, loc := b.post("/signin", url.Values{"username": {user}, "password": {password}}); loc != "/code" {
		b.f.t.Fatalf("password: redirected to %q, want /code", loc)
	}
	b.get("/code")
	if _, loc := b.post("/code", url.Values{"code": {fakeCode}}); loc != "/" {
		b.f.t.Fatalf("code: redirected to %q, want /", loc)
	}
}

func TestEveryResponseCarriesTheSecurityHeaders(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	b := f.browser()
	_, _, h1 := b.get("/signin")
	_, _, h2 := b.get("/static/style.css")
	_, _, h3 := b.get("/no-such-page")
	for i, h := range []http.Header{h1, h2, h3} {
		for k, want := range map[string]string{
			"X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store",
		} {
			if got := h.Get(k); got != want {
				t.Errorf("response %d: %s %q, want %q", i, k, got, want)
			}
		}
		csp := h.Get("Content-Security-Policy")
		for _, d := range []string{"default-src 'none'", "frame-ancestors 'none'", "form-action 'self'"} {
			if !strings.Contains(csp, d) {
				t.Errorf("response %d: CSP %q lacks %q", i, csp, d)
			}
		}
		if h.Get("Strict-Transport-Security") != "" {
			t.Errorf("response %d: HSTS on plain HTTP", i)
		}
	}
}

func TestSignInWithASecondFactor(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	b := f.browser()
	b.get("/signin")
	before := b.cookie()
	if before == nil {
		t.Fatal("no session cookie before sign-in")
	}
	// A wrong password, then the right one and a wrong code.
	if _, loc := b.post("/signin", url.Values{"username": {"alice"}, "password": {"nope"}}); loc != "/signin" {
		t.Fatalf("wrong password: to %q", loc)
	}
	_, body, _ := b.get("/signin")
	if !strings.Contains(body, "Authentication failed.") {
		t.Errorf("no word of the failure:\n%s", body)
	}
	b.post("/signin", url.Values{"username": {"alice"}, "password": {"alice-pw"}})
	_, body, _ = b.get("/code")
	if !strings.Contains(body, "Enter the code from your authenticator app.") {
		t.Errorf("the challenge's prompt is not shown:\n%s", body)
	}
	if _, loc := b.post("/code", url.Values{"code": {"111111"}}); loc != "/signin" {
		t.Fatalf("wrong code: to %q", loc)
	}
	if code, _, _ := b.get("/"); code != http.StatusSeeOther {
		t.Fatalf("home after a wrong code: %d, want a redirect to sign in", code)
	}
	b.signIn("alice", "alice-pw")
	code, body, _ := b.get("/")
	if code != 200 || !strings.Contains(body, "Your sign-in methods") {
		t.Fatalf("home: %d\n%s", code, body)
	}
	// The session is not the one the page had before: a cookie planted
	// before sign-in (fixation) does not become signed in.
	if after := b.cookie(); after.Value == before.Value {
		t.Error("the session id did not change at sign-in")
	}
	old := f.browser()
	old.c.Jar.SetCookies(mustURL(f.srv.URL), []*http.Cookie{before})
	if code, _, _ := old.get("/"); code != http.StatusSeeOther {
		t.Errorf("the pre-sign-in cookie opens home: %d", code)
	}
}

func mustURL(s string) *url.URL {
	u, _ := url.Parse(s)
	return u
}

func TestFormsNeedTheirSessionsToken(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	b := f.browser()
	b.signIn("alice", "alice-pw")
	b.get("/")
	for name, form := range map[string]url.Values{
		"no token":    {"csrf": {""}, "method": {"totp"}},
		"wrong token": {"csrf": {"x" + b.csrf[1:]}, "method": {"totp"}},
	} {
		if code, _ := b.post("/totp", form); code != http.StatusForbidden {
			t.Errorf("%s: %d, want 403", name, code)
		}
	}
	// Another session's token.
	other := f.browser()
	other.get("/signin")
	if code, _ := b.post("/totp", url.Values{"csrf": {other.csrf}}); code != http.StatusForbidden {
		t.Errorf("another session's token: %d, want 403", code)
	}
	// The right token from another site.
	b.origin = "https://evil.example"
	if code, _ := b.post("/totp", nil); code != http.StatusForbidden {
		t.Errorf("from another origin: %d, want 403", code)
	}
	if !strings.Contains(f.auditLog(), `"reason":"csrf_refused"`) {
		t.Error("no audit record of the refusals")
	}
	b.origin = "http://localhost"
	if code, loc := b.post("/totp", nil); code != http.StatusSeeOther || loc != "/totp" {
		t.Errorf("the right token: %d %q", code, loc)
	}
}

func TestSignOutEndsTheSession(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	b := f.browser()
	b.signIn("alice", "alice-pw")
	b.get("/")
	cookie := b.cookie()
	b.post("/signout", nil)
	replay := f.browser()
	replay.c.Jar.SetCookies(mustURL(f.srv.URL), []*http.Cookie{cookie})
	if code, _, _ := replay.get("/"); code != http.StatusSeeOther {
		t.Errorf("the cookie replayed after sign-out opens home: %d", code)
	}
}

func TestIdleSessionsExpire(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	b := f.browser()
	b.signIn("alice", "alice-pw")
	f.advance(10 * time.Minute)
	if code, _, _ := b.get("/"); code != 200 {
		t.Fatalf("after 10 idle minutes: %d", code)
	}
	f.advance(10 * time.Minute) // 10 since the last request: still in
	if code, _, _ := b.get("/"); code != 200 {
		t.Fatalf("after another 10: %d", code)
	}
	f.advance(16 * time.Minute)
	if code, _, _ := b.get("/"); code != http.StatusSeeOther {
		t.Fatalf("after 16 idle minutes: %d, want signed out", code)
	}
	// However busy, not past 8 hours.
	b.signIn("alice", "alice-pw")
	for range 40 {
		f.advance(14 * time.Minute)
		b.get("/")
	}
	if code, _, _ := b.get("/"); code != http.StatusSeeOther {
		t.Fatalf("after 9h20m of use: %d, want signed out", code)
	}
}

func TestFirstEnrolmentByInvite(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	ctx := context.Background()
	if err := f.store.Invite(ctx, "newbie", "QWERTYUP23456789", time.Hour); err != nil {
		t.Fatal(err)
	}
	b := f.browser()
	b.get("/signin")
	if _, loc := b.post("/signin", url.Values{"username": {"newbie"}, "password": {"newbie-pw"}}); loc != "/first" {
		t.Fatalf("unenrolled user: to %q, want /first", loc)
	}
	if code, _, _ := b.get("/"); code != http.StatusSeeOther {
		t.Fatal("home open before the invite")
	}
	b.get("/first")
	if _, loc := b.post("/first", url.Values{"invite": {"QWER-TYUP-2345-6788"}}); loc != "/first" {
		t.Fatalf("a wrong invite: to %q", loc)
	}
	if _, loc := b.post("/first", url.Values{"invite": {"qwer-tyup-2345-6789"}}); loc != "/" {
		t.Fatalf("the invite: to %q", loc)
	}
	if code, _, _ := b.get("/"); code != 200 {
		t.Fatal("home not open after the invite")
	}
	// The same invite again, in another browser: refused.
	again := f.browser()
	again.get("/signin")
	again.post("/signin", url.Values{"username": {"newbie"}, "password": {"newbie-pw"}})
	again.get("/first")
	if _, loc := again.post("/first", url.Values{"invite": {"QWER-TYUP-2345-6789"}}); loc != "/first" {
		t.Fatalf("the invite a second time: to %q", loc)
	}
	log := f.auditLog()
	if !strings.Contains(log, `"reason":"invite_used"`) || !strings.Contains(log, `"reason":"invite_refused"`) {
		t.Errorf("audit:\n%s", log)
	}
	// A wrong password never reaches the invite page.
	wrong := f.browser()
	wrong.get("/signin")
	if _, loc := wrong.post("/signin", url.Values{"username": {"newbie"}, "password": {"guess"}}); loc != "/signin" {
		t.Fatalf("wrong password: to %q", loc)
	}
	wrong.get("/signin")
	if _, loc := wrong.post("/first", url.Values{"invite": {"QWER-TYUP-2345-6789"}}); loc != "/signin" {
		t.Fatalf("invite without a password: to %q", loc)
	}
}

func TestFirstEnrolmentFromATrustedNetwork(t *testing.T) {
	for _, tc := range []struct {
		trusted string
		want    string
	}{
		{"127.0.0.0/8", "/"},
		{"10.9.0.0/16", "/first"},
	} {
		f := newFixture(t, fixtureOptions{first: []string{config.FirstTrustedNetwork}, trusted: []string{tc.trusted}})
		b := f.browser()
		b.get("/signin")
		if _, loc := b.post("/signin", url.Values{"username": {"newbie"}, "password": {"newbie-pw"}}); loc != tc.want {
			t.Errorf("trusted %s: to %q, want %q", tc.trusted, loc, tc.want)
		}
	}
}

// An authenticator app enrolled in the portal: pending until a code from
// its secret, then active; the code is spent.
func TestAuthenticatorAppEnrolment(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	f.store.Invite(context.Background(), "newbie", "AAAABBBBCCCCDDDD", time.Hour)
	b := f.browser()
	b.get("/signin")
	b.post("/signin", url.Values{"username": {"newbie"}, "password": {"newbie-pw"}})
	b.get("/first")
	b.post("/first", url.Values{"invite": {"AAAABBBBCCCCDDDD"}})
	b.get("/")
	if _, loc := b.post("/totp", nil); loc != "/totp" {
		t.Fatalf("start: to %q", loc)
	}
	_, page, _ := b.get("/totp")
	m := regexp.MustCompile(`<code id="secret">([A-Z2-7 ]+)</code>`).FindStringSubmatch(page)
	if m == nil || !strings.Contains(page, "<svg") {
		t.Fatalf("no secret or QR code on the page:\n%s", page)
	}
	secret := strings.ReplaceAll(m[1], " ", "")
	if _, loc := b.post("/totp/confirm", url.Values{"code": {"000000"}}); loc != "/totp" {
		t.Fatalf("a wrong code: to %q", loc)
	}
	if enr, _ := f.store.Enrolment(context.Background(), "newbie"); held(enr, factors.TOTP) {
		t.Fatal("active after a wrong code")
	}
	code, err := totp.GenerateCode(secret, f.clock())
	if err != nil {
		t.Fatal(err)
	}
	if _, loc := b.post("/totp/confirm", url.Values{"code": {code}}); loc != "/" {
		t.Fatalf("the right code: to %q", loc)
	}
	enr, _ := f.store.Enrolment(context.Background(), "newbie")
	if !held(enr, factors.TOTP) {
		t.Fatal("not active after the right code")
	}
	_, home, _ := b.get("/")
	if !strings.Contains(home, "Authenticator app") || strings.Contains(home, "Add an authenticator app") {
		t.Errorf("home after enrolment:\n%s", home)
	}
	if !regexp.MustCompile(`"reason":"method_enrolled".*"factor":"totp"`).MatchString(f.auditLog()) {
		t.Errorf("audit:\n%s", f.auditLog())
	}
}

func TestRemovingAMethod(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	ctx := context.Background()
	hotp := factors.Credential{Method: factors.HOTP, Secret: []byte("12345678901234567890"), Algorithm: "SHA1", Digits: 6, Active: true}
	tcred := factors.Credential{Method: factors.TOTP, Secret: []byte("abcdefghijabcdefghij"), Algorithm: "SHA1", Digits: 6, Period: 30, Active: true}
	f.store.Put(ctx, "alice", tcred, false)
	b := f.browser()
	b.signIn("alice", "alice-pw")
	b.get("/")
	// The only method stays.
	b.post("/remove", url.Values{"method": {"totp"}})
	if enr, _ := f.store.Enrolment(ctx, "alice"); !held(enr, factors.TOTP) {
		t.Fatal("the only method was removed")
	}
	f.store.Put(ctx, "alice", hotp, false)
	// Make the token the default, then remove the app.
	b.get("/")
	b.post("/default", url.Values{"method": {"hotp"}})
	if enr, _ := f.store.Enrolment(ctx, "alice"); enr.Credentials[0].Method != factors.HOTP || !enr.Credentials[0].Default {
		t.Fatalf("default not set: %+v", enr.Credentials)
	}
	// Six minutes after the second factor: sign in again first.
	f.advance(6 * time.Minute)
	b.get("/")
	if _, loc := b.post("/remove", url.Values{"method": {"totp"}}); loc != "/signin" {
		t.Fatalf("a stale second factor: to %q, want /signin", loc)
	}
	if enr, _ := f.store.Enrolment(ctx, "alice"); !held(enr, factors.TOTP) {
		t.Fatal("removed with a stale second factor")
	}
	b.signIn("alice", "alice-pw")
	b.get("/")
	b.post("/remove", url.Values{"method": {"totp"}})
	if enr, _ := f.store.Enrolment(ctx, "alice"); held(enr, factors.TOTP) || !held(enr, factors.HOTP) {
		t.Fatalf("after removing the app: %+v", enr.Credentials)
	}
	if !regexp.MustCompile(`"reason":"method_removed".*"factor":"totp"`).MatchString(f.auditLog()) {
		t.Errorf("audit:\n%s", f.auditLog())
	}
}

func TestSignInsAreRateLimited(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	b := f.browser()
	b.get("/signin")
	for range signinsPerUser + 2 {
		b.post("/signin", url.Values{"username": {"alice"}, "password": {"guess"}})
		b.get("/signin")
	}
	_, body, _ := b.get("/signin")
	if !strings.Contains(f.auditLog(), `"reason":"portal_rate_limited"`) {
		t.Fatalf("%d sign-ins in a minute were not limited:\n%s", signinsPerUser+2, body)
	}
}

func TestInvitesAreReadAsTyped(t *testing.T) {
	for in, want := range map[string]string{
		"abcd-efgh-jkmn-pq23": "ABCDEFGHJKMNPQ23",
		" ABCD EFGH\tJKMN ":   "ABCDEFGHJKMN",
		"ÀBCD-é":              "BCD",
		"":                    "",
	} {
		if got := normaliseInvite(in); got != want {
			t.Errorf("%q: %q, want %q", in, got, want)
		}
	}
}

// The session cookie: HttpOnly and SameSite=Strict always; on HTTPS,
// Secure with the __Host- prefix, and HSTS on every response.
func TestSessionCookieAttributes(t *testing.T) {
	for _, public := range []string{"http://localhost:8080", "https://mfa.example.org"} {
		mem := state.NewMemory(state.MemoryOptions{Sweep: -1})
		defer mem.Close()
		pc := config.Default().Portal
		pc.PublicURL, pc.Policy = public, "portal"
		p, err := New(Options{Config: pc, Policy: config.DefaultPolicy(), Conversation: &fakeConversation{}, Enrolments: &store.Store{},
			State: mem, Codes: otp.NewTOTP(1, mem, nil)})
		if err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		p.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/signin", nil))
		c := rec.Header().Get("Set-Cookie")
		for _, want := range []string{"HttpOnly", "SameSite=Strict", "Path=/"} {
			if !strings.Contains(c, want) {
				t.Errorf("%s: cookie %q lacks %s", public, c, want)
			}
		}
		https := strings.HasPrefix(public, "https")
		if https != strings.HasPrefix(c, "__Host-") || https != strings.Contains(c, "Secure") {
			t.Errorf("%s: cookie %q", public, c)
		}
		if https != (rec.Header().Get("Strict-Transport-Security") != "") {
			t.Errorf("%s: HSTS %q", public, rec.Header().Get("Strict-Transport-Security"))
		}
	}
}

// Recovery codes: made with a fresh second factor, shown once, kept as
// hashes; the old set goes with a new one; they are never "the last
// method".
func TestRecoveryCodes(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	ctx := context.Background()
	f.store.Put(ctx, "alice", factors.Credential{Method: factors.TOTP, Secret: []byte("abcdefghijabcdefghij"), Algorithm: "SHA1", Digits: 6,
		Period: 30, Active: true}, false)
	b := f.browser()
	b.signIn("alice", "alice-pw")
	_, home, _ := b.get("/")
	if !strings.Contains(home, "You have none yet.") {
		t.Fatalf("home:\n%s", home)
	}
	if _, loc := b.post("/recovery", nil); loc != "/recovery" {
		t.Fatalf("make: to %q", loc)
	}
	_, page, _ := b.get("/recovery")
	codes := regexp.MustCompile(`<code>(\d{5}-\d{5})</code>`).FindAllStringSubmatch(page, -1)
	if len(codes) != 10 {
		t.Fatalf("%d codes on the page:\n%s", len(codes), page)
	}
	if code, _, _ := b.get("/recovery"); code != http.StatusSeeOther {
		t.Error("the codes are shown a second time")
	}
	enr, _ := f.store.Enrolment(ctx, "alice")
	c, _ := enr.Credential(factors.Recovery)
	if strings.Contains(string(c.Secret), strings.ReplaceAll(codes[0][1], "-", "")) {
		t.Fatal("a code is stored as it is")
	}
	_, home, _ = b.get("/")
	if !strings.Contains(home, "You have 10 left") {
		t.Errorf("home after making codes:\n%s", home)
	}
	// Removing the app would leave only the codes: refused.
	b.post("/remove", url.Values{"method": {"totp"}})
	if enr, _ := f.store.Enrolment(ctx, "alice"); !held(enr, factors.TOTP) {
		t.Fatal("the only method went, leaving recovery codes alone")
	}
	// A new set needs a fresh second factor, and voids the old.
	f.advance(6 * time.Minute)
	b.get("/")
	if _, loc := b.post("/recovery", nil); loc != "/signin" {
		t.Fatalf("a new set with a stale second factor: to %q", loc)
	}
	b.signIn("alice", "alice-pw")
	b.get("/")
	b.post("/recovery", nil)
	_, page, _ = b.get("/recovery")
	again := regexp.MustCompile(`<code>(\d{5}-\d{5})</code>`).FindAllStringSubmatch(page, -1)
	if len(again) != 10 || again[0][1] == codes[0][1] {
		t.Fatalf("the new set: %v", again)
	}
	enr, _ = f.store.Enrolment(ctx, "alice")
	c, _ = enr.Credential(factors.Recovery)
	u := &factors.User{Name: "alice", Enrolment: enr}
	if err := recovery.New(f.store).Check(ctx, u, codes[0][1]); err == nil {
		t.Error("a code of the old set still works")
	}
	if err := recovery.New(f.store).Check(ctx, u, again[0][1]); err != nil {
		t.Errorf("a code of the new set: %v", err)
	}
	if !regexp.MustCompile(`"reason":"method_enrolled".*"factor":"recovery"`).MatchString(f.auditLog()) {
		t.Errorf("audit:\n%s", f.auditLog())
	}
}

// "This wasn't me": the store is told, the session ends, the security
// team sees an audit record; the history shows the decisions.
func TestThisWasntMe(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	ctx := context.Background()
	f.store.RecordSignIn("alice", factors.SignIn{Time: time.Now(), Client: "vpn", Station: "203.0.113.9", Outcome: "accept",
		Method: factors.TOTP, Reason: "mfa_passed"})
	b := f.browser()
	b.signIn("alice", "alice-pw")
	_, home, _ := b.get("/")
	if !strings.Contains(home, "vpn (203.0.113.9)") || !strings.Contains(home, "Signed in") {
		t.Fatalf("recent sign-ins:\n%s", home)
	}
	if _, loc := b.post("/report", nil); loc != "/signin" {
		t.Fatalf("report: to %q", loc)
	}
	_, page, _ := b.get("/signin")
	if !strings.Contains(page, "Your account is now blocked") {
		t.Errorf("after the report:\n%s", page)
	}
	if code, _, _ := b.get("/"); code != http.StatusSeeOther {
		t.Error("still signed in after the report")
	}
	if e, _ := f.store.Enrolment(ctx, "alice"); e.Reported.IsZero() {
		t.Error("the store was not told")
	}
	if !strings.Contains(f.auditLog(), `"reason":"reported_by_user"`) {
		t.Errorf("audit:\n%s", f.auditLog())
	}
}

// A hardware token from the stock: claimed with its serial and a code it
// shows, once; a wrong code or serial is one refusal.
func TestClaimingAHardwareToken(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	ctx := context.Background()
	seed := []byte("hardware-token-seed!")
	if err := f.store.AddTokens(ctx, []store.Token{{Serial: "GALT-00042", Digits: 6, Counter: 10, Secret: seed}}, false); err != nil {
		t.Fatal(err)
	}
	tok := factors.Credential{Method: factors.HOTP, Secret: seed, Algorithm: "SHA1", Digits: 6}
	b := f.browser()
	b.signIn("alice", "alice-pw")
	b.get("/")
	b.post("/hotp", url.Values{"serial": {"GALT-00042"}, "code": {otp.Generate(tok, 9)}}) // behind the counter
	b.post("/hotp", url.Values{"serial": {"GALT-00043"}, "code": {otp.Generate(tok, 12)}})
	if enr, _ := f.store.Enrolment(ctx, "alice"); held(enr, factors.HOTP) {
		t.Fatal("claimed with a wrong code or serial")
	}
	if n := strings.Count(f.auditLog(), `"reason":"token_refused"`); n != 2 {
		t.Errorf("%d refusals audited, want 2", n)
	}
	b.post("/hotp", url.Values{"serial": {" GALT-00042 "}, "code": {otp.Generate(tok, 12)}})
	enr, _ := f.store.Enrolment(ctx, "alice")
	c, ok := enr.Credential(factors.HOTP)
	if !ok || c.Counter != 13 {
		t.Fatalf("after the claim: %+v %v\n%s", c, ok, f.auditLog())
	}
	if n, _ := f.store.TokensInStock(ctx); n != 0 {
		t.Errorf("%d tokens still in stock", n)
	}
	_, home, _ := b.get("/")
	if !strings.Contains(home, "Your hardware token is set up.") || strings.Contains(home, `action="/hotp"`) {
		t.Errorf("home after the claim:\n%s", home)
	}
}

// Every sentence in text is written: a field left out of the literal
// would show the user an empty notice.
func TestEveryTextIsWritten(t *testing.T) {
	v := reflect.ValueOf(text)
	for i := range v.NumField() {
		f := v.Field(i)
		if f.Kind() == reflect.String && f.String() == "" || f.Kind() == reflect.Func && f.IsNil() {
			t.Errorf("text.%s is empty", v.Type().Field(i).Name)
		}
	}
}

// A browser that only looks at the sign-in page stores nothing: a flood
// of visits cannot fill the state store; its form token still works.
func TestVisitsStoreNothing(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	before := f.mem.Len()
	for range 200 {
		b := f.browser()
		if code, _, _ := b.get("/signin"); code != 200 {
			t.Fatal(code)
		}
	}
	if n := f.mem.Len() - before; n != 0 {
		t.Fatalf("200 visits stored %d entries", n)
	}
	b := f.browser()
	b.signIn("alice", "alice-pw")
	if code, _, _ := b.get("/"); code != 200 {
		t.Fatal("signing in with the token of a session stored nowhere")
	}
}
