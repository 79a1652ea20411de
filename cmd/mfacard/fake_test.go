package main

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mfabridge/mfabridge/test/pivcard"
)

// fakePCSC puts virtual cards (package pivcard, the card of the
// integration tests) behind the pcsc interface, so every subcommand runs
// here without pcscd.
type fakePCSC struct {
	readers []fakeReader
	err     error // returned by Readers

	mu   sync.Mutex
	sent [][]byte // every APDU transmitted
}

type fakeReader struct {
	name string
	card *pivcard.Card // nil: empty
}

func (f *fakePCSC) Readers() ([]readerStatus, error) {
	if f.err != nil {
		return nil, f.err
	}
	if len(f.readers) == 0 {
		return nil, errNoReaders
	}
	var out []readerStatus
	for _, r := range f.readers {
		rs := readerStatus{Name: r.name, Present: r.card != nil}
		if rs.Present {
			rs.ATR = pivcard.ATR
		}
		out = append(out, rs)
	}
	return out, nil
}

func (f *fakePCSC) Connect(name string) (cardConn, error) {
	for _, r := range f.readers {
		if r.name == name {
			if r.card == nil {
				return nil, &noCardError{reader: name}
			}
			return &fakeConn{f: f, card: r.card}, nil
		}
	}
	return nil, &unknownReaderError{reader: name}
}

func (f *fakePCSC) Close() error { return nil }

func (f *fakePCSC) transcript() [][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sent
}

type fakeConn struct {
	f    *fakePCSC
	card *pivcard.Card
}

func (c *fakeConn) Transmit(apdu []byte) ([]byte, error) {
	c.f.mu.Lock()
	c.f.sent = append(c.f.sent, bytes.Clone(apdu))
	c.f.mu.Unlock()
	return c.card.Process(apdu), nil
}

func (c *fakeConn) Close(reset bool) error {
	if reset {
		c.card.Reset()
	}
	return nil
}

// runTool runs mfacard with args against sys and returns its output and
// exit status.
func runTool(t *testing.T, sys pcsc, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	tl := &tool{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb, now: time.Now,
		open: func() (pcsc, error) {
			if sys == nil {
				return nil, errNoService
			}
			return sys, nil
		}}
	code = tl.run(t.Context(), args)
	return out.String(), errb.String(), code
}

// testPKI is a CA that issues card certificates.
type testPKI struct {
	dir    string
	cert   *x509.Certificate
	key    *ecdsa.PrivateKey
	caFile string
}

func newTestPKI(t *testing.T, name string) *testPKI {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name + " CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	p := &testPKI{dir: t.TempDir(), cert: cert, key: key}
	p.caFile = filepath.Join(p.dir, "ca.pem")
	writeTestPEM(t, p.caFile, "CERTIFICATE", der)
	return p
}

func writeTestPEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

type leafOpts struct {
	cn, upn, email string
	notAfter       time.Time // default: a day ahead
}

var (
	testOIDSAN = asn1.ObjectIdentifier{2, 5, 29, 17}
	testOIDUPN = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 20, 2, 3}
)

// leaf issues a smartcard-logon certificate for key's public half.
func (p *testPKI) leaf(t *testing.T, key crypto.Signer, o leafOpts) *x509.Certificate {
	t.Helper()
	if o.notAfter.IsZero() {
		o.notAfter = time.Now().Add(24 * time.Hour)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: o.cn},
		NotBefore: o.notAfter.Add(-48 * time.Hour), NotAfter: o.notAfter, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage:        []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		UnknownExtKeyUsage: []asn1.ObjectIdentifier{oidSmartcardLogon}}
	var names []asn1.RawValue
	if o.upn != "" {
		utf8, _ := asn1.MarshalWithParams(o.upn, "utf8")
		id, _ := asn1.Marshal(testOIDUPN)
		val, _ := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: utf8})
		names = append(names, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: append(id, val...)})
	}
	if o.email != "" {
		names = append(names, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 1, Bytes: []byte(o.email)})
	}
	if len(names) > 0 {
		san, err := asn1.Marshal(names)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.ExtraExtensions = []pkix.Extension{{Id: testOIDSAN, Value: san}}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.cert, key.Public(), p.key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newECKey(t *testing.T, c elliptic.Curve) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

var (
	rsaOnce sync.Once
	rsaKey  *rsa.PrivateKey
)

// newRSAKey returns one RSA-2048 key for all tests: generating one takes
// a while under -race.
func newRSAKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	rsaOnce.Do(func() {
		var err error
		if rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
	})
	return rsaKey
}

func newCard(t *testing.T, o pivcard.Options) *pivcard.Card {
	t.Helper()
	c, err := pivcard.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// oneCard is a PC/SC service with the card in the first of two readers.
func oneCard(c *pivcard.Card) *fakePCSC {
	return &fakePCSC{readers: []fakeReader{{name: "Reader A", card: c}, {name: "Reader B"}}}
}
