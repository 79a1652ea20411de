package radius

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
	"time"

	"layeh.com/radius"

	"github.com/mfabridge/mfabridge/factors"
)

// session is what a challenge State stands for. It is kept in the
// ephemeral state under the State, for challenge_timeout, and taken (read
// and deleted at once) when the answer comes: a State works once.
type session struct {
	Client   string           `json:"client"`
	User     string           `json:"user"`
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
}

// stateLen is 128 bits of randomness (DESIGN §2 step 10).
const stateLen = 16

func sessionKey(state []byte) string { return "session:" + hex.EncodeToString(state) }

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
		lead, ref, ok = c.start(ctx, u, offered[0])
		if ok {
			s.Active, s.Ref = offered[0], ref
		} else {
			s.Methods = without(s.Methods, offered[0])
		}
	}
	if len(s.Methods) == 0 {
		return reject(ReasonSendFailed, lead)
	}
	return c.challenge(ctx, s, u, lead, ReasonChallenge)
}

func (c *Conversation) newSession(client *Client, pol *policy, u *factors.User, methods []factors.Method, station string) session {
	s := session{Client: client.Name, User: u.Name, DN: u.DN, Groups: u.Groups, Mobile: u.Mobile, Voice: u.Voice,
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
func (c *Conversation) challenge(ctx context.Context, s session, u *factors.User, lead, reason string) decision {
	st := make([]byte, stateLen)
	if _, err := io.ReadFull(c.rand, st); err != nil {
		c.log.Error("no randomness for a State", "err", err)
		return reject(ReasonInternal, msgFailed)
	}
	text, menu := c.prompt(u, s.Methods, s.Active, lead)
	s.Menu = menu
	b, err := json.Marshal(s)
	if err != nil {
		return reject(ReasonInternal, msgFailed)
	}
	if err := c.state.Set(ctx, sessionKey(st), b, c.timeout); err != nil {
		c.log.Error("cannot store a challenge session", "err", err)
		return reject(ReasonInternal, msgUnavailable)
	}
	return decision{code: radius.CodeAccessChallenge, reason: reason, message: text, state: st}
}

// answer handles the reply to a challenge: the State must be live, issued
// to this client for this user; then the answer is a menu choice, an
// approval ("pressed #"), or a code.
func (c *Conversation) answer(ctx context.Context, client *Client, user string, st []byte, answer string) decision {
	b, ok, err := c.state.Take(ctx, sessionKey(st))
	if err != nil {
		c.log.Error("state store unavailable", "err", err)
		return reject(ReasonInternal, msgUnavailable)
	}
	if !ok || len(st) != stateLen {
		return reject(ReasonUnknownState, msgFailed)
	}
	var s session
	if err := json.Unmarshal(b, &s); err != nil {
		return reject(ReasonInternal, msgFailed)
	}
	if s.Client != client.Name || s.User != user {
		c.log.Warn("State presented by another client or for another user; refused", "client", client.Name,
			"user", user, "issued_to_client", s.Client, "issued_for_user", s.User)
		return reject(ReasonStateMismatch, msgFailed)
	}
	pol := c.policies[s.Policy]
	if pol == nil {
		return reject(ReasonPolicyMissing, msgFailed)
	}
	enr, err := c.enrolment(ctx, user)
	if err != nil {
		c.log.Error("enrolment store unavailable", "user", user, "err", err)
		return reject(ReasonStoreDown, msgUnavailable)
	}
	lk := c.lockKeys(user, s.Epoch)
	if d, locked := c.checkLock(ctx, lk); locked {
		return d
	}
	u := &factors.User{Name: user, DN: s.DN, Groups: s.Groups, Mobile: s.Mobile, Voice: s.Voice, Enrolment: enr}
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
				return reject(ReasonSendFailed, lead)
			}
		}
		return c.challenge(ctx, s, u, lead, ReasonMethodStarted)
	}

	// Pressed Enter after the call: the approval this session started
	// decides, and no other.
	if s.Active != "" && c.isApprover(s.Active) && !allDigits(answer) {
		err := c.factors[s.Active].(factors.Approver).Take(ctx, u, s.Ref)
		switch {
		case err == nil:
			return c.passed(ctx, client, pol, u, s.Active, s.Station)
		case errors.Is(err, factors.ErrNotYet):
			return c.challenge(ctx, s, u, "The call has not been answered with # yet.", ReasonChallengePending)
		case errors.Is(err, factors.ErrRefused):
			return reject(ReasonRefused, "The sign-in was refused on the phone.")
		}
		return reject(ReasonApprovalTimeout, msgFailed)
	}

	d := c.verify(ctx, client, pol, u, lk, s.Methods, s.Active, answer, s.Station)
	if d.code == radius.CodeAccessAccept || d.reason == ReasonLockedCode || d.reason == ReasonInternal {
		return d
	}
	if s.Attempts-1 <= 0 {
		d.reason, d.message = ReasonAttemptsExhausted, msgTooMany
		return d
	}
	s.Attempts--
	reason := ReasonRetry
	if d.reason == ReasonReplayedCode {
		// Keep a replay visible in the audit log: admins alert on it.
		reason = ReasonReplayRetry
	}
	return c.challenge(ctx, s, u, "Wrong code.", reason)
}

