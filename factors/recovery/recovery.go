// Package recovery is the recovery-codes factor: ten single-use codes a
// user prints or keeps somewhere safe, for the day the phone is lost.
// Each is 10 random digits (about 33 bits: with the code lockout's five
// wrong guesses, a guesser's chance is five in a thousand million), so
// that append mode can read one after a password like any other code and
// a VPN client's number pad can type it.
//
// The store keeps them as one credential whose secret, sealed like every
// other, is the SHA-256 hash of each code that is left; a code is spent
// by removing its hash in one transaction, so of two logins racing with
// one code, one wins.
package recovery

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"math/big"
	"strings"

	"github.com/mfabridge/mfabridge/factors"
)

// Count is how many codes a set holds; Digits how long each is.
const (
	Count  = 10
	Digits = 10
)

// Store spends codes: internal/store implements it.
type Store interface {
	// UseRecoveryCode removes hash from user's codes and reports whether
	// it was there.
	UseRecoveryCode(ctx context.Context, user string, hash []byte) (bool, error)
}

// Hash is what the store keeps of a code.
func Hash(code string) []byte {
	h := sha256.Sum256([]byte("mfabridge recovery code\x00" + code))
	return h[:]
}

// Generate makes a new set: the codes to show once (as 12345-67890) and
// the credential that holds their hashes.
func Generate() ([]string, factors.Credential, error) {
	var shown []string
	var secret []byte
	limit := new(big.Int).Exp(big.NewInt(10), big.NewInt(Digits), nil)
	for range Count {
		n, err := rand.Int(rand.Reader, limit)
		if err != nil {
			return nil, factors.Credential{}, err
		}
		code := fmt.Sprintf("%0*d", Digits, n)
		shown = append(shown, code[:5]+"-"+code[5:])
		secret = append(secret, Hash(code)...)
	}
	return shown, factors.Credential{Method: factors.Recovery, Secret: secret, Digits: Digits, Active: true}, nil
}

// Left is how many codes of c are unused.
func Left(c factors.Credential) int { return len(c.Secret) / sha256.Size }

// Factor checks recovery codes.
type Factor struct{ store Store }

// New returns the factor, spending codes in s.
func New(s Store) *Factor { return &Factor{store: s} }

func (f *Factor) Method() factors.Method     { return factors.Recovery }
func (f *Factor) Label(*factors.User) string { return "a recovery code" }

func (f *Factor) Enrolled(u *factors.User) bool {
	c, ok := u.Enrolment.Credential(factors.Recovery)
	return ok && Left(c) > 0
}

// CodeLength lets append mode read a code after the password.
func (f *Factor) CodeLength(u *factors.User) int {
	if !f.Enrolled(u) {
		return 0
	}
	return Digits
}

// normalise reads a code as people type it: with a dash or spaces.
func normalise(answer string) (string, bool) {
	code := strings.Map(func(r rune) rune {
		switch {
		case r >= '0' && r <= '9':
			return r
		case r == '-' || r == ' ':
			return -1
		}
		return 'x'
	}, answer)
	return code, len(code) == Digits && !strings.Contains(code, "x")
}

// Check passes a code of u's set that is left, and spends it.
func (f *Factor) Check(ctx context.Context, u *factors.User, answer string) error {
	c, ok := u.Enrolment.Credential(factors.Recovery)
	code, wellFormed := normalise(answer)
	if !ok || !wellFormed {
		return factors.ErrWrongCode
	}
	h := Hash(code)
	found := 0
	for i := 0; i+sha256.Size <= len(c.Secret); i += sha256.Size {
		found |= subtle.ConstantTimeCompare(c.Secret[i:i+sha256.Size], h)
	}
	if found == 0 {
		return factors.ErrWrongCode
	}
	used, err := f.store.UseRecoveryCode(ctx, u.Name, h)
	switch {
	case err != nil:
		return err
	case !used:
		// Spent a moment ago, by another login (the enrolment read was
		// older than that).
		return factors.ErrReplayed
	}
	return nil
}
