package radius

import (
	"context"
	"errors"
	"strings"

	"layeh.com/radius"
	"layeh.com/radius/rfc2865"

	"github.com/mfabridge/mfabridge/config"
	"github.com/mfabridge/mfabridge/factors"
)

// decideUser handles a request whose User-Name is usable: a first login
// (no State) or the answer to a challenge (State).
func (c *Conversation) decideUser(ctx context.Context, p *radius.Packet, client *Client, pol *policy, login string) decision {
	pws := attributesOf(p, rfc2865.UserPassword_Type)
	if len(pws) != 1 {
		return reject(ReasonBadRequest, msgFailed)
	}
	pw, err := decodePassword(pws[0], p.Secret, p.Authenticator)
	if err != nil {
		return reject(ReasonBadRequest, msgFailed)
	}
	if st := rfc2865.State_Get(p); st != nil {
		// An empty answer is how a user says "I pressed # on the phone".
		return c.answer(ctx, client, login, st, string(pw))
	}
	if len(pw) == 0 {
		// An empty simple bind is an anonymous bind, which many directories
		// accept (RFC 4513 §5.1.2): never let one reach LDAP.
		return reject(ReasonEmptyPassword, msgFailed)
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
		return reject(ReasonBadCredentials, msgFailed)
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
	enr, err := c.enrolment(ctx, u.Name)
	if err != nil {
		c.log.Error("enrolment store unavailable", "user", u.Name, "err", err)
		return reject(ReasonStoreDown, msgUnavailable)
	}
	u.Enrolment = enr
	lk := c.lockKeys(u.Name, enr.LockoutEpoch)
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
		return accept(ReasonRemembered, pol.replyAttributes(found))
	}
	offered := c.offered(pol, found)
	if len(offered) == 0 {
		switch {
		case pol.MFA == config.MFAOptional:
			return accept(ReasonOptionalNoMethods, pol.replyAttributes(found))
		case !c.anyFactor(pol):
			return reject(ReasonMFAUnavailable, msgNoFactor)
		case pol.Unenrolled == config.UnenrolledAllow:
			return accept(ReasonUnenrolledAllowed, pol.replyAttributes(found))
		}
		return reject(ReasonNotEnrolled, msgNotEnrolled)
	}

	switch pol.Mode {
	case config.ModeAppend:
		switch {
		case asked != "":
			return c.appendStart(ctx, client, pol, found, lk, offered, asked, station)
		case used.code == "":
			return reject(ReasonCodeMissing, c.appendHint(found, offered))
		}
		return c.verify(ctx, client, pol, found, lk, offered, "", used.code, station)
	case config.ModeChallenge:
		return c.firstChallenge(ctx, client, pol, found, offered, station)
	case config.ModeAuto:
		for _, m := range offered {
			if _, ok := c.factors[m].(factors.Approver); ok {
				return c.await(ctx, client, pol, found, m, station)
			}
		}
		return reject(ReasonNotEnrolled, msgNotEnrolled)
	}
	return reject(ReasonMFAUnavailable, msgNoFactor)
}

// askedMethod splits "password,sms" and "password,call".
func askedMethod(typed string) (password string, m factors.Method, ok bool) {
	i := strings.LastIndexByte(typed, ',')
	if i <= 0 {
		return "", "", false
	}
	switch strings.ToLower(typed[i+1:]) {
	case "sms", "text":
		return typed[:i], factors.SMS, true
	case "call", "voice", "phone":
		return typed[:i], factors.Voice, true
	}
	return "", "", false
}

// candidates lists the readings of what the user typed, cheapest first,
// so that a login costs one bind whenever possible:
//   - challenge mode: all of it is the password;
//   - append mode, user with code methods: the last N characters are the
//     code when they are N digits, N being the code length of the user's
//     methods (the default method's first); the rest is the password.
//     When no such split exists, all of it is tried as the password and
//     the login then fails for want of a code;
//   - append mode, inside a remember window: all of it first (the mail
//     client's saved password), then the splits.
//
// A password that ends in digits therefore never skips the second factor:
// those digits are read as the code and must verify as one.
func (c *Conversation) candidates(pol *policy, u *factors.User, typed string, remembered bool) []candidate {
	if pol.Mode != config.ModeAppend {
		return []candidate{{password: typed}}
	}
	var out []candidate
	if remembered {
		out = append(out, candidate{password: typed})
	}
	offered := c.offered(pol, u)
	seen := map[int]bool{}
	for _, m := range offered {
		cl, ok := c.factors[m].(factors.CodeLength)
		if !ok {
			continue
		}
		n := cl.CodeLength(u)
		if n <= 0 || seen[n] || len(typed) <= n || !allDigits(typed[len(typed)-n:]) {
			continue
		}
		seen[n] = true
		out = append(out, candidate{password: typed[:len(typed)-n], code: typed[len(typed)-n:]})
	}
	if len(out) == 0 {
		out = append(out, candidate{password: typed})
	}
	return out
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
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

// groupRules applies the deny and require groups of a policy (DESIGN §2
// step 9): done is true when they refuse the user. Every way in, the
// card included, passes them.
func groupRules(p *policy, u *factors.User) (d decision, done bool) {
	switch {
	case u.InAny(p.DenyGroups):
		return reject(ReasonDeniedGroup, msgFailed), true
	case len(p.RequireGroups) > 0 && !u.InAny(p.RequireGroups):
		return reject(ReasonNotInRequired, msgFailed), true
	}
	return decision{}, false
}

// applyPolicy applies the groups of the client's policy to an
// authenticated user: deny groups first, then required groups, then
// bypass groups, then mfa: off. done is false when a second factor is
// needed.
func (c *Conversation) applyPolicy(p *policy, u *factors.User) (d decision, done bool) {
	if d, done := groupRules(p, u); done {
		return d, true
	}
	switch {
	case u.InAny(p.BypassGroups):
		return accept(ReasonBypassGroup, p.replyAttributes(u)), true
	case p.MFA == config.MFAOff:
		return accept(ReasonMFAOffPolicy, p.replyAttributes(u)), true
	}
	return decision{}, false
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
