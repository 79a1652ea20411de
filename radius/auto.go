package radius

import (
	"context"
	"errors"
	"time"

	"github.com/mfabridge/mfabridge/factors"
	"github.com/mfabridge/mfabridge/internal/audit"
)

// await starts an approval and holds the request until it is given,
// refused or times out (auto mode). Retransmissions meanwhile are
// absorbed by the duplicate cache; nothing is sent twice.
func (c *Conversation) await(ctx context.Context, client *Client, pol *policy, u *factors.User, m factors.Method, station string) decision {
	unhold, ok := holdRequest(ctx)
	if !ok {
		c.log.Warn("too many requests held for a phone approval; refusing", "user", u.Name)
		return reject(audit.ReasonInternal, msgUnavailable)
	}
	defer unhold()
	ctx, cancel := context.WithTimeout(ctx, c.approveTimeout)
	defer cancel()
	lead, ref, ok := c.startOnce(ctx, client, u, m, station)
	if !ok {
		return reject(audit.ReasonSendFailed, lead)
	}
	defer c.releaseSend(context.WithoutCancel(ctx), client, u, m, station) // decided, whichever way
	f := c.factors[m].(factors.Approver)
	tick := time.NewTicker(c.approvePoll)
	defer tick.Stop()
	for {
		a, err := f.Approval(ctx, u, ref)
		switch {
		case err != nil && !errors.Is(err, factors.ErrExpired):
			c.log.Error("approval unavailable", "user", u.Name, "err", err)
			return reject(audit.ReasonInternal, msgUnavailable)
		case a == factors.Approved:
			if err := f.Take(ctx, u, ref); err != nil {
				return reject(audit.ReasonReplayedCode, msgFailed)
			}
			return c.passed(ctx, client, pol, u, m, station)
		case a == factors.Refused:
			return reject(audit.ReasonRefused, "The sign-in was refused on the phone.")
		}
		select {
		case <-ctx.Done():
			return reject(audit.ReasonApprovalTimeout, "The call was not answered with # in time.")
		case <-tick.C:
		}
	}
}