// verify checks a code against the methods that take one: the stored
// code methods, and the sending method in use. A pass is recorded
// (remember, last used); a miss counts towards the code lockout.
func (c *Conversation) verify(ctx context.Context, client *Client, pol *policy, u *factors.User, lk lockKeys,
	methods []factors.Method, active factors.Method, code, station string) decision {
	start := c.now()
	defer func() { c.metrics.Duration.WithLabelValues("factor").Observe(c.now().Sub(start).Seconds()) }()
	replayed := false
	for _, m := range methods {
		f, ok := c.factors[m]
		if !ok || c.isApprover(m) {
			continue // an approval is no code; see answer
		}
		// A sending method has a code only once sent; in append mode the
		// code may come from an earlier login, so try it anyway.
		if c.isStarter(m) && active != "" && m != active {
			continue
		}
		err := f.Check(ctx, u, code)
		switch {
		case err == nil:
			return c.passed(ctx, client, pol, u, m, station)
		case errors.Is(err, factors.ErrReplayed):
			replayed = true
		case errors.Is(err, factors.ErrWrongCode), errors.Is(err, factors.ErrNotEnrolled), errors.Is(err, factors.ErrExpired),
			errors.Is(err, factors.ErrNotYet), errors.Is(err, factors.ErrRefused):
		default:
			c.log.Error("second factor failed", "user", u.Name, "factor", string(m), "err", err)
			return reject(ReasonInternal, msgUnavailable)
		}
	}
	if locked := c.countFailure(ctx, lk, true); locked {
		return reject(ReasonLockedCode, msgFailed)
	}
	if replayed {
		return reject(ReasonReplayedCode, msgFailed)
	}
	return reject(ReasonWrongCode, msgFailed)
}

// passed accepts a full MFA success: last use recorded, the login
// remembered when the policy says so.
func (c *Conversation) passed(ctx context.Context, client *Client, pol *policy, u *factors.User, m factors.Method, station string) decision {
	if c.enrolments != nil && !c.isStarter(m) {
		if err := c.enrolments.Used(ctx, u.Name, m); err != nil {
			c.log.Warn("cannot record last use", "user", u.Name, "err", err)
		}
	}
	if pol.Remember > 0 && station != "" {
		if err := c.state.Set(ctx, rememberKey(client, u.Name, station), []byte{1}, pol.Remember); err != nil {
			c.log.Warn("cannot remember the login", "err", err)
		}
	}
	d := accept(ReasonMFA, pol.replyAttributes(u))
	d.factor = m
	return d
}

// appendStart handles "password,sms" and "password,call" in append mode:
// the password was right, so a code is sent and the login refused with a
// message saying so; the next login carries password and code. A call in
// approve mode is awaited instead.
func (c *Conversation) appendStart(ctx context.Context, client *Client, pol *policy, u *factors.User, lk lockKeys,
	offered []factors.Method, m factors.Method, station string) decision {
	if !contains(offered, m) || !c.isStarter(m) {
		return reject(ReasonMethodUnavailable, "That method is not available to you.")
	}
	if c.isApprover(m) {
		if cl, ok := c.factors[m].(factors.CodeLength); !ok || cl.CodeLength(u) == 0 {
			return c.await(ctx, client, pol, u, m, station)
		}
	}
	lead, _, ok := c.start(ctx, u, m)
	if !ok {
		return reject(ReasonSendFailed, lead)
	}
	d := reject(ReasonCodeSent, lead+" Log in again with your password followed by the code.")
	d.factor = m
	return d
}

