package radius

import (
	"context"
	"net/netip"

	"layeh.com/radius"

	"github.com/mfabridge/mfabridge/factors"
	"github.com/mfabridge/mfabridge/internal/audit"
	"github.com/mfabridge/mfabridge/internal/username"
)

// WebClient is the client name the portal's sign-ins carry in audit
// records, metrics and challenge sessions. No configured client can have
// it as an address, and a State issued to it is refused to every RADIUS
// client (and the other way round).
const WebClient = "portal"

// WebStep is what one step of a sign-in in the portal came to.
type WebStep struct {
	Outcome string // audit.Accept, audit.Challenge or audit.Reject
	Reason  audit.Reason
	// User is the canonical name of the user the directory found; ""
	// when it found none.
	User    string
	Message string // what to tell the user
	State   []byte // the challenge's State, to send back with the answer
	Factor  factors.Method
}

// PasswordRight reports whether the step proved the password, whatever
// came of the second factor: the user holds no method the policy offers
// (or needs none). The portal then offers a first enrolment.
func (s WebStep) PasswordRight() bool {
	switch s.Reason {
	case audit.ReasonNotEnrolled, audit.ReasonOptionalNoMethods, audit.ReasonUnenrolledAllowed,
		audit.ReasonMFAOffPolicy, audit.ReasonBypassGroup:
		return true
	}
	return false
}

// Web runs one step of a sign-in to the portal under the named policy
// (portal.policy, whose mode is challenge): the password (state nil) or
// the answer to a challenge. It is a RADIUS login in all but transport:
// the same directory lookup, lockout counters, second factors and
// prompts, and one audit record, with the portal as the client.
func (c *Conversation) Web(ctx context.Context, policyName string, from netip.Addr, login, secret string, state []byte) WebStep {
	start := c.now()
	pol := c.policies[policyName]
	client := &Client{Name: WebClient, Policy: policyName}
	var d decision
	name, err := username.Normalise([]byte(login), c.username)
	switch {
	case pol == nil:
		d = reject(audit.ReasonPolicyMissing, msgFailed)
	case err != nil:
		d = reject(audit.ReasonBadUsername, msgFailed)
	case state != nil:
		d = c.answer(ctx, client, name, state, secret)
	case secret == "":
		d = reject(audit.ReasonEmptyPassword, msgFailed)
	default:
		d = c.login(ctx, client, pol, name, secret, "")
	}
	if d.user == "" {
		d.user = name
	}
	outcome := audit.Reject
	switch d.code {
	case radius.CodeAccessAccept:
		outcome = audit.Accept
	case radius.CodeAccessChallenge:
		outcome = audit.Challenge
	}
	c.metrics.Decisions.WithLabelValues(outcome, string(d.reason)).Inc()
	c.history(d, WebClient, "", outcome)
	c.audit.Write(audit.Record{
		Time:          c.now().UTC(),
		Client:        WebClient,
		ClientAddress: from.String(),
		User:          d.user,
		Login:         loginIfOther(name, d.user),
		Outcome:       outcome,
		Reason:        d.reason,
		Policy:        policyName,
		Factor:        string(d.factor),
		LatencyMS:     float64(c.now().Sub(start).Microseconds()) / 1000,
	})
	step := WebStep{Outcome: outcome, Reason: d.reason, Message: d.message, State: d.state, Factor: d.factor}
	if outcome != audit.Reject || step.PasswordRight() {
		step.User = d.user
	}
	return step
}

func loginIfOther(login, user string) string {
	if login == user {
		return ""
	}
	return login
}
