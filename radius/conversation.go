package radius

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2869"

	"github.com/mfabridge/mfabridge/config"
	"github.com/mfabridge/mfabridge/factors"
	"github.com/mfabridge/mfabridge/internal/audit"
)

// Directory checks primary credentials: ldapbind implements it.
type Directory interface {
	// Authenticate returns the user when password is theirs. Errors are
	// factors.ErrBadCredentials (wrong password or unknown user, never told
	// apart), *factors.AccountError, or wrap factors.ErrUnavailable.
	Authenticate(ctx context.Context, username, password string) (*factors.User, error)
}

// ConversationOptions configure a Conversation.
type ConversationOptions struct {
	Directory            Directory
	Policies             map[string]config.Policy
	Username             config.Username
	ReportPasswordExpiry bool
	Audit                *audit.Log // nil: no audit records
	Metrics              *Metrics
	Log                  *slog.Logger
	Now                  func() time.Time
}

// Conversation turns an Access-Request into a decision (DESIGN §2 steps
// 5–12) and writes the one audit record for it.
type Conversation struct {
	dir      Directory
	policies map[string]*policy
	username config.Username
	expiry   bool
	audit    *audit.Log
	metrics  *Metrics
	log      *slog.Logger
	now      func() time.Time
}

// NewConversation compiles the policies.
func NewConversation(o ConversationOptions) (*Conversation, error) {
	ps, err := compilePolicies(o.Policies)
	if err != nil {
		return nil, err
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
	return &Conversation{dir: o.Directory, policies: ps, username: o.Username, expiry: o.ReportPasswordExpiry,
		audit: o.Audit, metrics: o.Metrics, log: o.Log, now: o.Now}, nil
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
)

// Reason codes in audit records and the mfabridge_decisions_total metric.
// They are stable: admins alert on them.
const (
	ReasonAccepted          = "accepted"         // password and policy satisfied, no second factor asked
	ReasonBypassGroup       = "bypass_group"     // accepted: member of a bypass group
	ReasonMFAOffPolicy      = "mfa_off"          // accepted: the policy has mfa: off
	ReasonBadRequest        = "bad_request"      // no usable User-Name or User-Password
	ReasonBadUsername       = "bad_username"     // control characters, too long, empty after stripping
	ReasonUnsupportedAuth   = "unsupported_auth" // CHAP or MS-CHAP
	ReasonEAPUnsupported    = "eap_unsupported"  // EAP-Message without EAP support
	ReasonEmptyPassword     = "empty_password"   // refused before any LDAP call
	ReasonBadCredentials    = "bad_credentials"  // wrong password or unknown user
	ReasonDirectoryDown     = "directory_unavailable"
	ReasonDeniedGroup       = "deny_group"
	ReasonNotInRequired     = "not_in_required_group"
	ReasonMFAUnavailable    = "mfa_unavailable" // mfa required, no factor can be offered
	ReasonUnknownState      = "unknown_state"   // a State this server did not issue or that expired
	ReasonPolicyMissing     = "policy_missing"
	ReasonInternal          = "internal_error"
	ReasonOptionalNoMethods = "mfa_optional_unenrolled" // mfa optional, user holds no method
)

// decision is the outcome of one request.
type decision struct {
	code    radius.Code
	reason  string
	message string // Reply-Message; "" for none
	attrs   radius.Attributes
	user    string
	factor  string
	eapID   int // EAP Identifier for an EAP-Failure, or -1
}

func reject(reason, message string) decision {
	return decision{code: radius.CodeAccessReject, reason: reason, message: message, eapID: -1}
}

func accept(reason string, attrs radius.Attributes) decision {
	return decision{code: radius.CodeAccessAccept, reason: reason, attrs: attrs, eapID: -1}
}

// ServeRADIUS answers one Access-Request.
func (c *Conversation) ServeRADIUS(w radius.ResponseWriter, r *radius.Request) {
	info := infoFrom(r.Context())
	p := c.policies[info.client.Policy]
	var d decision
	if p == nil {
		d = reject(ReasonPolicyMissing, msgFailed)
	} else {
		d = c.decide(r.Context(), r.Packet, info.client, p)
	}

	resp := r.Response(d.code)
	if d.message != "" {
		if a, err := radius.NewString(d.message); err == nil {
			resp.Add(rfc2865.ReplyMessage_Type, a)
		}
	}
	if d.eapID >= 0 {
		// EAP-Failure (RFC 3748 §4.2) so that the supplicant stops at once.
		rfc2869.EAPMessage_Set(resp, []byte{4, byte(d.eapID), 0, 4})
	}
	resp.Attributes = append(resp.Attributes, d.attrs...)
	if err := w.Write(resp); err != nil {
		c.metrics.Dropped.WithLabelValues(DropEncode).Inc()
		c.log.Error("cannot send reply", "client", info.client.Name, "err", err)
	}

	outcome := audit.Reject
	switch d.code {
	case radius.CodeAccessAccept:
		outcome = audit.Accept
	case radius.CodeAccessChallenge:
		outcome = audit.Challenge
	}
	c.metrics.Decisions.WithLabelValues(outcome, d.reason).Inc()
	policyName := ""
	if p != nil {
		policyName = p.name
	}
	c.audit.Write(audit.Record{
		Time:           c.now().UTC(),
		Client:         info.client.Name,
		ClientAddress:  info.from.Addr().String(),
		User:           d.user,
		CallingStation: callingStation(r.Packet),
		Outcome:        outcome,
		Reason:         d.reason,
		Policy:         policyName,
		Factor:         d.factor,
		LatencyMS:      float64(c.now().Sub(info.received).Microseconds()) / 1000,
	})
}

// callingStation returns Calling-Station-Id if it is printable and short;
// it is only ever logged and compared.
func callingStation(p *radius.Packet) string {
	s := rfc2865.CallingStationID_GetString(p)
	if len(s) > 64 {
		s = s[:64]
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return ""
		}
	}
	return s
}

