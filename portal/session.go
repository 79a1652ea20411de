package portal

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/mfabridge/mfabridge/internal/audit"
)

// Stages of a session.
const (
	stageAnonymous = ""          // signed out: only a CSRF token for the sign-in form
	stageChallenge = "challenge" // the password was right; a second factor is asked for
	stageFirst     = "first"     // the password was right, and the user holds no method yet
	stageIn        = "in"        // signed in
)

// session is what a session cookie stands for, kept in the state store
// under a hash of the cookie's value (whoever lists the store's keys
// learns no cookie to present), for session_timeout after its last use.
type session struct {
	Stage   string    `json:"stage"`
	User    string    `json:"user,omitempty"`  // canonical name, once the password was right
	Login   string    `json:"login,omitempty"` // as typed: the challenge is bound to it
	State   []byte    `json:"state,omitempty"` // the conversation's challenge State
	Prompt  string    `json:"prompt,omitempty"`
	CSRF    string    `json:"csrf"`
	Created time.Time `json:"created"`
	// Factor is when the user last proved a second factor (or an invite,
	// or a trusted network): removing a method needs it recent.
	Factor time.Time `json:"factor,omitzero"`
	Notice string    `json:"notice,omitempty"` // said once, on the next page
	// Codes are new recovery codes, shown once on the next page and
	// then gone (the store keeps only their hashes).
	Codes []string `json:"codes,omitempty"`

	id     string // the cookie's value
	rotate bool   // issue a new id (and token) when saved: the privilege changed
	ended  bool   // delete when saved
}

func (s *session) signedIn() bool { return s.Stage == stageIn }

// say leaves a notice for the next page.
func (s *session) say(msg string) { s.Notice = msg }

func sessionKey(id string) string {
	sum := sha256.Sum256([]byte(id))
	return "portal:session:" + hex.EncodeToString(sum[:16])
}

