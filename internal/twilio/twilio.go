// Package twilio sends text messages and places calls through Twilio's
// REST API with github.com/twilio/twilio-go, and validates the
// signatures of Twilio's webhooks. It is the only place that knows
// Twilio; the sms and voice factors see the small interfaces they
// declare.
//
// twilio-go has no base-URL setting: api_url is honoured by an HTTP
// transport that sends each request to that scheme and host instead.
// It has no context or retries either: each request is bounded by the
// configured timeout, and limits and fallbacks are the factors' job.
package twilio

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"time"

	twilio "github.com/twilio/twilio-go"
	"github.com/twilio/twilio-go/client"
	api "github.com/twilio/twilio-go/rest/api/v2010"

	"github.com/mfabridge/mfabridge/config"
	"github.com/mfabridge/mfabridge/factors"
)

// Client is a Twilio account. It is safe for concurrent use.
type Client struct {
	rc        *twilio.RestClient
	from      string
	validator client.RequestValidator
}

// New builds a client from a resolved configuration.
func New(cfg config.Twilio) (*Client, error) {
	sid, token := cfg.AccountSID.Value(), cfg.AuthToken.Value()
	if sid == "" || token == "" || cfg.From == "" {
		return nil, errors.New("twilio: account_sid, auth_token and from are required")
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	hc := &http.Client{
		Timeout: timeout,
		// Twilio's API never redirects; do not follow one.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	if cfg.APIURL != "" {
		u, err := url.Parse(cfg.APIURL)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("twilio: api_url %q: not a URL", cfg.APIURL)
		}
		hc.Transport = rewrite{to: u, next: http.DefaultTransport}
	}
	c := &client.Client{Credentials: client.NewCredentials(sid, token), HTTPClient: hc}
	c.SetAccountSid(sid)
	return &Client{
		rc:        twilio.NewRestClientWithParams(twilio.ClientParams{Client: c}),
		from:      cfg.From,
		validator: client.NewRequestValidator(token),
	}, nil
}

// rewrite sends every request to another scheme and host, keeping the
// path, query and Host header: api_url for tests and regional edges.
type rewrite struct {
	to   *url.URL
	next http.RoundTripper
}

func (r rewrite) RoundTrip(q *http.Request) (*http.Response, error) {
	q = q.Clone(q.Context())
	q.URL.Scheme, q.URL.Host = r.to.Scheme, r.to.Host
	return r.next.RoundTrip(q)
}

// SendSMS sends body to the E.164 number to.
func (c *Client) SendSMS(_ context.Context, to, body string) error {
	p := &api.CreateMessageParams{}
	p.SetTo(to)
	p.SetFrom(c.from)
	p.SetBody(body)
	_, err := c.rc.Api.CreateMessage(p)
	return sendError(factors.SMS, err)
}

// Call places a call to to that runs twiml; it returns the call's SID
// once Twilio has queued it.
func (c *Client) Call(_ context.Context, to, twiml string) (string, error) {
	p := &api.CreateCallParams{}
	p.SetTo(to)
	p.SetFrom(c.from)
	p.SetTwiml(twiml)
	call, err := c.rc.Api.CreateCall(p)
	if err != nil {
		return "", sendError(factors.Voice, err)
	}
	if call == nil || call.Sid == nil {
		return "", &factors.SendError{Method: factors.Voice, Err: errors.New("twilio returned no call SID")}
	}
	return *call.Sid, nil
}

// Valid checks a webhook's X-Twilio-Signature for the public URL Twilio
// called and the form parameters it posted; the comparison is constant
// time.
func (c *Client) Valid(url string, params map[string]string, signature string) bool {
	return signature != "" && c.validator.Validate(url, params, signature)
}

// sendError keeps Twilio's error code and HTTP status and nothing else:
// the request (which holds the code or the number) never reaches a log.
func sendError(m factors.Method, err error) error {
	if err == nil {
		return nil
	}
	// Twilio's message can quote the number; its code and the page that
	// explains it say enough.
	var te *client.TwilioRestError
	if errors.As(err, &te) {
		return &factors.SendError{Method: m, Code: te.Code, Status: te.Status, Err: fmt.Errorf("twilio error, see %s", te.MoreInfo)}
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return &factors.SendError{Method: m, Err: errors.New("no answer from Twilio in time")}
	}
	// An error body that is not Twilio's JSON (a proxy's HTML page):
	// twilio-go names the HTTP status only in its message.
	if st := httpStatusRE.FindStringSubmatch(err.Error()); st != nil {
		code, _ := strconv.Atoi(st[1])
		return &factors.SendError{Method: m, Status: code, Err: errors.New("twilio answered with an error that is not its JSON")}
	}
	return &factors.SendError{Method: m, Err: errors.New("request to Twilio failed")}
}

var httpStatusRE = regexp.MustCompile(`HTTP error code: (\d{3})`)
