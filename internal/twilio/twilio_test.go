package twilio

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mfabridge/mfabridge/config"
	"github.com/mfabridge/mfabridge/factors"
)

const (
	testSID   = "AC0123456789abcdef0123456789abcdef"
	testToken = "f00dfacecafebeef0123456789abcdef"
	testFrom  = "+441234567890"
)

// seen is one request as the fake API received it.
type seen struct {
	method, path, host, contentType string
	user, pass                      string
	auth                            bool
	form                            url.Values
}

// fakeAPI is an httptest server standing in for api.twilio.com.
type fakeAPI struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []seen
	// reply answers a request; the default is 201 with a Twilio-shaped body.
	reply func(w http.ResponseWriter, r *http.Request)
}

func newAPI(t *testing.T, reply func(w http.ResponseWriter, r *http.Request)) *fakeAPI {
	t.Helper()
	a := &fakeAPI{reply: reply}
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		u, p, ok := r.BasicAuth()
		a.mu.Lock()
		a.reqs = append(a.reqs, seen{method: r.Method, path: r.URL.Path, host: r.Host, contentType: r.Header.Get("Content-Type"),
			user: u, pass: p, auth: ok, form: r.PostForm})
		a.mu.Unlock()
		if a.reply != nil {
			a.reply(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		if strings.HasSuffix(r.URL.Path, "/Calls.json") {
			io.WriteString(w, `{"sid":"CA11112222333344445555666677778888","status":"queued","to":"`+r.PostForm.Get("To")+`","from":"`+r.PostForm.Get("From")+`"}`)
			return
		}
		io.WriteString(w, `{"sid":"SM11112222333344445555666677778888","status":"queued","to":"`+r.PostForm.Get("To")+`","body":"x"}`)
	}))
	t.Cleanup(a.Close)
	return a
}

func (a *fakeAPI) requests() []seen {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]seen(nil), a.reqs...)
}

func twilioCfg(apiURL string) config.Twilio {
	return config.Twilio{AccountSID: config.NewSecret(testSID), AuthToken: config.NewSecret(testToken),
		From: testFrom, APIURL: apiURL, Timeout: 2 * time.Second}
}

