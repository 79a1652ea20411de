package portal

import (
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/mfabridge/mfabridge/config"
	"github.com/mfabridge/mfabridge/internal/audit"
	"github.com/mfabridge/mfabridge/internal/store"
)

// Sign-in: the password, then the challenge the conversation poses (a
// code, or a menu of methods that send one), exactly as a RADIUS client
// would see it. A right password for a user with no method leads to the
// first-enrolment page instead, which the site's portal.first_method
// opens: an invite, or a trusted network.

func (p *Portal) signinForm(w http.ResponseWriter, r *http.Request, s *session) {
	if s.signedIn() {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	p.render(w, "signin", s, nil)
}

func (p *Portal) signin(w http.ResponseWriter, r *http.Request, s *session) string {
	login := r.PostForm.Get("username")
	password := r.PostForm.Get("password")
	if !p.allow(r, "user:"+strings.ToLower(login), signinsPerUser) {
		p.record(r, login, audit.Reject, audit.ReasonPortalRateLimit, "")
		s.say(text.rateLimited)
		return "/signin"
	}
	// A new sign-in starts from nothing, under a new cookie.
	*s = session{CSRF: s.CSRF, Created: p.o.Now(), id: s.id, rotate: true}
	step := p.o.Conversation.Web(r.Context(), p.o.Config.Policy, source(r), login, password, nil)
	return p.after(r, s, login, step.Outcome, step.Reason, step.User, step.Message, step.State, step.PasswordRight())
}

// after moves the session on by what a sign-in step came to.
func (p *Portal) after(r *http.Request, s *session, login, outcome string, reason audit.Reason, user, message string,
	state []byte, passwordRight bool) string {
	switch {
	case outcome == audit.Accept && reason == audit.ReasonMFA:
		s.Stage, s.User, s.Login, s.State, s.Prompt, s.Factor = stageIn, user, "", nil, "", p.o.Now()
		s.rotate = true
		return "/"
	case outcome == audit.Challenge:
		s.Stage, s.User, s.Login, s.State, s.Prompt = stageChallenge, user, login, state, message
		return "/code"
	case passwordRight:
		// Accepted without a second factor, or refused for want of one:
		// either way the user holds none the portal policy offers.
		s.Stage, s.User, s.Login, s.State, s.Prompt = stageFirst, user, "", nil, ""
		s.rotate = true
		if p.firstBy(config.FirstTrustedNetwork) && p.trusted(r) {
			s.Stage, s.Factor = stageIn, p.o.Now()
			p.record(r, user, audit.Change, audit.ReasonTrustedNetwork, "")
			s.say(text.trustedNetwork)
			return "/"
		}
		return "/first"
	}
	*s = session{CSRF: s.CSRF, Created: s.Created, id: s.id, rotate: true}
	switch reason {
	case audit.ReasonDirectoryDown, audit.ReasonStoreDown, audit.ReasonStateDown, audit.ReasonInternal:
		s.say(text.unavailable)
	default:
		if message == "" || strings.HasPrefix(message, "A second factor is required") {
			message = text.signinFailed
		}
		s.say(message)
	}
	return "/signin"
}

func (p *Portal) codeForm(w http.ResponseWriter, r *http.Request, s *session) {
	if s.Stage != stageChallenge {
		http.Redirect(w, r, "/signin", http.StatusSeeOther)
		return
	}
	p.render(w, "code", s, nil)
}

func (p *Portal) code(w http.ResponseWriter, r *http.Request, s *session) string {
	if s.Stage != stageChallenge {
		return "/signin"
	}
	if !p.allow(r, "user:"+s.User, signinsPerUser) {
		p.record(r, s.User, audit.Reject, audit.ReasonPortalRateLimit, "")
		s.say(text.rateLimited)
		return "/code"
	}
	login := s.Login
	step := p.o.Conversation.Web(r.Context(), p.o.Config.Policy, source(r), login, r.PostForm.Get("code"), s.State)
	// The State is single-use: whatever came of it, it is gone.
	s.State = nil
	return p.after(r, s, login, step.Outcome, step.Reason, step.User, step.Message, step.State, false)
}

func (p *Portal) firstBy(m string) bool { return slices.Contains(p.o.Config.FirstMethod, m) }

func (p *Portal) trusted(r *http.Request) bool {
	src := source(r)
	for _, pfx := range p.o.Config.TrustedPrefixes {
		if pfx.Contains(src) {
			return true
		}
	}
	return false
}

func (p *Portal) firstForm(w http.ResponseWriter, r *http.Request, s *session) {
	if s.Stage != stageFirst {
		http.Redirect(w, r, "/signin", http.StatusSeeOther)
		return
	}
	p.render(w, "first", s, map[string]any{"Invite": p.firstBy(config.FirstInvite)})
}

// first redeems a helpdesk invite: it stands in for the second factor
// the user does not yet hold, once.
func (p *Portal) first(w http.ResponseWriter, r *http.Request, s *session) string {
	if s.Stage != stageFirst || !p.firstBy(config.FirstInvite) {
		return "/signin"
	}
	if !p.allow(r, "invite:"+s.User, signinsPerUser) {
		p.record(r, s.User, audit.Reject, audit.ReasonPortalRateLimit, "")
		s.say(text.rateLimited)
		return "/first"
	}
	code := normaliseInvite(r.PostForm.Get("invite"))
	err := p.o.Enrolments.RedeemInvite(r.Context(), s.User, code)
	switch {
	case err == nil:
		s.Stage, s.Factor, s.rotate = stageIn, p.o.Now(), true
		p.record(r, s.User, audit.Change, audit.ReasonInviteUsed, "")
		s.say(text.inviteAccepted)
		return "/"
	case errors.Is(err, store.ErrNotFound):
		p.record(r, s.User, audit.Reject, audit.ReasonInviteRefused, "")
		s.say(text.inviteRefused)
		return "/first"
	}
	p.o.Log.Error("cannot read the invite", "user", s.User, "err", err)
	s.say(text.unavailable)
	return "/first"
}

// normaliseInvite reads an invite as people type it: any case, with or
// without the dashes, with spaces.
func normaliseInvite(s string) string {
	var b strings.Builder
	for _, r := range strings.ToUpper(s) {
		switch {
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			b.WriteRune(r)
		}
	}
	return b.String()
}

func (p *Portal) signout(w http.ResponseWriter, r *http.Request, s *session) string {
	s.ended = true
	return "/signin"
}
