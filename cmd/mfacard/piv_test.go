package main

import (
	"bytes"
	"errors"
	"testing"
)

// scripted is a card that answers from a script and records the commands.
type scripted struct {
	t       *testing.T
	answers [][]byte
	sent    [][]byte
}

func (s *scripted) Transmit(apdu []byte) ([]byte, error) {
	s.sent = append(s.sent, bytes.Clone(apdu))
	if len(s.answers) == 0 {
		s.t.Fatalf("unexpected command % X", apdu)
	}
	a := s.answers[0]
	s.answers = s.answers[1:]
	return a, nil
}

func withSW(data []byte, sw1, sw2 byte) []byte { return append(bytes.Clone(data), sw1, sw2) }

// TestExchangeGetResponse follows a 756-byte object (a 743-byte
// certificate) as a PIV card sends it: 256 bytes and 61 00, 256 and 61 F4,
// then the last 244 bytes and 90 00.
func TestExchangeGetResponse(t *testing.T) {
	obj := make([]byte, 756)
	for i := range obj {
		obj[i] = byte(i)
	}
	s := &scripted{t: t, answers: [][]byte{
		withSW(obj[:256], 0x61, 0x00),
		withSW(obj[256:512], 0x61, 0xF4),
		withSW(obj[512:], 0x90, 0x00),
	}}
	data, sw, err := piv{t: s}.command(0xCB, 0x3F, 0xFF, []byte{0x5C, 0x03, 0x5F, 0xC1, 0x05}, true)
	if err != nil || sw != swOK || !bytes.Equal(data, obj) {
		t.Fatalf("got %d bytes, %04X, %v", len(data), sw, err)
	}
	want := [][]byte{
		{0x00, 0xCB, 0x3F, 0xFF, 0x05, 0x5C, 0x03, 0x5F, 0xC1, 0x05, 0x00},
		{0x00, 0xC0, 0x00, 0x00, 0x00},
		{0x00, 0xC0, 0x00, 0x00, 0xF4},
	}
	for i := range want {
		if i >= len(s.sent) || !bytes.Equal(s.sent[i], want[i]) {
			t.Fatalf("commands % X, want % X", s.sent, want)
		}
	}
}

// TestExchangeEndless stops a card that announces more data forever.
func TestExchangeEndless(t *testing.T) {
	n := 0
	tr := transmitFunc(func([]byte) ([]byte, error) { n++; return []byte{0x61, 0x00}, nil })
	if _, _, err := (piv{t: tr}).exchange([]byte{0x00, 0xC0, 0x00, 0x00, 0x00}); err == nil || n > maxRounds+2 {
		t.Errorf("after %d commands: %v", n, err)
	}
}

// TestExchangeWrongLe resends a command once with the Le a card asks for
// (6C xx).
func TestExchangeWrongLe(t *testing.T) {
	s := &scripted{t: t, answers: [][]byte{{0x6C, 0x10}, withSW(make([]byte, 16), 0x90, 0x00)}}
	data, sw, err := piv{t: s}.exchange([]byte{0x00, 0xCA, 0x00, 0x7E, 0x00})
	if err != nil || sw != swOK || len(data) != 16 || !bytes.Equal(s.sent[1], []byte{0x00, 0xCA, 0x00, 0x7E, 0x10}) {
		t.Fatalf("data %d bytes, %04X, %v, sent % X", len(data), sw, err, s.sent)
	}
}

// TestAuthenticateRSAChaining checks the 266-byte GENERAL AUTHENTICATE of
// an RSA-2048 key: a chain of 255 bytes (CLA 10, no Le) and 11 bytes
// (CLA 00, Le 00), then GET RESPONSE for the rest of the answer.
func TestAuthenticateRSAChaining(t *testing.T) {
	sig := bytes.Repeat([]byte{0x5A}, 256)
	resp := tlv(0x7C, tlv(0x82, sig)) // 7C 82 01 04 82 82 01 00 …: 264 bytes
	s := &scripted{t: t, answers: [][]byte{
		{0x90, 0x00},
		withSW(resp[:256], 0x61, 0x08),
		withSW(resp[256:], 0x90, 0x00),
	}}
	challenge := pkcs1v15(256, make([]byte, 32))
	got, err := piv{t: s}.authenticate(algRSA2048, challenge)
	if err != nil || !bytes.Equal(got, sig) {
		t.Fatalf("signature % X…, %v", got[:min(8, len(got))], err)
	}
	body := append([]byte{0x7C, 0x82, 0x01, 0x06, 0x82, 0x00, 0x81, 0x82, 0x01, 0x00}, challenge...)
	want := [][]byte{
		append([]byte{0x10, 0x87, 0x07, 0x9A, 0xFF}, body[:255]...),
		append(append([]byte{0x00, 0x87, 0x07, 0x9A, 0x0B}, body[255:]...), 0x00),
		{0x00, 0xC0, 0x00, 0x00, 0x08},
	}
	if len(s.sent) != len(want) {
		t.Fatalf("%d commands, want %d", len(s.sent), len(want))
	}
	for i := range want {
		if !bytes.Equal(s.sent[i], want[i]) {
			t.Errorf("command %d:\n% X\nwant\n% X", i, s.sent[i], want[i])
		}
	}
}

