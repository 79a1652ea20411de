package smartcard

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/ocsp"

	"github.com/mfabridge/mfabridge/internal/audit"
	"github.com/mfabridge/mfabridge/test/harness"
)

// testCA is a CA for the tests: a root or an intermediate.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string // PEM of cert
}

var serials atomic.Int64

func nextSerial() *big.Int { return big.NewInt(1000 + serials.Add(1)) }

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func writePEM(t testing.TB, path, typ string, ders ...[]byte) string {
	t.Helper()
	var b []byte
	for _, d := range ders {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: d})...)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func create(t testing.TB, tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) *x509.Certificate {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func caTemplate(cn string) *x509.Certificate {
	return &x509.Certificate{SerialNumber: nextSerial(), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-24 * time.Hour), NotAfter: time.Now().Add(365 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, BasicConstraintsValid: true, IsCA: true}
}

func newRoot(t testing.TB, cn string) *testCA {
	t.Helper()
	key := newKey(t)
	tmpl := caTemplate(cn)
	c := create(t, tmpl, tmpl, &key.PublicKey, key)
	return &testCA{cert: c, key: key, file: writePEM(t, filepath.Join(t.TempDir(), "ca.pem"), "CERTIFICATE", c.Raw)}
}

// sub issues an intermediate CA; tweak may change its template.
func (ca *testCA) sub(t testing.TB, cn string, tweak ...leafOpts) *testCA {
	t.Helper()
	key := newKey(t)
	tmpl := caTemplate(cn)
	for _, f := range tweak {
		f(tmpl)
	}
	c := create(t, tmpl, ca.cert, &key.PublicKey, ca.key)
	return &testCA{cert: c, key: key, file: writePEM(t, filepath.Join(t.TempDir(), "sub.pem"), "CERTIFICATE", c.Raw)}
}

// leafOpts change a card certificate's template.
type leafOpts func(*x509.Certificate)

// leaf issues a card certificate: CN alice, valid now, digitalSignature,
// EKUs client authentication and smartcard logon.
func (ca *testCA) leaf(t testing.TB, opts ...leafOpts) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: nextSerial(), Subject: pkix.Name{CommonName: "alice"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		UnknownExtKeyUsage: []asn1.ObjectIdentifier{oidSmartcardLogon}}
	for _, o := range opts {
		o(tmpl)
	}
	key := newKey(t)
	return create(t, tmpl, ca.cert, &key.PublicKey, ca.key)
}

// crl writes a CRL signed by signer in the name of ca, valid until next,
// revoking serials; PEM unless der is set.
func crlOf(t testing.TB, ca *x509.Certificate, signer crypto.Signer, next time.Time, revoked ...*big.Int) []byte {
	t.Helper()
	tmpl := &x509.RevocationList{Number: nextSerial(), ThisUpdate: time.Now().Add(-48 * time.Hour), NextUpdate: next}
	for _, s := range revoked {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries,
			x509.RevocationListEntry{SerialNumber: s, RevocationTime: time.Now().Add(-time.Hour)})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, ca, signer)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func (ca *testCA) crl(t testing.TB, next time.Time, revoked ...*big.Int) []byte {
	t.Helper()
	return crlOf(t, ca.cert, ca.key, next, revoked...)
}

func crlFile(t testing.TB, ders ...[]byte) string {
	t.Helper()
	return writePEM(t, filepath.Join(t.TempDir(), "crl.pem"), "X509 CRL", ders...)
}

// cas lists CA files with the default rule.
func cas(files ...string) []CA {
	out := make([]CA, len(files))
	for i, f := range files {
		out[i] = CA{File: f}
	}
	return out
}

func newValidator(t testing.TB, o Options) *Validator {
	t.Helper()
	v, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func wantErr(t *testing.T, err, want error) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Errorf("got %v, want acceptance", err)
		}
		return
	}
	if !errors.Is(err, want) {
		t.Errorf("got %v, want %v", err, want)
	}
}

