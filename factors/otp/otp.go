package otp

import (
	"context"
	"crypto/subtle"
	"encoding/base32"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"

	"github.com/mfabridge/mfabridge/factors"
)

// Guard is a once-only check: Once reports true the first time key is
// seen within ttl. The ephemeral state store provides it.
type Guard interface {
	SetNX(ctx context.Context, key string, val []byte, ttl time.Duration) (bool, error)
}

// Counters moves a user's HOTP counter forward atomically. The enrolment
// store provides it.
type Counters interface {
	// AdvanceCounter sets the counter from from to to if it is still from,
	// and reports whether it did.
	AdvanceCounter(ctx context.Context, user string, from, to uint64) (bool, error)
}

// TOTP is the authenticator-app factor.
type TOTP struct {
	skew  int
	guard Guard
	now   func() time.Time
}

// NewTOTP returns the TOTP factor; skew is the number of time steps
// accepted either side of now.
func NewTOTP(skew int, guard Guard, now func() time.Time) *TOTP {
	if now == nil {
		now = time.Now
	}
	return &TOTP{skew: skew, guard: guard, now: now}
}

func (t *TOTP) Method() factors.Method     { return factors.TOTP }
func (t *TOTP) Label(*factors.User) string { return "the code from your authenticator app" }

func (t *TOTP) Enrolled(u *factors.User) bool {
	_, ok := u.Enrolment.Credential(factors.TOTP)
	return ok
}

// CodeLength is the number of digits the user's app shows.
func (t *TOTP) CodeLength(u *factors.User) int {
	c, _ := u.Enrolment.Credential(factors.TOTP)
	return c.Digits
}

// Check accepts a code for the current time step or up to skew steps
// either side, once per step.
func (t *TOTP) Check(ctx context.Context, u *factors.User, answer string) error {
	c, code, err := credentialAndCode(u, factors.TOTP, answer)
	if err != nil {
		return err
	}
	period := int64(c.Period)
	if period <= 0 {
		period = 30
	}
	cur := t.now().Unix() / period
	step, ok := match(c, code, uint64(max(cur-int64(t.skew), 0)), uint64(cur+int64(t.skew)))
	if !ok {
		return factors.ErrWrongCode
	}
	// The step stays guarded for as long as it could be accepted.
	ttl := time.Duration(period*(2*int64(t.skew)+2)) * time.Second
	first, err := t.guard.SetNX(ctx, "otp:totp:"+u.Name+":"+strconv.FormatUint(step, 10), []byte{1}, ttl)
	if err != nil {
		return fmt.Errorf("otp: replay guard: %w", err)
	}
	if !first {
		return factors.ErrReplayed
	}
	return nil
}

// replayWindow is how many used HOTP counters behind the stored one are
// recognised as replays.
const replayWindow = 10

// HOTP is the hardware-token factor.
type HOTP struct {
	lookAhead int
	counters  Counters
}

// NewHOTP returns the HOTP factor; lookAhead counters past the stored one
// are tried, which resynchronises a token pressed without logging in.
func NewHOTP(lookAhead int, counters Counters) *HOTP {
	return &HOTP{lookAhead: lookAhead, counters: counters}
}

func (h *HOTP) Method() factors.Method     { return factors.HOTP }
func (h *HOTP) Label(*factors.User) string { return "the code from your hardware token" }

func (h *HOTP) Enrolled(u *factors.User) bool {
	_, ok := u.Enrolment.Credential(factors.HOTP)
	return ok
}

// CodeLength is the number of digits the token shows.
func (h *HOTP) CodeLength(u *factors.User) int {
	c, _ := u.Enrolment.Credential(factors.HOTP)
	return c.Digits
}

