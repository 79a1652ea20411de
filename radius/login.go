package radius

import (
	"context"
	"errors"
	"strings"

	"layeh.com/radius"
	"layeh.com/radius/rfc2865"

	"github.com/mfabridge/mfabridge/config"
	"github.com/mfabridge/mfabridge/factors"
	"github.com/mfabridge/mfabridge/internal/audit"
)

// decideUser handles a request whose User-Name is usable: a first login
// (no State) or the answer to a challenge (State).
func (c *Conversation) decideUser(ctx context.Context, p *radius.Packet, client *Client, pol *policy, login string) decision {
	pws := attributesOf(p, rfc2865.UserPassword_Type)
	if len(pws) != 1 {
		return reject(audit.ReasonBadRequest, msgFailed)
	}
	pw, err := decodePassword(pws[0], p.Secret, p.Authenticator)
	if err != nil {
		return reject(audit.ReasonBadRequest, msgFailed)
	}
	if st := rfc2865.State_Get(p); st != nil {
		// An empty answer is how a user says "I pressed # on the phone".
		return c.answer(ctx, client, login, st, string(pw))
	}
	if len(pw) == 0 {
		// An empty simple bind is an anonymous bind, which many directories
		// accept (RFC 4513 §5.1.2): never let one reach LDAP.
		return reject(audit.ReasonEmptyPassword, msgFailed)
	}
	return c.login(ctx, client, pol, login, string(pw), callingStation(p))
}

// candidate is one way to read what the user typed: a password, and in
// append mode the code after it.
type candidate struct {
	password, code string
}

// login is a request without State (DESIGN §2 steps 7–11): the user is
// found first, so that everything after is keyed on the entry's one
// name whatever spelling was typed; then the lockout, the password (and
// in append mode the code), the policy and the second factor.
func (c *Conversation) login(ctx context.Context, client *Client, pol *policy, login, typed, station string) decision {
	u, err := c.dir.Find(ctx, login)
	switch {
	case errors.Is(err, factors.ErrNoSuchUser):
		// Nobody holds the name: no per-user state is kept for it (a
		// flood of made-up names would fill the store), only a count for
		// the client. The bind it would have cost is spent anyway.
		c.dir.Decoy(ctx, typed)
		c.metrics.UnknownUsers.WithLabelValues(client.Name).Inc()
		return reject(audit.ReasonBadCredentials, msgFailed)
	case err != nil:
		return c.primaryFailure(login, client, err)
	}
	d := c.loginUser(ctx, client, pol, u, typed, station)
	d = about(d, u)
	if d.code == radius.CodeAccessAccept && station != "" && u.Enrolment != nil {
		d.known = &stationKey{user: u.Name, epoch: u.Enrolment.LockoutEpoch, station: station}
	}
	return d
}

func (c *Conversation) loginUser(ctx context.Context, client *Client, pol *policy, u *factors.User, typed, station string) decision {
	lk, d, ok := c.prologue(ctx, u, nil)
	if !ok {
		return d
	}
	enr := u.Enrolment
	budget, d, ok := c.passwordBudget(ctx, lk, u, station)
	if !ok {
		return d
	}
	remembered := pol.Remember > 0 && station != "" && c.isRemembered(ctx, client, u, station)

	// Append mode: "password,sms" or "password,call" asks for a code.
	var asked factors.Method
	cands := c.candidates(pol, u, typed, remembered)
	if pol.Mode == config.ModeAppend {
		if pw, m, ok := askedMethod(typed); ok {
			asked, cands = m, []candidate{{password: pw}}
		}
	}

	// Every reading costs a bind, and every bind is counted before it is
	// made: concurrent requests cannot get more guesses than the limit,
	// and a request with several readings counts each one that fails.
	var found *factors.User
	var used candidate
	var err error
	for _, cand := range cands {
		g, d, ok := c.begin(ctx, budget)
		if !ok {
			return d
		}
		start := c.now()
		found, err = c.dir.Bind(ctx, u, cand.password)
		c.metrics.Duration.WithLabelValues("ldap").Observe(c.now().Sub(start).Seconds())
		if err == nil {
			g.passed(ctx)
			used = cand
			break
		}
		if !errors.Is(err, factors.ErrBadCredentials) {
			// Not a guess: the directory did not answer, or refused an
			// account for a reason it gives only for the right password.
			g.undo(ctx)
			break
		}
		if g.failed(ctx) {
			break // the limit is reached: no more readings
		}
	}
	if err != nil {
		return c.primaryFailure(u.Name, client, err)
	}
	found.Enrolment = enr

	if d, done := c.applyPolicy(pol, found); done {
		return d
	}
	if remembered && used.code == "" && asked == "" {
		return accept(audit.ReasonRemembered, pol.replyAttributes(found))
	}
	return c.secondFactor(ctx, client, pol, found, lk, used.code, asked, station)
}

