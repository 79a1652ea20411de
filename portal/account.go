package portal

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	potp "github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/mfabridge/mfabridge/config"
	"github.com/mfabridge/mfabridge/factors"
	"github.com/mfabridge/mfabridge/factors/otp"
	"github.com/mfabridge/mfabridge/factors/recovery"
	"github.com/mfabridge/mfabridge/internal/audit"
	"github.com/mfabridge/mfabridge/internal/store"
	"github.com/mfabridge/mfabridge/radius"
)

// What a signed-in user does to their own methods. Every change is
// audited; removing one needs a second factor proved in the last five
// minutes, and the last one stays unless the portal policy lets a user
// hold none.

// methodView is one row of the methods table.
type methodView struct {
	Method   factors.Method
	Name     string
	Created  string
	LastUsed string
	Default  bool
}

// signedIn wraps a form only a signed-in user may post; anyone else is
// sent to sign in.
func signedIn(h func(w http.ResponseWriter, r *http.Request, s *session) string) func(http.ResponseWriter, *http.Request, *session) string {
	return func(w http.ResponseWriter, r *http.Request, s *session) string {
		if !s.signedIn() {
			return "/signin"
		}
		return h(w, r, s)
	}
}

// account wraps a page of a signed-in user, who is handed their
// enrolment; anyone else is sent to sign in.
func (p *Portal) account(h func(w http.ResponseWriter, r *http.Request, s *session, enr *factors.Enrolment)) func(http.ResponseWriter, *http.Request, *session) {
	return func(w http.ResponseWriter, r *http.Request, s *session) {
		if !s.signedIn() {
			http.Redirect(w, r, "/signin", http.StatusSeeOther)
			return
		}
		enr, err := p.o.Enrolments.Enrolment(r.Context(), s.User)
		if err != nil {
			p.unavailable(w, err)
			return
		}
		h(w, r, s, enr)
	}
}

func (p *Portal) home(w http.ResponseWriter, r *http.Request, s *session, enr *factors.Enrolment) {
	var rows []methodView
	var codes *methodView
	for _, c := range enr.Credentials {
		if c.Method == factors.Recovery {
			codes = &methodView{Method: c.Method, Created: day(c.Created), Name: strconv.Itoa(recovery.Left(c))}
			continue
		}
		if !c.Active {
			continue
		}
		v := methodView{Method: c.Method, Name: text.method(c.Method), Created: day(c.Created), LastUsed: text.never,
			Default: enr.Default == "" && c.Default}
		if !c.LastUsed.IsZero() {
			v.LastUsed = day(c.LastUsed)
		}
		rows = append(rows, v)
	}
	_, hasTOTP := enr.Credential(factors.TOTP)
	_, hasHOTP := enr.Credential(factors.HOTP)
	signins, err := p.o.Enrolments.SignIns(r.Context(), s.User)
	if err != nil {
		p.unavailable(w, err)
		return
	}
	var history []signinView
	for _, si := range signins {
		history = append(history, signinView{When: day(si.Time), Where: where(si), Outcome: text.outcome(si.Outcome),
			Method: text.method(si.Method)})
	}
	p.render(w, "home", s, map[string]any{"Methods": rows, "CanAddTOTP": !hasTOTP, "CanAddHOTP": !hasHOTP, "Recovery": codes, "SignIns": history})
}

// signinView is one row of the recent sign-ins.
type signinView struct{ When, Where, Outcome, Method string }

// where names where a sign-in came from: the portal, or a client and the
// device it named.
func where(si factors.SignIn) string {
	w := si.Client
	if w == radius.WebClient {
		w = text.thisPortal
	}
	if si.Station != "" {
		w += " (" + si.Station + ")"
	}
	return w
}

func day(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Local().Format("2 Jan 2006 15:04")
}

// pendingTOTP returns the user's authenticator-app credential that waits
// for its first code.
func pendingTOTP(enr *factors.Enrolment) (factors.Credential, bool) {
	for _, c := range enr.Credentials {
		if c.Method == factors.TOTP && !c.Active {
			return c, true
		}
	}
	return factors.Credential{}, false
}

