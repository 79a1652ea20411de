package radius

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"
	"unicode/utf8"

	"layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2869"
	"layeh.com/radius/vendors/microsoft"

	"github.com/mfabridge/mfabridge/config"
	"github.com/mfabridge/mfabridge/factors"
	"github.com/mfabridge/mfabridge/internal/audit"
	"github.com/mfabridge/mfabridge/internal/username"
	"github.com/mfabridge/mfabridge/radius/eap"
)

// Directory finds users and checks their passwords: ldapbind implements
// it. Every User it returns is named by its canonical name (the entry's
// naming attribute), which is what the bridge keys everything on.
type Directory interface {
	// Find looks up the user a login name belongs to, without a
	// password. A name no entry (or more than one) answers to is
	// factors.ErrNoSuchUser; a failure to ask wraps factors.ErrUnavailable.
	Find(ctx context.Context, login string) (*factors.User, error)
	// Bind checks password for a user Find returned and completes it
	// (groups). Errors are factors.ErrBadCredentials,
	// *factors.AccountError, or wrap factors.ErrUnavailable.
	Bind(ctx context.Context, u *factors.User, password string) (*factors.User, error)
	// Decoy spends the bind a wrong password would have cost, for a name
	// nobody holds, so that timing does not tell the two apart.
	Decoy(ctx context.Context, password string)
	// Lookup finds a user by login name without a password (a smartcard
	// login), reading account state: a disabled, locked or expired
	// account is an *factors.AccountError.
	Lookup(ctx context.Context, login string) (*factors.User, error)
	// LookupIdentity is Lookup by the whole UPN or email address a
	// certificate carries, in the directory attribute that holds it.
	LookupIdentity(ctx context.Context, id string) (*factors.User, error)
}

// Enrolments reads the enrolment store: internal/store implements it.
type Enrolments interface {
	// Enrolment returns the user's credentials and lockout epoch; a user
	// with none gets an empty Enrolment, not an error.
	Enrolment(ctx context.Context, user string) (*factors.Enrolment, error)
	// Used records a successful use of a method (for user show).
	Used(ctx context.Context, user string, m factors.Method) error
}

// State is the ephemeral state: internal/state implements it. Each call
// is atomic; see that package for the contract.
type State interface {
	SetNX(ctx context.Context, key string, val []byte, ttl time.Duration) (bool, error)
	Set(ctx context.Context, key string, val []byte, ttl time.Duration) error
	Get(ctx context.Context, key string) ([]byte, bool, error)
	Take(ctx context.Context, key string) ([]byte, bool, error)
	Incr(ctx context.Context, key string, ttl time.Duration) (int64, error)
	Decr(ctx context.Context, key string) (int64, error)
	Count(ctx context.Context, key string) (int64, error)
	Delete(ctx context.Context, key string) error
}

// ConversationOptions configure a Conversation.
type ConversationOptions struct {
	Directory  Directory
	Enrolments Enrolments // nil: nobody is enrolled
	State      State      // required
	Factors    []factors.Factor
	// EAP runs EAP-TLS for policies with smartcard: true; nil refuses EAP.
	EAP                    *eap.Server
	Certificates           Certificates // required with EAP
	MatchStoredCertificate bool
	Policies               map[string]config.Policy
	// Clients are the configured clients, for the policies a proxy
	// client gives by NAS-Identifier (clients[].nas).
	Clients              []config.Client
	Username             config.Username
	ReportPasswordExpiry bool
	ChallengeTimeout     time.Duration // default 2m
	ApproveTimeout       time.Duration // how long auto mode holds a request; default 60s
	// DuplicateWindow is how long a login that sent something stops the
	// same login (user, client, Calling-Station-Id) from sending again,
	// at any instance sharing the state; 0: no such guard.
	DuplicateWindow time.Duration
	Lockout         config.Lockout
	Audit           *audit.Log // nil: no audit records
	Metrics         *Metrics
	Log             *slog.Logger
	Now             func() time.Time
	Rand            io.Reader // State values; default crypto/rand
}

