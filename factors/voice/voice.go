package voice

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"strings"
	"time"

	"github.com/mfabridge/mfabridge/factors"
)

// Caller places a call that runs TwiML; internal/twilio implements it.
type Caller interface {
	Call(ctx context.Context, to, twiml string) (callSID string, err error)
}

// Mode is code or approve.
type Mode string

const (
	ModeCode    Mode = "code"
	ModeApprove Mode = "approve"
)

// Options configure the factor.
type Options struct {
	Caller      Caller
	Mode        Mode
	Codes       *factors.SentCodes // code mode
	Limits      *factors.SendLimits
	KV          factors.KV    // approve mode: the approvals
	ApproveTTL  time.Duration // approve mode: how long an approval lives
	PublicURL   string        // approve mode: where Twilio reaches the webhook
	Issuer      string
	CountryCode string
}

// Voice is the phone-call factor.
type Voice struct{ o Options }

// New returns the factor.
func New(o Options) *Voice { return &Voice{o: o} }

func (v *Voice) Method() factors.Method { return factors.Voice }

// Mode reports the configured mode.
func (v *Voice) Mode() Mode { return v.o.Mode }

func (v *Voice) number(u *factors.User) string {
	n, ok := factors.NormalisePhone(u.Voice, v.o.CountryCode)
	if !ok {
		return ""
	}
	return n
}

func (v *Voice) Label(u *factors.User) string {
	return "a phone call to " + factors.MaskPhone(v.number(u))
}

// Enrolled: a user with a usable voice number can be called.
func (v *Voice) Enrolled(u *factors.User) bool { return v.number(u) != "" }

// CodeLength is the length of the code read out; approve mode has none.
func (v *Voice) CodeLength(*factors.User) int {
	if v.o.Mode == ModeCode {
		return v.o.Codes.Length
	}
	return 0
}

// Start places the call, within the limits.
func (v *Voice) Start(ctx context.Context, u *factors.User) (factors.Prompt, error) {
	to := v.number(u)
	if to == "" {
		return factors.Prompt{}, factors.ErrNotEnrolled
	}
	if err := v.o.Limits.Allow(ctx, factors.Voice, u.Name); err != nil {
		return factors.Prompt{}, err
	}
	masked := factors.MaskPhone(to)
	if v.o.Mode == ModeApprove {
		token, err := v.startApproval(ctx, u.Name, to)
		if err != nil {
			return factors.Prompt{}, err
		}
		return factors.Prompt{Text: "Answer the call to " + masked + " and press # to approve.", Ref: token}, nil
	}
	code, err := v.o.Codes.Issue(ctx, factors.Voice, u.Name)
	if err != nil {
		return factors.Prompt{}, err
	}
	if _, err := v.o.Caller.Call(ctx, to, codeTwiML(v.o.Issuer, code)); err != nil {
		return factors.Prompt{}, err
	}
	return factors.Prompt{Text: "A call to " + masked + " will read you a code."}, nil
}

// Check verifies the code read out (code mode). An approval is not a
// code: in approve mode every answer is wrong, and the approval is asked
// for with Approval and Take, by the challenge that started it.
func (v *Voice) Check(ctx context.Context, u *factors.User, answer string) error {
	if v.o.Mode == ModeCode {
		return v.o.Codes.Check(ctx, factors.Voice, u.Name, answer)
	}
	return factors.ErrWrongCode
}

// Factor returns the factor to offer: in approve mode it is also a
// factors.Approver, which tells the conversation to wait for the # rather
// than for a typed code.
func (v *Voice) Factor() factors.Starter {
	if v.o.Mode == ModeApprove {
		return approver{v}
	}
	return v
}

// approver is the voice factor in approve mode.
type approver struct{ *Voice }

// An approval is three keys in the state store, each written once, so
// that no step reads a value and writes it back (another instance may be
// at the same approval): the record (who, until when), the call's SID
// (set once the call is placed; the webhook accepts that call only), and
// the result (the first key the callee pressed; written with SetNX, so
// it is never changed).
func tokenKey(token string) string  { return "approve:token:" + token }
func sidKey(token string) string    { return "approve:sid:" + token }
func resultKey(token string) string { return "approve:result:" + token }

// Approval reports where the approval ref of u stands.
func (a approver) Approval(ctx context.Context, u *factors.User, ref string) (factors.Approval, error) {
	if _, err := a.record(ctx, u.Name, ref); err != nil {
		return factors.Pending, err
	}
	res, ok, err := a.o.KV.Get(ctx, resultKey(ref))
	if err != nil || !ok {
		return factors.Pending, err
	}
	switch string(res) {
	case "approved":
		return factors.Approved, nil
	case "refused":
		return factors.Refused, nil
	}
	return factors.Pending, nil
}