func newClient(t *testing.T, cfg config.Twilio) *Client {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestNewRefusesIncompleteConfig(t *testing.T) {
	for name, mod := range map[string]func(*config.Twilio){
		"no sid":      func(c *config.Twilio) { c.AccountSID = config.NewSecret("") },
		"no token":    func(c *config.Twilio) { c.AuthToken = config.NewSecret("") },
		"no from":     func(c *config.Twilio) { c.From = "" },
		"bad api_url": func(c *config.Twilio) { c.APIURL = "not a url" },
	} {
		t.Run(name, func(t *testing.T) {
			cfg := twilioCfg("http://127.0.0.1:1")
			mod(&cfg)
			if _, err := New(cfg); err == nil {
				t.Fatal("New succeeded")
			}
		})
	}
}

func checkCommon(t *testing.T, r seen, path string) {
	t.Helper()
	if r.method != http.MethodPost || r.path != path {
		t.Errorf("request %s %s, want POST %s", r.method, r.path, path)
	}
	if !r.auth || r.user != testSID || r.pass != testToken {
		t.Errorf("basic auth %q/%q (present %t), want the account SID and auth token", r.user, r.pass, r.auth)
	}
	if !strings.HasPrefix(r.contentType, "application/x-www-form-urlencoded") {
		t.Errorf("Content-Type %q, want a form", r.contentType)
	}
	if r.host != "api.twilio.com" {
		t.Errorf("Host %q: api_url should change where the request goes, not its Host", r.host)
	}
}

func TestSendSMS(t *testing.T) {
	a := newAPI(t, nil)
	c := newClient(t, twilioCfg(a.URL))
	if err := c.SendSMS(context.Background(), "+447700900123", "Your Example code is 123456"); err != nil {
		t.Fatal(err)
	}
	reqs := a.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	r := reqs[0]
	checkCommon(t, r, "/2010-04-01/Accounts/"+testSID+"/Messages.json")
	want := url.Values{"To": {"+447700900123"}, "From": {testFrom}, "Body": {"Your Example code is 123456"}}
	if r.form.Encode() != want.Encode() {
		t.Errorf("form %v, want %v", r.form, want)
	}
}

func TestCall(t *testing.T) {
	a := newAPI(t, nil)
	c := newClient(t, twilioCfg(a.URL))
	tw := `<?xml version="1.0" encoding="UTF-8"?>` + "\n<Response><Say>1, 2, 3</Say></Response>"
	sid, err := c.Call(context.Background(), "+447700900123", tw)
	if err != nil {
		t.Fatal(err)
	}
	if sid != "CA11112222333344445555666677778888" {
		t.Errorf("call SID %q", sid)
	}
	reqs := a.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	checkCommon(t, reqs[0], "/2010-04-01/Accounts/"+testSID+"/Calls.json")
	want := url.Values{"To": {"+447700900123"}, "From": {testFrom}, "Twiml": {tw}}
	if reqs[0].form.Encode() != want.Encode() {
		t.Errorf("form %v, want %v", reqs[0].form, want)
	}
}

func TestCallWithoutSID(t *testing.T) {
	a := newAPI(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"status":"queued"}`)
	})
	c := newClient(t, twilioCfg(a.URL))
	_, err := c.Call(context.Background(), "+447700900123", "<Response/>")
	var se *factors.SendError
	if !errors.As(err, &se) || se.Method != factors.Voice {
		t.Fatalf("err = %#v, want a voice SendError", err)
	}
}

func jsonError(status, code int, msg string) func(w http.ResponseWriter, r *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, `{"code":`+itoa(code)+`,"message":"`+msg+`","more_info":"https://www.twilio.com/docs/errors/`+itoa(code)+`","status":`+itoa(status)+`}`)
	}
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

func TestErrorsBecomeSendErrors(t *testing.T) {
	tests := []struct {
		name         string
		reply        func(w http.ResponseWriter, r *http.Request)
		code, status int
	}{
		{"400 invalid To", jsonError(400, 21211, "Invalid 'To' Phone Number"), 21211, 400},
		{"401 wrong credentials", jsonError(401, 20003, "Authenticate"), 20003, 401},
		{"429 too many requests", jsonError(429, 20429, "Too Many Requests"), 20429, 429},
		{"500 with a Twilio body", jsonError(500, 20500, "Internal Server Error"), 20500, 500},
		{"502 from a proxy, HTML", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusBadGateway)
			io.WriteString(w, "<html>bad gateway</html>")
		}, 0, 502}, // no Twilio code, but the HTTP status is known: not a network failure

	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := newAPI(t, tc.reply)
			c := newClient(t, twilioCfg(a.URL))
			body := "Your Example code is 918273"
			err := c.SendSMS(context.Background(), "+447700900123", body)
			var se *factors.SendError
			if !errors.As(err, &se) {
				t.Fatalf("SendSMS: %#v, want *factors.SendError", err)
			}
			if se.Method != factors.SMS || se.Code != tc.code || se.Status != tc.status {
				t.Errorf("SendError{Method %s, Code %d, Status %d}, want sms, %d, %d", se.Method, se.Code, se.Status, tc.code, tc.status)
			}
			if msg := err.Error(); strings.Contains(msg, "918273") || strings.Contains(msg, testToken) {
				t.Errorf("the error shows the code or the token: %q", msg)
			}
			_, err = c.Call(context.Background(), "+447700900123", "<Response><Say>9, 1, 8</Say></Response>")
			if !errors.As(err, &se) || se.Method != factors.Voice || se.Code != tc.code {
				t.Errorf("Call: %#v", err)
			}
		})
	}
}

func TestTimeoutBecomesSendError(t *testing.T) {
	release := make(chan struct{})
	a := newAPI(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
		w.WriteHeader(http.StatusCreated)
	})
	defer close(release)
	cfg := twilioCfg(a.URL)
	cfg.Timeout = 300 * time.Millisecond
	c := newClient(t, cfg)
	start := time.Now()
	err := c.SendSMS(context.Background(), "+447700900123", "Your code is 123456")
	took := time.Since(start)
	var se *factors.SendError
	if !errors.As(err, &se) {
		t.Fatalf("SendSMS: %#v, want *factors.SendError", err)
	}
	if se.Code != 0 || se.Status != 0 {
		t.Errorf("timeout: Code %d Status %d, want 0 and 0", se.Code, se.Status)
	}
	if took > 2*time.Second {
		t.Errorf("SendSMS took %s with a 300ms timeout", took)
	}
}

// A redirect is never followed: it would take the credentials elsewhere.
func TestRedirectNotFollowed(t *testing.T) {
	var hits sync.Map
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Store(r.URL.Path, true)
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"sid":"SMx"}`)
	}))
	defer elsewhere.Close()
	a := newAPI(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+"/stolen", http.StatusTemporaryRedirect)
	})
	c := newClient(t, twilioCfg(a.URL))
	c.SendSMS(context.Background(), "+447700900123", "Your code is 123456")
	if _, ok := hits.Load("/stolen"); ok {
		t.Fatal("the redirect was followed")
	}
}

// sign is X-Twilio-Signature computed independently of the code under test.
func sign(token, u string, params map[string]string) string {
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	s := u
	for _, k := range keys {
		s += k + params[k]
	}
	m := hmac.New(sha1.New, []byte(token))
	m.Write([]byte(s))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func TestValid(t *testing.T) {
	c := newClient(t, twilioCfg(""))
	u := "https://mfa.example.org/twilio/voice/0123abcd"
	params := map[string]string{"CallSid": "CA1234", "Digits": "#", "From": testFrom, "To": "+447700900123", "AccountSid": testSID}
	good := sign(testToken, u, params)
	if !c.Valid(u, params, good) {
		t.Fatal("a right signature was refused")
	}
	tests := map[string]struct {
		url    string
		params map[string]string
		sig    string
	}{
		"forged (another token)": {u, params, sign("another-token", u, params)},
		"empty":                  {u, params, ""},
		"garbage":                {u, params, "not base64 at all"},
		"other URL":              {"https://mfa.example.org/twilio/voice/ffff", params, good},
		"http instead of https":  {"http://mfa.example.org/twilio/voice/0123abcd", params, good},
		"a digit changed": {u, map[string]string{"CallSid": "CA1234", "Digits": "1", "From": testFrom, "To": "+447700900123",
			"AccountSid": testSID}, good},
		"a field added": {u, map[string]string{"CallSid": "CA1234", "Digits": "#", "From": testFrom, "To": "+447700900123",
			"AccountSid": testSID, "Extra": "x"}, good},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if c.Valid(tc.url, tc.params, tc.sig) {
				t.Fatal("accepted")
			}
		})
	}
	// With no parameters, the empty signature is still refused.
	if c.Valid(u, nil, "") {
		t.Error("an empty signature for no parameters was accepted")
	}
	if !c.Valid(u, nil, sign(testToken, u, nil)) {
		t.Error("a right signature for no parameters was refused")
	}
}