// Conversation turns an Access-Request into a decision (DESIGN §2 steps
// 5–12) and writes the one audit record for it.
type Conversation struct {
	dir         Directory
	enrolments  Enrolments
	signins     SignInRecorder // nil: no history kept
	state       State
	factors     map[factors.Method]factors.Factor
	eap         *eap.Server
	certs       Certificates
	matchStored bool
	policies    map[string]*policy
	nas         map[string]map[string]*policy // client name → NAS-Identifier → policy
	username    config.Username
	expiry      bool
	timeout     time.Duration
	// approveTimeout bounds a held request; approvePoll is how often
	// the approval is looked at meanwhile.
	approveTimeout, approvePoll time.Duration
	sendWindow                  time.Duration
	lockout                     config.Lockout
	audit                       *audit.Log
	metrics                     *Metrics
	log                         *slog.Logger
	now                         func() time.Time
	rand                        io.Reader
}

// NewConversation compiles the policies.
func NewConversation(o ConversationOptions) (*Conversation, error) {
	ps, err := compilePolicies(o.Policies)
	if err != nil {
		return nil, err
	}
	if o.State == nil {
		return nil, errors.New("radius: a conversation needs a state store")
	}
	if o.EAP != nil && o.Certificates == nil {
		return nil, errors.New("radius: EAP needs Certificates")
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Rand == nil {
		o.Rand = rand.Reader
	}
	if o.ChallengeTimeout <= 0 {
		o.ChallengeTimeout = 2 * time.Minute
	}
	if o.ApproveTimeout <= 0 {
		o.ApproveTimeout = time.Minute
	}
	if o.Lockout.Window <= 0 {
		o.Lockout = config.Default().Lockout
	}
	fs := map[factors.Method]factors.Factor{}
	for _, f := range o.Factors {
		fs[f.Method()] = f
	}
	nas := map[string]map[string]*policy{}
	for _, cl := range o.Clients {
		for _, n := range cl.NAS {
			p := ps[n.Policy]
			if p == nil {
				return nil, fmt.Errorf("radius: clients %s: nas %q: no policy named %q", cl.Name, n.Identifier, n.Policy)
			}
			if nas[cl.Name] == nil {
				nas[cl.Name] = map[string]*policy{}
			}
			nas[cl.Name][n.Identifier] = p
		}
	}
	signins, _ := o.Enrolments.(SignInRecorder)
	return &Conversation{dir: o.Directory, enrolments: o.Enrolments, signins: signins, state: o.State, factors: fs, policies: ps, nas: nas,
		username: o.Username, expiry: o.ReportPasswordExpiry, timeout: o.ChallengeTimeout, lockout: o.Lockout,
		approveTimeout: o.ApproveTimeout, approvePoll: 250 * time.Millisecond, sendWindow: o.DuplicateWindow,
		eap: o.EAP, certs: o.Certificates, matchStored: o.MatchStoredCertificate,
		audit: o.Audit, metrics: o.Metrics, log: o.Log, now: o.Now, rand: o.Rand}, nil
}

// Reply-Messages. They are short, and the same for every way of failing
// that must not be told apart (an unknown user and a wrong password).
const (
	msgFailed      = "Authentication failed."
	msgUnsupported = "Only PAP is supported; CHAP and MS-CHAP are not."
	msgEAP         = "EAP is not supported by this server."
	msgExpired     = "Your password has expired. Change it, then try again."
	msgUnavailable = "The authentication service is unavailable. Try again shortly."
	msgNoFactor    = "A second factor is required but none is available. Contact the service desk."
	msgNotEnrolled = "A second factor is required and you have none enrolled. Contact the service desk."
	msgTooMany     = "Too many wrong codes."
	msgMismatch    = "The identity given is not the card's."
)

// decision is the outcome of one request.
type decision struct {
	code    radius.Code
	reason  audit.Reason
	message string // Reply-Message; "" for none
	attrs   radius.Attributes
	// user is the canonical name of the user decided about, or the
	// normalised login name when no entry was found; login is that login
	// name, when it differs.
	user, login string
	// known is set on decisions about a user the directory found: where
	// their known stations are recorded.
	known *stationKey
	// found: the directory found the user (user is the canonical name),
	// so the decision goes into the user's own history.
	found  bool
	factor factors.Method
	state  []byte // State of an Access-Challenge
	eap    []byte // EAP-Message to send
	msk    []byte // EAP-TLS keying material: MS-MPPE-Recv-Key and -Send-Key
	cert   *certInfo
	quiet  bool // an EAP round in the middle of a handshake: counted, not audited
}

func reject(reason audit.Reason, message string) decision {
	return decision{code: radius.CodeAccessReject, reason: reason, message: message}
}

func accept(reason audit.Reason, attrs radius.Attributes) decision {
	return decision{code: radius.CodeAccessAccept, reason: reason, attrs: attrs}
}

// policyFor returns the policy of a request: the client's, or for a
// proxy client the one its nas list gives the NAS-Identifier passed on.
func (c *Conversation) policyFor(client *Client, p *radius.Packet) *policy {
	if byNAS := c.nas[client.Name]; byNAS != nil && client.Proxy {
		if pol := byNAS[rfc2865.NASIdentifier_GetString(p)]; pol != nil {
			return pol
		}
	}
	return c.policies[client.Policy]
}

// ServeRADIUS answers one Access-Request.
func (c *Conversation) ServeRADIUS(w radius.ResponseWriter, r *radius.Request) {
	info := infoFrom(r.Context())
	p := c.policyFor(info.client, r.Packet)
	var d decision
	if p == nil {
		d = reject(audit.ReasonPolicyMissing, msgFailed)
	} else {
		d = c.decide(r.Context(), r.Packet, info.client, p)
	}
	if d.code == radius.CodeAccessAccept && d.known != nil {
		c.rememberStation(r.Context(), *d.known)
	}
	// The decision is recorded before it is sent: whoever sees the reply
	// can already find its audit record.
	c.record(r, info, p, d)

	resp := r.Response(d.code)
	if d.code == radius.CodeAccessAccept && d.user != "" {
		// RFC 2865 §5.1: the name the NAS should use for the session, its
		// accounting and its own rules: the user accepted, not what was
		// typed or claimed.
		if a, err := radius.NewString(d.user); err == nil {
			resp.Add(rfc2865.UserName_Type, a)
		}
	}
	if d.state != nil {
		rfc2865.State_Set(resp, d.state)
	}
	if d.message != "" {
		if a, err := radius.NewString(truncate(d.message, 253)); err == nil {
			resp.Add(rfc2865.ReplyMessage_Type, a)
		}
	}
	if d.eap != nil {
		rfc2869.EAPMessage_Set(resp, d.eap)
	}
	resp.Attributes = append(resp.Attributes, d.attrs...)
	if d.msk != nil {
		// RFC 2548 salts and hides the keys with the shared secret and the
		// Request Authenticator, which resp carries.
		microsoft.MSMPPERecvKey_Add(resp, d.msk[:32])
		microsoft.MSMPPESendKey_Add(resp, d.msk[32:64])
	}
	if err := w.Write(resp); err != nil {
		c.metrics.Dropped.WithLabelValues(DropEncode).Inc()
		c.log.Error("cannot send reply", "client", info.client.Name, "err", err)
	}
}

// record writes the audit record and counts the decision.
func (c *Conversation) record(r *radius.Request, info *requestInfo, p *policy, d decision) {
	outcome := audit.Reject
	switch d.code {
	case radius.CodeAccessAccept:
		outcome = audit.Accept
	case radius.CodeAccessChallenge:
		outcome = audit.Challenge
	}
	c.metrics.Decisions.WithLabelValues(outcome, string(d.reason)).Inc()
	if d.quiet {
		return
	}
	c.history(d, info.client.Name, callingStation(r.Packet), outcome)
	policyName := ""
	if p != nil {
		policyName = p.name
	}
	c.audit.Write(audit.Record{
		Time:           c.now().UTC(),
		Client:         info.client.Name,
		ClientAddress:  info.from.Addr().String(),
		User:           d.user,
		Login:          d.login,
		CallingStation: callingStation(r.Packet),
		NASIP:          nasIP(r.Packet),
		NASIdentifier:  printable(rfc2865.NASIdentifier_GetString(r.Packet), 64),
		Outcome:        outcome,
		Reason:         d.reason,
		Policy:         policyName,
		Factor:         string(d.factor),
		Cert:           d.cert.audit(),
		LatencyMS:      float64(c.now().Sub(info.received).Microseconds()) / 1000,
	})
}

// callingStation returns Calling-Station-Id if it is printable and short;
// it is only ever logged and compared.
func callingStation(p *radius.Packet) string {
	return printable(rfc2865.CallingStationID_GetString(p), 64)
}

// printable returns s cut to n bytes, or "" if it holds a control
// character.
func printable(s string, n int) string {
	s = truncate(s, n)
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			return ""
		}
	}
	return s
}

