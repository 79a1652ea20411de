package otp

// Secrets as administrators and token vendors hand them over: the forms
// mfabridge enrol and enrol import read.

import (
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// ParseBase32 reads a base32 secret as authenticator exports write it:
// any case, spaces or dashes between groups, padding optional.
func ParseBase32(s string) ([]byte, error) {
	s = strings.ToUpper(strings.NewReplacer(" ", "", "-", "").Replace(strings.TrimSpace(s)))
	s = strings.TrimRight(s, "=")
	b, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(s)
	if err != nil {
		return nil, errors.New("not valid base32")
	}
	return b, nil
}

// ParseSeed reads an HOTP seed. Token vendors ship seeds in hex;
// "hex:" or "base32:" in front says which. Without a prefix, hex of 16,
// 20, 32 or 64 bytes is read as hex, anything else as base32.
func ParseSeed(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	switch {
	case strings.HasPrefix(s, "hex:"):
		b, err := hex.DecodeString(strings.TrimPrefix(s, "hex:"))
		if err != nil {
			return nil, errors.New("not valid hex")
		}
		return b, nil
	case strings.HasPrefix(s, "base32:"):
		return ParseBase32(strings.TrimPrefix(s, "base32:"))
	}
	if b, err := hex.DecodeString(s); err == nil && (len(b) == 16 || len(b) == 20 || len(b) == 32 || len(b) == 64) {
		return b, nil
	}
	return ParseBase32(s)
}

// CheckSecretLength refuses keys too short to resist guessing (RFC 4226
// §4 asks for at least 128 bits) and absurdly long ones.
func CheckSecretLength(b []byte) error {
	if len(b) < 16 {
		return fmt.Errorf("the secret is %d bytes; at least 16 (128 bits) are required", len(b))
	}
	if len(b) > 128 {
		return fmt.Errorf("the secret is %d bytes; at most 128 are accepted", len(b))
	}
	return nil
}
