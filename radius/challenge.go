package radius

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"strconv"

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
	Policy   string           `json:"policy"`
	Methods  []factors.Method `json:"methods"`
	Attempts int              `json:"attempts"` // wrong answers still allowed
	Station  string           `json:"station,omitempty"`
	Epoch    int64            `json:"epoch"`
}

// stateLen is 128 bits of randomness (DESIGN §2 step 10).
const stateLen = 16

func sessionKey(state []byte) string { return "session:" + hex.EncodeToString(state) }

func (c *Conversation) promptFor(ms []factors.Method) string {
	return "Enter " + c.labelsOf(ms) + "."
}

// challenge stores a new session and answers Access-Challenge with its
// State and prompt.
func (c *Conversation) challenge(ctx context.Context, client *Client, pol *policy, u *factors.User, methods []factors.Method,
	attempts int, station, prompt string) decision {
	st := make([]byte, stateLen)
	if _, err := io.ReadFull(c.rand, st); err != nil {
		c.log.Error("no randomness for a State", "err", err)
		return reject(ReasonInternal, msgFailed)
	}
	s := session{Client: client.Name, User: u.Name, DN: u.DN, Groups: u.Groups, Policy: pol.name, Methods: methods,
		Attempts: attempts, Station: station}
	if u.Enrolment != nil {
		s.Epoch = u.Enrolment.LockoutEpoch
	}
	b, err := json.Marshal(s)
	if err != nil {
		return reject(ReasonInternal, msgFailed)
	}
	if err := c.state.Set(ctx, sessionKey(st), b, c.timeout); err != nil {
		c.log.Error("cannot store a challenge session", "err", err)
		return reject(ReasonInternal, msgUnavailable)
	}
	reason := ReasonChallenge
	if attempts < pol.Attempts {
		reason = ReasonRetry
	}
	return decision{code: radius.CodeAccessChallenge, reason: reason, message: prompt, state: st, eapID: -1}
}

// answer handles the reply to a challenge: the State must be live, issued
// to this client for this user; then the code is checked.
func (c *Conversation) answer(ctx context.Context, client *Client, user string, st []byte, code string) decision {
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
	u := &factors.User{Name: user, DN: s.DN, Groups: s.Groups, Enrolment: enr}
	d := c.verify(ctx, client, pol, u, lk, s.Methods, code, s.Station)
	if d.code == radius.CodeAccessAccept || d.reason == ReasonLockedCode || d.reason == ReasonInternal {
		return d
	}
	if s.Attempts-1 <= 0 {
		d.reason, d.message = ReasonAttemptsExhausted, msgTooMany
		return d
	}
	retry := c.challenge(ctx, client, pol, u, s.Methods, s.Attempts-1, s.Station, "Wrong code. "+c.promptFor(s.Methods))
	if d.reason == ReasonReplayedCode && retry.code == radius.CodeAccessChallenge {
		// Keep a replay visible in the audit log: admins alert on it.
		retry.reason = ReasonReplayRetry
	}
	return retry
}

// verify checks a code against the methods, the default first. A pass is
// recorded (remember, last used); a miss counts towards the code lockout.
func (c *Conversation) verify(ctx context.Context, client *Client, pol *policy, u *factors.User, lk lockKeys,
	methods []factors.Method, code, station string) decision {
	start := c.now()
	defer func() { c.metrics.Duration.WithLabelValues("factor").Observe(c.now().Sub(start).Seconds()) }()
	replayed := false
	for _, m := range methods {
		f, ok := c.factors[m]
		if !ok {
			continue
		}
		err := f.Check(ctx, u, code)
		switch {
		case err == nil:
			if c.enrolments != nil {
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
		case errors.Is(err, factors.ErrReplayed):
			replayed = true
		case errors.Is(err, factors.ErrWrongCode), errors.Is(err, factors.ErrNotEnrolled):
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
