package test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base32"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"layeh.com/radius"

	"github.com/mfabridge/mfabridge/test/harness"
)

// The portal in a real browser (headless Chromium) against a real bridge
// and slapd, and the RADIUS logins that follow what was done in it.

// portalBridge is a bridge with the portal on loopback HTTP.
type portalBridge struct {
	*bridge
	url string // http://localhost:PORT
}

func startPortalBridge(t *testing.T, policies, portalExtra string) *portalBridge {
	t.Helper()
	return startPortalBridgeConf(t, conf{Policies: policies}, portalExtra)
}

func startPortalBridgeConf(t *testing.T, c conf, portalExtra string) *portalBridge {
	t.Helper()
	port, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	url := "http://localhost:" + strconv.Itoa(port)
	c.Extra = "portal:\n  listen: \"" + addr + "\"\n  public_url: \"" + url + "\"\n  insecure_http_loopback: true\n" + portalExtra
	b := startBridge(t, c)
	if !harness.Eventually(5*time.Second, func() bool {
		resp, err := http.Get(url + "/signin")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	}) {
		t.Fatalf("the portal at %s never answered", url)
	}
	return &portalBridge{bridge: b, url: url}
}

// browserPage drives one browser tab.
type browserPage struct {
	t    *testing.T
	ctx  context.Context
	base string
}

func (pb *portalBridge) browser(t *testing.T) *browserPage {
	t.Helper()
	ctx, cancel, err := harness.Browser(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancelT := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() { cancelT(); cancel() })
	return &browserPage{t: t, ctx: ctx, base: pb.url}
}

func (p *browserPage) open(path string) {
	p.t.Helper()
	if err := chromedp.Do(p.ctx, chromedp.Navigate(p.base+path)); err != nil {
		p.t.Fatalf("open %s: %v", path, err)
	}
}

// fill types value into the field with that id.
func (p *browserPage) fill(id, value string) {
	p.t.Helper()
	if err := chromedp.Do(p.ctx, chromedp.SetValue(chromedp.ID(id), value)); err != nil {
		p.t.Fatalf("fill #%s: %v", id, err)
	}
}

// press clicks the first button of the form posting to action and waits
// for the page the answer leads to.
func (p *browserPage) press(action string) {
	p.t.Helper()
	sel := chromedp.CSS(`form[action="` + action + `"] button`)
	if _, err := chromedp.Run(p.ctx, chromedp.WaitEvent(page.LoadEventFired, nil, chromedp.Click(sel))); err != nil {
		p.t.Fatalf("press %s: %v", action, err)
	}
}

// at returns the name of the page shown (main's data-page).
func (p *browserPage) at() string {
	p.t.Helper()
	v, err := chromedp.Run(p.ctx, chromedp.Evaluate[string](`document.querySelector("main") ? document.querySelector("main").dataset.page : ""`))
	if err != nil {
		p.t.Fatal(err)
	}
	return v
}

func (p *browserPage) text() string {
	p.t.Helper()
	v, err := chromedp.Run(p.ctx, chromedp.Evaluate[string](`document.body.innerText`))
	if err != nil {
		p.t.Fatal(err)
	}
	return v
}

func (p *browserPage) mustBeAt(want string) {
	p.t.Helper()
	if got := p.at(); got != want {
		p.t.Fatalf("on page %q, want %q; the page says:\n%s", got, want, p.text())
	}
}

// signIn types a user name and password into the sign-in page.
func (p *browserPage) signIn(user, password string) {
	p.t.Helper()
	p.open("/signin")
	p.fill("username", user)
	p.fill("password", password)
	p.press("/signin")
}

// answer types a code or a menu choice on the second-step page.
func (p *browserPage) answer(code string) {
	p.t.Helper()
	p.mustBeAt("code")
	p.fill("code", code)
	p.press("/code")
}

// signedIn signs a new user with an authenticator app into the portal
// with the app's current code.
func (pb *portalBridge) signedIn(t *testing.T) (harness.User, token, *browserPage) {
	t.Helper()
	u := newUser(t)
	app := pb.enrolTOTP(t, u.UID)
	p := pb.browser(t)
	p.signIn(u.UID, u.Password)
	p.answer(app.code(0))
	p.mustBeAt("home")
	return u, app, p
}

const portalPolicy = `  default:
    mfa: required
    factors: [totp, hotp]`