func TestVerify(t *testing.T) {
	root := newRoot(t, "root")
	inter := root.sub(t, "issuing CA")
	other := newRoot(t, "someone else's root")
	good := inter.leaf(t)
	clientOnly := func(c *x509.Certificate) { c.UnknownExtKeyUsage = nil }
	logonOnly := func(c *x509.Certificate) { c.ExtKeyUsage = nil }
	noEKU := func(c *x509.Certificate) { c.ExtKeyUsage, c.UnknownExtKeyUsage = nil, nil }
	both := []string{EKUClientAuth, EKUSmartcardLogon}

	for _, tc := range []struct {
		name  string
		chain []*x509.Certificate
		eku   []string
		now   time.Time
		want  error
	}{
		{"chain with an intermediate", []*x509.Certificate{good, inter.cert}, both, time.Time{}, nil},
		{"intermediate not sent", []*x509.Certificate{good}, both, time.Time{}, ErrUntrusted},
		{"root sent along", []*x509.Certificate{good, inter.cert, root.cert}, both, time.Time{}, nil},
		{"untrusted root", []*x509.Certificate{other.leaf(t)}, both, time.Time{}, ErrUntrusted},
		{"self-signed leaf", []*x509.Certificate{other.cert}, nil, time.Time{}, ErrUntrusted},
		{"no certificate", nil, nil, time.Time{}, ErrUntrusted},
		{"expired", []*x509.Certificate{good, inter.cert}, both, good.NotAfter.Add(time.Minute), ErrExpired},
		{"not yet valid", []*x509.Certificate{good, inter.cert}, both, good.NotBefore.Add(-time.Minute), ErrExpired},
		{"intermediate expired", func() []*x509.Certificate {
			old := root.sub(t, "expired CA", func(c *x509.Certificate) { c.NotAfter = time.Now().Add(-time.Minute) })
			return []*x509.Certificate{old.leaf(t), old.cert}
		}(), nil, time.Time{}, ErrExpired},
		{"key usage without digitalSignature", []*x509.Certificate{inter.leaf(t, func(c *x509.Certificate) {
			c.KeyUsage = x509.KeyUsageKeyEncipherment
		}), inter.cert}, both, time.Time{}, ErrKeyUsage},
		{"no key usage extension", []*x509.Certificate{inter.leaf(t, func(c *x509.Certificate) { c.KeyUsage = 0 }), inter.cert}, both, time.Time{}, nil},
		{"client_auth present", []*x509.Certificate{inter.leaf(t, clientOnly), inter.cert}, []string{EKUClientAuth}, time.Time{}, nil},
		{"client_auth missing", []*x509.Certificate{inter.leaf(t, logonOnly), inter.cert}, []string{EKUClientAuth}, time.Time{}, ErrEKU},
		{"smartcard_logon present", []*x509.Certificate{inter.leaf(t, logonOnly), inter.cert}, []string{EKUSmartcardLogon}, time.Time{}, nil},
		{"smartcard_logon missing", []*x509.Certificate{inter.leaf(t, clientOnly), inter.cert}, []string{EKUSmartcardLogon}, time.Time{}, ErrEKU},
		{"both required, one present", []*x509.Certificate{inter.leaf(t, clientOnly), inter.cert}, both, time.Time{}, ErrEKU},
		{"no EKU, both required", []*x509.Certificate{inter.leaf(t, noEKU), inter.cert}, both, time.Time{}, ErrEKU},
		{"no EKU, none required", []*x509.Certificate{inter.leaf(t, noEKU), inter.cert}, nil, time.Time{}, nil},
		{"server auth only", []*x509.Certificate{inter.leaf(t, func(c *x509.Certificate) {
			c.ExtKeyUsage, c.UnknownExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, nil
		}), inter.cert}, []string{EKUClientAuth}, time.Time{}, ErrEKU},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := Options{CAs: cas(root.file), Revocation: RevocationNone, RequireEKU: tc.eku}
			if !tc.now.IsZero() {
				o.Now = func() time.Time { return tc.now }
			}
			v := newValidator(t, o)
			wantErr(t, v.Verify(tc.chain), tc.want)
		})
	}
}

