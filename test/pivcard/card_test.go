package pivcard

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"
)

func hexSW(b []byte) uint16 {
	if len(b) < 2 {
		return 0
	}
	return uint16(b[len(b)-2])<<8 | uint16(b[len(b)-1])
}

func newCard(t *testing.T, o Options) *Card {
	t.Helper()
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var selectPIV = []byte{0x00, 0xA4, 0x04, 0x00, 0x05, 0xA0, 0x00, 0x00, 0x03, 0x08, 0x00}

// TestSelect checks the application property template byte for byte
// (SP 800-73-4 part 2 §3.1.1), and the refusals around it.
func TestSelect(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	label := "Virtual PIV card 20c"
	c := newCard(t, Options{Key: key, Label: label})
	if got := hexSW(c.Process([]byte{0x00, 0xCB, 0x3F, 0xFF, 0x05, 0x5C, 0x03, 0x5F, 0xC1, 0x05, 0x00})); got != 0x6D00 {
		t.Errorf("GET DATA before SELECT: %04X, want 6D00", got)
	}
	want := append([]byte{0x61, 0x2E, 0x4F, 0x06, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00, 0x79, 0x07, 0x4F, 0x05, 0xA0, 0x00, 0x00, 0x03, 0x08, 0x50, 0x14}, label...)
	want = append(want, 0xAC, 0x05, 0x80, 0x01, 0x11, 0x06, 0x00, 0x90, 0x00)
	if got := c.Process(selectPIV); !bytes.Equal(got, want) {
		t.Errorf("SELECT:\n% X\nwant\n% X", got, want)
	}
	// OpenSC's 9-byte AID and the full AID select too.
	for _, aid := range [][]byte{AID[:9], AID} {
		cmd := append(append([]byte{0x00, 0xA4, 0x04, 0x00, byte(len(aid))}, aid...), 0x00)
		if got := hexSW(c.Process(cmd)); got != 0x9000 {
			t.Errorf("SELECT % X: %04X", aid, got)
		}
	}
	for name, cmd := range map[string][]byte{
		"other AID":    {0x00, 0xA4, 0x04, 0x00, 0x05, 0xA0, 0x00, 0x00, 0x00, 0x03, 0x00},
		"AID too long": append(append([]byte{0x00, 0xA4, 0x04, 0x00, 0x0C}, AID...), 0x00, 0x00),
		"short RID":    {0x00, 0xA4, 0x04, 0x00, 0x04, 0xA0, 0x00, 0x00, 0x03, 0x00},
	} {
		if got := hexSW(c.Process(cmd)); got != 0x6A82 {
			t.Errorf("%s: %04X, want 6A82", name, got)
		}
	}
	nopiv := newCard(t, Options{NoPIV: true})
	if got := hexSW(nopiv.Process(selectPIV)); got != 0x6A82 {
		t.Errorf("card without PIV: %04X, want 6A82", got)
	}
	if got := hexSW(c.Process([]byte{0x80, 0xA4, 0x04, 0x00})); got != 0x6E00 {
		t.Errorf("CLA 80: %04X, want 6E00", got)
	}
	if got := hexSW(c.Process([]byte{0x00, 0xFD, 0x00, 0x00})); got != 0x6D00 {
		t.Errorf("YubiKey GET VERSION: %04X, want 6D00", got)
	}
	if got := hexSW(c.Process([]byte{0x00, 0xA4})); got != 0x6700 {
		t.Errorf("two bytes: %04X, want 6700", got)
	}
}

// TestGetDataChaining reads a 743-byte certificate: a 756-byte object
// comes as 256 bytes + 61 00, 256 bytes + 61 F4, 244 bytes + 90 00.
func TestGetDataChaining(t *testing.T) {
	cert := bytes.Repeat([]byte{0xC3}, 743)
	c := newCard(t, Options{Cert: cert})
	c.Process(selectPIV)
	r := c.Process([]byte{0x00, 0xCB, 0x3F, 0xFF, 0x05, 0x5C, 0x03, 0x5F, 0xC1, 0x05, 0x00})
	if len(r) != 258 || hexSW(r) != 0x6100 {
		t.Fatalf("first part: %d bytes, %04X", len(r), hexSW(r))
	}
	obj := r[:256]
	r = c.Process([]byte{0x00, 0xC0, 0x00, 0x00, 0x00})
	if len(r) != 258 || hexSW(r) != 0x61F4 {
		t.Fatalf("second part: %d bytes, %04X", len(r), hexSW(r))
	}
	obj = append(obj, r[:256]...)
	r = c.Process([]byte{0x00, 0xC0, 0x00, 0x00, 0xF4})
	if len(r) != 246 || hexSW(r) != 0x9000 {
		t.Fatalf("last part: %d bytes, %04X", len(r), hexSW(r))
	}
	obj = append(obj, r[:244]...)
	want := append([]byte{0x53, 0x82, 0x02, 0xF0, 0x70, 0x82, 0x02, 0xE7}, cert...)
	want = append(want, 0x71, 0x01, 0x00, 0xFE, 0x00)
	if !bytes.Equal(obj, want) {
		t.Errorf("object % X…", obj[:16])
	}
	if got := hexSW(c.Process([]byte{0x00, 0xC0, 0x00, 0x00, 0x00})); got != 0x6985 {
		t.Errorf("GET RESPONSE with nothing pending: %04X, want 6985", got)
	}
	// An extended Le takes the whole object at once.
	r = c.Process([]byte{0x00, 0xCB, 0x3F, 0xFF, 0x00, 0x00, 0x05, 0x5C, 0x03, 0x5F, 0xC1, 0x05, 0x00, 0x00})
	if !bytes.Equal(r, append(want, 0x90, 0x00)) {
		t.Errorf("extended GET DATA: %d bytes, %04X", len(r), hexSW(r))
	}
	for name, tc := range map[string]struct {
		cmd []byte
		sw  uint16
	}{
		"P1P2 not 3FFF":  {[]byte{0x00, 0xCB, 0x3F, 0x00, 0x05, 0x5C, 0x03, 0x5F, 0xC1, 0x05, 0x00}, 0x6A86},
		"not 5C":         {[]byte{0x00, 0xCB, 0x3F, 0xFF, 0x05, 0x5D, 0x03, 0x5F, 0xC1, 0x05, 0x00}, 0x6A80},
		"CCC absent":     {[]byte{0x00, 0xCB, 0x3F, 0xFF, 0x05, 0x5C, 0x03, 0x5F, 0xC1, 0x07, 0x00}, 0x6A82},
		"discovery":      {[]byte{0x00, 0xCB, 0x3F, 0xFF, 0x03, 0x5C, 0x01, 0x7E, 0x00}, 0x9000},
		"CHUID":          {[]byte{0x00, 0xCB, 0x3F, 0xFF, 0x05, 0x5C, 0x03, 0x5F, 0xC1, 0x02, 0x00}, 0x9000},
		"Lc beyond data": {[]byte{0x00, 0xCB, 0x3F, 0xFF, 0x09, 0x5C, 0x03}, 0x6700},
	} {
		if got := hexSW(c.Process(tc.cmd)); got != tc.sw {
			t.Errorf("%s: %04X, want %04X", name, got, tc.sw)
		}
	}
	disc := c.Process([]byte{0x00, 0xCB, 0x3F, 0xFF, 0x03, 0x5C, 0x01, 0x7E, 0x00})
	wantDisc := append(append([]byte{0x7E, 0x12, 0x4F, 0x0B}, AID...), 0x5F, 0x2F, 0x02, 0x40, 0x00, 0x90, 0x00)
	if !bytes.Equal(disc, wantDisc) {
		t.Errorf("discovery % X, want % X", disc, wantDisc)
	}
	empty := newCard(t, Options{})
	empty.Process(selectPIV)
	if got := hexSW(empty.Process([]byte{0x00, 0xCB, 0x3F, 0xFF, 0x05, 0x5C, 0x03, 0x5F, 0xC1, 0x05, 0x00})); got != 0x6A82 {
		t.Errorf("no certificate: %04X, want 6A82", got)
	}
}

func verifyCmd(pin string) []byte {
	b := bytes.Repeat([]byte{0xFF}, 8)
	copy(b, pin)
	return append([]byte{0x00, 0x20, 0x00, 0x80, 0x08}, b...)
}

func TestVerify(t *testing.T) {
	c := newCard(t, Options{})
	c.Process(selectPIV)
	status := []byte{0x00, 0x20, 0x00, 0x80}
	for i, step := range []struct {
		cmd []byte
		sw  uint16
	}{
		{status, 0x63C3},
		{verifyCmd("123456"), 0x9000},
		{status, 0x9000},
		{[]byte{0x00, 0x20, 0xFF, 0x80}, 0x9000}, // reset the security status
		{status, 0x63C3},
		{verifyCmd("000000"), 0x63C2},
		{verifyCmd("000000"), 0x63C1},
		{verifyCmd("123456"), 0x9000}, // the right PIN restores the counter
		{verifyCmd("000000"), 0x63C2},
		{verifyCmd("000000"), 0x63C1},
		{verifyCmd("000000"), 0x63C0},
		{verifyCmd("123456"), 0x6983},
		{status, 0x6983},
		{[]byte{0x00, 0x20, 0x00, 0x81, 0x08, 1, 2, 3, 4, 5, 6, 7, 8}, 0x6A88},
		{[]byte{0x00, 0x20, 0x00, 0x80, 0x06, '1', '2', '3', '4', '5', '6'}, 0x6A80},
	} {
		if got := hexSW(c.Process(step.cmd)); got != step.sw {
			t.Fatalf("step %d (% X): %04X, want %04X", i, step.cmd, got, step.sw)
		}
	}
	if c.TriesLeft() != 0 {
		t.Errorf("%d tries left", c.TriesLeft())
	}
	c.Reset()
	c.Process(selectPIV)
	if got := hexSW(c.Process(verifyCmd("123456"))); got != 0x6983 {
		t.Errorf("a reset unblocked the PIN: %04X", got)
	}
}

func gaData(challenge []byte) []byte {
	inner := append([]byte{0x82, 0x00}, tlv(0x81, challenge)...)
	return tlv(0x7C, inner)
}

// signature takes the 82 value out of 7C { 82 … } 90 00.
func signature(t *testing.T, r []byte) []byte {
	t.Helper()
	if hexSW(r) != 0x9000 {
		t.Fatalf("status %04X", hexSW(r))
	}
	tag, tmpl, _, ok := readTLV(r[:len(r)-2])
	if !ok || tag != 0x7C {
		t.Fatalf("answer % X", r)
	}
	tag, sig, _, ok := readTLV(tmpl)
	if !ok || tag != 0x82 {
		t.Fatalf("template % X", tmpl)
	}
	return sig
}

func TestAuthenticateECDSA(t *testing.T) {
	for _, curve := range []elliptic.Curve{elliptic.P256(), elliptic.P384()} {
		key, _ := ecdsa.GenerateKey(curve, rand.Reader)
		c := newCard(t, Options{Key: key})
		c.Process(selectPIV)
		size := curve.Params().BitSize / 8
		digest := bytes.Repeat([]byte{0x42}, size)
		alg := byte(AlgECCP256)
		if size == 48 {
			alg = AlgECCP384
		}
		ga := func(alg, key byte, data []byte) []byte {
			return append(append([]byte{0x00, 0x87, alg, key, byte(len(data))}, data...), 0x00)
		}
		if got := hexSW(c.Process(ga(alg, 0x9A, gaData(digest)))); got != 0x6982 {
			t.Errorf("%s before VERIFY: %04X, want 6982", curve.Params().Name, got)
		}
		c.Process(verifyCmd("123456"))
		sig := signature(t, c.Process(ga(alg, 0x9A, gaData(digest))))
		if !ecdsa.VerifyASN1(&key.PublicKey, digest, sig) {
			t.Errorf("%s: the signature does not verify", curve.Params().Name)
		}
		for name, tc := range map[string]struct {
			cmd []byte
			sw  uint16
		}{
			"RSA algorithm":   {ga(AlgRSA2048, 0x9A, gaData(digest)), 0x6A86},
			"key 9C":          {ga(alg, 0x9C, gaData(digest)), 0x6A88},
			"short digest":    {ga(alg, 0x9A, gaData(digest[:20])), 0x6A80},
			"no 82 requested": {ga(alg, 0x9A, tlv(0x7C, tlv(0x81, digest))), 0x6A80},
			"not 7C":          {ga(alg, 0x9A, tlv(0x7D, tlv(0x81, digest))), 0x6A80},
		} {
			if got := hexSW(c.Process(tc.cmd)); got != tc.sw {
				t.Errorf("%s %s: %04X, want %04X", curve.Params().Name, name, got, tc.sw)
			}
		}
	}
}

// TestAuthenticateRSA signs a client-padded block, through command
// chaining with short APDUs and through one extended APDU.
func TestAuthenticateRSA(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	c := newCard(t, Options{Key: key})
	c.Process(selectPIV)
	c.Process(verifyCmd("123456"))
	digest := sha256.Sum256([]byte("challenge"))
	prefix := []byte{0x30, 0x31, 0x30, 0x0D, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20}
	em := make([]byte, 256)
	em[1] = 1
	tail := append(prefix, digest[:]...)
	for i := 2; i < 256-len(tail)-1; i++ {
		em[i] = 0xFF
	}
	copy(em[256-len(tail):], tail)
	data := gaData(em) // 266 bytes

	// Chained: 10 87 07 9A FF <255>, 00 87 07 9A 0B <11> 00, GET RESPONSE.
	if r := c.Process(append([]byte{0x10, 0x87, 0x07, 0x9A, 0xFF}, data[:255]...)); hexSW(r) != 0x9000 || len(r) != 2 {
		t.Fatalf("first link: % X", r)
	}
	r := c.Process(append(append([]byte{0x00, 0x87, 0x07, 0x9A, 0x0B}, data[255:]...), 0x00))
	if len(r) != 258 || hexSW(r) != 0x6108 {
		t.Fatalf("last link: %d bytes, %04X", len(r), hexSW(r))
	}
	resp := r[:256]
	r = c.Process([]byte{0x00, 0xC0, 0x00, 0x00, 0x08})
	if len(r) != 10 || hexSW(r) != 0x9000 {
		t.Fatalf("GET RESPONSE: %d bytes, %04X", len(r), hexSW(r))
	}
	resp = append(resp, r[:8]...)
	if !bytes.HasPrefix(resp, []byte{0x7C, 0x82, 0x01, 0x04, 0x82, 0x82, 0x01, 0x00}) {
		t.Fatalf("answer % X…", resp[:8])
	}
	if err := rsa.VerifyPKCS1v15(&key.PublicKey, crypto.SHA256, digest[:], resp[8:]); err != nil {
		t.Errorf("chained: %v", err)
	}

	// Extended: 00 87 07 9A 00 01 0A <266> 00 00.
	ext := append(append([]byte{0x00, 0x87, 0x07, 0x9A, 0x00, 0x01, 0x0A}, data...), 0x00, 0x00)
	sig := signature(t, c.Process(ext))
	if err := rsa.VerifyPKCS1v15(&key.PublicKey, crypto.SHA256, digest[:], sig); err != nil {
		t.Errorf("extended: %v", err)
	}
}

// TestVPCD plays vpcd: the card connects, answers the ATR request and an
// APDU, drops its state on power off, and ends when vpcd closes.
func TestVPCD(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c := newCard(t, Options{})
	slot, err := c.Insert(t.Context(), l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.TCPListener).SetDeadline(time.Now().Add(5 * time.Second))
	conn, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	send := func(msg []byte) {
		conn.Write(binary.BigEndian.AppendUint16(nil, uint16(len(msg))))
		conn.Write(msg) // two writes, as vpcd 3.3 sends them
	}
	recv := func() []byte {
		hdr := make([]byte, 2)
		if _, err := io.ReadFull(conn, hdr); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, binary.BigEndian.Uint16(hdr))
		if _, err := io.ReadFull(conn, b); err != nil {
			t.Fatal(err)
		}
		return b
	}
	send([]byte{0x04})
	if got := recv(); !bytes.Equal(got, ATR) {
		t.Errorf("ATR % X", got)
	}
	send([]byte{0x01})
	send(selectPIV)
	if got := recv(); hexSW(got) != 0x9000 {
		t.Errorf("SELECT: % X", got)
	}
	send(verifyCmd("123456"))
	if got := recv(); hexSW(got) != 0x9000 {
		t.Errorf("VERIFY: % X", got)
	}
	send([]byte{0x00}) // power off: the PIN is no longer verified
	send([]byte{0x01})
	send(selectPIV)
	recv()
	send([]byte{0x00, 0x20, 0x00, 0x80})
	if got := recv(); hexSW(got) != 0x63C3 {
		t.Errorf("PIN status after power off: % X, want 63 C3", got)
	}
	conn.Close()
	select {
	case <-slot.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the card did not notice vpcd closing")
	}
	if err := slot.Remove(); err != nil {
		t.Errorf("Remove: %v", err)
	}
}

func TestNew(t *testing.T) {
	for name, o := range map[string]Options{
		"short PIN":  {PIN: "12345"},
		"long PIN":   {PIN: "123456789"},
		"many tries": {Tries: 16},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	k224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if _, err := New(Options{Key: k224}); err == nil {
		t.Error("P-224 key: no error")
	}
}
