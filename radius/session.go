package radius

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"

	"github.com/mfabridge/mfabridge/factors"
	"github.com/mfabridge/mfabridge/internal/audit"
	"layeh.com/radius"
)

// session is what a challenge State stands for. It is kept in the
// ephemeral state under the State, for challenge_timeout, and taken (read
// and deleted at once) when the answer comes: a State works once.
type session struct {
	Client   string           `json:"client"`
	User     string           `json:"user"`            // canonical
	Login    string           `json:"login,omitempty"` // as the login was typed, when it is not User
	DN       string           `json:"dn"`
	Groups   []string         `json:"groups"`
	Mobile   string           `json:"mobile,omitempty"`
	Voice    string           `json:"voice,omitempty"`
	Policy   string           `json:"policy"`
	Methods  []factors.Method `json:"methods"`          // offered and still usable
	Active   factors.Method   `json:"active,omitempty"` // a sending method whose code or approval is pending
	Ref      string           `json:"ref,omitempty"`    // the approval Active started: only this session may use it
	Menu     []factors.Method `json:"menu,omitempty"`   // the numbers in the prompt: Menu[0] is reply 1
	Attempts int              `json:"attempts"`         // wrong answers still allowed
	Station  string           `json:"station,omitempty"`
	Epoch    int64            `json:"epoch"`
	Claimed  factors.Method   `json:"claimed,omitempty"` // the send this login claimed (sendonce.go), released when it is decided
}

// stateLen is 128 bits of randomness (DESIGN §2 step 10).
const stateLen = 16

// sessionKey is where the session of a State is kept: under a hash of
// it, so that whoever can list a shared state store's keys learns no
// State to present.
func sessionKey(state []byte) string {
	sum := sha256.Sum256(state)
	return "session:" + hex.EncodeToString(sum[:16])
}

// isStarter reports whether m sends something when chosen.
func (c *Conversation) isStarter(m factors.Method) bool {
	_, ok := c.factors[m].(factors.Starter)
	return ok
}

func (c *Conversation) isApprover(m factors.Method) bool {
	_, ok := c.factors[m].(factors.Approver)
	return ok
}

// prompt words a challenge: what happened (lead), what to type, and a
// numbered menu of the sending methods not in use. It returns the menu.
func (c *Conversation) prompt(u *factors.User, methods []factors.Method, active factors.Method, lead string) (string, []factors.Method) {
	var typed, menu []factors.Method
	for _, m := range methods {
		switch {
		case m == active:
		case c.isStarter(m):
			menu = append(menu, m)
		default:
			typed = append(typed, m)
		}
	}
	var parts []string
	if lead != "" {
		parts = append(parts, lead)
	}
	var ask string
	switch {
	case active != "" && c.isApprover(active):
		ask = "Press Enter here once you have pressed # on the phone"
		if len(typed) > 0 {
			ask += ", or enter " + c.labelsOf(u, typed)
		}
	case active != "":
		ask = "Enter that code"
		if len(typed) > 0 {
			ask += " or " + c.labelsOf(u, typed)
		}
	case len(typed) > 0:
		ask = "Enter " + c.labelsOf(u, typed)
	}
	var opts []string
	for i, m := range menu {
		opts = append(opts, strconv.Itoa(i+1)+" for "+c.factors[m].Label(u))
	}
	switch {
	case ask != "" && len(opts) > 0:
		ask += ", or reply " + strings.Join(opts, ", ")
	case len(opts) > 0:
		ask = "Reply " + strings.Join(opts, ", ")
	}
	if ask != "" {
		parts = append(parts, ask+".")
	}
	return strings.Join(parts, " "), menu
}

// firstChallenge answers a right password with the first challenge. When
// the user's default method sends something, it is sent at once.
func (c *Conversation) firstChallenge(ctx context.Context, client *Client, pol *policy, u *factors.User,
	offered []factors.Method, station string) decision {
	s := c.newSession(client, pol, u, offered, station)
	lead := ""
	if c.isStarter(offered[0]) {
		var ok bool
		var ref string
		lead, ref, ok = c.startOnce(ctx, client, u, offered[0], station)
		if ok {
			s.Active, s.Ref, s.Claimed = offered[0], ref, offered[0]
		} else {
			s.Methods = without(s.Methods, offered[0])
		}
	}
	if len(s.Methods) == 0 {
		return reject(audit.ReasonSendFailed, lead)
	}
	return c.challenge(ctx, s, u, lead, audit.ReasonChallenge)
}