// Take uses the approved approval ref of u: it lets in one login. Of two
// takers (two instances), one gets the record.
func (a approver) Take(ctx context.Context, u *factors.User, ref string) error {
	st, err := a.Approval(ctx, u, ref)
	if err != nil {
		return err
	}
	switch st {
	case factors.Refused:
		return factors.ErrRefused
	case factors.Pending:
		return factors.ErrNotYet
	}
	if _, ok, err := a.o.KV.Take(ctx, tokenKey(ref)); err != nil {
		return err
	} else if !ok {
		return factors.ErrReplayed
	}
	return nil
}

// record is one approval: a call placed to user, waiting for a key.
type record struct {
	User    string    `json:"user"`
	Expires time.Time `json:"expires"`
}

// startApproval records a pending approval and places the call; it
// returns the approval's token, which only its caller knows.
func (v *Voice) startApproval(ctx context.Context, user, to string) (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	token := hex.EncodeToString(b)
	// The approval lives as long as what waits for it: the challenge
	// session or the held request, whose deadline ctx carries.
	ttl := v.o.ApproveTTL
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < ttl {
		ttl = time.Until(dl)
	}
	rec, _ := json.Marshal(record{User: user, Expires: time.Now().Add(ttl)})
	if err := v.o.KV.Set(ctx, tokenKey(token), rec, ttl); err != nil {
		return "", err
	}
	sid, err := v.o.Caller.Call(ctx, to, approveTwiML(v.o.Issuer, v.actionURL(token)))
	if err != nil {
		v.o.KV.Delete(ctx, tokenKey(token))
		return "", err
	}
	// Keep the call's SID, so that the webhook accepts this call only.
	v.o.KV.Set(ctx, sidKey(token), []byte(sid), ttl)
	return token, nil
}

// record reads approval token of user.
func (v *Voice) record(ctx context.Context, user, token string) (record, error) {
	b, ok, err := v.o.KV.Get(ctx, tokenKey(token))
	if err != nil {
		return record{}, err
	}
	var r record
	if !ok || json.Unmarshal(b, &r) != nil || r.User != user || !time.Now().Before(r.Expires) {
		return record{}, factors.ErrExpired
	}
	return r, nil
}

// WebhookPath is where Twilio posts the key pressed, under public_url.
const WebhookPath = "/twilio/voice/"

func (v *Voice) actionURL(token string) string {
	return strings.TrimRight(v.o.PublicURL, "/") + WebhookPath + token
}

// codeTwiML reads the code digit by digit, twice.
func codeTwiML(issuer, code string) string {
	digits := strings.Join(strings.Split(code, ""), ", ")
	return twiml(
		say{Text: fmt.Sprintf("Your %s sign-in code is: %s.", issuer, digits)},
		pause{Length: 1},
		say{Text: fmt.Sprintf("Again, your code is: %s.", digits)},
	)
}

// approveTwiML asks for #. finishOnKey is emptied so that # is the digit
// gathered rather than the key that ends input.
func approveTwiML(issuer, action string) string {
	return twiml(
		gather{NumDigits: 1, FinishOnKey: "", Timeout: 15, Method: "POST", Action: action,
			Say: say{Text: fmt.Sprintf("This is %s. Someone is signing in as you. To approve, press the hash key. To refuse, press any other key.", issuer)}},
		say{Text: "No key was pressed, so the sign-in was not approved. Goodbye."},
	)
}

type say struct {
	XMLName xml.Name `xml:"Say"`
	Text    string   `xml:",chardata"`
}

type pause struct {
	XMLName xml.Name `xml:"Pause"`
	Length  int      `xml:"length,attr"`
}

type gather struct {
	XMLName     xml.Name `xml:"Gather"`
	NumDigits   int      `xml:"numDigits,attr"`
	FinishOnKey string   `xml:"finishOnKey,attr"`
	Timeout     int      `xml:"timeout,attr"`
	Method      string   `xml:"method,attr"`
	Action      string   `xml:"action,attr"`
	Say         say
}

// twiml renders a TwiML document; encoding/xml escapes the text.
func twiml(verbs ...any) string {
	b, err := xml.Marshal(struct {
		XMLName xml.Name `xml:"Response"`
		Verbs   []any
	}{Verbs: verbs})
	if err != nil {
		return ""
	}
	return xml.Header + string(b)
}
