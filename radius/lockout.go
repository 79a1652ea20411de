package radius

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"time"

	"github.com/mfabridge/mfabridge/factors"
	"github.com/mfabridge/mfabridge/internal/audit"
)

// The lockout (DESIGN §2 step 7) keeps two counters per user and lockout
// epoch: wrong passwords, so that the bridge stops before the
// directory's own lockout does, and wrong codes, so that a stolen
// password gives only a few guesses at the code. Both are keyed on the
// user's canonical name: every spelling of a name counts on one counter.
//
// Every guess is counted before it is made (begin) and given back when it
// was no guess (a success, a directory that did not answer). Concurrent
// requests therefore get no more guesses than the limit between them,
// and a counter that cannot be kept refuses the guess: the lockout fails
// closed, never open.

// lockKeys are the state keys of one user's lockout in one epoch; an
// admin's reset moves the user to a new epoch, so old counters no longer
// count. The epoch comes first: it is digits, so no user name can make
// two keys collide.
type lockKeys struct {
	user                   string
	epoch                  int64
	lock, passwords, codes string
}

func (c *Conversation) lockKeys(user string, epoch int64) lockKeys {
	e := strconv.FormatInt(epoch, 10) + ":" + user
	return lockKeys{user: user, epoch: epoch, lock: "lock:" + e, passwords: "fail:pw:" + e, codes: "fail:code:" + e}
}

// budget is the counter a guess is counted on and its limit.
type budget struct {
	counter string
	max     int
	lock    string       // set when the limit is reached; "" for none
	what    string       // the lock's value: "password" or "code"
	reason  audit.Reason // the reason of a refusal for want of budget
}

func (lk lockKeys) passwordBudget(max int) budget {
	return budget{counter: lk.passwords, max: max, lock: lk.lock, what: "password", reason: audit.ReasonLockedPassword}
}

func (lk lockKeys) codeBudget(max int) budget {
	return budget{counter: lk.codes, max: max, lock: lk.lock, what: "code", reason: audit.ReasonLockedCode}
}

// checkLock reports a lockout in force: the reply is the same as for a
// wrong password, and no LDAP bind is spent on it. what is the limit
// that locked ("password" or "code").
func (c *Conversation) checkLock(ctx context.Context, lk lockKeys) (what string, d decision, locked bool) {
	v, locked, err := c.state.Get(ctx, lk.lock)
	if err != nil {
		c.log.Error("state store unavailable", "err", err)
		return "", reject(audit.ReasonStateDown, msgUnavailable), true
	}
	if !locked {
		return "", decision{}, false
	}
	if string(v) == "code" {
		return "code", reject(audit.ReasonLockedCode, msgFailed), true
	}
	return "password", reject(audit.ReasonLockedPassword, msgFailed), true
}

// passwordBudget decides whether a login may guess a password, and on
// which counter. A user under a password lockout is refused, except from
// a station they have logged in from before (known_station_ttl): there
// the request is held for a delay that doubles with each failure from
// that station (1s, 2s, 4s), then tried on the station's own counter,
// and refused after stationAttempts failures. Whoever guessed the
// password wrong elsewhere therefore cannot lock the user out of their
// own device; a guesser at a known station gets stationAttempts slow
// guesses more.
func (c *Conversation) passwordBudget(ctx context.Context, lk lockKeys, u *factors.User, station string) (budget, decision, bool) {
	what, d, locked := c.checkLock(ctx, lk)
	if !locked {
		return lk.passwordBudget(c.lockout.MaxFailures), decision{}, true
	}
	if what != "password" || d.reason == audit.ReasonStateDown || station == "" || !c.isKnownStation(ctx, stationKey{u.Name, lk.epoch, station}) {
		return budget{}, d, false
	}
	b := budget{counter: "fail:station:" + strconv.FormatInt(lk.epoch, 10) + ":" + u.Name + "\x00" + station,
		max: stationAttempts, reason: audit.ReasonLockedPassword}
	n, err := c.state.Count(ctx, b.counter)
	if err != nil {
		c.log.Error("state store unavailable", "err", err)
		return budget{}, reject(audit.ReasonStateDown, msgUnavailable), false
	}
	if n >= stationAttempts {
		return budget{}, d, false
	}
	c.metrics.Throttled.Inc()
	unhold, ok := holdRequest(ctx)
	if !ok {
		return budget{}, reject(audit.ReasonInternal, msgUnavailable), false
	}
	defer unhold()
	t := time.NewTimer(time.Second << n)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return budget{}, reject(audit.ReasonInternal, msgUnavailable), false
	case <-t.C:
	}
	return b, decision{}, true
}