func (c *Conversation) newSession(client *Client, pol *policy, u *factors.User, methods []factors.Method, station string) session {
	s := session{Client: client.Name, User: u.Name, Login: u.Login, DN: u.DN, Groups: u.Groups, Mobile: u.Mobile, Voice: u.Voice,
		Policy: pol.name, Methods: methods, Attempts: pol.Attempts, Station: station}
	if u.Enrolment != nil {
		s.Epoch = u.Enrolment.LockoutEpoch
	}
	return s
}

// start starts a sending method and returns what to tell the user, and
// whether it was sent. A failure is logged with the service's error code
// (never the code sent) and counted; the user is told in a sentence.
func (c *Conversation) start(ctx context.Context, u *factors.User, m factors.Method) (lead, ref string, ok bool) {
	f := c.factors[m].(factors.Starter)
	// What is started lives as long as the challenge that waits for it,
	// unless the caller (a held request) set a shorter deadline.
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	p, err := f.Start(ctx, u)
	var se *factors.SendError
	switch {
	case err == nil:
		c.metrics.Sends.WithLabelValues(string(m), "sent").Inc()
		return p.Text, p.Ref, true
	case errors.Is(err, factors.ErrBusy):
		c.metrics.Sends.WithLabelValues(string(m), "rate_limited").Inc()
		c.log.Warn("send refused by the global limit", "user", u.Name, "factor", string(m), "err", err)
		return "Too many codes are being sent right now; try again in a minute or use another method.", "", false
	case errors.Is(err, factors.ErrRateLimited):
		c.metrics.Sends.WithLabelValues(string(m), "rate_limited").Inc()
		c.log.Warn("send refused by a limit", "user", u.Name, "factor", string(m), "err", err)
		return "Too many codes have been sent to you; try again later or use another method.", "", false
	case errors.As(err, &se):
		c.metrics.Sends.WithLabelValues(string(m), "failed").Inc()
		c.log.Error("send failed", "user", u.Name, "factor", string(m), "service_code", se.Code, "http_status", se.Status, "err", se.Err)
	default:
		c.metrics.Sends.WithLabelValues(string(m), "failed").Inc()
		c.log.Error("send failed", "user", u.Name, "factor", string(m), "err", err)
	}
	if m == factors.Voice {
		return "The call could not be placed.", "", false
	}
	return "The text message could not be sent.", "", false
}

// challenge stores s under a new State and answers Access-Challenge with
// the prompt.
func (c *Conversation) challenge(ctx context.Context, s session, u *factors.User, lead string, reason audit.Reason) decision {
	st := make([]byte, stateLen)
	if _, err := io.ReadFull(c.rand, st); err != nil {
		c.log.Error("no randomness for a State", "err", err)
		return reject(audit.ReasonInternal, msgFailed)
	}
	text, menu := c.prompt(u, s.Methods, s.Active, lead)
	s.Menu = menu
	b, err := json.Marshal(s)
	if err != nil {
		return reject(audit.ReasonInternal, msgFailed)
	}
	if err := c.state.Set(ctx, sessionKey(st), b, c.timeout); err != nil {
		c.log.Error("cannot store a challenge session", "err", err)
		return reject(audit.ReasonStateDown, msgUnavailable)
	}
	return decision{code: radius.CodeAccessChallenge, reason: reason, message: text, state: st}
}