func TestNewChecksFiles(t *testing.T) {
	dir := t.TempDir()
	root := newRoot(t, "root")
	inter := root.sub(t, "issuing CA")
	notPEM := filepath.Join(dir, "not.pem")
	os.WriteFile(notPEM, []byte("hello"), 0o644)
	later := time.Now().Add(time.Hour)
	good := crlFile(t, root.crl(t, later))
	impostorKey := newKey(t)
	impostor := create(t, &x509.Certificate{SerialNumber: nextSerial(), Subject: root.cert.Subject,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: later, KeyUsage: x509.KeyUsageCRLSign | x509.KeyUsageCertSign,
		BasicConstraintsValid: true, IsCA: true}, caTemplate("x"), &impostorKey.PublicKey, impostorKey)
	for name, tc := range map[string]struct {
		o    Options
		want string // in the error
	}{
		"no ca_files":         {Options{}, "no ca_files"},
		"missing CA file":     {Options{CAs: cas(filepath.Join(dir, "nope.pem")), Revocation: RevocationNone}, "nope.pem"},
		"CA file without PEM": {Options{CAs: cas(notPEM), Revocation: RevocationNone}, "no PEM certificate"},
		"missing CRL file":    {Options{CAs: cas(root.file), CRLFiles: []string{filepath.Join(dir, "nope.crl")}}, "nope.crl"},
		"CRL file without a CRL": {Options{CAs: cas(root.file),
			CRLFiles: []string{writePEM(t, filepath.Join(dir, "cert.pem"), "CERTIFICATE", root.cert.Raw)}}, "holds no CRL"},
		"CRL that does not parse":     {Options{CAs: cas(root.file), CRLFiles: []string{writePEM(t, filepath.Join(dir, "bad.crl"), "X509 CRL", []byte("junk"))}}, "bad.crl"},
		"a CA with no CRL":            {Options{CAs: cas(root.file)}, "has no CRL"},
		"an intermediate with no CRL": {Options{CAs: cas(root.file, inter.file), CRLFiles: []string{good}}, "issuing CA"},
		"a CRL signed by another key": {Options{CAs: cas(root.file), CRLFiles: []string{good,
			crlFile(t, crlOf(t, impostor, impostorKey, later))}}, "signature does not verify"},
		"a CRL of a CA not configured": {Options{CAs: cas(root.file), CRLFiles: []string{good,
			crlFile(t, newRoot(t, "unrelated").crl(t, later))}}, "not in ca_files"},
	} {
		_, err := New(tc.o)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: New: %v, want an error saying %q", name, err, tc.want)
		}
	}
	// DER is accepted as well as PEM.
	der := filepath.Join(dir, "crl.der")
	os.WriteFile(der, root.crl(t, later), 0o644)
	if _, err := New(Options{CAs: cas(root.file), CRLFiles: []string{der}}); err != nil {
		t.Errorf("DER CRL: %v", err)
	}
	// A CA with revocation: none of its own needs no CRL; OCSP needs none.
	for name, o := range map[string]Options{
		"none for the CA": {CAs: []CA{{File: root.file, Revocation: RevocationNone}}},
		"none by default": {CAs: cas(root.file), Revocation: RevocationNone},
		"ocsp":            {CAs: cas(root.file), Revocation: RevocationOCSP},
	} {
		if _, err := New(o); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestCRL(t *testing.T) {
	root := newRoot(t, "root")
	inter := root.sub(t, "issuing CA")
	other := root.sub(t, "another issuing CA") // not configured: sent by the client
	leaf := inter.leaf(t)
	chain := []*x509.Certificate{leaf, inter.cert}
	later := time.Now().Add(time.Hour)

	for _, tc := range []struct {
		name  string
		crls  [][]byte // in one PEM file
		chain []*x509.Certificate
		want  error
	}{
		{"none revoked", [][]byte{inter.crl(t, later), root.crl(t, later)}, chain, nil},
		{"leaf revoked", [][]byte{inter.crl(t, later, leaf.SerialNumber), root.crl(t, later)}, chain, ErrRevoked},
		{"intermediate revoked", [][]byte{inter.crl(t, later), root.crl(t, later, inter.cert.SerialNumber)}, chain, ErrRevoked},
		{"leaf's serial in the root's CRL", [][]byte{inter.crl(t, later), root.crl(t, later, leaf.SerialNumber)}, chain, nil},
		{"stale CRL of the issuer", [][]byte{inter.crl(t, time.Now().Add(-time.Minute)), root.crl(t, later)}, chain, ErrCRLStale},
		{"stale CRL of the root", [][]byte{inter.crl(t, later), root.crl(t, time.Now().Add(-time.Minute))}, chain, ErrCRLStale},
		{"the newest CRL counts", [][]byte{inter.crl(t, later), inter.crl(t, later, leaf.SerialNumber), root.crl(t, later)}, chain, ErrRevoked},
		{"an intermediate the client sent has no CRL", [][]byte{inter.crl(t, later), root.crl(t, later)},
			[]*x509.Certificate{other.leaf(t), other.cert}, ErrCRLMissing},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := newValidator(t, Options{CAs: cas(root.file, inter.file), CRLFiles: []string{crlFile(t, tc.crls...)}})
			err := v.Verify(tc.chain)
			wantErr(t, err, tc.want)
			if tc.want != nil && Reason(err) != map[error]audit.Reason{ErrRevoked: "cert_revoked", ErrCRLStale: "cert_crl_stale",
				ErrCRLMissing: "cert_crl_missing"}[tc.want] {
				t.Errorf("Reason %q", Reason(err))
			}
		})
	}

	t.Run("CRLs in several files", func(t *testing.T) {
		v := newValidator(t, Options{CAs: cas(root.file, inter.file),
			CRLFiles: []string{crlFile(t, root.crl(t, later)), crlFile(t, inter.crl(t, later, leaf.SerialNumber))}})
		wantErr(t, v.Verify(chain), ErrRevoked)
	})
	t.Run("an intermediate in ca_files is checked against its root", func(t *testing.T) {
		// Were the intermediate an anchor, the root's CRL revoking it would
		// never be read.
		v := newValidator(t, Options{CAs: cas(inter.file, root.file),
			CRLFiles: []string{crlFile(t, inter.crl(t, later), root.crl(t, later, inter.cert.SerialNumber))}})
		wantErr(t, v.Verify([]*x509.Certificate{leaf}), ErrRevoked)
	})
	t.Run("revocation none for the root only", func(t *testing.T) {
		v := newValidator(t, Options{CAs: []CA{{File: root.file, Revocation: RevocationNone}, {File: inter.file}},
			CRLFiles: []string{crlFile(t, inter.crl(t, later, leaf.SerialNumber))}})
		wantErr(t, v.Verify(chain), ErrRevoked)
		wantErr(t, v.Verify([]*x509.Certificate{inter.leaf(t), inter.cert}), nil)
	})
}

