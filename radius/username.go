package radius

import (
	"errors"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/mfabridge/mfabridge/config"
)

// maxUsername bounds a login name in bytes; no directory holds longer ones
// and a long name only costs work.
const maxUsername = 256

var (
	errUsernameEmpty   = errors.New("empty User-Name")
	errUsernameLong    = errors.New("User-Name too long")
	errUsernameControl = errors.New("User-Name holds control characters or invalid UTF-8")
)

// normaliseUsername turns a User-Name into the name the directory is asked
// about (DESIGN §2 step 5): trimmed, length-limited, no control characters
// or invalid UTF-8, DOMAIN\ and @realm stripped when configured, and
// lower-cased when configured.
func normaliseUsername(raw []byte, o config.Username) (string, error) {
	if len(raw) > maxUsername {
		return "", errUsernameLong
	}
	if !utf8.Valid(raw) {
		return "", errUsernameControl
	}
	s := strings.TrimSpace(string(raw))
	for _, r := range s {
		if unicode.IsControl(r) || r == unicode.ReplacementChar {
			return "", errUsernameControl
		}
	}
	if o.StripDomain {
		if i := strings.LastIndexByte(s, '\\'); i >= 0 {
			s = s[i+1:]
		}
	}
	if o.StripRealm {
		if i := strings.LastIndexByte(s, '@'); i >= 0 {
			s = s[:i]
		}
	}
	s = strings.TrimSpace(s)
	if o.Lowercase {
		// Some letters grow when lower-cased ("Ⱥ" is 2 bytes, "ⱥ" 3).
		if s = strings.ToLower(s); len(s) > maxUsername {
			return "", errUsernameLong
		}
	}
	if s == "" {
		return "", errUsernameEmpty
	}
	return s, nil
}

// NormaliseUsername applies the server's username rules, so that the
// admin commands store credentials under the name logins will use.
func NormaliseUsername(raw string, o config.Username) (string, error) {
	return normaliseUsername([]byte(raw), o)
}