// secondFactor asks for, or checks, the second factor of a user whose
// password was right (DESIGN §2 step 10), by the policy's mode: code is
// what append mode read after the password, asked the method
// "password,sms" or "password,call" asked for.
func (c *Conversation) secondFactor(ctx context.Context, client *Client, pol *policy, found *factors.User, lk lockKeys,
	code string, asked factors.Method, station string) decision {
	offered := c.offered(pol, found)
	if len(offered) == 0 {
		switch {
		case pol.MFA == config.MFAOptional:
			return accept(audit.ReasonOptionalNoMethods, pol.replyAttributes(found))
		case !c.anyFactor(pol):
			return reject(audit.ReasonMFAUnavailable, msgNoFactor)
		case pol.Unenrolled == config.UnenrolledAllow:
			return accept(audit.ReasonUnenrolledAllowed, pol.replyAttributes(found))
		}
		return reject(audit.ReasonNotEnrolled, msgNotEnrolled)
	}

	switch pol.Mode {
	case config.ModeAppend:
		switch {
		case asked != "":
			return c.appendStart(ctx, client, pol, found, lk, offered, asked, station)
		case code == "":
			return reject(audit.ReasonCodeMissing, c.appendHint(found, offered))
		}
		return c.verify(ctx, client, pol, found, lk, offered, "", code, station)
	case config.ModeChallenge:
		return c.firstChallenge(ctx, client, pol, found, offered, station)
	case config.ModeAuto:
		for _, m := range offered {
			if _, ok := c.factors[m].(factors.Approver); ok {
				return c.await(ctx, client, pol, found, m, station)
			}
		}
		return reject(audit.ReasonNotEnrolled, msgNotEnrolled)
	}
	return reject(audit.ReasonMFAUnavailable, msgNoFactor)
}

// offered lists the methods the policy offers that the bridge has and the
// user holds, the user's default first, then in the policy's order. With
// phone_methods: only_without_app, a number from the directory is no
// method for a user who holds a code method of their own.
func (c *Conversation) offered(pol *policy, u *factors.User) []factors.Method {
	ownCode := false
	for _, m := range []factors.Method{factors.TOTP, factors.HOTP} {
		_, held := u.Enrolment.Credential(m)
		ownCode = ownCode || held
	}
	var out []factors.Method
	for _, name := range pol.Factors {
		f, ok := c.factors[factors.Method(name)]
		if !ok || !f.Enrolled(u) {
			continue
		}
		if m := f.Method(); (m == factors.SMS || m == factors.Voice) && ownCode && pol.PhoneMethods == config.PhoneOnlyWithoutApp {
			continue
		}
		out = append(out, f.Method())
	}
	for i, m := range out {
		cr, stored := u.Enrolment.Credential(m)
		isDefault := u.Enrolment != nil && u.Enrolment.Default == m ||
			stored && cr.Default && (u.Enrolment == nil || u.Enrolment.Default == "")
		if isDefault && i > 0 {
			copy(out[1:i+1], out[:i])
			out[0] = m
			break
		}
	}
	return out
}

// anyFactor reports whether the policy offers a factor this bridge has.
func (c *Conversation) anyFactor(pol *policy) bool {
	for _, name := range pol.Factors {
		if _, ok := c.factors[factors.Method(name)]; ok {
			return true
		}
	}
	return false
}

// prologue is what every request about a found user begins with: its
// enrolment read into u, and its lockout counters named, in the epoch of
// the enrolment or, for the answer to a challenge, of the session.
func (c *Conversation) prologue(ctx context.Context, u *factors.User, sessionEpoch *int64) (lockKeys, decision, bool) {
	enr, err := c.enrolment(ctx, u.Name)
	if err != nil {
		c.log.Error("enrolment store unavailable", "user", u.Name, "err", err)
		return lockKeys{}, reject(audit.ReasonStoreDown, msgUnavailable), false
	}
	u.Enrolment = enr
	if !enr.Reported.IsZero() {
		// The user said a sign-in was not theirs: nothing is let through,
		// not even a password check, until an admin resets the user. The
		// reply says no more than a wrong password's, so that nobody
		// learns of the report by typing the name.
		return lockKeys{}, reject(audit.ReasonReportedByUser, msgFailed), false
	}
	epoch := enr.LockoutEpoch
	if sessionEpoch != nil {
		epoch = *sessionEpoch
	}
	return c.lockKeys(u.Name, epoch), decision{}, true
}

func (c *Conversation) enrolment(ctx context.Context, user string) (*factors.Enrolment, error) {
	if c.enrolments == nil {
		return &factors.Enrolment{}, nil
	}
	return c.enrolments.Enrolment(ctx, user)
}

func (c *Conversation) primaryFailure(user string, client *Client, err error) decision {
	var ae *factors.AccountError
	switch {
	case errors.Is(err, factors.ErrBadCredentials):
		return reject(audit.ReasonBadCredentials, msgFailed)
	case errors.As(err, &ae):
		if c.expiry && factors.IsPasswordExpiry(err) {
			return reject(ae.Reason, msgExpired)
		}
		return reject(ae.Reason, msgFailed)
	case errors.Is(err, factors.ErrUnavailable):
		c.log.Error("directory unavailable", "client", client.Name, "user", user, "err", err)
		return reject(audit.ReasonDirectoryDown, msgUnavailable)
	}
	c.log.Error("primary authentication failed", "client", client.Name, "user", user, "err", err)
	return reject(audit.ReasonInternal, msgFailed)
}

// labelsOf joins the labels of methods: "the code from your authenticator
// app or the code from your hardware token".
func (c *Conversation) labelsOf(u *factors.User, ms []factors.Method) string {
	parts := make([]string, 0, len(ms))
	for _, m := range ms {
		parts = append(parts, c.factors[m].Label(u))
	}
	return strings.Join(parts, " or ")
}