// opensslCert makes a self-signed certificate with openssl req, as an
// administrator would, and returns it parsed. alt are the lines of the
// subjectAltName section, e.g. "otherName.1 = OID;FORMAT:UTF8,UTF8:name"
// (without FORMAT:UTF8 openssl reads the value as Latin-1); none: no SAN.
func opensslCert(t *testing.T, cn string, alt ...string) *x509.Certificate {
	t.Helper()
	bin, err := exec.LookPath("openssl")
	if err != nil {
		t.Fatal("openssl is needed: sudo apt-get install -y openssl")
	}
	dir := t.TempDir()
	cert := filepath.Join(dir, "cert.pem")
	cnf := "[req]\ndistinguished_name = dn\nx509_extensions = ext\nprompt = no\n[dn]\nCN = " + cn +
		"\n[ext]\nextendedKeyUsage = clientAuth,1.3.6.1.4.1.311.20.2.2\n"
	if len(alt) > 0 {
		cnf += "subjectAltName = @alt\n[alt]\n" + strings.Join(alt, "\n") + "\n"
	}
	cnfFile := filepath.Join(dir, "req.cnf")
	if err := os.WriteFile(cnfFile, []byte(cnf), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"req", "-x509", "-config", cnfFile, "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-keyout", filepath.Join(dir, "key.pem"), "-out", cert, "-days", "1"}
	if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
		t.Fatalf("openssl %q: %v\n%s\n%s", args, err, out, cnf)
	}
	b, err := os.ReadFile(cert)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("openssl wrote no PEM:\n%s", b)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func harnessCard(t *testing.T, o harness.CardOptions) *x509.Certificate {
	t.Helper()
	dir := t.TempDir()
	ca, err := harness.NewCA(dir, "cards")
	if err != nil {
		t.Fatal(err)
	}
	_, _, c, err := ca.CardCert(dir, "card", o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// upnName is an [alt] line of opensslCert with a UPN otherName.
func upnName(n int, upn string) string {
	return fmt.Sprintf("otherName.%d = 1.3.6.1.4.1.311.20.2.3;FORMAT:UTF8,UTF8:%s", n, upn)
}

func TestIdentity(t *testing.T) {
	root := newRoot(t, "root")
	v := func(identity string) *Validator {
		return newValidator(t, Options{CAs: cas(root.file), Revocation: RevocationNone, Identity: identity})
	}
	for _, tc := range []struct {
		name, identity string
		cert           *x509.Certificate
		want           string // "" for ErrNoIdentity
	}{
		{"upn, harness card", IdentityUPN, harnessCard(t, harness.CardOptions{CN: "Alice", UPN: "alice@example.org", Email: "a@mail.example.org"}), "alice@example.org"},
		{"upn, openssl", IdentityUPN, opensslCert(t, "Alice", upnName(1, "alice@example.org")), "alice@example.org"},
		{"upn, openssl, among other names", IdentityUPN, opensslCert(t, "Alice", "DNS.1 = host.example.org",
			"email.1 = alice@mail.example.org", "otherName.1 = 1.2.3.4;UTF8:not-a-upn", upnName(2, "bob@example.org")),
			"bob@example.org"},
		{"upn, openssl, not ASCII", IdentityUPN, opensslCert(t, "Zoe", upnName(1, "zoë@example.org")), "zoë@example.org"},
		{"upn, openssl, two UPNs: the first", IdentityUPN, opensslCert(t, "Alice", upnName(1, "first@example.org"),
			upnName(2, "second@example.org")), "first@example.org"},
		{"upn, default identity", "", harnessCard(t, harness.CardOptions{CN: "Alice", UPN: "alice@example.org"}), "alice@example.org"},
		{"upn missing", IdentityUPN, harnessCard(t, harness.CardOptions{CN: "Alice", Email: "alice@example.org"}), ""},
		{"upn missing, openssl, other otherName", IdentityUPN, opensslCert(t, "Alice", "otherName.1 = 1.2.3.4;UTF8:alice@example.org"), ""},
		{"upn missing, no SAN", IdentityUPN, opensslCert(t, "Alice"), ""},
		{"email, harness card", IdentityEmail, harnessCard(t, harness.CardOptions{CN: "Alice", UPN: "alice@example.org", Email: "a@mail.example.org"}), "a@mail.example.org"},
		{"email, openssl", IdentityEmail, opensslCert(t, "Alice", "email.1 = alice@mail.example.org", "email.2 = second@example.org"), "alice@mail.example.org"},
		{"email missing", IdentityEmail, harnessCard(t, harness.CardOptions{CN: "Alice", UPN: "alice@example.org"}), ""},
		{"subject_cn", IdentitySubjectCN, harnessCard(t, harness.CardOptions{CN: "alice", UPN: "bob@example.org"}), "alice"},
		{"subject_cn missing", IdentitySubjectCN, harnessCard(t, harness.CardOptions{UPN: "bob@example.org"}), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := v(tc.identity).Identity(tc.cert)
			if tc.want == "" {
				if !errors.Is(err, ErrNoIdentity) || Reason(err) != "cert_no_identity" {
					t.Errorf("got %+v, %v; want ErrNoIdentity", got, err)
				}
				return
			}
			if err != nil || got.Value != tc.want {
				t.Errorf("got %+v, %v; want %q", got, err, tc.want)
			}
			if login := got.Login; (tc.identity == IdentitySubjectCN) != (login == tc.want) || tc.identity != IdentitySubjectCN && login != "" {
				t.Errorf("Login %q: a subject CN is a login name, a UPN or email is looked up whole", login)
			}
		})
	}
}

// ocspResponder answers OCSP requests for certificates of issuer with the
// status set for their serial (Good when none is set).
type ocspResponder struct {
	issuer *testCA
	signer *testCA // who signs the responses; the issuer when nil
	status map[string]int
	hits   atomic.Int64
	// age and validity set ThisUpdate (now - age; default a minute ago)
	// and NextUpdate (ThisUpdate + validity; default an hour; negative:
	// none).
	age, validity time.Duration
}

func (o *ocspResponder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	o.hits.Add(1)
	body, _ := io.ReadAll(r.Body)
	req, err := ocsp.ParseRequest(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	st, ok := o.status[req.SerialNumber.String()]
	if !ok {
		st = ocsp.Good
	}
	signer := o.signer
	if signer == nil {
		signer = o.issuer
	}
	age, validity := o.age, o.validity
	if age == 0 {
		age = time.Minute
	}
	if validity == 0 {
		validity = time.Hour
	}
	tmpl := ocsp.Response{Status: st, SerialNumber: req.SerialNumber, ThisUpdate: time.Now().Add(-age)}
	if validity > 0 {
		tmpl.NextUpdate = tmpl.ThisUpdate.Add(validity)
	}
	if st == ocsp.Revoked {
		tmpl.RevokedAt, tmpl.RevocationReason = time.Now().Add(-time.Hour), ocsp.KeyCompromise
	}
	if signer != o.issuer {
		tmpl.Certificate = signer.cert // a delegated responder sends its certificate
	}
	resp, err := ocsp.CreateResponse(o.issuer.cert, signer.cert, tmpl, signer.key)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/ocsp-response")
	w.Write(resp)
}

func TestOCSP(t *testing.T) {
	root := newRoot(t, "root")
	inter := root.sub(t, "issuing CA")
	serve := func(o *ocspResponder) string {
		srv := httptest.NewServer(o)
		t.Cleanup(srv.Close)
		return srv.URL
	}
	resp := &ocspResponder{issuer: inter, status: map[string]int{}}
	url := serve(resp)
	withOCSP := func(url string) leafOpts { return func(c *x509.Certificate) { c.OCSPServer = []string{url} } }
	good := inter.leaf(t, withOCSP(url))
	revoked := inter.leaf(t, withOCSP(url))
	unknown := inter.leaf(t, withOCSP(url))
	resp.status[revoked.SerialNumber.String()] = ocsp.Revoked
	resp.status[unknown.SerialNumber.String()] = ocsp.Unknown

	down := httptest.NewServer(http.NotFoundHandler())
	downURL := down.URL
	down.Close()
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "oops", http.StatusInternalServerError)
	}))
	t.Cleanup(broken.Close)
	garbage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("not OCSP")) }))
	t.Cleanup(garbage.Close)
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, url, http.StatusTemporaryRedirect)
	}))
	t.Cleanup(redirect.Close)
	hang := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(hang) })
	forged := serve(&ocspResponder{issuer: inter, signer: newRoot(t, "not the issuer"), status: map[string]int{}})
	// Delegated responders: certificates of the issuer, one made an OCSP
	// responder (id-kp-OCSPSigning), one not (a card, say).
	delegate := inter.sub(t, "OCSP responder", func(c *x509.Certificate) {
		c.IsCA, c.KeyUsage, c.ExtKeyUsage = false, x509.KeyUsageDigitalSignature, []x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning}
	})
	notDelegate := inter.sub(t, "a card", func(c *x509.Certificate) {
		c.IsCA, c.KeyUsage, c.ExtKeyUsage = false, x509.KeyUsageDigitalSignature, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	})
	delegated := serve(&ocspResponder{issuer: inter, signer: delegate, status: map[string]int{}})
	notDelegated := serve(&ocspResponder{issuer: inter, signer: notDelegate, status: map[string]int{}})
	old := serve(&ocspResponder{issuer: inter, status: map[string]int{}, age: 48 * time.Hour, validity: 24 * time.Hour})
	future := serve(&ocspResponder{issuer: inter, status: map[string]int{}, age: -time.Hour})
	noNext := serve(&ocspResponder{issuer: inter, status: map[string]int{}, age: 2 * time.Hour, validity: -1})
	freshNoNext := serve(&ocspResponder{issuer: inter, status: map[string]int{}, validity: -1})

	for _, tc := range []struct {
		name      string
		leaf      *x509.Certificate
		soft      bool
		want      error
		maxTime   time.Duration
		wantCalls bool
	}{
		{"good", good, false, nil, 0, true},
		{"revoked", revoked, false, ErrRevoked, 0, true},
		{"revoked, soft failure", revoked, true, ErrRevoked, 0, true},
		{"unknown", unknown, false, ErrOCSP, 0, true},
		{"unknown, soft failure", unknown, true, nil, 0, true},
		{"responder down", inter.leaf(t, withOCSP(downURL)), false, ErrOCSP, 0, false},
		{"responder down, soft failure", inter.leaf(t, withOCSP(downURL)), true, nil, 0, false},
		{"HTTP 500", inter.leaf(t, withOCSP(broken.URL)), false, ErrOCSP, 0, false},
		{"HTTP 500, soft failure", inter.leaf(t, withOCSP(broken.URL)), true, nil, 0, false},
		{"a redirect is not followed", inter.leaf(t, withOCSP(redirect.URL)), false, ErrOCSP, 0, false},
		{"not an OCSP response", inter.leaf(t, withOCSP(garbage.URL)), false, ErrOCSP, 0, false},
		{"signed by someone else", inter.leaf(t, withOCSP(forged)), false, ErrOCSP, 0, false},
		{"signed by a delegated responder", inter.leaf(t, withOCSP(delegated)), false, nil, 0, false},
		{"signed by a certificate of the issuer that is no responder", inter.leaf(t, withOCSP(notDelegated)), false, ErrOCSP, 0, false},
		{"an old answer", inter.leaf(t, withOCSP(old)), false, ErrOCSPStale, 0, false},
		{"an old answer, soft failure", inter.leaf(t, withOCSP(old)), true, ErrOCSPStale, 0, false},
		{"an answer from the future", inter.leaf(t, withOCSP(future)), false, ErrOCSPStale, 0, false},
		{"no next update, two hours old", inter.leaf(t, withOCSP(noNext)), false, ErrOCSPStale, 0, false},
		{"no next update, fresh", inter.leaf(t, withOCSP(freshNoNext)), false, nil, 0, false},
		{"no responder in the certificate", inter.leaf(t), false, ErrOCSP, 0, false},
		{"no responder in the certificate, soft failure", inter.leaf(t), true, ErrOCSP, 0, false},
		{"timeout", inter.leaf(t, withOCSP(slow.URL)), false, ErrOCSP, 2 * time.Second, false},
		{"timeout, soft failure", inter.leaf(t, withOCSP(slow.URL)), true, nil, 2 * time.Second, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := newValidator(t, Options{CAs: []CA{{File: root.file, Revocation: RevocationNone}, {File: inter.file, Revocation: RevocationOCSP}},
				OCSPSoftFail: tc.soft, OCSPTimeout: 300 * time.Millisecond})
			before := resp.hits.Load()
			start := time.Now()
			err := v.Verify([]*x509.Certificate{tc.leaf, inter.cert})
			wantErr(t, err, tc.want)
			if tc.maxTime > 0 && time.Since(start) > tc.maxTime {
				t.Errorf("took %v with ocsp_timeout 300ms", time.Since(start))
			}
			if tc.wantCalls && resp.hits.Load() == before {
				t.Error("the responder was not asked")
			}
			if want := map[error]audit.Reason{ErrOCSP: "cert_ocsp_unavailable", ErrOCSPStale: "cert_ocsp_stale"}[tc.want]; want != "" && Reason(err) != want {
				t.Errorf("Reason %q, want %q", Reason(err), want)
			}
		})
	}

	t.Run("off", func(t *testing.T) {
		v := newValidator(t, Options{CAs: cas(root.file), Revocation: RevocationNone})
		before := resp.hits.Load()
		wantErr(t, v.Verify([]*x509.Certificate{revoked, inter.cert}), nil)
		if resp.hits.Load() != before {
			t.Error("the responder was asked with revocation none")
		}
	})
	t.Run("CRL first", func(t *testing.T) {
		crl := crlFile(t, inter.crl(t, time.Now().Add(time.Hour), good.SerialNumber))
		v := newValidator(t, Options{CAs: []CA{{File: root.file, Revocation: RevocationNone}, {File: inter.file, Revocation: RevocationCRLAndOCSP}},
			CRLFiles: []string{crl}})
		wantErr(t, v.Verify([]*x509.Certificate{good, inter.cert}), ErrRevoked)
	})
	t.Run("the intermediate is asked about too", func(t *testing.T) {
		rootResp := &ocspResponder{issuer: root, status: map[string]int{}}
		rootURL := serve(rootResp)
		sub := root.sub(t, "revoked issuing CA", withOCSP(rootURL))
		rootResp.status[sub.cert.SerialNumber.String()] = ocsp.Revoked
		subResp := serve(&ocspResponder{issuer: sub, status: map[string]int{}})
		v := newValidator(t, Options{CAs: cas(root.file), Revocation: RevocationOCSP})
		wantErr(t, v.Verify([]*x509.Certificate{sub.leaf(t, withOCSP(subResp)), sub.cert}), ErrRevoked)
	})
}

