package main

import (
	"bytes"
	"compress/gzip"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
)

// The PIV card application (NIST SP 800-73-4 part 2) as far as mfacard
// needs it: select it, read the certificate of the PIV authentication key
// (slot 9A), verify the PIN and have key 9A sign.

// pivAID is the PIV application's AID without its version (RID A0 00 00
// 03 08, PIX 00 00 10 00): SP 800-73-4 part 2 §3.1.1 lets a client select
// by this right-truncated AID, and OpenSC does the same.
var pivAID = []byte{0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00}

// PIV algorithm identifiers (SP 800-78-4 table 6-2).
const (
	algRSA1024 = 0x06
	algRSA2048 = 0x07
	algRSA3072 = 0x05
	algRSA4096 = 0x16
	algECCP256 = 0x11
	algECCP384 = 0x14
)

const (
	keyPIVAuth = 0x9A
	swOK       = 0x9000
	// maxObject bounds what GET RESPONSE chaining collects; a PIV data
	// object is at most a few kilobytes.
	maxObject = 64 << 10
	// maxRounds bounds the GET RESPONSE commands for one answer: 256
	// bytes each, maxObject needs 256.
	maxRounds = 300
)

// transmitter sends one APDU and returns the response APDU.
type transmitter interface {
	Transmit(apdu []byte) ([]byte, error)
}

type piv struct{ t transmitter }

// exchange sends cmd and collects a long answer: 61xx means xx more bytes
// (00: 256 or more) wait for GET RESPONSE, which pcsc-lite does not send
// by itself on T=1; 6Cxx asks for the command again with Le = xx.
func (p piv) exchange(cmd []byte) ([]byte, uint16, error) {
	resp, err := p.t.Transmit(cmd)
	var data []byte
	resent := false
	for rounds := 0; ; rounds++ {
		if rounds > maxRounds {
			return nil, 0, errors.New("the card keeps announcing more data without end; take it out, put it back in and try again")
		}
		if err != nil {
			return nil, 0, err
		}
		if len(resp) < 2 {
			return nil, 0, errors.New("the card gave an answer shorter than a status word; take it out, put it back in and try again")
		}
		n := len(resp) - 2
		sw1, sw2 := resp[n], resp[n+1]
		data = append(data, resp[:n]...)
		if len(data) > maxObject {
			return nil, 0, fmt.Errorf("the card's answer is longer than %d bytes, which no PIV object is", maxObject)
		}
		switch {
		case sw1 == 0x61:
			resp, err = p.t.Transmit([]byte{0x00, 0xC0, 0x00, 0x00, sw2})
		case sw1 == 0x6C && !resent && hasLe(cmd):
			resent = true
			again := bytes.Clone(cmd)
			again[len(again)-1] = sw2
			data = data[:0]
			resp, err = p.t.Transmit(again)
		default:
			return data, uint16(sw1)<<8 | uint16(sw2), nil
		}
	}
}

// hasLe reports whether a short APDU ends with Le (cases 2 and 4).
func hasLe(cmd []byte) bool {
	return len(cmd) == 5 || (len(cmd) > 5 && cmd[4] != 0 && len(cmd) == 6+int(cmd[4]))
}

// command sends INS P1 P2 with data, in a chain of CLA 10 commands when
// the data does not fit one short APDU (ISO 7816-4 §5.1.1.1), and asks
// for a response (Le 00) when le is set.
func (p piv) command(ins, p1, p2 byte, data []byte, le bool) ([]byte, uint16, error) {
	for len(data) > 255 {
		cmd := append([]byte{0x10, ins, p1, p2, 0xFF}, data[:255]...)
		data = data[255:]
		_, sw, err := p.exchange(cmd)
		if err != nil {
			return nil, 0, err
		}
		if sw != swOK {
			return nil, sw, nil
		}
	}
	cmd := []byte{0x00, ins, p1, p2}
	if len(data) > 0 {
		cmd = append(cmd, byte(len(data)))
		cmd = append(cmd, data...)
	}
	if le {
		cmd = append(cmd, 0x00)
	}
	return p.exchange(cmd)
}

// selectPIV selects the PIV application.
func (p piv) selectPIV() error {
	_, sw, err := p.command(0xA4, 0x04, 0x00, pivAID, true)
	switch {
	case err != nil:
		return err
	case sw == swOK:
		return nil
	case sw == 0x6A82 || sw == 0x6A81 || sw == 0x6D00 || sw == 0x6E00:
		return errNoPIV
	}
	return &statusError{op: "SELECT of the PIV application", sw: sw}
}

// cardCert is the certificate of slot 9A as the card stores it.
type cardCert struct {
	cert       *x509.Certificate
	compressed bool // stored gzip-compressed (CertInfo bit 0)
	stored     int  // bytes of the certificate as stored
}

// readCert reads the X.509 Certificate for PIV Authentication (data
// object 5FC105). Reading needs no PIN.
func (p piv) readCert() (*cardCert, error) {
	obj, sw, err := p.command(0xCB, 0x3F, 0xFF, []byte{0x5C, 0x03, 0x5F, 0xC1, 0x05}, true)
	switch {
	case err != nil:
		return nil, err
	case sw == 0x6A82:
		return nil, errNoCert
	case sw != swOK:
		return nil, &statusError{op: "GET DATA of the certificate in slot 9A", sw: sw}
	}
	der, compressed, err := parseCertObject(obj)
	if err != nil {
		return nil, err
	}
	cc := &cardCert{compressed: compressed, stored: len(der)}
	if compressed {
		if der, err = gunzip(der); err != nil {
			return nil, fmt.Errorf("the certificate in slot 9A is marked gzip-compressed but does not unpack (%v); have the card's issuer load it again", err)
		}
	}
	if cc.cert, err = x509.ParseCertificate(der); err != nil {
		return nil, fmt.Errorf("slot 9A holds something that is not an X.509 certificate (%v); have the card's issuer load it again", err)
	}
	return cc, nil
}

