// Package pivcard is a virtual PIV card (NIST SP 800-73-4 part 2) for
// tests: it answers the APDUs that cmd/mfacard and OpenSC's PIV driver
// send, and becomes the card in a pcscd reader through the vsmartcard vpcd
// driver's TCP protocol (vpcd.go).
//
// It implements what a PIV client needs to read the PIV authentication
// certificate and prove the key of slot 9A: SELECT, GET DATA (5FC105,
// discovery 7E, CHUID 5FC102), GET RESPONSE chaining, VERIFY with a retry
// counter, and GENERAL AUTHENTICATE with an RSA or ECDSA key, including
// command chaining and extended APDUs. PUK, key generation, PUT DATA,
// management keys and secure messaging are not implemented.
//
// Only tests import this package; nothing here is hardened.
package pivcard

import (
	"bytes"
	"compress/gzip"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/subtle"
	"errors"
	"fmt"
	"math/big"
	"sync"
)

// ATR is the card's answer to reset: T=1, historical bytes 80 5A
// "VirtualPIV", and TCK. It is no real card's ATR, so OpenSC does not send
// vendor commands (a YubiKey ATR would bring YubiKey-only APDUs).
var ATR = []byte{0x3B, 0x8C, 0x80, 0x01, 0x80, 0x5A, 0x56, 0x69, 0x72, 0x74, 0x75, 0x61, 0x6C, 0x50, 0x49, 0x56, 0xD9}

// AID is the full PIV application identifier: RID A0 00 00 03 08 and PIX
// 00 00 10 00 01 00. SELECT accepts any prefix of at least the RID.
var AID = []byte{0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00}

// PIV algorithm identifiers (SP 800-78-4 table 6-2).
const (
	AlgRSA1024 = 0x06
	AlgRSA2048 = 0x07
	AlgRSA3072 = 0x05
	AlgRSA4096 = 0x16
	AlgECCP256 = 0x11
	AlgECCP384 = 0x14
)

// Status words.
const (
	swOK              = 0x9000
	swWrongLength     = 0x6700
	swSecurityStatus  = 0x6982 // key used before VERIFY
	swPINBlocked      = 0x6983
	swNoPending       = 0x6985
	swWrongData       = 0x6A80
	swNotFound        = 0x6A82
	swIncorrectP1P2   = 0x6A86
	swRefNotFound     = 0x6A88
	swINSNotSupported = 0x6D00
	swCLANotSupported = 0x6E00
)

// Options describe a card.
type Options struct {
	// Cert is the DER of the PIV authentication certificate (object
	// 5FC105, key 9A); nil leaves the slot empty.
	Cert []byte
	// Key is the private key of slot 9A: *rsa.PrivateKey or
	// *ecdsa.PrivateKey (P-256 or P-384). It need not match Cert, which
	// makes a card whose signatures fail verification. nil: no key.
	Key crypto.Signer
	// PIN is the card's PIN, 6 to 8 characters; default "123456".
	PIN string
	// Tries is the PIN retry counter's start; default 3.
	Tries int
	// GzipCert stores the certificate gzip-compressed (CertInfo 01).
	GzipCert bool
	// NoPIV makes a card without a PIV application: SELECT of the PIV AID
	// answers 6A82, like a bank or SIM card.
	NoPIV bool
	// Label is the application label in the SELECT answer; default
	// "Virtual PIV card".
	Label string
}

// Card is one virtual card. Its methods are safe for concurrent use.
type Card struct {
	o      Options
	object []byte // the 53 { 70 71 FE } body of 5FC105, nil if no certificate
	alg    byte   // algorithm of Key, 0 without one

	mu    sync.Mutex
	tries int // persistent: survives resets

	// Volatile state, dropped on power off, power on and reset.
	selected bool
	verified bool
	pending  []byte // response bytes GET RESPONSE has not fetched yet
	chain    []byte // data of a command chain (CLA 10) so far
	chainHdr [3]byte
	inChain  bool
}