// nasIP returns NAS-IP-Address (or NAS-IPv6-Address), for the audit
// record of a request a proxy passed on.
func nasIP(p *radius.Packet) string {
	if a := p.Attributes.Get(rfc2865.NASIPAddress_Type); len(a) == 4 {
		return net.IP(a).String()
	}
	if a := p.Attributes.Get(typeNASIPv6Address); len(a) == 16 {
		return net.IP(a).String()
	}
	return ""
}

// typeNASIPv6Address is NAS-IPv6-Address (RFC 3162).
const typeNASIPv6Address radius.Type = 95

func (c *Conversation) decide(ctx context.Context, p *radius.Packet, client *Client, pol *policy) decision {
	var d decision
	var login string
	names := attributesOf(p, rfc2865.UserName_Type)
	var err error
	switch {
	case len(names) != 1:
		d = reject(audit.ReasonBadRequest, msgFailed)
	default:
		if login, err = username.Normalise(names[0], c.username); err != nil {
			d = reject(audit.ReasonBadUsername, msgFailed)
		}
	}
	isEAP := p.Attributes.Get(typeEAPMessage) != nil
	switch {
	case isEAP && (len(names) > 1 || err != nil):
		// The User-Name is what the NAS logs and accounts under: one that
		// cannot be compared with the card's user refuses the login.
		d = c.eapRefusal(p, audit.ReasonBadUsername)
	case isEAP:
		d = c.eapRequest(ctx, p, client, pol, login)
	case isCHAP(p):
		d = reject(audit.ReasonUnsupportedAuth, msgUnsupported)
	case d.code == 0:
		d = c.decideUser(ctx, p, client, pol, login)
	}
	if d.user == "" {
		d.user, d.login = login, ""
	}
	if d.login == d.user {
		d.login = ""
	}
	return d
}