func TestPKCS1v15(t *testing.T) {
	digest := bytes.Repeat([]byte{0xAB}, 32)
	em := pkcs1v15(256, digest)
	if len(em) != 256 || em[0] != 0 || em[1] != 1 || em[256-52] != 0 || em[256-53] != 0xFF ||
		!bytes.Equal(em[256-51:256-32], sha256DigestInfo) || !bytes.Equal(em[256-32:], digest) {
		t.Errorf("EM % X", em)
	}
}

func TestVerifyPIN(t *testing.T) {
	for _, tc := range []struct {
		answer []byte
		want   error
		left   int
	}{
		{[]byte{0x90, 0x00}, nil, 0},
		{[]byte{0x63, 0xC2}, &wrongPINError{}, 2},
		{[]byte{0x63, 0xC0}, errPINBlocked, 0},
		{[]byte{0x63, 0x00}, &wrongPINError{}, -1},
		{[]byte{0x69, 0x83}, errPINBlocked, 0},
	} {
		s := &scripted{t: t, answers: [][]byte{tc.answer}}
		err := piv{t: s}.verifyPIN([]byte("1234567"))
		if want := []byte{0x00, 0x20, 0x00, 0x80, 0x08, '1', '2', '3', '4', '5', '6', '7', 0xFF}; !bytes.Equal(s.sent[0], want) {
			t.Errorf("VERIFY % X, want % X", s.sent[0], want)
		}
		var wp *wrongPINError
		switch {
		case tc.want == nil && err != nil:
			t.Errorf("% X: %v", tc.answer, err)
		case tc.want == errPINBlocked && !errors.Is(err, errPINBlocked):
			t.Errorf("% X: %v, want a blocked PIN", tc.answer, err)
		case tc.want != nil && tc.want != errPINBlocked && (!errors.As(err, &wp) || wp.left != tc.left):
			t.Errorf("% X: %v, want a wrong PIN with %d tries left", tc.answer, err, tc.left)
		}
	}
}

func TestSelectPIV(t *testing.T) {
	for _, tc := range []struct {
		answer []byte
		want   error
	}{
		{[]byte{0x90, 0x00}, nil},
		{[]byte{0x6A, 0x82}, errNoPIV},
		{[]byte{0x6D, 0x00}, errNoPIV},
	} {
		s := &scripted{t: t, answers: [][]byte{tc.answer}}
		if err := (piv{t: s}).selectPIV(); !errors.Is(err, tc.want) {
			t.Errorf("% X: %v, want %v", tc.answer, err, tc.want)
		}
		if want := []byte{0x00, 0xA4, 0x04, 0x00, 0x09, 0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00, 0x00}; !bytes.Equal(s.sent[0], want) {
			t.Errorf("SELECT % X, want % X", s.sent[0], want)
		}
	}
	var se *statusError
	s := &scripted{t: t, answers: [][]byte{{0x6F, 0x00}}}
	if err := (piv{t: s}).selectPIV(); !errors.As(err, &se) || se.sw != 0x6F00 {
		t.Errorf("6F00: %v", err)
	}
}

func TestParseCertObject(t *testing.T) {
	cert := bytes.Repeat([]byte{0x30}, 300)
	for _, tc := range []struct {
		name       string
		obj        []byte
		der        []byte
		compressed bool
		err        error // nil: any error when der is nil
	}{
		{"plain", tlv(0x53, append(append(tlv(0x70, cert), 0x71, 0x01, 0x00), 0xFE, 0x00)), cert, false, nil},
		{"gzip flag", tlv(0x53, append(tlv(0x70, cert), 0x71, 0x01, 0x01)), cert, true, nil},
		{"no CertInfo", tlv(0x53, tlv(0x70, cert)), cert, false, nil},
		{"empty object", []byte{0x53, 0x00}, nil, false, errNoCert},
		{"empty certificate", tlv(0x53, []byte{0x70, 0x00, 0x71, 0x01, 0x00}), nil, false, errNoCert},
		{"not 53", tlv(0x54, tlv(0x70, cert)), nil, false, nil},
		{"truncated", tlv(0x53, tlv(0x70, cert))[:100], nil, false, nil},
		{"bad inner length", []byte{0x53, 0x03, 0x70, 0x85, 0x00}, nil, false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			der, compressed, err := parseCertObject(tc.obj)
			if tc.der == nil {
				if err == nil || (tc.err != nil && !errors.Is(err, tc.err)) {
					t.Errorf("err %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil || !bytes.Equal(der, tc.der) || compressed != tc.compressed {
				t.Errorf("%d bytes, compressed %v, %v", len(der), compressed, err)
			}
		})
	}
}

// TestReadCertCorrupt refuses a compressed flag on data that is not gzip,
// and an object that is not a certificate.
func TestReadCertCorrupt(t *testing.T) {
	for name, obj := range map[string][]byte{
		"not gzip":        tlv(0x53, append(tlv(0x70, []byte("not gzip at all")), 0x71, 0x01, 0x01)),
		"not certificate": tlv(0x53, append(tlv(0x70, []byte("garbage")), 0x71, 0x01, 0x00)),
	} {
		s := &scripted{t: t, answers: [][]byte{withSW(obj, 0x90, 0x00)}}
		if _, err := (piv{t: s}).readCert(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
