package radius

import (
	"context"
	"errors"

	"github.com/mfabridge/mfabridge/factors"
	"github.com/mfabridge/mfabridge/internal/audit"
)

// verify checks a code against the methods that take one: the stored
// code methods, and the sending method in use. The guess is counted
// before the code is looked at (see begin); a pass is recorded
// (remember, last used).
func (c *Conversation) verify(ctx context.Context, client *Client, pol *policy, u *factors.User, lk lockKeys,
	methods []factors.Method, active factors.Method, code, station string) decision {
	start := c.now()
	defer func() { c.metrics.Duration.WithLabelValues("factor").Observe(c.now().Sub(start).Seconds()) }()
	g, d, ok := c.begin(ctx, lk.codeBudget(c.lockout.MaxCodeFailures))
	if !ok {
		return d
	}
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
			g.passed(ctx)
			return c.passed(ctx, client, pol, u, m, station)
		case errors.Is(err, factors.ErrReplayed):
			replayed = true
		case errors.Is(err, factors.ErrWrongCode), errors.Is(err, factors.ErrNotEnrolled), errors.Is(err, factors.ErrExpired),
			errors.Is(err, factors.ErrNotYet), errors.Is(err, factors.ErrRefused):
		default:
			g.undo(ctx)
			c.log.Error("second factor failed", "user", u.Name, "factor", string(m), "err", err)
			return reject(audit.ReasonInternal, msgUnavailable)
		}
	}
	if g.failed(ctx) {
		return reject(audit.ReasonLockedCode, msgFailed)
	}
	if replayed {
		return reject(audit.ReasonReplayedCode, msgFailed)
	}
	return reject(audit.ReasonWrongCode, msgFailed)
}

// passed accepts a full MFA success: last use recorded, the login
// remembered when the policy says so.
func (c *Conversation) passed(ctx context.Context, client *Client, pol *policy, u *factors.User, m factors.Method, station string) decision {
	if c.enrolments != nil && !c.isStarter(m) {
		if err := c.enrolments.Used(ctx, u.Name, m); err != nil {
			c.log.Warn("cannot record last use", "user", u.Name, "err", err)
		}
	}
	c.releaseSend(ctx, client, u, m, station)
	if pol.Remember > 0 && station != "" {
		if err := c.state.Set(ctx, rememberKey(client, u, station), []byte{1}, pol.Remember); err != nil {
			c.log.Warn("cannot remember the login", "err", err)
		}
	}
	d := accept(audit.ReasonMFA, pol.replyAttributes(u))
	d.factor = m
	return d
}