// appendHint tells a user who typed only the password what to add.
func (c *Conversation) appendHint(u *factors.User, offered []factors.Method) string {
	var typed []factors.Method
	var asks []string
	for _, m := range offered {
		if !c.isStarter(m) {
			typed = append(typed, m)
			continue
		}
		switch m {
		case factors.SMS:
			asks = append(asks, "add ,sms to get a text message")
		case factors.Voice:
			asks = append(asks, "add ,call to get a phone call")
		}
	}
	msg := "Type your password followed by "
	if len(typed) > 0 {
		msg += c.labelsOf(u, typed)
	} else {
		msg += "a code"
	}
	if len(asks) > 0 {
		msg += ", or " + strings.Join(asks, ", or ")
	}
	return msg + "."
}

// await starts an approval and holds the request until it is given,
// refused or times out (auto mode). Retransmissions meanwhile are
// absorbed by the duplicate cache; nothing is sent twice.
func (c *Conversation) await(ctx context.Context, client *Client, pol *policy, u *factors.User, m factors.Method, station string) decision {
	unhold, ok := holdRequest(ctx)
	if !ok {
		c.log.Warn("too many requests held for a phone approval; refusing", "user", u.Name)
		return reject(ReasonInternal, msgUnavailable)
	}
	defer unhold()
	ctx, cancel := context.WithTimeout(ctx, c.approveTimeout)
	defer cancel()
	lead, ref, ok := c.start(ctx, u, m)
	if !ok {
		return reject(ReasonSendFailed, lead)
	}
	f := c.factors[m].(factors.Approver)
	tick := time.NewTicker(c.approvePoll)
	defer tick.Stop()
	for {
		a, err := f.Approval(ctx, u, ref)
		switch {
		case err != nil && !errors.Is(err, factors.ErrExpired):
			c.log.Error("approval unavailable", "user", u.Name, "err", err)
			return reject(ReasonInternal, msgUnavailable)
		case a == factors.Approved:
			if err := f.Take(ctx, u, ref); err != nil {
				return reject(ReasonReplayedCode, msgFailed)
			}
			return c.passed(ctx, client, pol, u, m, station)
		case a == factors.Refused:
			return reject(ReasonRefused, "The sign-in was refused on the phone.")
		}
		select {
		case <-ctx.Done():
			return reject(ReasonApprovalTimeout, "The call was not answered with # in time.")
		case <-tick.C:
		}
	}
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

func rememberKey(client *Client, user, station string) string {
	return "remember:" + client.Name + "\x00" + user + "\x00" + station
}

func (c *Conversation) isRemembered(ctx context.Context, client *Client, user, station string) bool {
	_, ok, err := c.state.Get(ctx, rememberKey(client, user, station))
	return err == nil && ok
}

// lockKeys are the state keys of one user's lockout in one epoch; an
// admin's reset moves the user to a new epoch, so old counters no longer
// count. The epoch comes first: it is digits, so no user name can make
// two keys collide.
type lockKeys struct {
	lock, passwords, codes string
}

func (c *Conversation) lockKeys(user string, epoch int64) lockKeys {
	e := strconv.FormatInt(epoch, 10) + ":" + user
	return lockKeys{lock: "lock:" + e, passwords: "fail:pw:" + e, codes: "fail:code:" + e}
}

// checkLock reports a lockout in force: the reply is the same as for a
// wrong password, and no LDAP bind is spent on it.
func (c *Conversation) checkLock(ctx context.Context, lk lockKeys) (decision, bool) {
	v, locked, err := c.state.Get(ctx, lk.lock)
	if err != nil {
		c.log.Error("state store unavailable", "err", err)
		return reject(ReasonInternal, msgUnavailable), true
	}
	if !locked {
		return decision{}, false
	}
	if string(v) == "code" {
		return reject(ReasonLockedCode, msgFailed), true
	}
	return reject(ReasonLockedPassword, msgFailed), true
}

// countFailure counts a wrong password or code in the window and locks
// the user for lockout.duration when the limit is reached; it reports
// whether it locked. Retransmissions never get here (the duplicate cache
// answers them), so a NAS resending one request counts once.
func (c *Conversation) countFailure(ctx context.Context, lk lockKeys, code bool) bool {
	key, max, what := lk.passwords, c.lockout.MaxFailures, "password"
	if code {
		key, max, what = lk.codes, c.lockout.MaxCodeFailures, "code"
	}
	n, err := c.state.Incr(ctx, key, c.lockout.Window)
	if err != nil {
		c.log.Error("cannot count a failure", "err", err)
		return false
	}
	if n < int64(max) {
		return false
	}
	if err := c.state.Set(ctx, lk.lock, []byte(what), c.lockout.Duration); err != nil {
		c.log.Error("cannot lock out", "err", err)
		return false
	}
	c.log.Warn("user locked out", "limit", what, "failures", n, "for", c.lockout.Duration.String(), "key", lk.lock)
	return true
}
