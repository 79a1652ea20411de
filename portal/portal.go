// Package portal is the self-service web portal: staff sign in with
// their directory password and a second factor they hold (or, for a first
// enrolment, a helpdesk invite or a trusted network), then enrol and
// manage their own methods.
//
// A sign-in is a RADIUS login in all but transport: the portal hands the
// password and the answers to the conversation (radius.Conversation.Web),
// so the lockout counters, the factors, the prompts and the audit record
// are the ones RADIUS uses. Sessions live in the ephemeral state store
// (memory or Redis), so a session works at every instance. Pages are
// server-rendered forms from templates embedded in the binary: no
// script, nothing loaded from elsewhere, under a strict
// Content-Security-Policy.
package portal

import (
	"context"
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mfabridge/mfabridge/config"
	"github.com/mfabridge/mfabridge/factors"
	"github.com/mfabridge/mfabridge/internal/audit"
	"github.com/mfabridge/mfabridge/radius"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Conversation runs sign-in steps: radius.Conversation implements it.
type Conversation interface {
	Web(ctx context.Context, policy string, from netip.Addr, login, secret string, state []byte) radius.WebStep
}

// Enrolments is what the portal reads and changes of the enrolment
// store: internal/store implements it.
type Enrolments interface {
	Enrolment(ctx context.Context, user string) (*factors.Enrolment, error)
	Put(ctx context.Context, user string, c factors.Credential, replace bool) error
	Activate(ctx context.Context, user string, m factors.Method) error
	SetDefault(ctx context.Context, user string, m factors.Method) error
	Remove(ctx context.Context, user string, m factors.Method) (int, error)
	RedeemInvite(ctx context.Context, user, code string) error
	SignIns(ctx context.Context, user string) ([]factors.SignIn, error)
	ClaimToken(ctx context.Context, user, serial string, check func(factors.Credential) (uint64, bool)) error
	Report(ctx context.Context, user string) error
}

// Options configure a Portal.
type Options struct {
	Config       config.Portal
	Policy       config.Policy // the portal policy: may a user hold no method?
	TOTP         config.TOTP   // how new authenticator-app secrets are made
	HOTP         config.HOTP   // how far a claimed token's first code may be ahead
	Conversation Conversation
	Enrolments   Enrolments
	State        radius.State
	// Codes checks a code against a credential not yet active, with the
	// replay guard of the server (factors/otp's TOTP).
	Codes factors.Factor
	Audit *audit.Log // nil: no records
	// Key derives the form tokens of browsers not signed in (nothing is
	// stored for them): the same at every instance, so derive it from
	// store.key. Nil: a random key of this process.
	Key []byte
	// Metrics registers the portal's metrics; nil: not registered.
	Metrics prometheus.Registerer
	Log     *slog.Logger
	Now     func() time.Time
}

// Portal serves the portal's pages.
type Portal struct {
	o       Options
	origin  string // scheme://host[:port] of public_url, for Origin checks
	secure  bool   // HTTPS: Secure and __Host- cookies, HSTS
	cookie  string
	tmpl    map[string]*template.Template
	handler http.Handler
	// reports counts "This wasn't me": the security team alerts on it.
	reports prometheus.Counter
	key     []byte // Options.Key
}

// Limits.
const (
	absoluteSession = 8 * time.Hour
	freshFactor     = 5 * time.Minute // removing a method needs a second factor this recent
	postsPerSource  = 60              // form posts per source address per minute
	signinsPerUser  = 10              // sign-in steps per user name per minute
)

// New checks the options and builds the handler.
func New(o Options) (*Portal, error) {
	if o.Conversation == nil || o.Enrolments == nil || o.State == nil || o.Codes == nil {
		return nil, errors.New("portal: a conversation, the enrolment store, the state store and the code checker are required")
	}
	u, err := url.Parse(o.Config.PublicURL)
	if err != nil || u.Host == "" {
		return nil, errors.New("portal: public_url is not an address")
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Config.SessionTimeout <= 0 {
		o.Config.SessionTimeout = 15 * time.Minute
	}
	p := &Portal{o: o, origin: u.Scheme + "://" + u.Host, secure: u.Scheme == "https", key: o.Key}
	if len(p.key) == 0 {
		p.key = []byte(random(32))
	}
	p.cookie = "mfabridge-session"
	if p.secure {
		// __Host-: sent only over HTTPS, only to this host, for path /.
		p.cookie = "__Host-mfabridge-session"
	}
	if p.tmpl, err = parseTemplates(); err != nil {
		return nil, err
	}
	p.reports = prometheus.NewCounter(prometheus.CounterOpts{Name: "mfabridge_portal_reports_total",
		Help: `Sign-ins users said were not theirs ("This wasn't me"); each blocks the account until user reset.`})
	if o.Metrics != nil {
		if err := o.Metrics.Register(p.reports); err != nil {
			return nil, err
		}
	}
	static, _ := fs.Sub(staticFS, "static")
	mux := http.NewServeMux()
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServer(http.FS(static))))
	mux.HandleFunc("GET /{$}", p.page(p.account(p.home)))
	mux.HandleFunc("GET /signin", p.page(p.signinForm))
	mux.HandleFunc("POST /signin", p.form(p.signin))
	mux.HandleFunc("GET /code", p.page(p.codeForm))
	mux.HandleFunc("POST /code", p.form(p.code))
	mux.HandleFunc("GET /first", p.page(p.firstForm))
	mux.HandleFunc("POST /first", p.form(p.first))
	mux.HandleFunc("POST /signout", p.form(p.signout))
	mux.HandleFunc("GET /totp", p.page(p.account(p.totpForm)))
	mux.HandleFunc("POST /totp", p.form(signedIn(p.totpStart)))
	mux.HandleFunc("POST /totp/confirm", p.form(signedIn(p.totpConfirm)))
	mux.HandleFunc("POST /hotp", p.form(signedIn(p.hotpClaim)))
	mux.HandleFunc("POST /default", p.form(signedIn(p.setDefault)))
	mux.HandleFunc("POST /remove", p.form(signedIn(p.remove)))
	mux.HandleFunc("POST /recovery", p.form(signedIn(p.recoveryNew)))
	mux.HandleFunc("GET /recovery", p.page(p.recoveryShow))
	mux.HandleFunc("POST /report", p.form(signedIn(p.report)))
	p.handler = p.headers(mux)
	return p, nil
}

// Handler returns the portal's HTTP handler.
func (p *Portal) Handler() http.Handler { return p.handler }

// headers sets what every response carries: no framing, no referrer, no
// script or resource from anywhere but the portal, nothing cached.
func (p *Portal) headers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "+
			"frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cache-Control", "no-store")
		if p.secure {
			h.Set("Strict-Transport-Security", "max-age=31536000")
		}
		next.ServeHTTP(w, r)
	})
}

// source is the address a request came from: the portal is reached
// directly, not through a proxy it would have to trust.
func source(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		a, _ := netip.ParseAddr(host)
		return a.Unmap()
	}
	return ap.Addr().Unmap()
}

// record writes an audit record of something a user did in the portal.
func (p *Portal) record(r *http.Request, user, outcome string, reason audit.Reason, m factors.Method) {
	p.o.Audit.Write(audit.Record{Time: p.o.Now().UTC(), Client: radius.WebClient, ClientAddress: source(r).String(),
		User: user, Outcome: outcome, Reason: reason, Policy: p.o.Config.Policy, Factor: string(m)})
}
