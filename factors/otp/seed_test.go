package otp

import (
	"bytes"
	"encoding/hex"
	"strconv"
	"strings"
	"testing"
)

// The RFC 4226 seed, "12345678901234567890", in the forms an import meets.
const (
	rfcHex    = "3132333435363738393031323334353637383930"
	rfcBase32 = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
)

var rfcSeed = []byte("12345678901234567890")

func TestParseBase32(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []byte // nil: an error
	}{
		{"upper case", rfcBase32, rfcSeed},
		{"lower case", strings.ToLower(rfcBase32), rfcSeed},
		{"groups of four with spaces", "GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ", rfcSeed},
		{"dashes", "GEZD-GNBV-GY3T-QOJQ-GEZD-GNBV-GY3T-QOJQ", rfcSeed},
		{"surrounding space", "  " + rfcBase32 + "\n", rfcSeed},
		{"padded", "MZXW6===", []byte("foo")},
		{"unpadded", "MZXW6", []byte("foo")},
		{"empty", "", []byte{}},
		{"digit 1 is not base32", "GEZDGNB1", nil},
		{"digit 8 is not base32", "GEZDGNB8", nil},
		{"punctuation", "GEZD!NBV", nil},
		{"padding in the middle", "MZ==XW6", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseBase32(tc.in)
			if tc.want == nil {
				if err == nil {
					t.Errorf("ParseBase32(%q) = %x, want an error", tc.in, got)
				}
				return
			}
			if err != nil || !bytes.Equal(got, tc.want) {
				t.Errorf("ParseBase32(%q) = %x, %v; want %x", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestParseSeed(t *testing.T) {
	// 32 characters that are both valid hex (16 bytes) and valid base32
	// (20 bytes): without a prefix the hex reading wins.
	const ambiguous = "ABCDEF2345ABCDEF2345ABCDEF234567"
	ambHex, _ := hex.DecodeString(ambiguous)
	ambB32, _ := ParseBase32(ambiguous)
	hexOf := func(n int) string { return strings.Repeat("ab", n) }
	for _, tc := range []struct {
		name, in string
		want     []byte
	}{
		{"hex, 20 bytes", rfcHex, rfcSeed},
		{"hex upper case", strings.ToUpper(hex.EncodeToString(rfcSeed)), rfcSeed},
		{"hex, 16 bytes", hexOf(16), bytes.Repeat([]byte{0xab}, 16)},
		{"hex, 32 bytes", hexOf(32), bytes.Repeat([]byte{0xab}, 32)},
		{"hex, 64 bytes", hexOf(64), bytes.Repeat([]byte{0xab}, 64)},
		{"base32 without prefix", rfcBase32, rfcSeed},
		{"ambiguous without prefix reads as hex", ambiguous, ambHex},
		{"base32: prefix forces base32", "base32:" + ambiguous, ambB32},
		{"hex: prefix", "hex:" + rfcHex, rfcSeed},
		{"hex: prefix, any length", "hex:" + hexOf(24), bytes.Repeat([]byte{0xab}, 24)},
		{"hex: prefix with surrounding space", "  hex:" + rfcHex + " ", rfcSeed},
		{"base32: prefix, lower case", "base32:" + strings.ToLower(rfcBase32), rfcSeed},
		{"hex: prefix, not hex", "hex:" + rfcBase32, nil},
		{"hex: prefix, odd length", "hex:abc", nil},
		{"base32: prefix, not base32", "base32:" + rfcHex, nil},
		// 24 bytes of hex is not a usual seed length: read as base32, where
		// 0, 1, 8 and 9 are not letters.
		{"hex of an unusual length without prefix", "0189" + hexOf(22), nil},
		{"garbage", "!!", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseSeed(tc.in)
			if tc.want == nil {
				if err == nil {
					t.Errorf("ParseSeed(%q) = %x, want an error", tc.in, got)
				}
				return
			}
			if err != nil || !bytes.Equal(got, tc.want) {
				t.Errorf("ParseSeed(%q) = %x, %v; want %x", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestCheckSecretLength(t *testing.T) {
	for _, tc := range []struct {
		n  int
		ok bool
	}{{0, false}, {10, false}, {15, false}, {16, true}, {20, true}, {64, true}, {128, true}, {129, false}, {4096, false}} {
		err := CheckSecretLength(make([]byte, tc.n))
		if (err == nil) != tc.ok {
			t.Errorf("CheckSecretLength(%d bytes) = %v, want ok=%t", tc.n, err, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), strconv.Itoa(tc.n)) {
			t.Errorf("error for %d bytes does not say how many: %v", tc.n, err)
		}
	}
}