// A user with no method: an invite from the helpdesk opens the portal
// once; an authenticator app enrolled there works through RADIUS; the
// invite does not work twice.
func TestPortalInviteEnrolAndLogInThroughRADIUS(t *testing.T) {
	t.Parallel()
	pb := startPortalBridge(t, portalPolicy, "")
	u := newUser(t)
	out, stderr, code := mfabridge(t, pb.env(), "user", "invite", "--config", pb.ConfigFile, "--user", u.UID, "--ttl", "1h")
	m := regexp.MustCompile(`enrolment code for \S+: ([A-Z0-9-]{19})`).FindStringSubmatch(out)
	if code != 0 || m == nil {
		t.Fatalf("user invite: %d %s %s", code, out, stderr)
	}
	invite := m[1]
	if out, _, _ := mfabridge(t, pb.env(), "user", "show", "--config", pb.ConfigFile, "--user", u.UID); !strings.Contains(out, "enrolment code for the portal is pending") {
		t.Errorf("user show after the invite:\n%s", out)
	}

	p := pb.browser(t)
	p.signIn(u.UID, u.Password)
	p.mustBeAt("first")
	p.fill("invite", strings.ToLower(invite))
	p.press("/first")
	p.mustBeAt("home")
	if !strings.Contains(p.text(), "You have no sign-in method yet") {
		t.Errorf("home of a new user:\n%s", p.text())
	}
	p.press("/totp")
	p.mustBeAt("totp")
	shown, err := chromedp.Run(p.ctx, chromedp.Text(chromedp.ID("secret")))
	if err != nil {
		t.Fatal(err)
	}
	app := newTokenFromKey(t, shown)
	p.fill("code", app.code(0))
	p.press("/totp/confirm")
	p.mustBeAt("home")
	if !strings.Contains(p.text(), "Your authenticator app is set up.") {
		t.Errorf("after confirming:\n%s", p.text())
	}

	// RADIUS: the password, then the app's next code.
	r := pb.radclient(t, "auth", secretLocal, pap(u.UID, u.Password))
	if r.Code != "Access-Challenge" {
		t.Fatalf("RADIUS login: %s\n%s", r.Code, r.Out)
	}
	r = pb.radclient(t, "auth", secretLocal, pap(u.UID, app.code(1))+", State = "+r.Attrs["State"][0])
	if r.Code != "Access-Accept" {
		t.Fatalf("RADIUS answer with the app's code: %s\n%s", r.Code, r.Out)
	}

	// The invite again, in another browser, after the password: refused.
	again := pb.browser(t)
	again.signIn(u.UID, u.Password)
	again.mustBeAt("code") // the user now holds a method
	usedInviteRefused(t, pb, u, invite)
	recs := filterAudit(pb.audit(t), u.UID)
	var reasons []string
	for _, r := range recs {
		reasons = append(reasons, r.Client+":"+r.Reason)
	}
	for _, want := range []string{"portal:not_enrolled", "portal:invite_used", "portal:method_enrolled", "local:mfa_passed"} {
		if !strings.Contains(strings.Join(reasons, " "), want) {
			t.Errorf("no audit record %s in %v", want, reasons)
		}
	}
}

// newTokenFromKey plays an authenticator app given the key the portal
// shows (base32 in groups of four).
func newTokenFromKey(t *testing.T, shown string) token {
	t.Helper()
	secret, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.ReplaceAll(shown, " ", ""))
	if err != nil {
		t.Fatalf("the key on the page %q: %v", shown, err)
	}
	return newToken(secret)
}

// usedInviteRefused checks that an invite, once used, opens nothing:
// removing every method by the CLI puts the user back on the
// first-enrolment page, where the old invite is refused.
func usedInviteRefused(t *testing.T, pb *portalBridge, u harness.User, invite string) {
	t.Helper()
	if out, stderr, code := mfabridge(t, pb.env(), "user", "remove", "--config", pb.ConfigFile, "--user", u.UID); code != 0 {
		t.Fatalf("user remove: %d %s %s", code, out, stderr)
	}
	p := pb.browser(t)
	p.signIn(u.UID, u.Password)
	p.mustBeAt("first")
	p.fill("invite", invite)
	p.press("/first")
	p.mustBeAt("first")
	if !strings.Contains(p.text(), "wrong, used or expired") {
		t.Errorf("the used invite:\n%s", p.text())
	}
}