// New checks o and builds a card.
func New(o Options) (*Card, error) {
	if o.PIN == "" {
		o.PIN = "123456"
	}
	if len(o.PIN) < 6 || len(o.PIN) > 8 {
		return nil, errors.New("pivcard: the PIN must have 6 to 8 characters")
	}
	if o.Tries <= 0 {
		o.Tries = 3
	}
	if o.Tries > 15 {
		return nil, errors.New("pivcard: at most 15 tries fit in a 63Cx status word")
	}
	if o.Label == "" {
		o.Label = "Virtual PIV card"
	}
	c := &Card{o: o, tries: o.Tries}
	if o.Key != nil {
		alg, err := algOf(o.Key.Public())
		if err != nil {
			return nil, err
		}
		c.alg = alg
	}
	if o.Cert != nil {
		cert, info := o.Cert, byte(0x00)
		if o.GzipCert {
			var b bytes.Buffer
			zw := gzip.NewWriter(&b)
			zw.Write(o.Cert)
			zw.Close()
			cert, info = b.Bytes(), 0x01
		}
		inner := append(tlv(0x70, cert), tlv(0x71, []byte{info})...)
		inner = append(inner, 0xFE, 0x00) // error detection code, empty
		c.object = tlv(0x53, inner)
	}
	return c, nil
}

func algOf(pub crypto.PublicKey) (byte, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		switch k.N.BitLen() {
		case 1024:
			return AlgRSA1024, nil
		case 2048:
			return AlgRSA2048, nil
		case 3072:
			return AlgRSA3072, nil
		case 4096:
			return AlgRSA4096, nil
		}
		return 0, fmt.Errorf("pivcard: PIV has no algorithm for %d-bit RSA", k.N.BitLen())
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return AlgECCP256, nil
		case elliptic.P384():
			return AlgECCP384, nil
		}
		return 0, fmt.Errorf("pivcard: PIV has no algorithm for curve %s", k.Curve.Params().Name)
	}
	return 0, fmt.Errorf("pivcard: PIV has no algorithm for a %T key", pub)
}

// TriesLeft returns the PIN retry counter.
func (c *Card) TriesLeft() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tries
}

// Reset drops the volatile state, as power off, power on and a warm reset
// do: the selected application, the verified PIN, unread response data.
func (c *Card) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reset()
}

func (c *Card) reset() {
	c.selected, c.verified, c.pending, c.chain, c.inChain = false, false, nil, nil, false
}

// apdu is a parsed command (ISO 7816-4 §5.1, cases 1 to 4, short and
// extended).
type apdu struct {
	cla, ins, p1, p2 byte
	data             []byte
	le               int // bytes the client accepts; 0 when absent
	extended         bool
}

func parseAPDU(b []byte) (apdu, bool) {
	if len(b) < 4 {
		return apdu{}, false
	}
	a := apdu{cla: b[0], ins: b[1], p1: b[2], p2: b[3]}
	body := b[4:]
	switch {
	case len(body) == 0: // case 1
		return a, true
	case len(body) == 1: // case 2 short
		a.le = int(body[0])
		if a.le == 0 {
			a.le = 256
		}
		return a, true
	case body[0] != 0: // case 3 or 4 short
		lc := int(body[0])
		switch len(body) {
		case 1 + lc:
			a.data = body[1:]
		case 2 + lc:
			a.data, a.le = body[1:1+lc], int(body[1+lc])
			if a.le == 0 {
				a.le = 256
			}
		default:
			return apdu{}, false
		}
		return a, true
	}
	// Extended: 00 then two bytes of Lc or Le.
	a.extended = true
	if len(body) < 3 {
		return apdu{}, false
	}
	n := int(body[1])<<8 | int(body[2])
	rest := body[3:]
	if len(rest) == 0 { // case 2 extended
		a.le = n
		if a.le == 0 {
			a.le = 65536
		}
		return a, true
	}
	if n == 0 {
		return apdu{}, false
	}
	switch len(rest) {
	case n:
		a.data = rest
	case n + 2:
		a.data = rest[:n]
		a.le = int(rest[n])<<8 | int(rest[n+1])
		if a.le == 0 {
			a.le = 65536
		}
	default:
		return apdu{}, false
	}
	return a, true
}

