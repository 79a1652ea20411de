package voice

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mfabridge/mfabridge/config"
	"github.com/mfabridge/mfabridge/factors"
	"github.com/mfabridge/mfabridge/internal/state"
	"github.com/mfabridge/mfabridge/internal/twilio"
)

const (
	authToken = "0123456789abcdef0123456789abcdef"
	publicURL = "https://mfa.example.org"
	number    = "+447700900123"
)

// caller records the calls placed and plays Twilio's answer.
type caller struct {
	mu    sync.Mutex
	calls []placed
	err   error
	// during runs inside Call, before it returns: Twilio may post the
	// key pressed before the bridge has the call's SID.
	during func(c placed)
	// delay is how long Twilio takes to queue the call.
	delay time.Duration
}

type placed struct{ to, twiml, sid string }

func (c *caller) Call(_ context.Context, to, tw string) (string, error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return "", c.err
	}
	p := placed{to: to, twiml: tw, sid: fmt.Sprintf("CA%032d", len(c.calls)+1)}
	c.calls = append(c.calls, p)
	during, delay := c.during, c.delay
	c.mu.Unlock()
	time.Sleep(delay)
	if during != nil {
		during(p)
	}
	return p.sid, nil
}

func (c *caller) all() []placed {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]placed(nil), c.calls...)
}

type fixture struct {
	v      *Voice
	caller *caller
	kv     *state.Memory
	val    Validator
	ref    string // of the last approval started
}

// approver is the fixture's factor in approve mode.
func (f *fixture) approver() factors.Approver { return f.v.Factor().(factors.Approver) }

// take uses the last approval started, as the challenge that started it.
func (f *fixture) take(ctx context.Context, u *factors.User) error {
	return f.approver().Take(ctx, u, f.ref)
}

func newFixture(t *testing.T, mode Mode, issuer string) *fixture {
	t.Helper()
	kv := state.NewMemory(state.MemoryOptions{Sweep: -1})
	t.Cleanup(func() { kv.Close() })
	c := &caller{}
	v := New(Options{
		Caller:      c,
		Mode:        mode,
		Codes:       &factors.SentCodes{KV: kv, Length: 6, TTL: 5 * time.Minute},
		Limits:      &factors.SendLimits{KV: kv, PerUserHour: 3, GlobalMinute: 30},
		KV:          kv,
		ApproveTTL:  time.Minute,
		PublicURL:   publicURL + "/",
		Issuer:      issuer,
		CountryCode: "44",
	})
	tc, err := twilio.New(config.Twilio{AccountSID: config.NewSecret("AC0123456789abcdef0123456789abcdef"),
		AuthToken: config.NewSecret(authToken), From: "+441234567890"})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{v: v, caller: c, kv: kv, val: tc}
}

func user(name, phone string) *factors.User { return &factors.User{Name: name, Voice: phone} }

// doc is a parsed TwiML document.
type doc struct {
	XMLName xml.Name `xml:"Response"`
	Says    []string `xml:"Say"`
	Pauses  []struct {
		Length string `xml:"length,attr"`
	} `xml:"Pause"`
	Gathers []struct {
		NumDigits   *string  `xml:"numDigits,attr"`
		FinishOnKey *string  `xml:"finishOnKey,attr"`
		Timeout     string   `xml:"timeout,attr"`
		Method      string   `xml:"method,attr"`
		Action      string   `xml:"action,attr"`
		Says        []string `xml:"Say"`
	} `xml:"Gather"`
}

func parse(t *testing.T, tw string) doc {
	t.Helper()
	if !strings.HasPrefix(tw, "<?xml") {
		t.Errorf("TwiML does not start with an XML declaration: %q", tw)
	}
	var d doc
	if err := xml.Unmarshal([]byte(tw), &d); err != nil {
		t.Fatalf("TwiML is not XML: %v\n%s", err, tw)
	}
	return d
}

var spoken = regexp.MustCompile(`\d(?:, \d)+`)