func TestAllowedRealms(t *testing.T) {
	root := newRoot(t, "root")
	v := newValidator(t, Options{CAs: cas(root.file), Revocation: RevocationNone, AllowedRealms: []string{"example.org", "NHS.example"}})
	for _, tc := range []struct {
		upn, login string
		err        error
	}{
		{"alice@example.org", "alice", nil},
		{"alice@EXAMPLE.ORG", "alice", nil},
		{"bob@nhs.example", "bob", nil},
		{"alice@other.example", "", ErrRealm},
		{"alice@example.org.evil", "", ErrRealm},
		{"alice@sub.example.org", "", ErrRealm},
		{"alice", "", ErrRealm},
		{"@example.org", "", ErrRealm},
	} {
		got, err := v.Identity(harnessCard(t, harness.CardOptions{CN: "x", UPN: tc.upn}))
		if !errors.Is(err, tc.err) || err == nil && got.Login != tc.login {
			t.Errorf("%q: %+v, %v; want login %q, %v", tc.upn, got, err, tc.login, tc.err)
		}
		if tc.err != nil && Reason(err) != "cert_realm_not_allowed" {
			t.Errorf("%q: reason %q", tc.upn, Reason(err))
		}
	}
}

func TestSID(t *testing.T) {
	root := newRoot(t, "root")
	const sid = "S-1-5-21-3623811015-3361044348-30300820-1013"
	// The extension as AD CS writes it: a GeneralNames with one
	// otherName 1.3.6.1.4.1.311.25.2.1 holding the SID as an OCTET STRING.
	value, _ := asn1.Marshal([]byte(sid))
	on, _ := asn1.Marshal(struct {
		ID    asn1.ObjectIdentifier
		Value asn1.RawValue
	}{asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 25, 2, 1}, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: value}})
	var seq asn1.RawValue
	asn1.Unmarshal(on, &seq)
	ext, _ := asn1.Marshal([]asn1.RawValue{{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: seq.Bytes}})
	with := root.leaf(t, func(c *x509.Certificate) {
		c.ExtraExtensions = append(c.ExtraExtensions, pkix.Extension{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 25, 2}, Value: ext})
	})
	if got := SID(with); got != sid {
		t.Errorf("SID = %q, want %q", got, sid)
	}
	if got := SID(root.leaf(t)); got != "" {
		t.Errorf("SID of a certificate without the extension = %q", got)
	}
	v := newValidator(t, Options{CAs: cas(root.file), Revocation: RevocationNone, Identity: IdentitySubjectCN})
	if id, err := v.Identity(with); err != nil || id.SID != sid {
		t.Errorf("Identity: %+v, %v", id, err)
	}
}