func (p *Portal) totpForm(w http.ResponseWriter, r *http.Request, s *session, enr *factors.Enrolment) {
	c, ok := pendingTOTP(enr)
	if !ok {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	key, err := p.totpKey(s.User, c)
	if err != nil {
		p.unavailable(w, err)
		return
	}
	qr, err := qrSVG(key.URL())
	if err != nil {
		p.unavailable(w, err)
		return
	}
	p.render(w, "totp", s, map[string]any{"QR": qr, "Secret": spaced(key.Secret()), "Digits": c.Digits})
}

// totpKey is the otpauth key of c, as the authenticator app reads it.
func (p *Portal) totpKey(user string, c factors.Credential) (*potp.Key, error) {
	return totp.Generate(totp.GenerateOpts{Issuer: p.o.TOTP.Issuer, AccountName: user, Period: uint(c.Period),
		Secret: c.Secret, Digits: potp.Digits(c.Digits), Algorithm: otp.Algorithm(c.Algorithm)})
}

// spaced groups a base32 secret in fours, as people copy it.
func spaced(s string) string {
	var out []byte
	for i := 0; i < len(s); i++ {
		if i > 0 && i%4 == 0 {
			out = append(out, ' ')
		}
		out = append(out, s[i])
	}
	return string(out)
}

// totpStart makes a new authenticator-app secret, pending until a code
// from the app confirms it (as enrol totp does). A user who holds an
// active one removes it first.
func (p *Portal) totpStart(w http.ResponseWriter, r *http.Request, s *session) string {
	ctx := r.Context()
	enr, err := p.o.Enrolments.Enrolment(ctx, s.User)
	if err != nil {
		return p.failed(s, err, "/")
	}
	if _, active := enr.Credential(factors.TOTP); active {
		s.say(text.totpExists)
		return "/"
	}
	t := p.o.TOTP
	key, err := totp.Generate(totp.GenerateOpts{Issuer: t.Issuer, AccountName: s.User, Period: uint(t.Period / time.Second),
		SecretSize: 20, Digits: potp.Digits(t.Digits), Algorithm: otp.Algorithm(t.Algorithm)})
	if err != nil {
		return p.failed(s, err, "/")
	}
	secret, err := otp.ParseBase32(key.Secret())
	if err != nil {
		return p.failed(s, err, "/")
	}
	c := factors.Credential{Method: factors.TOTP, Secret: secret, Algorithm: t.Algorithm, Digits: t.Digits,
		Period: int(t.Period / time.Second)}
	if err := p.o.Enrolments.Put(ctx, s.User, c, true); err != nil {
		return p.failed(s, err, "/")
	}
	return "/totp"
}

// totpConfirm activates the pending secret when a code from the app
// matches it; the code is then spent (the replay guard), as at a login.
func (p *Portal) totpConfirm(w http.ResponseWriter, r *http.Request, s *session) string {
	ctx := r.Context()
	if !p.allow(r, "confirm:"+s.User, signinsPerUser) {
		s.say(text.rateLimited)
		return "/totp"
	}
	enr, err := p.o.Enrolments.Enrolment(ctx, s.User)
	if err != nil {
		return p.failed(s, err, "/totp")
	}
	c, ok := pendingTOTP(enr)
	if !ok {
		return "/"
	}
	c.Active = true
	u := &factors.User{Name: s.User, Enrolment: &factors.Enrolment{Credentials: []factors.Credential{c}}}
	if err := p.o.Codes.Check(ctx, u, r.PostForm.Get("code")); err != nil {
		s.say(text.totpWrongCode)
		return "/totp"
	}
	if err := p.o.Enrolments.Activate(ctx, s.User, factors.TOTP); err != nil {
		return p.failed(s, err, "/totp")
	}
	p.record(r, s.User, audit.Change, audit.ReasonMethodEnrolled, factors.TOTP)
	s.say(text.totpActive)
	return "/"
}

// held reports whether the user holds m, active.
func held(enr *factors.Enrolment, m factors.Method) bool {
	_, ok := enr.Credential(m)
	return ok
}

func (p *Portal) setDefault(w http.ResponseWriter, r *http.Request, s *session) string {
	ctx := r.Context()
	m := factors.Method(r.PostForm.Get("method"))
	enr, err := p.o.Enrolments.Enrolment(ctx, s.User)
	if err != nil {
		return p.failed(s, err, "/")
	}
	if !held(enr, m) || m == factors.Recovery {
		s.say(text.noSuchMethod)
		return "/"
	}
	if err := p.o.Enrolments.SetDefault(ctx, s.User, m); err != nil {
		return p.failed(s, err, "/")
	}
	p.record(r, s.User, audit.Change, audit.ReasonDefaultChanged, m)
	s.say(text.defaultSet(m))
	return "/"
}

// noneAllowed reports whether the portal policy lets a user hold no
// method (and so remove the last).
func (p *Portal) noneAllowed() bool {
	return p.o.Policy.MFA != config.MFARequired || p.o.Policy.Unenrolled == config.UnenrolledAllow
}

func (p *Portal) remove(w http.ResponseWriter, r *http.Request, s *session) string {
	ctx := r.Context()
	m := factors.Method(r.PostForm.Get("method"))
	if p.o.Now().Sub(s.Factor) > freshFactor {
		// Sign in again: the second factor is then fresh.
		s.say(text.signInAgainToRemove)
		s.ended = true
		return "/signin"
	}
	enr, err := p.o.Enrolments.Enrolment(ctx, s.User)
	if err != nil {
		return p.failed(s, err, "/")
	}
	n := 0 // methods; recovery codes are a backup, not one
	for _, c := range enr.Credentials {
		if c.Active && c.Method != factors.Recovery {
			n++
		}
	}
	if !held(enr, m) {
		s.say(text.noSuchMethod)
		return "/"
	}
	if n == 1 && m != factors.Recovery && !p.noneAllowed() {
		s.say(text.lastMethod)
		return "/"
	}
	if _, err := p.o.Enrolments.Remove(ctx, s.User, m); err != nil && !errors.Is(err, store.ErrNotFound) {
		return p.failed(s, err, "/")
	}
	p.record(r, s.User, audit.Change, audit.ReasonMethodRemoved, m)
	s.say(text.removed(m))
	return "/"
}

// failed logs a store error and tells the user to try later.
func (p *Portal) failed(s *session, err error, next string) string {
	p.o.Log.Error("portal: the store failed", "user", s.User, "err", err)
	s.say(text.unavailable)
	return next
}

// recoveryNew makes a new set of recovery codes, which voids the old:
// like removing a method, it needs a second factor from the last five
// minutes. The codes are shown once, on the next page.
func (p *Portal) recoveryNew(w http.ResponseWriter, r *http.Request, s *session) string {
	if p.o.Now().Sub(s.Factor) > freshFactor {
		s.say(text.signInAgainForCodes)
		s.ended = true
		return "/signin"
	}
	shown, c, err := recovery.Generate()
	if err != nil {
		return p.failed(s, err, "/")
	}
	if err := p.o.Enrolments.Put(r.Context(), s.User, c, true); err != nil {
		return p.failed(s, err, "/")
	}
	p.record(r, s.User, audit.Change, audit.ReasonMethodEnrolled, factors.Recovery)
	s.Codes = shown
	return "/recovery"
}

func (p *Portal) recoveryShow(w http.ResponseWriter, r *http.Request, s *session) {
	if !s.signedIn() || len(s.Codes) == 0 {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	p.render(w, "recovery", s, map[string]any{"Codes": s.Codes})
}

// report is "This wasn't me": the account is blocked for every login
// (RADIUS and the portal) until an admin runs user reset; remembered
// logins end with a new lockout epoch; the security team sees an audit
// record and a metric. The session ends: whoever holds the password
// could be the one using it.
func (p *Portal) report(w http.ResponseWriter, r *http.Request, s *session) string {
	if err := p.o.Enrolments.Report(r.Context(), s.User); err != nil {
		return p.failed(s, err, "/")
	}
	p.reports.Inc()
	p.record(r, s.User, audit.Change, audit.ReasonReportedByUser, "")
	p.o.Log.Warn("a user reported a sign-in that was not theirs; the account is blocked until user reset", "user", s.User,
		"source", source(r).String())
	*s = session{CSRF: s.CSRF, Created: s.Created, id: s.id, rotate: true}
	s.say(text.reported)
	return "/signin"
}

// hotpClaim gives the user a hardware token from the stock the admins
// imported (mfabridge token import), by its serial and a code it shows
// now; the token cannot be claimed twice, and a wrong serial or code is
// one refusal (which of the two is not said). Guesses are rate-limited
// per user.
func (p *Portal) hotpClaim(w http.ResponseWriter, r *http.Request, s *session) string {
	if !p.allow(r, "token:"+s.User, signinsPerUser) {
		p.record(r, s.User, audit.Reject, audit.ReasonPortalRateLimit, factors.HOTP)
		s.say(text.rateLimited)
		return "/"
	}
	serial := strings.TrimSpace(r.PostForm.Get("serial"))
	code := r.PostForm.Get("code")
	err := p.o.Enrolments.ClaimToken(r.Context(), s.User, serial, func(c factors.Credential) (uint64, bool) {
		return otp.Claim(c, code, p.o.HOTP.LookAhead)
	})
	switch {
	case err == nil:
		p.record(r, s.User, audit.Change, audit.ReasonMethodEnrolled, factors.HOTP)
		s.say(text.hotpActive)
	case errors.Is(err, store.ErrNotFound):
		p.record(r, s.User, audit.Reject, audit.ReasonTokenRefused, factors.HOTP)
		s.say(text.hotpRefused)
	case errors.Is(err, store.ErrExists):
		s.say(text.hotpExists)
	default:
		return p.failed(s, err, "/")
	}
	return "/"
}
