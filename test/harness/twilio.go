package harness

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// FakeTwilio is a loopback HTTP server that speaks the parts of Twilio's
// REST API the bridge uses (POST /2010-04-01/Accounts/{Sid}/Messages.json
// and /Calls.json, form-encoded, HTTP basic auth with the account SID and
// auth token) and plays the phone: it keeps every message and call, so
// that a test reads the code as a phone would, and it posts the key
// pressed in a call to the Gather action URL, signed as Twilio signs.
//
// It can be told to fail or hang the next requests, to test the bridge's
// handling of an unreliable Twilio.
type FakeTwilio struct {
	URL        string // http://127.0.0.1:PORT, for factors.twilio.api_url
	AccountSID string
	AuthToken  string

	srv     *httptest.Server
	closing chan struct{}
	once    sync.Once

	mu       sync.Mutex
	messages []TwilioMessage
	calls    []TwilioCall
	requests []TwilioRequest
	faults   []twilioFault
	changed  chan struct{} // closed and replaced whenever something is recorded
}

// TwilioMessage is a text message the bridge asked Twilio to send.
type TwilioMessage struct {
	SID, To, From, Body string
	Form                url.Values // everything posted
	At                  time.Time
}

// TwilioCall is a call the bridge asked Twilio to place.
type TwilioCall struct {
	SID, To, From, Twiml string
	Form                 url.Values
	At                   time.Time
}

// TwilioRequest is any request that reached the fake, recorded or not.
type TwilioRequest struct {
	Method, Path string
	Host         string // the Host header: the bridge keeps api.twilio.com
	User         string // basic-auth user name ("" without basic auth)
	Authorized   bool
	Form         url.Values
	Status       int // the status the fake answered with
}

// twilioFault is one prepared misbehaviour for the next request.
type twilioFault struct {
	status int // 0: answer normally after hang (a slow Twilio)
	body   string
	hang   time.Duration
}

// maxHang bounds HangNext so that a forgotten fault never wedges a test.
const maxHang = 30 * time.Second

// NewFakeTwilio starts the fake on 127.0.0.1 for one account.
func NewFakeTwilio(accountSID, authToken string) *FakeTwilio {
	f := &FakeTwilio{AccountSID: accountSID, AuthToken: authToken, closing: make(chan struct{}), changed: make(chan struct{})}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	f.URL = f.srv.URL
	return f
}

// Close stops the server; a hanging request is released first.
func (f *FakeTwilio) Close() {
	f.once.Do(func() { close(f.closing) })
	f.srv.Close()
}

// FailNext makes the next n API requests fail with an HTTP status and a
// Twilio error body carrying code and message, such as (1, 400, 21211,
// "Invalid 'To' Phone Number") or (1, 500, 20500, "Internal Server Error").
// Nothing is recorded for a failed request.
func (f *FakeTwilio) FailNext(n, status, code int, message string) {
	f.FailNextBody(n, status, twilioError(status, code, message))
}

// FailNextBody is FailNext with a raw body (e.g. an HTML error page from
// a proxy in front of Twilio).
func (f *FakeTwilio) FailNextBody(n, status int, body string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for range n {
		f.faults = append(f.faults, twilioFault{status: status, body: body})
	}
}

// HangNext makes the next n API requests sleep for d (at most 30s, and no
// longer than the client waits) and then fail with 504. Nothing is
// recorded for them.
func (f *FakeTwilio) HangNext(n int, d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d = min(d, maxHang)
	for range n {
		f.faults = append(f.faults, twilioFault{hang: d, status: http.StatusGatewayTimeout,
			body: twilioError(http.StatusGatewayTimeout, 20504, "Gateway timeout")})
	}
}

// DelayNext makes the next n API requests take d (at most 30s) and then
// succeed as usual: a slow Twilio.
func (f *FakeTwilio) DelayNext(n int, d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d = min(d, maxHang)
	for range n {
		f.faults = append(f.faults, twilioFault{hang: d})
	}
}

// ClearFaults drops the faults not used yet.
func (f *FakeTwilio) ClearFaults() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults = nil
}

// Messages returns the text messages accepted so far.
func (f *FakeTwilio) Messages() []TwilioMessage {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]TwilioMessage(nil), f.messages...)
}

// Calls returns the calls accepted so far.
func (f *FakeTwilio) Calls() []TwilioCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]TwilioCall(nil), f.calls...)
}

// Requests returns every request that reached the fake.
func (f *FakeTwilio) Requests() []TwilioRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]TwilioRequest(nil), f.requests...)
}