func TestReason(t *testing.T) {
	for err, want := range map[error]audit.Reason{
		ErrUntrusted:   "cert_untrusted",
		ErrExpired:     "cert_expired",
		ErrKeyUsage:    "cert_key_usage",
		ErrEKU:         "cert_eku",
		ErrRevoked:     "cert_revoked",
		ErrCRLStale:    "cert_crl_stale",
		ErrCRLMissing:  "cert_crl_missing",
		ErrOCSP:        "cert_ocsp_unavailable",
		ErrOCSPStale:   "cert_ocsp_stale",
		ErrRealm:       "cert_realm_not_allowed",
		ErrNoIdentity:  "cert_no_identity",
		ErrNotEnrolled: "cert_not_enrolled",
		errors.New("eap: unreadable client certificate"): "cert_invalid",
	} {
		if got := Reason(err); got != want {
			t.Errorf("Reason(%v) = %q, want %q", err, got, want)
		}
		wrapped := fmt.Errorf("eap: handshake: %w", fmt.Errorf("%w: detail", err))
		if got := Reason(wrapped); got != want {
			t.Errorf("Reason(%v) = %q, want %q", wrapped, got, want)
		}
	}
}

func TestDescribe(t *testing.T) {
	root := newRoot(t, "root")
	c := root.leaf(t)
	d := Describe(c)
	sum := sha256.Sum256(c.Raw)
	if d.Leaf != c || d.Subject != "CN=alice" || d.Issuer != "CN=root" || d.Serial != hex.EncodeToString(c.SerialNumber.Bytes()) ||
		d.Fingerprint != hex.EncodeToString(sum[:]) {
		t.Errorf("Describe: %+v", d)
	}
}

