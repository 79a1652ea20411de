package factors

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Method names a second factor, as written in policies.
type Method string

// The methods.
const (
	TOTP  Method = "totp"
	HOTP  Method = "hotp"
	SMS   Method = "sms"
	Voice Method = "voice"
)

// Factor is one second factor, as the conversation sees it.
type Factor interface {
	// Method names the factor.
	Method() Method
	// Label is how a prompt names the factor: "the code from your
	// authenticator app".
	Label() string
	// Enrolled reports whether u can use the factor now.
	Enrolled(u *User) bool
	// Check verifies an answer: nil passes; ErrWrongCode and ErrReplayed
	// refuse; anything else is a failure of the factor itself.
	Check(ctx context.Context, u *User, answer string) error
}

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
)

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
	// LockoutEpoch changes when an admin resets the user's lockout; the
	// lockout counters are kept per epoch, so a reset starts them afresh.
	LockoutEpoch int64
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