// Process answers one command APDU with a response APDU (data, SW1,
// SW2).
func (c *Card) Process(cmd []byte) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	a, ok := parseAPDU(cmd)
	if !ok {
		c.pending = nil
		return sw(swWrongLength)
	}
	if a.cla&^0x10 != 0 {
		return sw(swCLANotSupported)
	}
	if a.ins == 0xC0 && a.cla == 0x00 {
		return c.getResponse(a)
	}
	c.pending = nil

	// Command chaining (ISO 7816-4 §5.1.1.1): CLA 10 collects data until
	// a command with CLA 00 and the same INS P1 P2 ends the chain.
	hdr := [3]byte{a.ins, a.p1, a.p2}
	if a.cla == 0x10 {
		if c.inChain && c.chainHdr != hdr {
			c.chain = nil
		}
		c.inChain, c.chainHdr = true, hdr
		c.chain = append(c.chain, a.data...)
		if len(c.chain) > 65536 {
			c.chain, c.inChain = nil, false
			return sw(swWrongLength)
		}
		return sw(swOK)
	}
	if c.inChain {
		if c.chainHdr == hdr {
			a.data = append(c.chain, a.data...)
		}
		c.chain, c.inChain = nil, false
	}

	if a.ins != 0xA4 && !c.selected {
		return sw(swINSNotSupported)
	}
	var data []byte
	var status uint16
	switch a.ins {
	case 0xA4:
		data, status = c.selectApp(a)
	case 0xCB:
		data, status = c.getData(a)
	case 0x20:
		data, status = c.verify(a)
	case 0x87:
		data, status = c.authenticate(a)
	default:
		return sw(swINSNotSupported)
	}
	return c.respond(a, data, status)
}

// respond cuts a long answer to the client's Le and keeps the rest for
// GET RESPONSE (61xx: xx bytes left, 00 for 256 or more). pcsc-lite does
// not fetch the rest on T=1; the client must.
func (c *Card) respond(a apdu, data []byte, status uint16) []byte {
	if status != swOK {
		return sw(status)
	}
	le := a.le
	if le == 0 {
		le = 256
		if a.extended {
			le = 65536
		}
	}
	if len(data) <= le {
		return append(bytes.Clone(data), 0x90, 0x00)
	}
	c.pending = bytes.Clone(data[le:])
	return append(bytes.Clone(data[:le]), 0x61, left(len(c.pending)))
}

func (c *Card) getResponse(a apdu) []byte {
	if len(c.pending) == 0 || a.p1 != 0 || a.p2 != 0 {
		c.pending = nil
		return sw(swNoPending)
	}
	le := a.le
	if le == 0 {
		le = 256
	}
	n := min(le, len(c.pending))
	out := append(bytes.Clone(c.pending[:n]), 0x90, 0x00)
	c.pending = c.pending[n:]
	if len(c.pending) > 0 {
		out[n], out[n+1] = 0x61, left(len(c.pending))
	} else {
		c.pending = nil
	}
	return out
}

func left(n int) byte {
	if n >= 256 {
		return 0
	}
	return byte(n)
}

func (c *Card) selectApp(a apdu) ([]byte, uint16) {
	if a.p1 != 0x04 {
		return nil, swIncorrectP1P2
	}
	if c.o.NoPIV || len(a.data) < 5 || len(a.data) > len(AID) || !bytes.HasPrefix(AID, a.data) {
		return nil, swNotFound
	}
	c.selected = true
	// Application property template (SP 800-73-4 part 2 §3.1.1): PIX,
	// coexistent tag allocation authority, label, algorithms.
	body := tlv(0x4F, AID[5:])
	body = append(body, tlv(0x79, tlv(0x4F, AID[:5]))...)
	body = append(body, tlv(0x50, []byte(c.o.Label))...)
	alg := c.alg
	if alg == 0 {
		alg = AlgECCP256
	}
	body = append(body, tlv(0xAC, []byte{0x80, 0x01, alg, 0x06, 0x00})...)
	return tlv(0x61, body), swOK
}

var (
	tagCertPIVAuth = []byte{0x5F, 0xC1, 0x05}
	tagCHUID       = []byte{0x5F, 0xC1, 0x02}
	tagDiscovery   = []byte{0x7E}
)

func (c *Card) getData(a apdu) ([]byte, uint16) {
	if a.p1 != 0x3F || a.p2 != 0xFF {
		return nil, swIncorrectP1P2
	}
	d := a.data
	if len(d) < 3 || d[0] != 0x5C || int(d[1]) != len(d)-2 {
		return nil, swWrongData
	}
	switch tag := d[2:]; {
	case bytes.Equal(tag, tagCertPIVAuth):
		if c.object == nil {
			return nil, swNotFound
		}
		return c.object, swOK
	case bytes.Equal(tag, tagDiscovery):
		// PIV card application AID and the PIN usage policy: the
		// application PIN only.
		return tlv(0x7E, append(tlv(0x4F, AID), tlv(0x5F2F, []byte{0x40, 0x00})...)), swOK
	case bytes.Equal(tag, tagCHUID):
		fascn := bytes.Repeat([]byte{0xD4}, 25)
		guid := bytes.Repeat([]byte{0x11}, 16)
		body := tlv(0x30, fascn)
		body = append(body, tlv(0x34, guid)...)
		body = append(body, tlv(0x35, []byte("20991231"))...)
		body = append(body, 0x3E, 0x00, 0xFE, 0x00)
		return tlv(0x53, body), swOK
	}
	return nil, swNotFound
}