func (c *Conversation) decide(ctx context.Context, p *radius.Packet, client *Client, pol *policy) decision {
	var d decision
	var user string
	names := attributesOf(p, rfc2865.UserName_Type)
	var err error
	switch {
	case len(names) != 1:
		d = reject(ReasonBadRequest, msgFailed)
	default:
		if user, err = normaliseUsername(names[0], c.username); err != nil {
			d = reject(ReasonBadUsername, msgFailed)
		}
	}
	if eap := p.Attributes.Get(typeEAPMessage); eap != nil {
		d = reject(ReasonEAPUnsupported, msgEAP)
		if len(eap) >= 2 {
			d.eapID = int(eap[1])
		}
	} else if isCHAP(p) {
		d = reject(ReasonUnsupportedAuth, msgUnsupported)
	} else if d.code == 0 {
		d = c.decideUser(ctx, p, client, pol, user)
	}
	d.user = user
	return d
}

func (c *Conversation) decideUser(ctx context.Context, p *radius.Packet, client *Client, pol *policy, user string) decision {
	pws := attributesOf(p, rfc2865.UserPassword_Type)
	if len(pws) != 1 {
		return reject(ReasonBadRequest, msgFailed)
	}
	pw, err := decodePassword(pws[0], p.Secret, p.Authenticator)
	if err != nil {
		return reject(ReasonBadRequest, msgFailed)
	}
	if len(pw) == 0 {
		// An empty simple bind is an anonymous bind, which many directories
		// accept (RFC 4513 §5.1.2): never let one reach LDAP.
		return reject(ReasonEmptyPassword, msgFailed)
	}
	if st := rfc2865.State_Get(p); st != nil {
		// No challenge has been issued by this version: any State is
		// unknown, and an unknown State is never a way around the password.
		return reject(ReasonUnknownState, msgFailed)
	}

	start := c.now()
	u, err := c.dir.Authenticate(ctx, user, string(pw))
	c.metrics.Duration.WithLabelValues("ldap").Observe(c.now().Sub(start).Seconds())
	if err != nil {
		return c.primaryFailure(user, client, err)
	}
	return c.applyPolicy(pol, u)
}

func (c *Conversation) primaryFailure(user string, client *Client, err error) decision {
	var ae *factors.AccountError
	switch {
	case errors.Is(err, factors.ErrBadCredentials):
		return reject(ReasonBadCredentials, msgFailed)
	case errors.As(err, &ae):
		if c.expiry && factors.IsPasswordExpiry(err) {
			return reject(ae.Reason, msgExpired)
		}
		return reject(ae.Reason, msgFailed)
	case errors.Is(err, factors.ErrUnavailable):
		c.log.Error("directory unavailable", "client", client.Name, "user", user, "err", err)
		return reject(ReasonDirectoryDown, msgUnavailable)
	}
	c.log.Error("primary authentication failed", "client", client.Name, "user", user, "err", err)
	return reject(ReasonInternal, msgFailed)
}

// applyPolicy applies the client's policy to an authenticated user
// (DESIGN §2 step 9): deny groups first, then required groups, then
// bypass groups, then the second factor.
func (c *Conversation) applyPolicy(p *policy, u *factors.User) decision {
	switch {
	case u.InAny(p.DenyGroups):
		return reject(ReasonDeniedGroup, msgFailed)
	case len(p.RequireGroups) > 0 && !u.InAny(p.RequireGroups):
		return reject(ReasonNotInRequired, msgFailed)
	case u.InAny(p.BypassGroups):
		return accept(ReasonBypassGroup, p.replyAttributes(u))
	case p.MFA == config.MFAOff:
		return accept(ReasonMFAOffPolicy, p.replyAttributes(u))
	case p.MFA == config.MFAOptional:
		// No second factor is built into this version, so no user can hold
		// one: optional means the password alone.
		return accept(ReasonOptionalNoMethods, p.replyAttributes(u))
	}
	return reject(ReasonMFAUnavailable, msgNoFactor)
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
