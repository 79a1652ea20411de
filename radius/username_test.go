package radius

import (
	"errors"
	"strings"
	"testing"

	"github.com/mfabridge/mfabridge/config"
)

func TestNormaliseUsername(t *testing.T) {
	lower := config.Username{Lowercase: true}
	keep := config.Username{}
	realm := config.Username{Lowercase: true, StripRealm: true}
	domain := config.Username{Lowercase: true, StripDomain: true}
	both := config.Username{Lowercase: true, StripRealm: true, StripDomain: true}
	tests := []struct {
		name string
		raw  string
		o    config.Username
		want string
		err  error
	}{
		{"plain", "alice", lower, "alice", nil},
		{"trimmed", "  alice \t", lower, "alice", nil},
		{"lower-cased", "Alice.Smith", lower, "alice.smith", nil},
		{"case kept", "Alice.Smith", keep, "Alice.Smith", nil},
		{"non-ASCII lower-cased", "ÉLODIE", lower, "élodie", nil},
		{"realm kept", "alice@example.org", lower, "alice@example.org", nil},
		{"realm stripped", "Alice@EXAMPLE.org", realm, "alice", nil},
		{"last @ is the realm", "a@b@example.org", realm, "a@b", nil},
		{"domain kept", `EXAMPLE\alice`, lower, `example\alice`, nil},
		{"domain stripped", `EXAMPLE\Alice`, domain, "alice", nil},
		{"both stripped", `EXAMPLE\alice@example.org`, both, "alice", nil},
		{"space after domain trimmed", `EXAMPLE\ alice `, domain, "alice", nil},
		{"empty", "", lower, "", errUsernameEmpty},
		{"blank", "  \t ", lower, "", errUsernameEmpty},
		{"empty after realm", "@example.org", realm, "", errUsernameEmpty},
		{"empty after domain", `EXAMPLE\`, domain, "", errUsernameEmpty},
		{"blank after domain", `EXAMPLE\  `, domain, "", errUsernameEmpty},
		{"NUL", "ali\x00ce", lower, "", errUsernameControl},
		{"newline inside", "alice\nbob", lower, "", errUsernameControl},
		{"DEL", "alice\x7f", lower, "", errUsernameControl},
		{"C1 control", "alice\u0085x", lower, "", errUsernameControl},
		{"invalid UTF-8", "alice\xff", lower, "", errUsernameControl},
		{"replacement character", "alice\uFFFD", lower, "", errUsernameControl},
		{"256 bytes", strings.Repeat("a", 256), lower, strings.Repeat("a", 256), nil},
		{"257 bytes", strings.Repeat("a", 257), lower, "", errUsernameLong},
		{"257 bytes of spaces around a name", " " + strings.Repeat("a", 255) + " ", lower, "", errUsernameLong},
		// "Ⱥ" is 2 bytes and lower-cases to "ⱥ", 3 bytes: the limit holds
		// for the name the directory sees (found by FuzzUsername).
		{"lower-casing past the limit", strings.Repeat("Ⱥ", 128), lower, "", errUsernameLong},
		{"lower-casing inside the limit", strings.Repeat("Ⱥ", 85), lower, strings.Repeat("ⱥ", 85), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := normaliseUsername([]byte(tt.raw), tt.o)
			if !errors.Is(err, tt.err) {
				t.Fatalf("error %v, want %v", err, tt.err)
			}
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