// Check accepts the code for the stored counter or one up to lookAhead
// past it, then moves the counter past the match by compare-and-set: of
// two requests with the same code, one wins.
func (h *HOTP) Check(ctx context.Context, u *factors.User, answer string) error {
	c, code, err := credentialAndCode(u, factors.HOTP, answer)
	if err != nil {
		return err
	}
	counter, ok := match(c, code, c.Counter, c.Counter+uint64(h.lookAhead))
	if !ok {
		// A code just behind the counter was used before (or skipped by a
		// resync): say so, so that the audit log shows a replay and not a
		// typing error.
		if c.Counter > 0 {
			if _, used := match(c, code, c.Counter-min(c.Counter, replayWindow), c.Counter-1); used {
				return factors.ErrReplayed
			}
		}
		return factors.ErrWrongCode
	}
	moved, err := h.counters.AdvanceCounter(ctx, u.Name, c.Counter, counter+1)
	if err != nil {
		return fmt.Errorf("otp: hotp counter: %w", err)
	}
	if !moved {
		return factors.ErrReplayed
	}
	return nil
}

// Claim checks a first code from a hardware token that is not yet any
// user's (claimed by its serial in the portal): the code for c's counter
// or one up to lookAhead past it. It returns the counter to store next.
func Claim(c factors.Credential, answer string, lookAhead int) (next uint64, ok bool) {
	code, ok := normalise(answer, c.Digits)
	if !ok {
		return 0, false
	}
	at, ok := match(c, code, c.Counter, c.Counter+uint64(lookAhead))
	return at + 1, ok
}

// credentialAndCode finds the user's active credential for m and checks
// that answer has the form of its codes.
func credentialAndCode(u *factors.User, m factors.Method, answer string) (factors.Credential, string, error) {
	c, ok := u.Enrolment.Credential(m)
	if !ok {
		return c, "", factors.ErrNotEnrolled
	}
	code, ok := normalise(answer, c.Digits)
	if !ok {
		return c, "", factors.ErrWrongCode
	}
	return c, code, nil
}

// match returns the first counter from from to to (inclusive) whose code
// is code. Every candidate is computed and compared in constant time, so
// the time taken does not tell where the match was.
func match(c factors.Credential, code string, from, to uint64) (uint64, bool) {
	found, at := false, uint64(0)
	opts := options(c)
	secret := b32.EncodeToString(c.Secret) // once, not once per candidate
	for n := from; n <= to; n++ {
		if equal(code, generateWith(secret, n, opts)) && !found {
			found, at = true, n
		}
	}
	return at, found
}

// normalise strips spaces and checks the code is digits of the right
// length.
func normalise(answer string, digits int) (string, bool) {
	s := strings.ReplaceAll(strings.TrimSpace(answer), " ", "")
	if len(s) != digits {
		return "", false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return "", false
		}
	}
	return s, true
}

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// generate computes the code for counter (RFC 4226; RFC 6238 is the same
// with the time step as the counter).
func generate(c factors.Credential, counter uint64) string {
	return generateWith(b32.EncodeToString(c.Secret), counter, options(c))
}

// generateWith is generate for a secret already in base32, pquerna's form.
func generateWith(secret string, counter uint64, opts hotp.ValidateOpts) string {
	code, err := hotp.GenerateCodeCustom(secret, counter, opts)
	if err != nil {
		return ""
	}
	return code
}

func options(c factors.Credential) hotp.ValidateOpts {
	return hotp.ValidateOpts{Digits: otp.Digits(c.Digits), Algorithm: Algorithm(c.Algorithm)}
}

// Algorithm maps a configured name to pquerna's type; unknown names are
// SHA1, which config validation rules out.
func Algorithm(name string) otp.Algorithm {
	switch name {
	case "SHA256":
		return otp.AlgorithmSHA256
	case "SHA512":
		return otp.AlgorithmSHA512
	}
	return otp.AlgorithmSHA1
}

// Generate returns the code for counter; tests and the demo use it to
// play the part of an authenticator.
func Generate(c factors.Credential, counter uint64) string { return generate(c, counter) }
