// Package username turns the name a user typed, and the name a
// directory entry holds, into the one form the bridge keys everything
// on: enrolments, lockout counters, send limits, the replay guard,
// remembered logins and audit records.
//
// Typed names are checked with the PRECIS UsernameCaseMapped profile of
// RFC 8265 (UsernameCasePreserved when lowercase is off): width mapping
// and NFKC, case mapping, and refusal of what the profile refuses
// (spaces inside a name, control and format characters, unassigned code
// points, names that break the Bidi rule). A directory matches more
// loosely than any one rule the bridge could apply, so this form only
// chooses what the directory is asked; who the user is comes from the
// entry found (see Canonical).
//
// It imports nothing of the project but config.
package username

import (
	"errors"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/secure/precis"

	"github.com/mfabridge/mfabridge/config"
)

// Max bounds a name in bytes, before and after normalisation; no
// directory holds longer ones and a long name only costs work.
const Max = 256

// Errors of Normalise; each is a bad_username.
var (
	ErrEmpty   = errors.New("username: empty")
	ErrLong    = errors.New("username: too long")
	ErrControl = errors.New("username: control characters or invalid UTF-8")
	ErrRefused = errors.New("username: refused by the PRECIS username profile (RFC 8265)")
)

// Normalise turns a User-Name into the name the directory is asked
// about (DESIGN §2 step 5): spaces at either end dropped, then the
// PRECIS profile, then DOMAIN\ and @realm stripped when configured. A
// control character anywhere, a trailing CR or LF included, refuses the
// name rather than being trimmed away: what the user sent is not what
// the directory would be asked.
func Normalise(raw []byte, o config.Username) (string, error) {
	if len(raw) > Max {
		return "", ErrLong
	}
	if !utf8.Valid(raw) {
		return "", ErrControl
	}
	for _, r := range string(raw) {
		if unicode.IsControl(r) || r == utf8.RuneError {
			return "", ErrControl
		}
	}
	s := strings.Trim(string(raw), " ")
	if s == "" {
		return "", ErrEmpty
	}
	s, err := profile(o.Lowercase).String(s)
	if err != nil {
		return "", ErrRefused
	}
	stripped := false
	if o.StripDomain {
		if i := strings.LastIndexByte(s, '\\'); i >= 0 {
			s, stripped = s[i+1:], true
		}
	}
	if o.StripRealm {
		if i := strings.LastIndexByte(s, '@'); i >= 0 {
			s, stripped = s[:i], true
		}
	}
	switch {
	case s == "":
		return "", ErrEmpty
	case len(s) > Max:
		// Some letters grow when mapped ("Ⱥ" is 2 bytes, "ⱥ" 3).
		return "", ErrLong
	}
	if stripped {
		// What is left must pass the profile on its own: its first or
		// last character is new, and the Bidi rule looks at both.
		if _, err := profile(o.Lowercase).String(s); err != nil {
			return "", ErrRefused
		}
	}
	return s, nil
}

// Canonical is the form of a name as a directory entry stores it (its
// naming attribute): the same PRECIS profile as typed names, without
// stripping, so that an entry has one name however it was found.
func Canonical(stored string, lowercase bool) (string, error) {
	if stored == "" {
		return "", ErrEmpty
	}
	if len(stored) > Max {
		return "", ErrLong
	}
	s, err := profile(lowercase).String(stored)
	if err != nil {
		return "", ErrRefused
	}
	if len(s) > Max {
		return "", ErrLong
	}
	return s, nil
}

func profile(lowercase bool) *precis.Profile {
	if lowercase {
		return precis.UsernameCaseMapped
	}
	return precis.UsernameCasePreserved
}