// answer handles the reply to a challenge: the State must be live, issued
// to this client for this user (under the name the login was typed as,
// or the canonical one); then the answer is a menu choice, an approval
// ("pressed #"), or a code.
func (c *Conversation) answer(ctx context.Context, client *Client, login string, st []byte, answer string) decision {
	b, ok, err := c.state.Take(ctx, sessionKey(st))
	if err != nil {
		c.log.Error("state store unavailable", "err", err)
		return reject(audit.ReasonStateDown, msgUnavailable)
	}
	if !ok || len(st) != stateLen {
		return reject(audit.ReasonUnknownState, msgFailed)
	}
	var s session
	if err := json.Unmarshal(b, &s); err != nil {
		return reject(audit.ReasonInternal, msgFailed)
	}
	typedAs := s.Login
	if typedAs == "" {
		typedAs = s.User
	}
	if s.Client != client.Name || login != typedAs && login != s.User {
		c.log.Warn("State presented by another client or for another user; refused", "client", client.Name,
			"user", login, "issued_to_client", s.Client, "issued_for_user", s.User)
		return reject(audit.ReasonStateMismatch, msgFailed)
	}
	u := &factors.User{Name: s.User, Login: s.Login, DN: s.DN, Groups: s.Groups, Mobile: s.Mobile, Voice: s.Voice}
	d := c.answerSession(ctx, client, s, u, answer)
	if d.code != radius.CodeAccessChallenge && s.Claimed != "" && !(d.code == radius.CodeAccessAccept && d.factor == s.Claimed) {
		c.releaseSend(ctx, client, u, s.Claimed, s.Station) // passed released it when it was the factor
	}
	d = about(d, u)
	if d.code == radius.CodeAccessAccept && s.Station != "" {
		d.known = &stationKey{user: s.User, epoch: s.Epoch, station: s.Station}
	}
	return d
}

func (c *Conversation) answerSession(ctx context.Context, client *Client, s session, u *factors.User, answer string) decision {
	pol := c.policies[s.Policy]
	if pol == nil {
		return reject(audit.ReasonPolicyMissing, msgFailed)
	}
	lk, d, ok := c.prologue(ctx, u, &s.Epoch)
	if !ok {
		return d
	}
	if _, d, locked := c.checkLock(ctx, lk); locked {
		return d
	}
	answer = strings.TrimSpace(answer)

	// A menu choice starts a sending method; it costs no attempt.
	if n, err := strconv.Atoi(answer); err == nil && len(answer) == 1 && n >= 1 && n <= len(s.Menu) {
		m := s.Menu[n-1]
		lead, ref, ok := c.start(ctx, u, m)
		if ok {
			s.Active, s.Ref = m, ref
		} else {
			s.Methods = without(s.Methods, m)
			if len(s.Methods) == 0 {
				return reject(audit.ReasonSendFailed, lead)
			}
		}
		return c.challenge(ctx, s, u, lead, audit.ReasonMethodStarted)
	}

	// Pressed Enter after the call: the approval this session started
	// decides, and no other.
	if s.Active != "" && c.isApprover(s.Active) && !allDigits(answer) {
		err := c.factors[s.Active].(factors.Approver).Take(ctx, u, s.Ref)
		switch {
		case err == nil:
			return c.passed(ctx, client, pol, u, s.Active, s.Station)
		case errors.Is(err, factors.ErrNotYet):
			return c.challenge(ctx, s, u, "The call has not been answered with # yet.", audit.ReasonChallengePending)
		case errors.Is(err, factors.ErrRefused):
			return reject(audit.ReasonRefused, "The sign-in was refused on the phone.")
		}
		return reject(audit.ReasonApprovalTimeout, msgFailed)
	}

	d = c.verify(ctx, client, pol, u, lk, s.Methods, s.Active, answer, s.Station)
	if d.code == radius.CodeAccessAccept || d.reason == audit.ReasonLockedCode || d.reason == audit.ReasonInternal || d.reason == audit.ReasonStateDown {
		return d
	}
	if s.Attempts-1 <= 0 {
		d.reason, d.message = audit.ReasonAttemptsExhausted, msgTooMany
		return d
	}
	s.Attempts--
	reason := audit.ReasonRetry
	if d.reason == audit.ReasonReplayedCode {
		// Keep a replay visible in the audit log: admins alert on it.
		reason = audit.ReasonReplayRetry
	}
	return c.challenge(ctx, s, u, "Wrong code.", reason)
}

func without(ms []factors.Method, m factors.Method) []factors.Method {
	out := make([]factors.Method, 0, len(ms))
	for _, x := range ms {
		if x != m {
			out = append(out, x)
		}
	}
	return out
}

func contains(ms []factors.Method, m factors.Method) bool {
	for _, x := range ms {
		if x == m {
			return true
		}
	}
	return false
}