// random returns n random bytes, base64url-encoded.
func random(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on the platforms Go supports
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// load returns the request's session, or an anonymous one: a browser
// that is not signing in has nothing stored (a flood of visits stores
// nothing), only its cookie, whose form token is derived from it.
func (p *Portal) load(r *http.Request) (*session, error) {
	if c, err := r.Cookie(p.cookie); err == nil && len(c.Value) == 22 {
		b, ok, err := p.o.State.Get(r.Context(), sessionKey(c.Value))
		if err != nil {
			return nil, err
		}
		var s session
		if ok && json.Unmarshal(b, &s) == nil && p.o.Now().Sub(s.Created) < absoluteSession {
			s.id = c.Value
			return &s, nil
		}
		return p.anonymous(c.Value), nil
	}
	return p.anonymous(random(16)), nil
}

// anonymous is a session with nothing in it yet, under id.
func (p *Portal) anonymous(id string) *session {
	return &session{CSRF: p.anonymousToken(id), Created: p.o.Now(), id: id}
}

// anonymousToken is the form token of an anonymous session: a MAC of its
// id under the portal's key, so that it needs no storing and is the same
// at every instance.
func (p *Portal) anonymousToken(id string) string {
	mac := hmac.New(sha256.New, p.key)
	mac.Write([]byte("mfabridge portal form token\x00" + id))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// save stores s (under a new id when it rotates) and sets the cookie. An
// anonymous session with nothing to say is not stored.
func (p *Portal) save(w http.ResponseWriter, r *http.Request, s *session) error {
	ctx := r.Context()
	bare := s.Stage == stageAnonymous && s.Notice == "" && len(s.Codes) == 0
	if s.ended || s.rotate || bare {
		// Deleting a key that is not there costs nothing and stores
		// nothing.
		if err := p.o.State.Delete(ctx, sessionKey(s.id)); err != nil {
			return err
		}
	}
	if s.ended {
		http.SetCookie(w, &http.Cookie{Name: p.cookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: p.secure,
			SameSite: http.SameSiteStrictMode})
		return nil
	}
	if s.rotate {
		s.id, s.rotate = random(16), false
		s.CSRF = random(32)
		if s.Stage == stageAnonymous {
			s.CSRF = p.anonymousToken(s.id)
		}
	}
	if !bare {
		b, err := json.Marshal(s)
		if err != nil {
			return err
		}
		ttl := min(p.o.Config.SessionTimeout, absoluteSession-p.o.Now().Sub(s.Created))
		if s.Stage == stageAnonymous {
			ttl = min(ttl, anonymousNotice)
		}
		if err := p.o.State.Set(ctx, sessionKey(s.id), b, ttl); err != nil {
			return err
		}
	}
	http.SetCookie(w, &http.Cookie{Name: p.cookie, Value: s.id, Path: "/", HttpOnly: true, Secure: p.secure,
		SameSite: http.SameSiteStrictMode})
	return nil
}

// anonymousNotice is how long a notice to a browser that is not signed
// in waits for the page that shows it.
const anonymousNotice = time.Minute

// page wraps a GET handler: the session is loaded (or begun) and saved
// after, so that its idle timeout starts again.
func (p *Portal) page(h func(w http.ResponseWriter, r *http.Request, s *session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, err := p.load(r)
		if err != nil {
			p.unavailable(w, err)
			return
		}
		// What is said once is gone from the stored session before the
		// page that says it is drawn.
		notice, codes := s.Notice, s.Codes
		s.Notice, s.Codes = "", nil
		if err := p.save(w, r, s); err != nil {
			p.unavailable(w, err)
			return
		}
		s.Notice, s.Codes = notice, codes
		h(w, r, s)
	}
}

// maxForm bounds a form's body.
const maxForm = 16 << 10

// form wraps a POST handler: the source's rate, the origin and the
// session's CSRF token are checked first; the handler changes the
// session and says where to go next; the session is saved, then the
// browser is sent there (POST, redirect, GET).
func (p *Portal) form(h func(w http.ResponseWriter, r *http.Request, s *session) string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		src := source(r)
		if !p.allow(r, "src:"+src.String(), postsPerSource) {
			p.record(r, "", audit.Reject, audit.ReasonPortalRateLimit, "")
			p.fail(w, http.StatusTooManyRequests, text.tooManyFromAddress)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxForm)
		if err := r.ParseForm(); err != nil {
			p.fail(w, http.StatusBadRequest, text.formUnreadable)
			return
		}
		s, err := p.load(r)
		if err != nil {
			p.unavailable(w, err)
			return
		}
		if !p.sameOrigin(r) || !validToken(s, r.PostForm.Get("csrf")) {
			p.o.Log.Warn("form refused: not from the portal's own page, or without its session's token", "path", r.URL.Path,
				"origin", r.Header.Get("Origin"), "fetch_site", r.Header.Get("Sec-Fetch-Site"), "same_origin", p.sameOrigin(r),
				"session", s.Stage != "" || s.User != "", "source", src.String())
			p.record(r, s.User, audit.Reject, audit.ReasonCSRF, "")
			p.fail(w, http.StatusForbidden, text.formExpired)
			return
		}
		next := h(w, r, s)
		if err := p.save(w, r, s); err != nil {
			p.unavailable(w, err)
			return
		}
		http.Redirect(w, r, next, http.StatusSeeOther)
	}
}

// validToken compares a form's token with the session's in constant time.
// A session that was never saved has a token no page showed.
func validToken(s *session, token string) bool {
	return s.CSRF != "" && subtle.ConstantTimeCompare([]byte(s.CSRF), []byte(token)) == 1
}

// sameOrigin refuses a form posted from another site. Browsers name
// the site a request came from in Sec-Fetch-Site, which a page cannot
// set; without it, Origin must be the portal's. Under Referrer-Policy
// no-referrer a browser may send Origin "null" for the portal's own
// forms: the session's token decides then.
func (p *Portal) sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" {
		return site == "same-origin" || site == "none"
	}
	o := r.Header.Get("Origin")
	return o == "" || o == "null" || o == p.origin
}

// allow counts one more event for key in this minute and reports whether
// it is within limit. A state store that cannot count refuses.
func (p *Portal) allow(r *http.Request, key string, limit int) bool {
	minute := p.o.Now().Unix() / 60
	n, err := p.o.State.Incr(r.Context(), "portal:rate:"+key+":"+strconv.FormatInt(minute, 10), 2*time.Minute)
	return err == nil && n <= int64(limit)
}