// WaitMessages waits until at least n messages are recorded and returns
// them all; it returns what there is when timeout passes.
func (f *FakeTwilio) WaitMessages(n int, timeout time.Duration) []TwilioMessage {
	f.waitFor(timeout, func() bool { return len(f.messages) >= n })
	return f.Messages()
}

// WaitCalls waits until at least n calls are recorded.
func (f *FakeTwilio) WaitCalls(n int, timeout time.Duration) []TwilioCall {
	f.waitFor(timeout, func() bool { return len(f.calls) >= n })
	return f.Calls()
}

// WaitRequests waits until at least n requests arrived.
func (f *FakeTwilio) WaitRequests(n int, timeout time.Duration) []TwilioRequest {
	f.waitFor(timeout, func() bool { return len(f.requests) >= n })
	return f.Requests()
}

func (f *FakeTwilio) waitFor(timeout time.Duration, cond func() bool) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		f.mu.Lock()
		ok, ch := cond(), f.changed
		f.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			return
		}
	}
}

// notifyLocked wakes the waiters; f.mu is held.
func (f *FakeTwilio) notifyLocked() {
	close(f.changed)
	f.changed = make(chan struct{})
}

var apiPath = regexp.MustCompile(`^/2010-04-01/Accounts/([^/]+)/(Messages|Calls)\.json$`)

func (f *FakeTwilio) serve(w http.ResponseWriter, r *http.Request) {
	user, pass, hasAuth := r.BasicAuth()
	authorized := hasAuth && hmac.Equal([]byte(user), []byte(f.AccountSID)) && hmac.Equal([]byte(pass), []byte(f.AuthToken))
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	_ = r.ParseForm()
	req := TwilioRequest{Method: r.Method, Path: r.URL.Path, Host: r.Host, User: user, Authorized: authorized, Form: r.PostForm}

	status, body := f.answer(r, authorized)
	req.Status = status
	f.mu.Lock()
	f.requests = append(f.requests, req)
	f.notifyLocked()
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Twilio-Request-Id", "RQ"+randomHex(16))
	w.WriteHeader(status)
	io.WriteString(w, body)
}