// sanExtension returns the value of the certificate's SAN extension.
func sanExtension(c *x509.Certificate) []byte {
	for _, e := range c.Extensions {
		if e.Id.Equal(oidSAN) {
			return e.Value
		}
	}
	return nil
}

// marshalUPN encodes a SAN holding one UPN otherName.
func marshalUPN(upn string) ([]byte, error) {
	utf8, err := asn1.MarshalWithParams(upn, "utf8")
	if err != nil {
		return nil, err
	}
	on, err := asn1.Marshal(struct {
		ID    asn1.ObjectIdentifier
		Value asn1.RawValue
	}{oidUPN, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: utf8}})
	if err != nil {
		return nil, err
	}
	var seq asn1.RawValue
	if _, err := asn1.Unmarshal(on, &seq); err != nil {
		return nil, err
	}
	return asn1.Marshal([]asn1.RawValue{{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: seq.Bytes}})
}

func TestUPNParser(t *testing.T) {
	for _, tc := range []struct {
		name string
		san  []byte
		want string
	}{
		{"empty", nil, ""},
		{"empty sequence", []byte{0x30, 0x00}, ""},
		{"not a sequence", []byte{0x04, 0x01, 0x00}, ""},
		{"trailing bytes", append(must(marshalUPN("a@b")), 0), ""},
		{"truncated", must(marshalUPN("alice@example.org"))[:10], ""},
		{"dNSName only", []byte{0x30, 0x05, 0x82, 0x03, 'a', '.', 'b'}, ""},
		{"upn", must(marshalUPN("alice@example.org")), "alice@example.org"},
		// [0] { OID upn, [0] { IA5String } }: MS-WCCE writes a
		// UTF8String; Go's encoding/asn1 reads any string type into a
		// string, so an IA5String (ASCII) is read too.
		{"upn as IA5String", []byte{0x30, 0x14, 0xa0, 0x12, 0x06, 0x0a, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x14, 0x02, 0x03,
			0xa0, 0x04, 0x16, 0x02, 'a', 'b'}, "ab"},
		// Found by FuzzUPN (testdata/fuzz/FuzzUPN/t61string-upn): a
		// T61String is read as Latin-1, so 0xa0 becomes U+00A0.
		{"upn as T61String", []byte{0x30, 0x14, 0xa0, 0x12, 0x06, 0x0a, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x14, 0x02, 0x03,
			0xa0, 0x04, 0x14, 0x02, '0', 0xa0}, "0\u00a0"},
		{"upn with invalid UTF-8", []byte{0x30, 0x14, 0xa0, 0x12, 0x06, 0x0a, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x14, 0x02, 0x03,
			0xa0, 0x04, 0x0c, 0x02, 0xff, 0xfe}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &x509.Certificate{Extensions: []pkix.Extension{{Id: oidSAN, Value: tc.san}}}
			if got := UPN(c); got != tc.want {
				t.Errorf("UPN = %q, want %q", got, tc.want)
			}
		})
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// upnSeeds are SAN extensions from harness.CardCert, from openssl and
// from marshalUPN, with the UPN the fuzzer's round trip starts from.
func upnSeeds(t *testing.T) map[string][]byte {
	t.Helper()
	return map[string][]byte{
		"harness-upn-email": sanExtension(harnessCard(t, harness.CardOptions{CN: "Alice", UPN: "alice@example.org", Email: "a@example.org"})),
		"harness-email":     sanExtension(harnessCard(t, harness.CardOptions{CN: "Alice", Email: "a@example.org"})),
		"openssl-mixed": sanExtension(opensslCert(t, "Alice", "DNS.1 = host.example.org", "email.1 = alice@mail.example.org",
			"otherName.1 = 1.2.3.4;UTF8:x", upnName(2, "bob@example.org"))),
		"openssl-unicode": sanExtension(opensslCert(t, "Zoe", upnName(1, "zoë@example.org"))),
		"marshal":         must(marshalUPN("carol@example.org")),
		"empty-sequence":  {0x30, 0x00},
	}
}

var update = flag.Bool("update", false, "rewrite the seed corpus in testdata/fuzz")

// TestWriteUPNCorpus rewrites testdata/fuzz/FuzzUPN when run with -update.
func TestWriteUPNCorpus(t *testing.T) {
	if !*update {
		t.Skip("run with -update to rewrite the seed corpus")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzUPN")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range upnSeeds(t) {
		data := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\nstring(%q)\n", b, "alice@example.org")
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// upnOIDBytes is the DER of the UPN OID, 1.3.6.1.4.1.311.20.2.3.
var upnOIDBytes = []byte{0x06, 0x0a, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x14, 0x02, 0x03}

// FuzzUPN feeds arbitrary SAN extension bytes to UPN: it never panics,
// and what it returns is valid UTF-8, from an input that holds the UPN
// OID. (Not verbatim: a T61String is read as Latin-1.) And a UPN encoded
// as a smartcard's SAN comes back unchanged.
func FuzzUPN(f *testing.F) {
	f.Add([]byte{0x30, 0x00}, "alice@example.org")
	f.Add(must(marshalUPN("alice@example.org")), "")
	f.Add([]byte{0x30, 0x03, 0xa0, 0x01, 0x00}, "zoë@example.org")
	f.Fuzz(func(t *testing.T, san []byte, upn string) {
		c := &x509.Certificate{Extensions: []pkix.Extension{{Id: oidSAN, Value: san}}}
		if got := UPN(c); got != "" && (!utf8.ValidString(got) || !bytes.Contains(san, upnOIDBytes)) {
			t.Fatalf("UPN %q from %x: want valid UTF-8, and only where the UPN OID is", got, san)
		}
		if !utf8.ValidString(upn) {
			return // no UTF8String holds it (encoding/asn1 marshals it all the same)
		}
		enc, err := marshalUPN(upn)
		if err != nil {
			t.Fatal(err)
		}
		c = &x509.Certificate{Extensions: []pkix.Extension{{Id: oidSAN, Value: enc}}}
		if got := UPN(c); got != upn {
			t.Fatalf("UPN %q came back as %q", upn, got)
		}
	})
}
