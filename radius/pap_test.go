package radius

import (
	"bytes"
	"errors"
	"testing"

	"layeh.com/radius"
)

func TestDecodePasswordRoundTrip(t *testing.T) {
	secret := []byte(secretOne)
	for n := 1; n <= 128; n++ {
		pw := make([]byte, n)
		for i := range pw {
			pw[i] = byte(1 + (i*37+n)%255) // every byte but NUL
		}
		enc, err := radius.NewUserPassword(pw, secret, fixedAuth[:])
		if err != nil {
			t.Fatalf("length %d: NewUserPassword: %v", n, err)
		}
		got, err := decodePassword(enc, secret, fixedAuth)
		if err != nil {
			t.Fatalf("length %d: %v", n, err)
		}
		if !bytes.Equal(got, pw) {
			t.Fatalf("length %d: got %q, want %q", n, got, pw)
		}
	}
}

func TestDecodePassword(t *testing.T) {
	secret := []byte(secretOne)
	hide := func(pw string) []byte {
		enc, err := radius.NewUserPassword([]byte(pw), secret, fixedAuth[:])
		if err != nil {
			t.Fatal(err)
		}
		return enc
	}
	tests := []struct {
		name string
		attr []byte
		want string
		err  error
	}{
		{"plain", hide("correct horse"), "correct horse", nil},
		{"trailing NULs stripped", hide("abc\x00\x00"), "abc", nil},
		{"16 bytes exactly", hide("0123456789abcdef"), "0123456789abcdef", nil},
		{"empty", hide(""), "", nil},
		{"only NULs", hide("\x00\x00\x00"), "", nil},
		{"inner NUL", hide("ab\x00cd"), "", errPasswordNUL},
		{"leading NUL", hide("\x00abc"), "", errPasswordNUL},
		{"NUL in second block", hide("0123456789abcdefgh\x00i"), "", errPasswordNUL},
		{"length 0", nil, "", errPasswordEncoding},
		{"length 15", make([]byte, 15), "", errPasswordEncoding},
		{"length 17", make([]byte, 17), "", errPasswordEncoding},
		{"length 144", make([]byte, 144), "", errPasswordEncoding},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodePassword(tt.attr, secret, fixedAuth)
			if !errors.Is(err, tt.err) {
				t.Fatalf("error %v, want %v", err, tt.err)
			}
			if string(got) != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
