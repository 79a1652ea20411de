package factors

import (
	"regexp"
	"strings"
	"testing"
)

func TestNormalisePhone(t *testing.T) {
	tests := []struct {
		name, raw, cc string
		want          string // "" means refused
	}{
		{"e164", "+447700900123", "", "+447700900123"},
		{"e164 with a country code configured", "+447700900123", "44", "+447700900123"},
		{"e164 with spaces", "+44 7700 900123", "", "+447700900123"},
		{"spaces around", "  +447700900123\t", "", "+447700900123"},
		{"00 prefix", "0044 7700 900123", "", "+447700900123"},
		{"00 prefix with country code set", "0044 7700 900123", "1", "+447700900123"},
		{"national with country code", "07700 900123", "44", "+447700900123"},
		{"national without country code", "07700 900123", "", ""},
		{"national, other country code", "0612345678", "33", "+33612345678"},
		{"dashes", "+44-7700-900-123", "", "+447700900123"},
		{"dots", "+44.7700.900.123", "", "+447700900123"},
		{"slashes", "+44/7700/900123", "", "+447700900123"},
		{"brackets", "+1 (415) 555-0100", "", "+14155550100"},
		{"national in brackets", "(07700) 900-123", "44", "+447700900123"},
		{"letters", "+44 7700 9OO123", "", ""},
		{"vanity letters", "+1 800 FLOWERS", "", ""},
		{"extension", "+44 7700 900123 ext 5", "", ""},
		{"tel URI", "tel:+447700900123", "", ""},
		{"plus not first", "44+7700900123", "", ""},
		{"two pluses", "++447700900123", "", ""},
		{"space after the plus", " + 447700900123", "", "+447700900123"},
		{"no prefix at all", "7700900123", "44", ""},
		{"empty", "", "44", ""},
		{"plus alone", "+", "", ""},
		{"six digits", "+447700", "", ""},
		{"seven digits", "+4477009", "", "+4477009"},
		{"fifteen digits", "+123456789012345", "", "+123456789012345"},
		{"sixteen digits", "+1234567890123456", "", ""},
		{"national, too long", "0123456789012345678", "44", ""},
		{"leading zero after plus", "+0447700900123", "", ""},
		{"leading zero after 00", "000447700900123", "", ""},
		{"national 00 is not national", "00", "44", ""},
		{"fullwidth digits", "+４４７７００９００１２３", "", ""},
		{"newline inside", "+44770\n0900123", "", ""},
		{"NUL", "+447700900123\x00", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := NormalisePhone(tc.raw, tc.cc)
			if tc.want == "" {
				if ok {
					t.Fatalf("NormalisePhone(%q, %q) = %q, want refused", tc.raw, tc.cc, got)
				}
				if got != "" {
					t.Errorf("refused, but returned %q", got)
				}
				return
			}
			if !ok || got != tc.want {
				t.Fatalf("NormalisePhone(%q, %q) = %q, %t; want %q", tc.raw, tc.cc, got, ok, tc.want)
			}
		})
	}
}

// A UK directory often writes the trunk prefix in brackets after the
// country code: +44 (0)7700 900123. Keeping that 0 makes +4407700900123,
// a number that does not exist (Twilio answers 21211), so the (0) must be
// dropped or the number refused — never turned into a wrong E.164.
func TestNormalisePhoneTrunkZeroInBrackets(t *testing.T) {
	for _, raw := range []string{"+44 (0)7700 900123", "+44(0)7700900123", "0044 (0) 7700 900123"} {
		got, ok := NormalisePhone(raw, "44")
		if ok && got != "+447700900123" {
			t.Errorf("NormalisePhone(%q) = %q: the trunk 0 was kept; want +447700900123 or refused", raw, got)
		}
	}
}

func TestMaskPhone(t *testing.T) {
	tests := []struct{ in, want string }{
		{"+447700900123", "******0123"},
		{"+14155550100", "******0100"},
		{"+4477009", "******7009"},
		{"", "******"},
		{"12", "******"},
		{"1234", "******"},
		{"12345", "******2345"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			if got := MaskPhone(tc.in); got != tc.want {
				t.Errorf("MaskPhone(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

var e164 = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)

// FuzzNormalisePhone: whatever the directory holds, a number is either
// refused or comes out as E.164 made of the digits given, stable when
// normalised again, and masked to its last four digits.
func FuzzNormalisePhone(f *testing.F) {
	for _, s := range []string{"+447700900123", "0044 7700 900123", "07700 900123", "+1 (415) 555-0100",
		"+44 (0)7700 900123", "tel:+447700900123", "++44", "", "+", "000", "+０４４", "+44\x007700900123"} {
		f.Add(s, "44")
		f.Add(s, "")
	}
	f.Add("0612345678", "33")
	f.Fuzz(func(t *testing.T, raw, cc string) {
		got, ok := NormalisePhone(raw, cc)
		if !ok {
			if got != "" {
				t.Fatalf("refused %q but returned %q", raw, got)
			}
			return
		}
		if !regexp.MustCompile(`^[1-9][0-9]{0,3}$`).MatchString(cc) {
			// Config refuses such a country code; only the number's own
			// digits are checked below.
			if !strings.HasPrefix(got, "+") {
				t.Fatalf("NormalisePhone(%q, %q) = %q: no +", raw, cc, got)
			}
			return
		}
		if !e164.MatchString(got) {
			t.Fatalf("NormalisePhone(%q, %q) = %q: not E.164", raw, cc, got)
		}
		again, ok := NormalisePhone(got, cc)
		if !ok || again != got {
			t.Fatalf("not stable: %q → %q → %q, %t", raw, got, again, ok)
		}
		// The digits out are the digits in, behind + (or 00, or the
		// country code in place of a national 0), less a bracketed trunk
		// zero after a country code.
		src := strings.TrimSpace(raw)
		if strings.HasPrefix(src, "+") || strings.HasPrefix(src, "00") {
			src = strings.Replace(src, "(0)", "", 1)
		}
		var in strings.Builder
		for _, r := range src {
			if r >= '0' && r <= '9' {
				in.WriteRune(r)
			}
		}
		d := in.String()
		var want string
		switch {
		case strings.HasPrefix(strings.TrimSpace(raw), "+"):
			want = d
		case strings.HasPrefix(d, "00"):
			want = d[2:]
		default:
			want = cc + d[1:]
		}
		if got[1:] != want {
			t.Fatalf("NormalisePhone(%q, %q) = %q: digits changed (want +%s)", raw, cc, got, want)
		}
		if m := MaskPhone(got); m != "******"+got[len(got)-4:] {
			t.Fatalf("MaskPhone(%q) = %q", got, m)
		}
	})
}