// answer decides the reply to one request and records what was sent.
func (f *FakeTwilio) answer(r *http.Request, authorized bool) (int, string) {
	m := apiPath.FindStringSubmatch(r.URL.Path)
	if m == nil {
		return http.StatusNotFound, twilioError(http.StatusNotFound, 20404, "The requested resource "+r.URL.Path+" was not found")
	}
	if r.Method != http.MethodPost {
		return http.StatusMethodNotAllowed, twilioError(http.StatusMethodNotAllowed, 20004, "Method not allowed")
	}
	if !authorized {
		// Twilio's reply to wrong credentials, word for word.
		return http.StatusUnauthorized, `{"code":20003,"message":"Authenticate","more_info":"https://www.twilio.com/docs/errors/20003","status":401}`
	}
	if m[1] != f.AccountSID {
		return http.StatusForbidden, twilioError(http.StatusForbidden, 20003, "Permission Denied")
	}

	f.mu.Lock()
	var fault *twilioFault
	if len(f.faults) > 0 {
		fault = &f.faults[0]
		f.faults = f.faults[1:]
	}
	f.mu.Unlock()
	if fault != nil {
		if fault.hang > 0 {
			t := time.NewTimer(fault.hang)
			select {
			case <-t.C:
			case <-r.Context().Done(): // the bridge gave up
			case <-f.closing:
			}
			t.Stop()
		}
		if fault.status != 0 {
			return fault.status, fault.body
		}
	}

	form := r.PostForm
	to, from := form.Get("To"), form.Get("From")
	if to == "" {
		return http.StatusBadRequest, twilioError(http.StatusBadRequest, 21604, "A 'To' phone number is required.")
	}
	if from == "" && form.Get("MessagingServiceSid") == "" {
		return http.StatusBadRequest, twilioError(http.StatusBadRequest, 21603, "A 'From' phone number is required.")
	}
	now := time.Now().UTC()
	base := map[string]any{
		"account_sid":  f.AccountSID,
		"api_version":  "2010-04-01",
		"date_created": now.Format(time.RFC1123Z),
		"date_updated": now.Format(time.RFC1123Z),
		"direction":    "outbound-api",
		"from":         from,
		"to":           to,
		"status":       "queued",
		"price":        nil,
		"price_unit":   "USD",
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	defer f.notifyLocked()
	switch m[2] {
	case "Messages":
		body := form.Get("Body")
		if body == "" {
			return http.StatusBadRequest, twilioError(http.StatusBadRequest, 21602, "Message body is required.")
		}
		sid := "SM" + randomHex(16)
		f.messages = append(f.messages, TwilioMessage{SID: sid, To: to, From: from, Body: body, Form: form, At: now})
		base["sid"], base["body"] = sid, body
		base["num_segments"], base["num_media"] = "1", "0"
		base["error_code"], base["error_message"] = nil, nil
		base["messaging_service_sid"] = nil
		base["uri"] = "/2010-04-01/Accounts/" + f.AccountSID + "/Messages/" + sid + ".json"
	default:
		tw := form.Get("Twiml")
		if tw == "" && form.Get("Url") == "" && form.Get("ApplicationSid") == "" {
			return http.StatusBadRequest, twilioError(http.StatusBadRequest, 21205, "Url parameter is required.")
		}
		if len(tw) > 4000 {
			return http.StatusBadRequest, twilioError(http.StatusBadRequest, 32018, "TwiML exceeds 4000 characters")
		}
		sid := "CA" + randomHex(16)
		f.calls = append(f.calls, TwilioCall{SID: sid, To: to, From: from, Twiml: tw, Form: form, At: now})
		base["sid"] = sid
		base["parent_call_sid"], base["duration"], base["start_time"], base["end_time"] = nil, nil, nil, nil
		base["uri"] = "/2010-04-01/Accounts/" + f.AccountSID + "/Calls/" + sid + ".json"
	}
	b, _ := json.Marshal(base)
	return http.StatusCreated, string(b)
}

// twilioError is Twilio's JSON error body.
func twilioError(status, code int, message string) string {
	b, _ := json.Marshal(map[string]any{"code": code, "message": message,
		"more_info": "https://www.twilio.com/docs/errors/" + strconv.Itoa(code), "status": status})
	return string(b)
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// TwilioSignature is X-Twilio-Signature as Twilio computes it:
// base64(HMAC-SHA1(authToken, url + each key and value of the form,
// sorted by key)).
func TwilioSignature(authToken, rawURL string, form url.Values) string {
	keys := make([]string, 0, len(form))
	for k := range form {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(rawURL)
	for _, k := range keys {
		vs := append([]string(nil), form[k]...)
		sort.Strings(vs)
		for _, v := range vs {
			b.WriteString(k)
			b.WriteString(v)
		}
	}
	mac := hmac.New(sha1.New, []byte(authToken))
	mac.Write([]byte(b.String()))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// PressKey plays the callee of call callIndex pressing digits: it posts
// the Gather callback (CallSid, Digits, From, To, AccountSid) to the
// action URL in the call's TwiML, signed with the auth token, or with a
// forged signature when forge is set. It returns the HTTP status and
// body of the bridge's answer.
func (f *FakeTwilio) PressKey(callIndex int, digits string, forge bool) (int, string, error) {
	calls := f.Calls()
	if callIndex < 0 || callIndex >= len(calls) {
		return 0, "", fmt.Errorf("fake twilio: no call %d (%d placed)", callIndex, len(calls))
	}
	c := calls[callIndex]
	form := url.Values{
		"CallSid":    {c.SID},
		"Digits":     {digits},
		"From":       {c.From},
		"To":         {c.To},
		"AccountSid": {f.AccountSID},
	}
	return f.PressKeyForm(callIndex, form, forge)
}

// PressKeyForm is PressKey with a form of the caller's choosing (a wrong
// CallSid, say).
func (f *FakeTwilio) PressKeyForm(callIndex int, form url.Values, forge bool) (int, string, error) {
	calls := f.Calls()
	if callIndex < 0 || callIndex >= len(calls) {
		return 0, "", fmt.Errorf("fake twilio: no call %d (%d placed)", callIndex, len(calls))
	}
	g, ok := calls[callIndex].Gather()
	if !ok || g.Action == "" {
		return 0, "", fmt.Errorf("fake twilio: call %d has no <Gather action=...>:\n%s", callIndex, calls[callIndex].Twiml)
	}
	return f.PostWebhook(g.Action, form, forge)
}

// PostWebhook posts form to rawURL as Twilio posts a webhook.
func (f *FakeTwilio) PostWebhook(rawURL string, form url.Values, forge bool) (int, string, error) {
	sig := TwilioSignature(f.AuthToken, rawURL, form)
	if forge {
		sig = TwilioSignature("forged"+f.AuthToken, rawURL, form)
	}
	req, err := http.NewRequest(http.MethodPost, rawURL, strings.NewReader(form.Encode()))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Twilio-Signature", sig)
	req.Header.Set("User-Agent", "TwilioProxy/1.1")
	hc := &http.Client{Timeout: 10 * time.Second}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	return resp.StatusCode, string(b), nil
}

// TwimlGather is the <Gather> of a call's TwiML.
type TwimlGather struct {
	NumDigits   string
	FinishOnKey *string // nil when the attribute is absent
	Timeout     string
	Method      string
	Action      string
}

// Gather returns the call's <Gather>, attributes unescaped.
func (c TwilioCall) Gather() (TwimlGather, bool) {
	dec := xml.NewDecoder(strings.NewReader(c.Twiml))
	for {
		tok, err := dec.Token()
		if err != nil {
			return TwimlGather{}, false
		}
		se, ok := tok.(xml.StartElement)
		if !ok || se.Name.Local != "Gather" {
			continue
		}
		var g TwimlGather
		for _, a := range se.Attr {
			switch a.Name.Local {
			case "numDigits":
				g.NumDigits = a.Value
			case "finishOnKey":
				v := a.Value
				g.FinishOnKey = &v
			case "timeout":
				g.Timeout = a.Value
			case "method":
				g.Method = a.Value
			case "action":
				g.Action = a.Value
			}
		}
		return g, true
	}
}

// Says returns the text of every <Say> in the call's TwiML, in order,
// XML unescaped; ok is false when the TwiML is not well-formed XML with
// a <Response> root.
func (c TwilioCall) Says() (says []string, ok bool) {
	dec := xml.NewDecoder(strings.NewReader(c.Twiml))
	depth, inSay := 0, false
	var cur strings.Builder
	root := ""
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return says, root == "Response" && depth == 0
		}
		if err != nil {
			return says, false
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				root = t.Name.Local
			}
			depth++
			if t.Name.Local == "Say" {
				inSay = true
				cur.Reset()
			}
		case xml.EndElement:
			depth--
			if t.Name.Local == "Say" {
				inSay = false
				says = append(says, cur.String())
			}
		case xml.CharData:
			if inSay {
				cur.Write(t)
			}
		}
	}
}

var spokenDigits = regexp.MustCompile(`\d(?:, \d)+`)

// SpokenCodes returns each code read out in the call, as a phone user
// hears it ("1, 2, 3, 4, 5, 6" → "123456"), one per <Say> that reads one.
func (c TwilioCall) SpokenCodes() []string {
	says, _ := c.Says()
	var out []string
	for _, s := range says {
		for _, m := range spokenDigits.FindAllString(s, -1) {
			out = append(out, strings.ReplaceAll(m, ", ", ""))
		}
	}
	return out
}

var smsCode = regexp.MustCompile(`\b\d{4,10}\b`)

// Code returns the code in the message as a phone user reads it: the
// last run of 4 to 10 digits.
func (m TwilioMessage) Code() string {
	all := smsCode.FindAllString(m.Body, -1)
	if len(all) == 0 {
		return ""
	}
	return all[len(all)-1]
}

// MessagesTo returns the messages sent to number.
func (f *FakeTwilio) MessagesTo(number string) []TwilioMessage {
	var out []TwilioMessage
	for _, m := range f.Messages() {
		if m.To == number {
			out = append(out, m)
		}
	}
	return out
}

// CallsTo returns the indexes (for PressKey) of the calls to number.
func (f *FakeTwilio) CallsTo(number string) []int {
	var out []int
	for i, c := range f.Calls() {
		if c.To == number {
			out = append(out, i)
		}
	}
	return out
}

// WaitMessageTo waits for message number n (from 0) to number.
func (f *FakeTwilio) WaitMessageTo(number string, n int, timeout time.Duration) (TwilioMessage, bool) {
	var ms []TwilioMessage
	f.waitFor(timeout, func() bool {
		ms = ms[:0]
		for _, m := range f.messages {
			if m.To == number {
				ms = append(ms, m)
			}
		}
		return len(ms) > n
	})
	if len(ms) > n {
		return ms[n], true
	}
	return TwilioMessage{}, false
}

// WaitCallTo waits for call number n (from 0) to number and returns its
// index for PressKey.
func (f *FakeTwilio) WaitCallTo(number string, n int, timeout time.Duration) (int, bool) {
	var idx []int
	f.waitFor(timeout, func() bool {
		idx = idx[:0]
		for i, c := range f.calls {
			if c.To == number {
				idx = append(idx, i)
			}
		}
		return len(idx) > n
	})
	if len(idx) > n {
		return idx[n], true
	}
	return -1, false
}
