package portal

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// FuzzInvite holds what an invite is read as: only A-Z and 0-9, at most
// as long as what was typed.
func FuzzInvite(f *testing.F) {
	for _, s := range []string{"ABCD-EFGH-JKMN-PQ23", "abcd efgh", "", "ÀÉ-12", "\x00\xff--"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := normaliseInvite(s)
		if len(out) > len(s) {
			t.Fatalf("%q read as the longer %q", s, out)
		}
		for _, r := range out {
			if !(r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
				t.Fatalf("%q read as %q", s, out)
			}
		}
	})
}

// FuzzForms posts any body to every form of a signed-in session, with
// its token: the portal answers each with a redirect or a page that
// says why, never a server error, and a recovery code typed anywhere is
// never taken for anything but what it is.
func FuzzForms(f *testing.F) {
	for _, s := range []string{"method=totp", "method=recovery", "code=246810", "invite=AAAA", "username=alice&password=alice-pw",
		"method=%00", "code=" + strings.Repeat("9", 5000), "a=b&a=c&method=hotp&method=totp", "%zz", "csrf=x"} {
		f.Add(s)
	}
	fx := newFixture(f, fixtureOptions{})
	fx.store.Invite(context.Background(), "newbie", "AAAABBBBCCCCDDDD", time.Hour)
	// One signed-in session for every input (sign-ins are rate-limited);
	// an input that ends it leaves the rest to be refused, which is an
	// answer too.
	b := fx.browser()
	b.signIn("alice", "alice-pw")
	b.get("/")
	paths := []string{"/totp", "/totp/confirm", "/default", "/recovery", "/remove", "/first", "/code", "/signin", "/report", "/signout"}
	f.Fuzz(func(t *testing.T, body string) {
		for _, path := range paths {
			form, err := url.ParseQuery(body)
			if err != nil {
				form = url.Values{"raw": {body}}
			}
			form.Set("csrf", b.csrf)
			req, _ := http.NewRequest("POST", fx.srv.URL+path, strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			for _, c := range b.c.Jar.Cookies(mustURL(fx.srv.URL)) {
				req.AddCookie(c)
			}
			rec := httptest.NewRecorder()
			fx.srv.Config.Handler.ServeHTTP(rec, req)
			if rec.Code >= 500 {
				t.Fatalf("POST %s %q: %d\n%s", path, body, rec.Code, rec.Body)
			}
		}
	})
}