// Sign-in with password and code; a wrong password and a wrong code say
// so; the lockout is the one RADIUS counts.
func TestPortalSignInAndSharedLockout(t *testing.T) {
	t.Parallel()
	pb := startPortalBridge(t, portalPolicy, "")
	u := newUser(t)
	app := pb.enrolTOTP(t, u.UID)
	p := pb.browser(t)

	p.signIn(u.UID, "not-the-password")
	p.mustBeAt("signin")
	if !strings.Contains(p.text(), "Authentication failed.") {
		t.Errorf("after a wrong password:\n%s", p.text())
	}
	p.signIn(u.UID, u.Password)
	if !strings.Contains(p.text(), "Enter the code from your authenticator app.") {
		t.Errorf("the second step:\n%s", p.text())
	}
	p.answer(app.wrong())
	if !strings.Contains(p.text(), "Wrong code.") {
		t.Errorf("after a wrong code:\n%s", p.text())
	}
	p.answer(app.code(0))
	p.mustBeAt("home")
	if !strings.Contains(p.text(), "Authenticator app") || !strings.Contains(strings.ToLower(p.text()), "default") {
		t.Errorf("home:\n%s", p.text())
	}

	// Wrong passwords through RADIUS lock the portal too.
	c := pb.client(t, "127.0.0.1", secretLocal)
	for range 5 {
		resp, _ := pb.send(t, c, u.UID, "wrong-password")
		if resp.Code != radius.CodeAccessReject {
			t.Fatalf("wrong password: %v", resp.Code)
		}
	}
	q := pb.browser(t)
	q.signIn(u.UID, u.Password)
	q.mustBeAt("signin")
	if rec := pb.lastAudit(t, u.UID); rec.Client != "portal" || rec.Reason != "locked_out_password" {
		t.Errorf("the portal's sign-in while locked out: %+v", rec)
	}
}

// The default chosen in the portal orders the next RADIUS prompt.
func TestPortalDefaultOrdersTheRADIUSPrompt(t *testing.T) {
	t.Parallel()
	pb := startPortalBridge(t, portalPolicy, "")
	u := newUser(t)
	app := pb.enrolTOTP(t, u.UID)
	pb.enrolHOTP(t, u.UID, 0)
	c := pb.client(t, "127.0.0.1", secretLocal)
	_, prompt := pb.challenged(t, c, u.UID, u.Password)
	if !strings.HasPrefix(prompt, "Enter the code from your authenticator app") {
		t.Fatalf("prompt before: %q", prompt)
	}
	p := pb.browser(t)
	p.signIn(u.UID, u.Password)
	p.answer(app.code(0))
	p.mustBeAt("home")
	p.press("/default")
	if !strings.Contains(p.text(), "Hardware token is now your default method.") {
		t.Fatalf("after choosing the token:\n%s", p.text())
	}
	_, prompt = pb.challenged(t, c, u.UID, u.Password)
	if !strings.HasPrefix(prompt, "Enter the code from your hardware token") {
		t.Errorf("prompt after: %q", prompt)
	}
}