// parseCertObject unwraps a certificate data object: 53 { 70 certificate,
// 71 CertInfo, FE error detection code } (SP 800-73-4 part 1 appendix A).
// An empty object, or one without a certificate, is an empty slot.
func parseCertObject(obj []byte) (der []byte, compressed bool, err error) {
	tag, body, _, ok := readTLV(obj)
	if !ok || tag != 0x53 {
		return nil, false, errors.New("the card's certificate object is not a PIV data object (tag 53); it may not be a PIV card")
	}
	var info []byte
	for len(body) > 0 {
		var v []byte
		if tag, v, body, ok = readTLV(body); !ok {
			return nil, false, errors.New("the card's certificate object is malformed; have the card's issuer load the certificate again")
		}
		switch tag {
		case 0x70:
			der = v
		case 0x71:
			info = v
		}
	}
	if len(der) == 0 {
		return nil, false, errNoCert
	}
	compressed = len(info) > 0 && info[0]&0x01 != 0
	return der, compressed, nil
}

func gunzip(b []byte) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	out, err := io.ReadAll(io.LimitReader(zr, maxObject+1))
	if err != nil {
		return nil, err
	}
	if len(out) > maxObject {
		return nil, fmt.Errorf("it unpacks to more than %d bytes", maxObject)
	}
	return out, nil
}

// verifyPIN presents the PIN: 00 20 00 80 08 with the PIN padded with FF
// to 8 bytes. The caller checks its length (6 to 8 characters).
func (p piv) verifyPIN(pin []byte) error {
	buf := bytes.Repeat([]byte{0xFF}, 8)
	copy(buf, pin)
	defer clear(buf)
	cmd := append([]byte{0x00, 0x20, 0x00, 0x80, 0x08}, buf...)
	defer clear(cmd)
	_, sw, err := p.exchange(cmd)
	switch {
	case err != nil:
		return err
	case sw == swOK:
		return nil
	case sw&0xFFF0 == 0x63C0:
		return &wrongPINError{left: int(sw & 0x0F)}
	case sw == 0x6300:
		return &wrongPINError{left: -1}
	case sw == 0x6983:
		return errPINBlocked
	}
	return &statusError{op: "VERIFY of the PIN", sw: sw}
}

// authenticate has key 9A process challenge with GENERAL AUTHENTICATE:
// 7C { 82 00 (response wanted), 81 challenge } → 7C { 82 response }. An
// RSA-2048 challenge is 256 bytes, so the command is 266 and goes as a
// chain.
func (p piv) authenticate(alg byte, challenge []byte) ([]byte, error) {
	inner := append([]byte{0x82, 0x00}, tlv(0x81, challenge)...)
	resp, sw, err := p.command(0x87, alg, keyPIVAuth, tlv(0x7C, inner), true)
	switch {
	case err != nil:
		return nil, err
	case sw == 0x6982:
		return nil, errors.New("the card wants the PIN before it signs, though it accepted the PIN; another program may have reset it: try again")
	case sw == 0x6A86 || sw == 0x6A88:
		return nil, fmt.Errorf("the card has no key of the certificate's type in slot 9A (status %04X): the key in slot 9A is not the certificate's key", sw)
	case sw != swOK:
		return nil, &statusError{op: "GENERAL AUTHENTICATE with key 9A", sw: sw}
	}
	tag, tmpl, _, ok := readTLV(resp)
	if !ok || tag != 0x7C {
		return nil, errors.New("the card's answer to GENERAL AUTHENTICATE is malformed")
	}
	for len(tmpl) > 0 {
		var v []byte
		if tag, v, tmpl, ok = readTLV(tmpl); !ok {
			break
		}
		if tag == 0x82 {
			return v, nil
		}
	}
	return nil, errors.New("the card's answer to GENERAL AUTHENTICATE holds no signature")
}

// tlv encodes a BER-TLV with a one-byte tag and a definite length.
func tlv(tag byte, v []byte) []byte {
	out := []byte{tag}
	switch n := len(v); {
	case n < 0x80:
		out = append(out, byte(n))
	case n <= 0xFF:
		out = append(out, 0x81, byte(n))
	default:
		out = append(out, 0x82, byte(n>>8), byte(n))
	}
	return append(out, v...)
}

// readTLV reads one BER-TLV with a one-byte tag and a length of up to
// three bytes (PIV objects are far smaller than 64 KiB).
func readTLV(b []byte) (tag byte, v, rest []byte, ok bool) {
	if len(b) < 2 {
		return 0, nil, nil, false
	}
	tag, n, b := b[0], int(b[1]), b[2:]
	switch {
	case n == 0x81 && len(b) >= 1:
		n, b = int(b[0]), b[1:]
	case n == 0x82 && len(b) >= 2:
		n, b = int(b[0])<<8|int(b[1]), b[2:]
	case n >= 0x80:
		return 0, nil, nil, false
	}
	if len(b) < n {
		return 0, nil, nil, false
	}
	return tag, b[:n], b[n:], true
}
