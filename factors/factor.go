package factors

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mfabridge/mfabridge/internal/audit"
)

// Method names a second factor, as written in policies.
type Method string

// The methods.
const (
	TOTP  Method = "totp"
	HOTP  Method = "hotp"
	SMS   Method = "sms"
	Voice Method = "voice"
	// Smartcard names EAP-TLS logins in audit records.
	Smartcard Method = "smartcard"
	// Cert is a client certificate enrolled with mfabridge enrol cert.
	Cert Method = "cert"
	// Recovery is a set of single-use recovery codes (factors/recovery).
	Recovery Method = "recovery"
)

// ErrCertNotEnrolled is a valid certificate that is not the one enrolled
// for its user (match_stored_certificate).
var ErrCertNotEnrolled error = &audit.Refusal{Reason: audit.ReasonCertNotEnrolled, Msg: "the certificate is not the one enrolled for the user"}

// CertIdentity is who a client certificate says it belongs to.
type CertIdentity struct {
	// Value is the identity as the certificate carries it: a UPN, an
	// email address, or a subject CN.
	Value string
	// Login is the name to look the user up by with user_filter (a
	// subject CN, or the local part of a UPN in an allowed realm); ""
	// means the whole Value is looked up in the directory attribute that
	// holds certificate identities.
	Login string
	// SID is the security identifier of the strong certificate mapping
	// extension (1.3.6.1.4.1.311.25.2, KB5014754), "" when absent.
	SID string
}

// Factor is one second factor, as the conversation sees it.
type Factor interface {
	// Method names the factor.
	Method() Method
	// Label is how a prompt names the factor for u: "the code from your
	// authenticator app", "a text message to ******0001".
	Label(u *User) string
	// Enrolled reports whether u can use the factor now.
	Enrolled(u *User) bool
	// Check verifies an answer: nil passes; ErrWrongCode and ErrReplayed
	// refuse; anything else is a failure of the factor itself.
	Check(ctx context.Context, u *User, answer string) error
}

// Starter is a factor that sends something when chosen: a text message
// or a call. Start sends it and says what was sent.
type Starter interface {
	Factor
	Start(ctx context.Context, u *User) (Prompt, error)
}

// Prompt is what a factor tells the user after starting.
type Prompt struct {
	Text string // "A text message with a code was sent to ******0001."
	// Ref names what was started, for an Approver: only the challenge or
	// request holding it may use the approval.
	Ref string
}

// Approver is a factor answered out of band (a call answered with #):
// after Start, Approval reports where the approval named by the
// prompt's Ref stands, and Take uses an approved one, once.
type Approver interface {
	Starter
	Approval(ctx context.Context, u *User, ref string) (Approval, error)
	Take(ctx context.Context, u *User, ref string) error
}

// Approval is the state of an out-of-band approval.
type Approval int

const (
	Pending Approval = iota
	Approved
	Refused
)

// CodeLength is implemented by factors whose answer is a code of fixed
// length typed by the user, which append mode cuts off the password.
type CodeLength interface {
	CodeLength(u *User) int
}

var (
	// ErrWrongCode is a code that does not match.
	ErrWrongCode = errors.New("wrong code")
	// ErrReplayed is a right code used before: a time step or counter is
	// accepted once.
	ErrReplayed = errors.New("code already used")
	// ErrNotEnrolled means the user holds no usable credential for the
	// factor.
	ErrNotEnrolled = errors.New("not enrolled")
	// ErrRateLimited means a send was refused by a per-user or global limit.
	ErrRateLimited = errors.New("send limit reached")
	// ErrExpired means no code or approval is pending (never sent, used
	// up, or past its lifetime).
	ErrExpired = errors.New("nothing pending")
)

// SendError is a failure of the outside service that sends codes or
// places calls; Code is the service's own error code, for the log.
type SendError struct {
	Method Method
	Code   int // e.g. Twilio's 21211; 0 when unknown (a timeout)
	Status int // HTTP status; 0 for a network failure
	Err    error
}

func (e *SendError) Error() string {
	return fmt.Sprintf("%s: send failed (service error %d, HTTP %d): %v", e.Method, e.Code, e.Status, e.Err)
}

func (e *SendError) Unwrap() error { return e.Err }

// Credential is a user's enrolment in one code-based method. Secret is
// the raw key; String never shows it.
type Credential struct {
	Method    Method
	Secret    []byte
	Algorithm string // SHA1, SHA256, SHA512
	Digits    int
	Period    int    // seconds, TOTP
	Counter   uint64 // HOTP: the next counter expected
	Active    bool   // false until the first code is confirmed
	Default   bool
	Created   time.Time
	LastUsed  time.Time // zero when never used
}

func (c Credential) String() string {
	return fmt.Sprintf("%s credential (%s, %d digits, active=%t)", c.Method, c.Algorithm, c.Digits, c.Active)
}

// GoString keeps %#v from printing the secret.
func (c Credential) GoString() string { return c.String() }

// Enrolment is what the enrolment store holds for one user.
type Enrolment struct {
	Credentials []Credential
	// Default is the method the user picked to be asked for first, when
	// it is not a stored credential (sms, voice); "" otherwise.
	Default Method
	// LockoutEpoch changes when an admin resets the user's lockout; the
	// lockout counters are kept per epoch, so a reset starts them afresh.
	LockoutEpoch int64
	// Reported is when the user said a sign-in was not theirs ("This
	// wasn't me" in the portal): every login is refused until an admin
	// resets the user. Zero: not reported.
	Reported time.Time
}

// SignIn is one decision about a user, kept for the user's own history.
type SignIn struct {
	Time    time.Time
	Client  string // the configured client, or portal
	Station string // Calling-Station-Id
	Outcome string // accept or reject
	Method  Method // the second factor, when one was used
	Reason  string
}

// Clone returns a copy of e whose credentials can be changed without
// changing e's (the secrets are shared: nothing writes to them).
func (e *Enrolment) Clone() *Enrolment {
	c := *e
	c.Credentials = append([]Credential(nil), e.Credentials...)
	return &c
}

// Credential returns the user's active credential for m.
func (e *Enrolment) Credential(m Method) (Credential, bool) {
	if e == nil {
		return Credential{}, false
	}
	for _, c := range e.Credentials {
		if c.Method == m && c.Active {
			return c, true
		}
	}
	return Credential{}, false
}