func (c *Card) verify(a apdu) ([]byte, uint16) {
	if a.p2 != 0x80 {
		return nil, swRefNotFound
	}
	switch a.p1 {
	case 0xFF: // reset the security status
		c.verified = false
		return nil, swOK
	case 0x00:
	default:
		return nil, swIncorrectP1P2
	}
	if len(a.data) == 0 { // status query
		switch {
		case c.verified:
			return nil, swOK
		case c.tries == 0:
			return nil, swPINBlocked
		}
		return nil, 0x63C0 | uint16(c.tries)
	}
	if len(a.data) != 8 {
		return nil, swWrongData
	}
	if c.tries == 0 {
		return nil, swPINBlocked
	}
	want := bytes.Repeat([]byte{0xFF}, 8)
	copy(want, c.o.PIN)
	if subtle.ConstantTimeCompare(want, a.data) == 1 {
		c.tries, c.verified = c.o.Tries, true
		return nil, swOK
	}
	c.tries--
	c.verified = false
	return nil, 0x63C0 | uint16(c.tries)
}

// authenticate is GENERAL AUTHENTICATE with the key of slot 9A: data 7C {
// 82 00, 81 challenge } → 7C { 82 result }. An RSA challenge is the whole
// block, already padded by the client, and gets the raw private-key
// operation; an ECDSA challenge is the hash and gets a DER signature.
func (c *Card) authenticate(a apdu) ([]byte, uint16) {
	if a.p2 != 0x9A {
		return nil, swRefNotFound
	}
	if c.o.Key == nil {
		return nil, swRefNotFound
	}
	if !c.verified {
		return nil, swSecurityStatus
	}
	if a.p1 != c.alg {
		return nil, swIncorrectP1P2
	}
	tag, tmpl, rest, ok := readTLV(a.data)
	if !ok || tag != 0x7C || len(rest) != 0 {
		return nil, swWrongData
	}
	var challenge []byte
	var wantsResponse bool
	for len(tmpl) > 0 {
		var v []byte
		if tag, v, tmpl, ok = readTLV(tmpl); !ok {
			return nil, swWrongData
		}
		switch tag {
		case 0x81:
			challenge = v
		case 0x82:
			wantsResponse = len(v) == 0
		}
	}
	if challenge == nil || !wantsResponse {
		return nil, swWrongData
	}
	var out []byte
	switch k := c.o.Key.(type) {
	case *rsa.PrivateKey:
		size := k.Size()
		m := new(big.Int).SetBytes(challenge)
		if len(challenge) != size || m.Cmp(k.N) >= 0 {
			return nil, swWrongData
		}
		out = new(big.Int).Exp(m, k.D, k.N).FillBytes(make([]byte, size))
	case *ecdsa.PrivateKey:
		if len(challenge) != (k.Curve.Params().BitSize+7)/8 {
			return nil, swWrongData
		}
		sig, err := ecdsa.SignASN1(rand.Reader, k, challenge)
		if err != nil {
			return nil, swWrongData
		}
		out = sig
	default:
		return nil, swRefNotFound
	}
	return tlv(0x7C, tlv(0x82, out)), swOK
}

func sw(s uint16) []byte { return []byte{byte(s >> 8), byte(s)} }

// tlv encodes a BER-TLV with a one- or two-byte tag and a definite length
// (81 xx, 82 xx xx above 127 bytes).
func tlv(tag int, v []byte) []byte {
	var out []byte
	if tag > 0xFF {
		out = append(out, byte(tag>>8))
	}
	out = append(out, byte(tag))
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

// readTLV reads one TLV with a one-byte tag.
func readTLV(b []byte) (tag byte, v, rest []byte, ok bool) {
	if len(b) < 2 {
		return 0, nil, nil, false
	}
	tag, b = b[0], b[1:]
	n := int(b[0])
	b = b[1:]
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