func TestCodeModeReadsTheCodeTwice(t *testing.T) {
	f := newFixture(t, ModeCode, "Example NHS Trust")
	u := user("alice", "07700 900123")
	p, err := f.v.Start(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	if p.Text != "A call to ******0123 will read you a code." {
		t.Errorf("prompt %q", p.Text)
	}
	calls := f.caller.all()
	if len(calls) != 1 || calls[0].to != number {
		t.Fatalf("calls %+v, want one to %s", calls, number)
	}
	d := parse(t, calls[0].twiml)
	if len(d.Gathers) != 0 {
		t.Errorf("code mode has a Gather")
	}
	if len(d.Pauses) != 1 {
		t.Errorf("%d pauses, want 1 between the readings", len(d.Pauses))
	}
	var codes []string
	for _, s := range d.Says {
		for _, m := range spoken.FindAllString(s, -1) {
			codes = append(codes, strings.ReplaceAll(m, ", ", ""))
		}
	}
	if len(codes) != 2 || codes[0] != codes[1] || len(codes[0]) != 6 {
		t.Fatalf("codes read %q, want one 6-digit code read twice, digit by digit:\n%s", codes, calls[0].twiml)
	}
	if !strings.Contains(d.Says[0], "Example NHS Trust") {
		t.Errorf("first Say %q does not name the issuer", d.Says[0])
	}
	if f.v.CodeLength(u) != 6 {
		t.Errorf("CodeLength %d", f.v.CodeLength(u))
	}
	// The code read out is the code checked, once.
	if err := f.v.Check(context.Background(), u, codes[0]); err != nil {
		t.Fatalf("Check of the code read out: %v", err)
	}
	if err := f.v.Check(context.Background(), u, codes[0]); err == nil {
		t.Fatal("the code read out passed twice")
	}
}

func TestApproveTwiML(t *testing.T) {
	f := newFixture(t, ModeApprove, "Example NHS Trust")
	u := user("alice", number)
	p, err := f.v.Start(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	if p.Text != "Answer the call to ******0123 and press # to approve." {
		t.Errorf("prompt %q", p.Text)
	}
	if f.v.CodeLength(u) != 0 {
		t.Errorf("approve mode has a code length of %d", f.v.CodeLength(u))
	}
	calls := f.caller.all()
	if len(calls) != 1 {
		t.Fatalf("%d calls", len(calls))
	}
	d := parse(t, calls[0].twiml)
	if len(d.Gathers) != 1 {
		t.Fatalf("%d Gathers, want 1:\n%s", len(d.Gathers), calls[0].twiml)
	}
	g := d.Gathers[0]
	if g.NumDigits == nil || *g.NumDigits != "1" {
		t.Errorf("numDigits %v, want 1", g.NumDigits)
	}
	if g.FinishOnKey == nil || *g.FinishOnKey != "" {
		t.Errorf("finishOnKey %v, want present and empty, so that # is gathered", g.FinishOnKey)
	}
	if g.Method != "POST" {
		t.Errorf("method %q", g.Method)
	}
	if !regexp.MustCompile(`^` + regexp.QuoteMeta(publicURL+WebhookPath) + `[0-9a-f]{32}$`).MatchString(g.Action) {
		t.Errorf("action %q, want %s%s<128-bit token>", g.Action, publicURL, WebhookPath)
	}
	if len(g.Says) != 1 || !strings.Contains(g.Says[0], "hash key") || !strings.Contains(g.Says[0], "Example NHS Trust") {
		t.Errorf("prompt inside Gather %q", g.Says)
	}
	if len(d.Says) != 1 {
		t.Errorf("%d Says after the Gather, want 1 for no input", len(d.Says))
	}
	// A second Start gets a new token.
	if _, err := f.v.Start(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	if g2 := parse(t, f.caller.all()[1].twiml).Gathers[0]; g2.Action == g.Action {
		t.Error("two calls share one action URL")
	}
}

func TestTwiMLEscapesTheIssuer(t *testing.T) {
	issuer := `Smith & Jones <IT> "NHS" ]]> 'Trust'`
	for _, mode := range []Mode{ModeCode, ModeApprove} {
		t.Run(string(mode), func(t *testing.T) {
			f := newFixture(t, mode, issuer)
			if _, err := f.v.Start(context.Background(), user("alice", number)); err != nil {
				t.Fatal(err)
			}
			tw := f.caller.all()[0].twiml
			if strings.Contains(tw, "<IT>") || strings.Contains(tw, "& J") {
				t.Errorf("the issuer is not escaped:\n%s", tw)
			}
			d := parse(t, tw)
			says := d.Says
			for _, g := range d.Gathers {
				says = append(says, g.Says...)
			}
			found := false
			for _, s := range says {
				found = found || strings.Contains(s, issuer)
			}
			if !found {
				t.Errorf("no Say reads the issuer %q back: %q", issuer, says)
			}
		})
	}
}

func TestEnrolledAndLabel(t *testing.T) {
	f := newFixture(t, ModeCode, "X")
	for _, tc := range []struct {
		phone, label string
		enrolled     bool
	}{
		{"+447700900123", "a phone call to ******0123", true},
		{"07700 900123", "a phone call to ******0123", true},
		{"", "", false},
		{"not a number", "", false},
	} {
		u := user("alice", tc.phone)
		if f.v.Enrolled(u) != tc.enrolled {
			t.Errorf("Enrolled(%q) = %t", tc.phone, !tc.enrolled)
		}
		if tc.enrolled && f.v.Label(u) != tc.label {
			t.Errorf("Label(%q) = %q", tc.phone, f.v.Label(u))
		}
	}
	// The voice number, not the mobile, is called.
	if f.v.Enrolled(&factors.User{Name: "x", Mobile: number}) {
		t.Error("enrolled with a mobile number only")
	}
}

func TestStartRefusals(t *testing.T) {
	t.Run("no number", func(t *testing.T) {
		f := newFixture(t, ModeApprove, "X")
		if _, err := f.v.Start(context.Background(), user("alice", "")); !errors.Is(err, factors.ErrNotEnrolled) {
			t.Fatalf("%v, want ErrNotEnrolled", err)
		}
		if len(f.caller.all()) != 0 {
			t.Fatal("a call was placed")
		}
	})
	t.Run("limit", func(t *testing.T) {
		f := newFixture(t, ModeCode, "X")
		for i := range 3 {
			if _, err := f.v.Start(context.Background(), user("alice", number)); err != nil {
				t.Fatalf("call %d: %v", i+1, err)
			}
		}
		if _, err := f.v.Start(context.Background(), user("alice", number)); !errors.Is(err, factors.ErrRateLimited) {
			t.Fatalf("fourth call in the hour: %v, want ErrRateLimited", err)
		}
		if n := len(f.caller.all()); n != 3 {
			t.Fatalf("%d calls placed, want 3", n)
		}
	})
	t.Run("call fails", func(t *testing.T) {
		f := newFixture(t, ModeApprove, "X")
		f.caller.err = &factors.SendError{Method: factors.Voice, Code: 21211, Status: 400, Err: errors.New("Invalid 'To' Phone Number")}
		u := user("alice", number)
		_, err := f.v.Start(context.Background(), u)
		var se *factors.SendError
		if !errors.As(err, &se) || se.Code != 21211 {
			t.Fatalf("%v, want the SendError", err)
		}
		if _, err := f.approver().Approval(context.Background(), u, f.ref); !errors.Is(err, factors.ErrExpired) {
			t.Errorf("after a failed call, Approval: %v, want ErrExpired (nothing pending)", err)
		}
	})
}

// sign computes X-Twilio-Signature independently of the code under test.
func sign(token, u string, form url.Values) string {
	keys := make([]string, 0, len(form))
	for k := range form {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	s := u
	for _, k := range keys {
		s += k + form.Get(k)
	}
	m := hmac.New(sha1.New, []byte(token))
	m.Write([]byte(s))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// press posts a Gather callback to the webhook, as Twilio does, for the
// public action URL; the request itself arrives at an internal address.
func (f *fixture) press(t *testing.T, action string, form url.Values, sig string) (int, string) {
	t.Helper()
	au, err := url.Parse(action)
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:9812"+au.Path, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if sig != "" {
		r.Header.Set("X-Twilio-Signature", sig)
	}
	w := httptest.NewRecorder()
	f.v.Webhook(f.val, slog.New(slog.DiscardHandler)).ServeHTTP(w, r)
	return w.Code, w.Body.String()
}

// started starts an approval for u and returns the call and its action URL.
func (f *fixture) started(t *testing.T, u *factors.User) (placed, string) {
	t.Helper()
	p, err := f.v.Start(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	if p.Ref == "" {
		t.Fatal("an approval started without a Ref")
	}
	f.ref = p.Ref
	calls := f.caller.all()
	c := calls[len(calls)-1]
	return c, parse(t, c.twiml).Gathers[0].Action
}

func gatherForm(c placed, digits string) url.Values {
	return url.Values{"CallSid": {c.sid}, "Digits": {digits}, "From": {"+441234567890"}, "To": {c.to},
		"AccountSid": {"AC0123456789abcdef0123456789abcdef"}}
}

func approval(t *testing.T, f *fixture, u *factors.User) factors.Approval {
	t.Helper()
	a, err := f.approver().Approval(context.Background(), u, f.ref)
	if err != nil {
		t.Fatalf("Approval: %v", err)
	}
	return a
}

func TestWebhook(t *testing.T) {
	ctx := context.Background()
	t.Run("hash approves once", func(t *testing.T) {
		f := newFixture(t, ModeApprove, "X")
		u := user("alice", number)
		c, action := f.started(t, u)
		if err := f.take(ctx, u); !errors.Is(err, factors.ErrNotYet) {
			t.Fatalf("Take before the key: %v, want ErrNotYet", err)
		}
		// An approval is no code: Check refuses whatever is typed.
		if err := f.v.Check(ctx, u, ""); !errors.Is(err, factors.ErrWrongCode) {
			t.Fatalf("Check in approve mode: %v, want ErrWrongCode", err)
		}
		form := gatherForm(c, "#")
		code, body := f.press(t, action, form, sign(authToken, action, form))
		if code != http.StatusOK || !strings.Contains(body, "Approved") {
			t.Fatalf("webhook %d %q", code, body)
		}
		var answer doc
		if err := xml.Unmarshal([]byte(body), &answer); err != nil || len(answer.Says) != 1 {
			t.Errorf("answer is not TwiML with one Say: %q (%v)", body, err)
		}
		if a := approval(t, f, u); a != factors.Approved {
			t.Fatalf("approval %v, want Approved", a)
		}
		// A second post after the decision changes nothing.
		form2 := gatherForm(c, "1")
		code, body = f.press(t, action, form2, sign(authToken, action, form2))
		if code != http.StatusOK || !strings.Contains(body, "expired") {
			t.Errorf("second post: %d %q, want 200 and that it expired", code, body)
		}
		if a := approval(t, f, u); a != factors.Approved {
			t.Fatalf("after a second post the approval is %v", a)
		}
		// The approval lets in one login.
		if err := f.take(ctx, u); err != nil {
			t.Fatalf("Take after #: %v", err)
		}
		if err := f.take(ctx, u); err == nil {
			t.Fatal("one approval let in two logins")
		}
	})
	t.Run("another key refuses", func(t *testing.T) {
		for _, key := range []string{"1", "0", "*", "9"} {
			f := newFixture(t, ModeApprove, "X")
			u := user("alice", number)
			c, action := f.started(t, u)
			form := gatherForm(c, key)
			code, body := f.press(t, action, form, sign(authToken, action, form))
			if code != http.StatusOK || !strings.Contains(body, "refused") {
				t.Fatalf("key %q: %d %q", key, code, body)
			}
			if a := approval(t, f, u); a != factors.Refused {
				t.Fatalf("key %q: approval %v, want Refused", key, a)
			}
			if err := f.take(ctx, u); !errors.Is(err, factors.ErrRefused) {
				t.Fatalf("key %q: Take %v, want ErrRefused", key, err)
			}
		}
	})
	t.Run("bad signatures", func(t *testing.T) {
		f := newFixture(t, ModeApprove, "X")
		u := user("alice", number)
		c, action := f.started(t, u)
		form := gatherForm(c, "#")
		internal := "http://127.0.0.1:9812" + strings.TrimPrefix(action, publicURL)
		for name, sig := range map[string]string{
			"forged":               sign("not-the-token", action, form),
			"none":                 "",
			"for the internal URL": sign(authToken, internal, form),
			"for another key":      sign(authToken, action, gatherForm(c, "1")),
			"for http":             sign(authToken, strings.Replace(action, "https:", "http:", 1), form),
			"not base64":           "%%%",
		} {
			code, _ := f.press(t, action, form, sig)
			if code != http.StatusForbidden {
				t.Errorf("%s: status %d, want 403", name, code)
			}
		}
		if a := approval(t, f, u); a != factors.Pending {
			t.Fatalf("after forged posts the approval is %v", a)
		}
	})
	t.Run("unknown token", func(t *testing.T) {
		f := newFixture(t, ModeApprove, "X")
		u := user("alice", number)
		c, _ := f.started(t, u)
		action := publicURL + WebhookPath + strings.Repeat("ab", 16)
		form := gatherForm(c, "#")
		code, body := f.press(t, action, form, sign(authToken, action, form))
		if code != http.StatusOK || !strings.Contains(body, "expired") {
			t.Errorf("unknown token: %d %q", code, body)
		}
		if a := approval(t, f, u); a != factors.Pending {
			t.Fatalf("approval %v", a)
		}
	})
	t.Run("CallSid of another call", func(t *testing.T) {
		f := newFixture(t, ModeApprove, "X")
		u := user("alice", number)
		_, action := f.started(t, u)
		form := gatherForm(placed{sid: "CA" + strings.Repeat("9", 32), to: number}, "#")
		code, body := f.press(t, action, form, sign(authToken, action, form))
		if code != http.StatusOK || !strings.Contains(body, "expired") {
			t.Errorf("other CallSid: %d %q", code, body)
		}
		if a := approval(t, f, u); a != factors.Pending {
			t.Fatalf("approval %v after a post for another call", a)
		}
	})
	t.Run("a token from another user's call", func(t *testing.T) {
		f := newFixture(t, ModeApprove, "X")
		alice, bob := user("alice", number), user("bob", "+447700900999")
		_, aliceAction := f.started(t, alice)
		aliceRef := f.ref
		bobCall, _ := f.started(t, bob)
		form := gatherForm(bobCall, "#")
		f.press(t, aliceAction, form, sign(authToken, aliceAction, form))
		if a, err := f.approver().Approval(ctx, alice, aliceRef); err != nil || a != factors.Pending {
			t.Errorf("alice's approval %v (%v) after a post with bob's call", a, err)
		}
		if _, err := f.approver().Approval(ctx, alice, f.ref); !errors.Is(err, factors.ErrExpired) {
			t.Errorf("alice may use bob's approval: %v", err)
		}
		if a := approval(t, f, bob); a != factors.Pending {
			t.Errorf("bob's approval %v after a post to alice's URL", a)
		}
	})
	t.Run("key pressed before the call SID is known", func(t *testing.T) {
		f := newFixture(t, ModeApprove, "X")
		u := user("alice", number)
		f.caller.during = func(c placed) {
			action := parse(t, c.twiml).Gathers[0].Action
			form := gatherForm(c, "#")
			if code, body := f.press(t, action, form, sign(authToken, action, form)); code != http.StatusOK || !strings.Contains(body, "Approved") {
				t.Errorf("early #: %d %q", code, body)
			}
		}
		p, err := f.v.Start(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		f.ref = p.Ref
		if a := approval(t, f, u); a != factors.Approved {
			t.Fatalf("an early # was lost: approval %v", a)
		}
	})
	t.Run("methods and paths", func(t *testing.T) {
		f := newFixture(t, ModeApprove, "X")
		c, action := f.started(t, user("alice", number))
		h := f.v.Webhook(f.val, slog.New(slog.DiscardHandler))
		path := strings.TrimPrefix(action, publicURL)
		for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodHead} {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest(m, path+"?Digits=%23&CallSid="+c.sid, nil))
			if w.Code != http.StatusMethodNotAllowed {
				t.Errorf("%s: %d, want 405", m, w.Code)
			}
		}
		for _, p := range []string{WebhookPath, WebhookPath + "a/b"} {
			form := gatherForm(c, "#")
			w := httptest.NewRecorder()
			r := httptest.NewRequest(http.MethodPost, p, strings.NewReader(form.Encode()))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			r.Header.Set("X-Twilio-Signature", sign(authToken, publicURL+p, form))
			h.ServeHTTP(w, r)
			if w.Code != http.StatusBadRequest {
				t.Errorf("POST %s: %d, want 400", p, w.Code)
			}
		}
		// A huge body is cut off, not read whole.
		w := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodPost, path, io.LimitReader(neverEnding('a'), 1<<20))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		h.ServeHTTP(w, r)
		if w.Code == http.StatusOK {
			t.Errorf("a 1 MiB body: %d", w.Code)
		}
	})
}

type neverEnding byte

func (b neverEnding) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(b)
	}
	return len(p), nil
}

func TestApprovalExpires(t *testing.T) {
	c := &caller{}
	kv := state.NewMemory(state.MemoryOptions{Sweep: -1})
	defer kv.Close()
	v := New(Options{Caller: c, Mode: ModeApprove, KV: kv, ApproveTTL: 50 * time.Millisecond, PublicURL: publicURL,
		Limits: &factors.SendLimits{KV: kv, PerUserHour: 3, GlobalMinute: 30}, Issuer: "X"})
	u := user("alice", number)
	p, err := v.Start(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	ap := v.Factor().(factors.Approver)
	if _, err := ap.Approval(context.Background(), u, p.Ref); !errors.Is(err, factors.ErrExpired) {
		t.Fatalf("after the TTL: %v, want ErrExpired", err)
	}
	if err := ap.Take(context.Background(), u, p.Ref); !errors.Is(err, factors.ErrExpired) {
		t.Fatalf("Take after the TTL: %v, want ErrExpired", err)
	}
}

func TestFactorIsAnApproverOnlyInApproveMode(t *testing.T) {
	if _, ok := newFixture(t, ModeCode, "X").v.Factor().(factors.Approver); ok {
		t.Error("code mode is an Approver: the conversation would wait for a # instead of the code read out")
	}
	if _, ok := newFixture(t, ModeApprove, "X").v.Factor().(factors.Approver); !ok {
		t.Error("approve mode is not an Approver")
	}
}

// A key pressed after what waited for it (the challenge, the held
// request) has gone approves nothing.
func TestApprovalLivesAsLongAsItsDeadline(t *testing.T) {
	f := newFixture(t, ModeApprove, "X")
	u := user("alice", number)
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	p, err := f.v.Start(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	f.ref = p.Ref
	c := f.caller.all()[0]
	action := parse(t, c.twiml).Gathers[0].Action
	time.Sleep(300 * time.Millisecond)
	form := gatherForm(c, "#")
	code, body := f.press(t, action, form, sign(authToken, action, form))
	if code != http.StatusOK || !strings.Contains(body, "expired") {
		t.Errorf("late #: %d %q, want 200 and that it expired", code, body)
	}
	if a, err := f.approver().Approval(context.Background(), u, f.ref); a == factors.Approved {
		t.Fatalf("a late # approved the sign-in (%v)", err)
	}
}

// The deadline is the deadline, however long Twilio took to queue the
// call: the approval must not outlive what waits for it by that time.
func TestApprovalDoesNotOutliveItsDeadlineWhenTwilioIsSlow(t *testing.T) {
	f := newFixture(t, ModeApprove, "X")
	f.caller.delay = 400 * time.Millisecond
	u := user("alice", number)
	ctx, cancel := context.WithTimeout(context.Background(), 600*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := f.v.Start(ctx, u); err != nil {
		t.Fatal(err)
	}
	c := f.caller.all()[0]
	action := parse(t, c.twiml).Gathers[0].Action
	time.Sleep(time.Until(start.Add(800 * time.Millisecond))) // past the deadline, inside deadline + call time
	form := gatherForm(c, "#")
	code, body := f.press(t, action, form, sign(authToken, action, form))
	if code != http.StatusOK || !strings.Contains(body, "expired") {
		t.Errorf("# 200ms after the deadline: %d %q, want 200 and that it expired", code, body)
	}
}
