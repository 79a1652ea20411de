package username

import (
	"errors"
	"strings"
	"testing"
	"unicode"

	"github.com/mfabridge/mfabridge/config"
)

func TestNormalise(t *testing.T) {
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
		{"spaces at the ends", "  alice ", lower, "alice", nil},
		{"lower-cased", "Alice.Smith", lower, "alice.smith", nil},
		{"case kept", "Alice.Smith", keep, "Alice.Smith", nil},
		{"non-ASCII lower-cased", "ÉLODIE", lower, "élodie", nil},
		{"decomposed accent composed", "e\u0301lodie", lower, "élodie", nil},
		{"fullwidth first letter", "Ａlice", lower, "alice", nil},
		{"all fullwidth", "ａｌｉｃｅ", lower, "alice", nil},
		{"fullwidth kept in case", "ＡＬＩＣＥ", keep, "ALICE", nil},
		{"Kelvin sign", "\u212arystal", lower, "krystal", nil},
		{"fullwidth at sign is a realm", "alice＠example.org", realm, "alice", nil},
		{"fullwidth backslash is a domain", "EXAMPLE＼alice", domain, "alice", nil},
		{"realm kept", "alice@example.org", lower, "alice@example.org", nil},
		{"realm stripped", "Alice@EXAMPLE.org", realm, "alice", nil},
		{"last @ is the realm", "a@b@example.org", realm, "a@b", nil},
		// Found by FuzzNormalise: "é!" alone fails the Bidi rule.
		{"what is left after the realm passes the profile", "É!@0", realm, "", ErrRefused},
		{"domain kept", `EXAMPLE\alice`, lower, `example\alice`, nil},
		{"domain stripped", `EXAMPLE\Alice`, domain, "alice", nil},
		{"both stripped", `EXAMPLE\alice@example.org`, both, "alice", nil},
		{"empty", "", lower, "", ErrEmpty},
		{"blank", "   ", lower, "", ErrEmpty},
		{"empty after realm", "@example.org", realm, "", ErrEmpty},
		{"empty after domain", `EXAMPLE\`, domain, "", ErrEmpty},
		{"space inside", "ali ce", lower, "", ErrRefused},
		{"space after domain", `EXAMPLE\ alice`, domain, "", ErrRefused},
		{"ligature", "\ufb01ona", lower, "", ErrRefused},
		{"zero-width space", "alice\u200b", lower, "", ErrRefused},
		{"no-break space", "alice\u00a0", lower, "", ErrRefused},
		{"trailing CR", "alice\r", lower, "", ErrControl},
		{"trailing LF", "alice\n", lower, "", ErrControl},
		{"trailing CR LF", "alice\r\n", lower, "", ErrControl},
		{"leading tab", "\talice", lower, "", ErrControl},
		{"NUL", "ali\x00ce", lower, "", ErrControl},
		{"DEL", "alice\x7f", lower, "", ErrControl},
		{"C1 control", "alice\u0085x", lower, "", ErrControl},
		{"invalid UTF-8", "alice\xff", lower, "", ErrControl},
		{"replacement character", "alice\uFFFD", lower, "", ErrControl},
		{"256 bytes", strings.Repeat("a", 256), lower, strings.Repeat("a", 256), nil},
		{"257 bytes", strings.Repeat("a", 257), lower, "", ErrLong},
		{"mapping past the limit", strings.Repeat("Ⱥ", 128), lower, "", ErrLong},
		{"mapping inside the limit", strings.Repeat("Ⱥ", 85), lower, strings.Repeat("ⱥ", 85), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Normalise([]byte(tt.raw), tt.o)
			if !errors.Is(err, tt.err) {
				t.Fatalf("error %v, want %v", err, tt.err)
			}
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestCanonical(t *testing.T) {
	for _, tt := range []struct {
		stored string
		lower  bool
		want   string
		err    error
	}{
		{"alice", true, "alice", nil},
		{"Alice", true, "alice", nil},
		{"Alice", false, "Alice", nil},
		{"ＡＬＩＣＥ", true, "alice", nil},
		{"alice@Example.org", true, "alice@example.org", nil},
		{"John Smith", true, "", ErrRefused},
		{"", true, "", ErrEmpty},
	} {
		got, err := Canonical(tt.stored, tt.lower)
		if !errors.Is(err, tt.err) || got != tt.want {
			t.Errorf("Canonical(%q, %t) = %q, %v; want %q, %v", tt.stored, tt.lower, got, err, tt.want, tt.err)
		}
	}
}

// Every typed spelling the profile accepts maps to the form Canonical
// gives the stored name: a user typing their own name in another width
// or case is the same user.
func TestTypedAndStoredAgree(t *testing.T) {
	for _, stored := range []string{"alice", "Bob.Smith", "élodie", "o'neil"} {
		want, err := Canonical(stored, true)
		if err != nil {
			t.Fatal(err)
		}
		for _, typed := range []string{stored, strings.ToUpper(stored), strings.ToLower(stored), wide(stored)} {
			got, err := Normalise([]byte(typed), config.Username{Lowercase: true})
			if err != nil || got != want {
				t.Errorf("%q typed as %q: %q, %v; want %q", stored, typed, got, err, want)
			}
		}
	}
}

func wide(s string) string {
	return strings.Map(func(r rune) rune {
		if r > 0x20 && r < 0x7f {
			return r + 0xfee0
		}
		return r
	}, s)
}

// FuzzNormalise: no panic; an accepted name is short enough, holds no
// control, format or space character, and is a fixed point (normalising
// it again changes nothing), so that the directory and the store see
// one form.
func FuzzNormalise(f *testing.F) {
	for _, s := range []string{"alice", " Alice@Example.ORG ", `DOMAIN\bob`, "a\x00b", "\xff", "@", `\`, "ÉLODIE", "Ⱥ", "\u0085", "Ａlice", "\ufb01"} {
		f.Add([]byte(s), true, true, true)
	}
	f.Fuzz(func(t *testing.T, raw []byte, lower, realm, domain bool) {
		o := config.Username{Lowercase: lower, StripRealm: realm, StripDomain: domain}
		out, err := Normalise(raw, o)
		if err != nil {
			if out != "" {
				t.Errorf("error %v with output %q", err, out)
			}
			return
		}
		if out == "" || len(out) > Max {
			t.Errorf("output %q of %d bytes", out, len(out))
		}
		for _, r := range out {
			if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || unicode.IsSpace(r) || r == unicode.ReplacementChar {
				t.Errorf("output %q holds %U", out, r)
			}
		}
		again, err := Normalise([]byte(out), config.Username{Lowercase: lower})
		if err != nil || again != out {
			t.Errorf("normalising %q again gives %q, %v", out, again, err)
		}
	})
}
