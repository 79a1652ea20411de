package radius

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"

	"github.com/mfabridge/mfabridge/factors"
)

// A login that sends something (a text message, a call) claims the send
// for duplicate_window, keyed on the user, the client, the
// Calling-Station-Id and the method, not on the RADIUS Identifier: a NAS
// that fails over sends the same login to another instance with a new
// Identifier, and the reply cache, which is per instance and keyed on
// the Identifier, does not see it. The claim is one SetNX in the shared
// state; its owner writes what it sent (the lead and the approval's ref)
// into it, and every duplicate answers with that instead of sending
// again. A send that failed gives the claim back, and so does the login
// that made it once it is decided (releaseSend): the claim stands for a
// login in progress, so the user's next login sends anew.

// sendClaim is the value of a claim: pending until its owner has sent.
type sendClaim struct {
	Pending bool   `json:"pending,omitempty"`
	Lead    string `json:"lead,omitempty"`
	Ref     string `json:"ref,omitempty"`
}

func sendKey(m factors.Method, client *Client, u *factors.User, station string) string {
	sum := sha256.Sum256([]byte(station))
	return "send:" + string(m) + ":" + client.Name + "\x00" + u.Name + "\x00" + hex.EncodeToString(sum[:16])
}

// sendPoll is how often a duplicate looks for its owner's result.
const sendPoll = 50 * time.Millisecond

// startOnce is start for a login: at most one send per login however many
// instances the login reaches within the window. A duplicate reports
// what the first sent (ok) without sending.
func (c *Conversation) startOnce(ctx context.Context, client *Client, u *factors.User, m factors.Method, station string) (lead, ref string, ok bool) {
	if c.sendWindow <= 0 {
		return c.start(ctx, u, m)
	}
	key := sendKey(m, client, u, station)
	pending, _ := json.Marshal(sendClaim{Pending: true})
	first, err := c.state.SetNX(ctx, key, pending, c.sendWindow)
	if err != nil {
		c.log.Error("cannot claim a send; not sending", "user", u.Name, "factor", string(m), "err", err)
		return "Nothing could be sent just now; try again in a minute or use another method.", "", false
	}
	if first {
		lead, ref, ok = c.start(ctx, u, m)
		if !ok {
			c.state.Delete(ctx, key)
			return lead, ref, ok
		}
		b, _ := json.Marshal(sendClaim{Lead: lead, Ref: ref})
		if err := c.state.Set(ctx, key, b, c.sendWindow); err != nil {
			c.log.Warn("cannot record a send for duplicates", "user", u.Name, "factor", string(m), "err", err)
		}
		return lead, ref, ok
	}
	// A duplicate: wait for the first to have sent, as long as a send
	// may take.
	ctx, cancel := context.WithTimeout(ctx, min(c.sendWindow, c.timeout))
	defer cancel()
	tick := time.NewTicker(sendPoll)
	defer tick.Stop()
	for {
		b, found, err := c.state.Get(ctx, key)
		var cl sendClaim
		switch {
		case err != nil:
			c.log.Error("cannot read a send claim; not sending", "user", u.Name, "factor", string(m), "err", err)
			return "Nothing could be sent just now; try again in a minute or use another method.", "", false
		case !found:
			// The first send failed and gave the claim back.
			return c.startOnce(ctx, client, u, m, station)
		case json.Unmarshal(b, &cl) == nil && !cl.Pending:
			c.metrics.Sends.WithLabelValues(string(m), "duplicate").Inc()
			c.log.Info("login repeated within the duplicate window; not sending again", "user", u.Name, "factor", string(m))
			return cl.Lead, cl.Ref, true
		}
		select {
		case <-ctx.Done():
			return "Nothing could be sent just now; try again in a minute or use another method.", "", false
		case <-tick.C:
		}
	}
}

// releaseSend ends the claim on m's send for this user, client and
// station: the login it stood for is decided.
func (c *Conversation) releaseSend(ctx context.Context, client *Client, u *factors.User, m factors.Method, station string) {
	if c.sendWindow <= 0 || !c.isStarter(m) {
		return
	}
	if err := c.state.Delete(ctx, sendKey(m, client, u, station)); err != nil {
		c.log.Warn("cannot release a send claim", "user", u.Name, "factor", string(m), "err", err)
	}
}