// stationAttempts are the guesses a known station gets during a lockout.
const stationAttempts = 3

// guard is one guess, counted before it is made.
type guard struct {
	c *Conversation
	b budget
	n int64
}

// begin counts a guess on b. It refuses when the limit is reached, and
// when the counter cannot be kept (the lockout fails closed).
func (c *Conversation) begin(ctx context.Context, b budget) (*guard, decision, bool) {
	n, err := c.state.Incr(ctx, b.counter, c.lockout.Window)
	if err != nil {
		c.log.Error("cannot count a guess; refusing it", "limit", b.what, "err", err)
		return nil, reject(audit.ReasonStateDown, msgUnavailable), false
	}
	if n > int64(b.max) {
		c.state.Decr(ctx, b.counter) // not made: it does not count
		return nil, reject(b.reason, msgFailed), false
	}
	return &guard{c: c, b: b, n: n}, decision{}, true
}

// passed gives the guess back: it was right.
func (g *guard) passed(ctx context.Context) { g.c.state.Decr(ctx, g.b.counter) }

// undo gives the guess back: it was none.
func (g *guard) undo(ctx context.Context) { g.c.state.Decr(ctx, g.b.counter) }

// failed keeps the guess counted; on the last one allowed it locks the
// user for lockout.duration and reports true.
func (g *guard) failed(ctx context.Context) bool {
	if g.n < int64(g.b.max) {
		return false
	}
	if g.b.lock == "" {
		return true
	}
	c := g.c
	if err := c.state.Set(ctx, g.b.lock, []byte(g.b.what), c.lockout.Duration); err != nil {
		// The counter stays at its limit for the rest of the window, so
		// the user stays refused meanwhile.
		c.log.Error("cannot store a lockout", "err", err)
	}
	c.metrics.Lockouts.WithLabelValues(g.b.what).Inc()
	c.log.Warn("user locked out", "limit", g.b.what, "failures", g.n, "for", c.lockout.Duration.String(), "key", g.b.lock)
	return true
}

// stationKey names a Calling-Station-Id a user logged in from, in a
// lockout epoch: a reset forgets them.
type stationKey struct {
	user    string
	epoch   int64
	station string
}

func (k stationKey) key() string {
	// Hashed: a station is any text a NAS sends, and the state store
	// needs no more than to recognise it.
	sum := sha256.Sum256([]byte(k.station))
	return "station:" + strconv.FormatInt(k.epoch, 10) + ":" + k.user + "\x00" + hex.EncodeToString(sum[:16])
}

// rememberStation records a station a user was just accepted from.
func (c *Conversation) rememberStation(ctx context.Context, k stationKey) {
	if c.lockout.KnownStationTTL <= 0 {
		return
	}
	if err := c.state.Set(ctx, k.key(), []byte{1}, c.lockout.KnownStationTTL); err != nil {
		c.log.Warn("cannot record a known station", "err", err)
	}
}

func (c *Conversation) isKnownStation(ctx context.Context, k stationKey) bool {
	if c.lockout.KnownStationTTL <= 0 {
		return false
	}
	_, ok, err := c.state.Get(ctx, k.key())
	return err == nil && ok
}

// rememberKey names a remembered login: the client, the user, the
// lockout epoch (so that user reset, after a lost phone, ends every
// remembered login) and the station.
func rememberKey(client *Client, u *factors.User, station string) string {
	epoch := int64(0)
	if u.Enrolment != nil {
		epoch = u.Enrolment.LockoutEpoch
	}
	return "remember:" + strconv.FormatInt(epoch, 10) + ":" + client.Name + "\x00" + u.Name + "\x00" + station
}

func (c *Conversation) isRemembered(ctx context.Context, client *Client, u *factors.User, station string) bool {
	_, ok, err := c.state.Get(ctx, rememberKey(client, u, station))
	return err == nil && ok
}