// about names the user a decision is about, whom the directory found.
func about(d decision, u *factors.User) decision {
	d.user, d.login, d.found = u.Name, u.Login, true
	return d
}

// SignInRecorder keeps decisions for each user's own history (the
// portal shows it): internal/store implements it, without making a
// login wait for a write.
type SignInRecorder interface {
	RecordSignIn(user string, s factors.SignIn)
}

// history records a final decision about a found user.
func (c *Conversation) history(d decision, client, station, outcome string) {
	if c.signins == nil || !d.found || outcome == audit.Challenge || d.quiet {
		return
	}
	c.signins.RecordSignIn(d.user, factors.SignIn{Time: c.now().UTC(), Client: client, Station: station, Outcome: outcome,
		Method: d.factor, Reason: string(d.reason)})
}

// attributesOf returns every value of type t, in order.
func attributesOf(p *radius.Packet, t radius.Type) []radius.Attribute {
	var out []radius.Attribute
	for _, a := range p.Attributes {
		if a.Type == t {
			out = append(out, a.Attribute)
		}
	}
	return out
}

// vendorMicrosoft is Microsoft's SMI enterprise number (RFC 2548).
const vendorMicrosoft = 311

// isCHAP reports a CHAP-Password or a Microsoft MS-CHAP / MS-CHAPv2
// response (RFC 2548): methods this server does not offer, which get a
// clear Access-Reject rather than a confusing wrong-password one.
func isCHAP(p *radius.Packet) bool {
	if p.Attributes.Get(rfc2865.CHAPPassword_Type) != nil {
		return true
	}
	for _, a := range p.Attributes {
		if a.Type != rfc2865.VendorSpecific_Type {
			continue
		}
		id, vsa, err := radius.VendorSpecific(a.Attribute)
		if err != nil || id != vendorMicrosoft {
			continue
		}
		for len(vsa) >= 2 && int(vsa[1]) >= 2 && int(vsa[1]) <= len(vsa) {
			switch vsa[0] {
			case 1, 25: // MS-CHAP-Response, MS-CHAP2-Response
				return true
			}
			vsa = vsa[vsa[1]:]
		}
	}
	return false
}

// String helps debug output name decisions.
func (d decision) String() string { return fmt.Sprintf("%s (%s)", d.code, d.reason) }

// truncate shortens s to at most n bytes on a UTF-8 boundary: one
// Reply-Message attribute holds 253.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