// A form without its token is refused; a cookie replayed after sign-out
// opens nothing; the page cannot be framed.
func TestPortalCSRFCookieReplayAndFraming(t *testing.T) {
	t.Parallel()
	pb := startPortalBridge(t, portalPolicy, "")
	u, _, p := pb.signedIn(t)

	// The session's cookie, as the browser holds it.
	res, err := chromedp.Call(p.ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{pb.url}})
	if err != nil || len(res.Cookies) != 1 {
		t.Fatalf("cookies: %v %+v", err, res)
	}
	ck := res.Cookies[0]
	if !ck.HTTPOnly || ck.SameSite != network.CookieSameSiteStrict {
		t.Errorf("cookie %s: HttpOnly %t, SameSite %q", ck.Name, ck.HTTPOnly, ck.SameSite)
	}
	get := func(path string) *http.Response {
		req, _ := http.NewRequest("GET", pb.url+path, nil)
		req.AddCookie(&http.Cookie{Name: ck.Name, Value: ck.Value})
		resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := get("/"); resp.StatusCode != 200 || resp.Header.Get("X-Frame-Options") != "DENY" ||
		!strings.Contains(resp.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
		t.Errorf("home with the cookie: %d, X-Frame-Options %q, CSP %q", resp.StatusCode, resp.Header.Get("X-Frame-Options"),
			resp.Header.Get("Content-Security-Policy"))
	}

	// A forged token: refused, and the method stays.
	if err := chromedp.Do(p.ctx, chromedp.Evaluate[chromedp.Void](
		`document.querySelectorAll('input[name=csrf]').forEach(e => e.value = "forged")`)); err != nil {
		t.Fatal(err)
	}
	p.press("/remove")
	if !strings.Contains(p.text(), "This form has expired or did not come from this page") {
		t.Errorf("a form with a forged token:\n%s", p.text())
	}
	if rec := pb.lastAudit(t, u.UID); rec.Reason != "csrf_refused" {
		t.Errorf("audit of the forged form: %+v", rec)
	}
	if out, _, _ := mfabridge(t, pb.env(), "user", "show", "--config", pb.ConfigFile, "--user", u.UID); !strings.Contains(out, "totp") {
		t.Errorf("the method went with a forged form:\n%s", out)
	}

	p.open("/")
	p.press("/signout")
	p.mustBeAt("signin")
	if resp := get("/"); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/signin" {
		t.Errorf("the cookie replayed after sign-out: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}

// Recovery codes made in the portal: each works once through RADIUS, in
// a challenge and after the password in append mode.
func TestPortalRecoveryCodesWorkOnceThroughRADIUS(t *testing.T) {
	t.Parallel()
	pb := startPortalBridgeConf(t, conf{Clients: `  - name: local
    address: 127.0.0.1
    secret: env:LOCAL_SECRET
  - name: mail
    address: 127.0.0.5
    secret: env:OTHER_SECRET
    policy: mail`, Policies: `  default:
    mfa: required
  mail:
    mode: append
    mfa: required`}, "")
	u, _, p := pb.signedIn(t)
	p.press("/recovery")
	p.mustBeAt("recovery")
	list, err := chromedp.Run(p.ctx, chromedp.Text(chromedp.ID("codes")))
	if err != nil {
		t.Fatal(err)
	}
	codes := regexp.MustCompile(`\d{5}-\d{5}`).FindAllString(list, -1)
	if len(codes) != 10 {
		t.Fatalf("codes on the page: %q", list)
	}
	p.open("/recovery")
	p.mustBeAt("home") // shown once

	c := pb.client(t, "127.0.0.1", secretLocal)
	st, prompt := pb.challenged(t, c, u.UID, u.Password)
	if !strings.Contains(prompt, "a recovery code") {
		t.Errorf("prompt %q does not offer a recovery code", prompt)
	}
	resp, rec := pb.send(t, c, u.UID, codes[0], withState(st))
	want(t, "a recovery code", resp, rec, radius.CodeAccessAccept, "mfa_passed")
	if rec.Factor != "recovery" {
		t.Errorf("factor %q", rec.Factor)
	}
	st, _ = pb.challenged(t, c, u.UID, u.Password)
	resp, rec = pb.send(t, c, u.UID, codes[0], withState(st))
	want(t, "the same code again", resp, rec, radius.CodeAccessChallenge, "wrong_code_retry")

	mail := pb.client(t, "127.0.0.5", secretOther)
	plain := strings.ReplaceAll(codes[1], "-", "")
	resp, rec = pb.send(t, mail, u.UID, u.Password+plain)
	want(t, "append mode: password and a recovery code", resp, rec, radius.CodeAccessAccept, "mfa_passed")
	resp, rec = pb.send(t, mail, u.UID, u.Password+plain)
	want(t, "append mode: the same code again", resp, rec, radius.CodeAccessReject, "wrong_code")
	if out, _, _ := mfabridge(t, pb.env(), "user", "show", "--config", pb.ConfigFile, "--user", u.UID); !strings.Contains(out, "8 of 10 codes left") {
		t.Errorf("user show:\n%s", out)
	}
}

// The portal shows the user's RADIUS sign-ins; "This wasn't me" blocks
// every later login (RADIUS and the portal) and ends remembered ones,
// until user reset.
func TestPortalThisWasntMe(t *testing.T) {
	t.Parallel()
	pb := startPortalBridge(t, `  default:
    mfa: required
    remember: 1h`, "")
	u := newUser(t)
	app := pb.enrolTOTP(t, u.UID)
	c := pb.client(t, "127.0.0.1", secretLocal)
	st, _ := pb.challenged(t, c, u.UID, u.Password, withStation("198.51.100.77"))
	resp, rec := pb.send(t, c, u.UID, app.code(0), withState(st), withStation("198.51.100.77"))
	want(t, "a VPN login", resp, rec, radius.CodeAccessAccept, "mfa_passed")
	resp, rec = pb.send(t, c, u.UID, u.Password, withStation("198.51.100.77"))
	want(t, "remembered", resp, rec, radius.CodeAccessAccept, "remembered")

	p := pb.browser(t)
	p.signIn(u.UID, u.Password)
	p.answer(app.code(1))
	p.mustBeAt("home")
	if !strings.Contains(p.text(), "local (198.51.100.77)") {
		t.Errorf("the VPN login is not in the recent sign-ins:\n%s", p.text())
	}
	p.press("/report")
	p.mustBeAt("signin")
	if !strings.Contains(p.text(), "Your account is now blocked") {
		t.Errorf("after the report:\n%s", p.text())
	}
	if pb.metric(t, "mfabridge_portal_reports_total") != 1 {
		t.Error("the report was not counted")
	}
	resp, rec = pb.send(t, c, u.UID, u.Password, withStation("198.51.100.77"))
	want(t, "the remembered station after the report", resp, rec, radius.CodeAccessReject, "reported_by_user")
	q := pb.browser(t)
	q.signIn(u.UID, u.Password)
	q.mustBeAt("signin")
	if out, _, _ := mfabridge(t, pb.env(), "user", "show", "--config", pb.ConfigFile, "--user", u.UID); !strings.Contains(out, "blocked: the user reported") {
		t.Errorf("user show after the report:\n%s", out)
	}
	if out, stderr, code := mfabridge(t, pb.env(), "user", "reset", "--config", pb.ConfigFile, "--user", u.UID); code != 0 {
		t.Fatalf("user reset: %s %s", out, stderr)
	}
	pb.challenged(t, c, u.UID, u.Password, withStation("198.51.100.77"))
}

// With first_method directory_phone and a portal policy that offers text
// messages, a user with no method of their own signs in with a code sent
// to the directory's number (through the fake Twilio), then enrols an
// app.
func TestPortalFirstMethodByDirectoryTextMessage(t *testing.T) {
	t.Parallel()
	port, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	url := "http://localhost:" + strconv.Itoa(port)
	b := startTwilioBridge(t, twConf{conf: conf{Policies: `  default:
    mfa: required
    factors: [totp, hotp]
  portal:
    mfa: required
    factors: [totp, sms]`, Extra: "portal:\n  listen: \"127.0.0.1:" + strconv.Itoa(port) + "\"\n  public_url: \"" + url +
		"\"\n  insecure_http_loopback: true\n  first_method: [directory_phone]\n"}})
	pb := &portalBridge{bridge: b.bridge, url: url}
	number := uniqueMobile()
	u := b.newPhoneUser(t, number)
	p := pb.browser(t)
	p.signIn(u.UID, u.Password)
	p.mustBeAt("code")
	if !strings.Contains(p.text(), "A text message with a code was sent to") {
		t.Fatalf("the second step:\n%s", p.text())
	}
	msg, ok := b.fake.WaitMessageTo(number, 0, 5*time.Second)
	if !ok {
		t.Fatal("no text message")
	}
	p.answer(msg.Code())
	p.mustBeAt("home")
	p.press("/totp")
	p.mustBeAt("totp")
	if rec := pb.lastAudit(t, u.UID); rec.Client != "portal" {
		t.Errorf("last record %+v", rec)
	}
	// The VPN's policy offers no text message: a user with only a number
	// is still refused there until the app is enrolled.
	c := pb.client(t, "127.0.0.1", secretLocal)
	resp, rec := pb.send(t, c, u.UID, u.Password)
	want(t, "the VPN before an app", resp, rec, radius.CodeAccessReject, "not_enrolled")
}

// Tokens imported by serial with the CLI: a user claims one in the
// portal with its serial and a code, then logs in through RADIUS with
// its next code; nobody can claim it again.
func TestPortalHardwareTokenClaim(t *testing.T) {
	t.Parallel()
	pb := startPortalBridge(t, portalPolicy, "")
	csv := filepath.Join(t.TempDir(), "tokens.csv")
	seed := "3132333435363738393031323334353637383930" // RFC 4226's test seed, in hex
	os.WriteFile(csv, []byte("serial,seed,counter\nTK-1001,"+seed+",0\nTK-1002,"+seed+",100\n"), 0o600)
	if out, stderr, code := mfabridge(t, pb.env(), "token", "import", "--config", pb.ConfigFile, "--csv", csv); code != 0 ||
		!strings.Contains(out, "imported 2 hardware tokens") {
		t.Fatalf("token import: %d %s %s", code, out, stderr)
	}
	u, _, p := pb.signedIn(t)
	// RFC 4226 Appendix D: counter 3 shows 969429, 4 shows 338314.
	p.fill("serial", "TK-1001")
	p.fill("token-code", "969429")
	p.press("/hotp")
	if !strings.Contains(p.text(), "Your hardware token is set up.") {
		t.Fatalf("after the claim:\n%s", p.text())
	}
	c := pb.client(t, "127.0.0.1", secretLocal)
	st, prompt := pb.challenged(t, c, u.UID, u.Password)
	if !strings.Contains(prompt, "hardware token") {
		t.Errorf("prompt %q", prompt)
	}
	resp, rec := pb.send(t, c, u.UID, "338314", withState(st))
	want(t, "the token's next code", resp, rec, radius.CodeAccessAccept, "mfa_passed")

	other := newUser(t)
	app2 := pb.enrolTOTP(t, other.UID)
	q := pb.browser(t)
	q.signIn(other.UID, other.Password)
	q.answer(app2.code(0))
	q.fill("serial", "TK-1001")
	q.fill("token-code", "287082") // counter 5
	q.press("/hotp")
	if !strings.Contains(q.text(), "do not match a token that is free") {
		t.Errorf("a claimed token claimed again:\n%s", q.text())
	}
	if out, _, _ := mfabridge(t, pb.env(), "token", "count", "--config", pb.ConfigFile); !strings.Contains(out, "1 hardware tokens in stock") {
		t.Errorf("token count: %s", out)
	}
}

// From a trusted network, the right password of a user with no method
// opens the first enrolment; a session idle past session_timeout is
// over.
func TestPortalTrustedNetworkAndIdleExpiry(t *testing.T) {
	t.Parallel()
	pb := startPortalBridge(t, portalPolicy, "  first_method: [trusted_network]\n  trusted_networks: [127.0.0.0/8]\n  session_timeout: 1m\n")
	u := newUser(t)
	p := pb.browser(t)
	p.signIn(u.UID, u.Password)
	p.mustBeAt("home")
	if !strings.Contains(p.text(), "You are on the organisation's network") {
		t.Errorf("home from a trusted network:\n%s", p.text())
	}
	if rec := pb.lastAudit(t, u.UID); rec.Reason != "trusted_network" {
		t.Errorf("audit %+v", rec)
	}
	time.Sleep(40 * time.Second)
	p.open("/") // used: the idle minute starts again
	p.mustBeAt("home")
	time.Sleep(65 * time.Second)
	p.open("/")
	p.mustBeAt("signin")
}

// Over HTTPS (portal.tls): the certificate is served, the cookie is
// __Host- and Secure, HSTS is sent; plain HTTP to the same port is not
// answered with a page.
func TestPortalOverHTTPS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca, err := harness.NewCA(dir, "portal")
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, err := ca.ServerCert(dir, "portal")
	if err != nil {
		t.Fatal(err)
	}
	port, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	base := "https://localhost:" + strconv.Itoa(port)
	startBridge(t, conf{Policies: portalPolicy, Extra: fmt.Sprintf("portal:\n  listen: \"127.0.0.1:%d\"\n  public_url: %q\n"+
		"  tls: {cert_file: %q, key_file: %q}\n", port, base, certFile, keyFile)})
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	var resp *http.Response
	if !harness.Eventually(5*time.Second, func() bool {
		resp, err = client.Get(base + "/signin")
		return err == nil
	}) {
		t.Fatalf("the portal over HTTPS: %v", err)
	}
	resp.Body.Close()
	if c := resp.Header.Get("Set-Cookie"); resp.StatusCode != 200 || !strings.HasPrefix(c, "__Host-mfabridge-session=") ||
		!strings.Contains(c, "Secure") || !strings.Contains(c, "HttpOnly") || !strings.Contains(c, "SameSite=Strict") {
		t.Errorf("%d, Set-Cookie %q", resp.StatusCode, c)
	}
	if h := resp.Header.Get("Strict-Transport-Security"); !strings.Contains(h, "max-age=") {
		t.Errorf("HSTS %q", h)
	}
	if plain, err := http.Get("http://localhost:" + strconv.Itoa(port) + "/signin"); err == nil {
		plain.Body.Close()
		if plain.StatusCode == 200 {
			t.Error("a page over plain HTTP")
		}
	}
}
