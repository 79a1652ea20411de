package test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mfabridge/mfabridge/test/harness"
	"github.com/mfabridge/mfabridge/test/pivcard"
)

// The smartcard tool against a real PC/SC stack: Debian's pcscd with the
// vsmartcard vpcd reader driver, whose two slots ("Virtual PCD 00 00" and
// "00 01") take virtual PIV cards (package pivcard) over TCP on loopback.
// pcscd binds /run/pcscd, so these tests need root and no other pcscd,
// and run one after another.

const (
	slot0 = "Virtual PCD 00 00"
	slot1 = "Virtual PCD 00 01"

	msgNoService = "the PC/SC service (pcscd) is not running: start it with systemctl start pcscd"
	cardOK       = "the card holds the private key of its certificate"
)

// mfacardBin is cmd/mfacard built with cgo, once per test binary.
var mfacardBin struct {
	path string
	err  error
}

func buildMfacard(t *testing.T) string {
	t.Helper()
	if err := harness.NeedPCSC(); err != nil {
		t.Fatal(err)
	}
	if mfacardBin.path == "" && mfacardBin.err == nil {
		start := time.Now()
		mfacardBin.path, mfacardBin.err = harness.BuildMfacard(env.dir)
		t.Logf("built cmd/mfacard with cgo in %v", time.Since(start).Round(time.Millisecond))
	}
	if mfacardBin.err != nil {
		t.Fatal(mfacardBin.err)
	}
	return mfacardBin.path
}

// cardStack is a pcscd for one test and the virtual cards in its slots.
type cardStack struct {
	bin   string
	pcscd *harness.PCSCD
	dir   string
}

// startCardStack starts pcscd with the vpcd reader (or, without vpcd,
// with no reader); it is stopped when the test ends, and its log is shown
// if the test failed.
func startCardStack(t *testing.T, bin string, vpcd bool) *cardStack {
	t.Helper()
	dir := t.TempDir()
	p, err := harness.StartPCSCD(dir, vpcd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Stop(); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("pcscd log:\n%s", p.Logs())
		}
	})
	s := &cardStack{bin: bin, pcscd: p, dir: dir}
	if vpcd {
		s.waitSlots(t, false, false)
	}
	return s
}

// mfacard runs the tool with stdin and returns its output and exit
// status.
func (s *cardStack) mfacard(t *testing.T, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return runMfacard(t, s.bin, stdin, args...)
}

func runMfacard(t *testing.T, bin, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	// A -race binary sleeps a second at exit for late reports unless told
	// not to; a race still fails the command (exit 66).
	cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0 halt_on_error=1")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("mfacard %q: %v", args, err)
	}
	return out.String(), errb.String(), code
}

var readerLine = regexp.MustCompile(`(?m)^(Virtual PCD 00 0[01])\s+(card present|no card)`)

// slots returns whether a card is in each vpcd slot as mfacard readers
// sees it.
func (s *cardStack) slots(t *testing.T) (present [2]bool, out string) {
	t.Helper()
	out, stderr, code := s.mfacard(t, "", "readers")
	if code != 0 {
		t.Fatalf("mfacard readers: exit %d: %s", code, stderr)
	}
	seen := 0
	for _, m := range readerLine.FindAllStringSubmatch(out, -1) {
		i := 0
		if m[1] == slot1 {
			i = 1
		}
		present[i] = m[2] == "card present"
		seen++
	}
	if seen != 2 {
		t.Fatalf("mfacard readers does not list both vpcd slots:\n%s", out)
	}
	return present, out
}

// waitSlots waits until mfacard readers shows the cards wanted in slots 0
// and 1 (pcscd polls vpcd: about 0.4 s per change).
func (s *cardStack) waitSlots(t *testing.T, want0, want1 bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, out := s.slots(t)
		if got == [2]bool{want0, want1} {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the vpcd slots did not become %v within 10s:\n%s", [2]bool{want0, want1}, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// insert puts a card built from o into slot i and waits until pcscd sees
// it; when the test ends it is taken out again and the slot seen empty.
func (s *cardStack) insert(t *testing.T, slot int, o pivcard.Options) *pivcard.Card {
	t.Helper()
	card, err := pivcard.New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	in, err := card.Insert(ctx, s.pcscd.SlotAddr(slot))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := in.Remove(); err != nil {
			t.Errorf("card in slot %d: %v", slot, err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if got, _ := s.slots(t); !got[slot] {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Errorf("slot %d still shows a card 10s after it was taken out", slot)
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if got, _ := s.slots(t); got[slot] {
			return card
		}
		if time.Now().After(deadline) {
			t.Fatalf("pcscd did not see the card in slot %d within 10s", slot)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// cardPKI is the card CA with the certificates the cases use, and a
// bridge configuration that trusts the CA.
type cardPKI struct {
	dir         string
	cards       *harness.CA
	other       *harness.CA
	bridgeConf  string
	alice       issued // ECDSA P-256
	bob         issued // RSA-2048
	carol       issued // ECDSA P-384
	expired     issued
	foreign     issued // from another CA
	strangerKey crypto.Signer
}

type issued struct {
	cert *x509.Certificate
	key  crypto.Signer
}

func (i issued) card(o pivcard.Options) pivcard.Options {
	o.Cert, o.Key = i.cert.Raw, i.key
	return o
}

func newCardPKI(t *testing.T) *cardPKI {
	t.Helper()
	p := &cardPKI{dir: t.TempDir()}
	var err error
	if p.cards, err = harness.NewCA(p.dir, "cards"); err != nil {
		t.Fatal(err)
	}
	if p.other, err = harness.NewCA(p.dir, "other"); err != nil {
		t.Fatal(err)
	}
	card := func(ca *harness.CA, name string, o harness.CardOptions, key crypto.Signer) issued {
		t.Helper()
		var cert *x509.Certificate
		var keyFile string
		if key == nil {
			_, keyFile, cert, err = ca.CardCert(p.dir, name, o)
			if err == nil {
				key, err = pivcard.ReadKey(keyFile)
			}
		} else {
			_, _, cert, err = ca.CardCertKey(p.dir, name, o, key)
		}
		if err != nil {
			t.Fatal(err)
		}
		return issued{cert: cert, key: key}
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p.strangerKey, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p.alice = card(p.cards, "alice", harness.CardOptions{CN: "Alice Example", UPN: "alice@example.org", Email: "alice@mail.example.org"}, nil)
	p.bob = card(p.cards, "bob", harness.CardOptions{CN: "Bob Example", UPN: "bob@example.org"}, rsaKey)
	p.carol = card(p.cards, "carol", harness.CardOptions{CN: "Carol Example", UPN: "carol@example.org"}, p384)
	p.expired = card(p.cards, "expired", harness.CardOptions{CN: "Dave Example", UPN: "dave@example.org",
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)}, nil)
	p.foreign = card(p.other, "foreign", harness.CardOptions{CN: "Alice Example", UPN: "alice@example.org"}, nil)

	// The bridge's configuration as an administrator would have it: a
	// policy that accepts smartcards and the card CA in ca_files.
	eapCA, err := harness.NewCA(p.dir, "eapserver")
	if err != nil {
		t.Fatal(err)
	}
	serverCert, serverKey, err := eapCA.ServerCert(p.dir, "eap-server")
	if err != nil {
		t.Fatal(err)
	}
	p.bridgeConf = filepath.Join(p.dir, "mfabridge.yaml")
	conf := fmt.Sprintf(`server:
  radius_listen: ["127.0.0.1:18120"]
  admin_listen: ""
clients:
  - name: local
    address: 127.0.0.1
    secret: %s
ldap:
  urls: ["%s"]
  tls: {ca_file: "%s"}
  bind_dn: "%s"
  bind_password: "%s"
  base_dn: "%s"
store: {path: "%s/store.db", key: "%s"}
policies:
  default:
    mfa: required
    factors: [totp]
    smartcard: true
factors:
  smartcard:
    server_cert_file: "%s"
    server_key_file: "%s"
    ca_files: [{file: "%s", revocation: none}]
    require_eku: [client_auth, smartcard_logon]
`, secretLocal, env.slapd.URL, env.slapd.CA.CertFile, harness.ServiceDN, harness.ServicePass, harness.PeopleDN,
		p.dir, storeKey, serverCert, serverKey, p.cards.CertFile)
	if err := os.WriteFile(p.bridgeConf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestMfacardWithoutReaders covers pcscd running with no reader, then
// pcscd not running at all.
func TestMfacardWithoutReaders(t *testing.T) {
	bin := buildMfacard(t)
	s := startCardStack(t, bin, false)
	for _, args := range [][]string{{"readers"}, {"show"}} {
		_, stderr, code := s.mfacard(t, "", args...)
		if code != 1 || !strings.Contains(stderr, "no smartcard reader was found: connect the reader") {
			t.Errorf("mfacard %s with no reader: exit %d, %q", args[0], code, stderr)
		}
	}
	if err := s.pcscd.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(harness.PCSCDSocket); err == nil {
		t.Fatalf("%s is still there after pcscd stopped", harness.PCSCDSocket)
	}
	for _, args := range [][]string{{"readers"}, {"show"}, {"export", "--out", "-"}, {"sign", "--pin-stdin"}} {
		_, stderr, code := runMfacard(t, bin, "123456\n", args...)
		if code != 1 || strings.TrimSpace(stderr) != msgNoService {
			t.Errorf("mfacard %s with pcscd down: exit %d, %q; want exit 1 and %q", args[0], code, stderr, msgNoService)
		}
	}
}

func TestMfacard(t *testing.T) {
	bin := buildMfacard(t)
	pki := newCardPKI(t)
	s := startCardStack(t, bin, true)
	start := time.Now()
	defer func() { t.Logf("card cases took %v", time.Since(start).Round(time.Millisecond)) }()

	t.Run("NoCard", func(t *testing.T) {
		out, _, code := s.mfacard(t, "", "readers")
		if code != 0 || !regexp.MustCompile(`(?m)^Virtual PCD 00 00\s+no card$`).MatchString(out) ||
			!regexp.MustCompile(`(?m)^Virtual PCD 00 01\s+no card$`).MatchString(out) {
			t.Errorf("readers: exit %d:\n%s", code, out)
		}
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"show"}, `no card is in any reader ("Virtual PCD 00 00", "Virtual PCD 00 01"): insert the card and try again`},
			{[]string{"show", "--reader", slot1}, `no card is in the reader "Virtual PCD 00 01": insert the card and try again`},
			{[]string{"sign", "--pin-stdin"}, "no card is in any reader"},
			{[]string{"show", "--reader", "Virtual PCD 00 02"}, `there is no reader "Virtual PCD 00 02": give --reader one of "Virtual PCD 00 00", "Virtual PCD 00 01"`},
		} {
			_, stderr, code := s.mfacard(t, "123456\n", tc.args...)
			if code != 1 || !strings.Contains(stderr, tc.want) {
				t.Errorf("%q: exit %d, %q; want exit 1 and %q", tc.args, code, stderr, tc.want)
			}
		}
	})

	t.Run("ReadersShowExportEC", func(t *testing.T) {
		s.insert(t, 0, pki.alice.card(pivcard.Options{}))
		out, _, code := s.mfacard(t, "", "readers")
		if code != 0 || !regexp.MustCompile(`(?m)^Virtual PCD 00 00\s+card present\s+ATR 3B 8C 80 01 80 5A 56 69 72 74 75 61 6C 50 49 56 D9$`).MatchString(out) ||
			!regexp.MustCompile(`(?m)^Virtual PCD 00 01\s+no card$`).MatchString(out) {
			t.Errorf("readers with a card: exit %d:\n%s", code, out)
		}
		out, stderr, code := s.mfacard(t, "", "show")
		if code != 0 {
			t.Fatalf("show: exit %d: %s", code, stderr)
		}
		wantShow(t, out, pki.alice.cert, "alice@example.org", "ECDSA P-256", false)

		path := filepath.Join(t.TempDir(), "alice.pem")
		if _, stderr, code := s.mfacard(t, "", "export", "--out", path); code != 0 {
			t.Fatalf("export: exit %d: %s", code, stderr)
		}
		wantPEM(t, path, pki.alice.cert)
		os.WriteFile(path, []byte("not to be overwritten"), 0o644)
		_, stderr, code = s.mfacard(t, "", "export", "--out", path)
		if b, _ := os.ReadFile(path); code != 1 || string(b) != "not to be overwritten" || !strings.Contains(stderr, "already exists: give --force to overwrite it") {
			t.Errorf("export over a file: exit %d, %q, file now %q", code, stderr, b)
		}
		if _, stderr, code := s.mfacard(t, "", "export", "--out", path, "--force"); code != 0 {
			t.Fatalf("export --force: exit %d: %s", code, stderr)
		}
		wantPEM(t, path, pki.alice.cert)
	})

	t.Run("ShowExportRSAGzip", func(t *testing.T) {
		// Slot 00 01 only, so --reader picks it and the default finds it.
		s.insert(t, 1, pki.bob.card(pivcard.Options{GzipCert: true}))
		for _, args := range [][]string{{"show"}, {"show", "--reader", slot1}} {
			out, stderr, code := s.mfacard(t, "", args...)
			if code != 0 {
				t.Fatalf("%q: exit %d: %s", args, code, stderr)
			}
			wantShow(t, out, pki.bob.cert, "bob@example.org", "RSA 2048", true)
			if !strings.Contains(out, "reader:      "+slot1+"\n") {
				t.Errorf("%q names another reader:\n%s", args, out)
			}
		}
		path := filepath.Join(t.TempDir(), "bob.pem")
		if _, stderr, code := s.mfacard(t, "", "export", "--out", path, "--reader", slot1); code != 0 {
			t.Fatalf("export: exit %d: %s", code, stderr)
		}
		wantPEM(t, path, pki.bob.cert)
	})

	t.Run("Check", func(t *testing.T) {
		s.insert(t, 0, pki.alice.card(pivcard.Options{}))
		out, stderr, code := s.mfacard(t, "", "check", "--config", pki.bridgeConf)
		if code != 0 || !strings.Contains(out, "the bridge would accept this card for alice@example.org\n") {
			t.Errorf("check of a good card: exit %d\n%s%s", code, out, stderr)
		}
	})

	t.Run("CheckRefused", func(t *testing.T) {
		s.insert(t, 0, pki.expired.card(pivcard.Options{}))
		s.insert(t, 1, pki.foreign.card(pivcard.Options{}))
		for _, tc := range []struct {
			reader, want string
		}{
			{slot0, "the bridge would refuse this card (reason cert_expired): the certificate has expired or is not yet valid"},
			{slot1, "the bridge would refuse this card (reason cert_untrusted): the certificate does not chain to a configured CA"},
		} {
			out, stderr, code := s.mfacard(t, "", "check", "--config", pki.bridgeConf, "--reader", tc.reader)
			if code != 1 || !strings.Contains(out, tc.want) || strings.Contains(out, "would accept") {
				t.Errorf("check %s: exit %d, want 1 and %q:\n%s%s", tc.reader, code, tc.want, out, stderr)
			}
		}
	})

	t.Run("SignEC", func(t *testing.T) {
		s.insert(t, 0, pki.alice.card(pivcard.Options{}))
		s.insert(t, 1, pki.carol.card(pivcard.Options{PIN: "24681357"}))
		for _, tc := range []struct{ reader, pin, key string }{
			{slot0, "123456", "ECDSA P-256 in slot 9A (PIV algorithm 11)"},
			{slot1, "24681357", "ECDSA P-384 in slot 9A (PIV algorithm 14)"},
		} {
			out, stderr, code := s.mfacard(t, tc.pin+"\n", "sign", "--pin-stdin", "--reader", tc.reader)
			if code != 0 || !strings.Contains(out, cardOK) || !strings.Contains(out, tc.key) {
				t.Errorf("sign %s: exit %d\n%s%s", tc.reader, code, out, stderr)
			}
			if strings.Contains(out+stderr, tc.pin) {
				t.Errorf("sign %s: the PIN appears in the output", tc.reader)
			}
		}
	})

	t.Run("SignRSA", func(t *testing.T) {
		s.insert(t, 0, pki.bob.card(pivcard.Options{}))
		out, stderr, code := s.mfacard(t, "123456\n", "sign", "--pin-stdin")
		if code != 0 || !strings.Contains(out, cardOK) || !strings.Contains(out, "RSA 2048 in slot 9A (PIV algorithm 07)") {
			t.Errorf("sign: exit %d\n%s%s", code, out, stderr)
		}
	})

	t.Run("WrongPIN", func(t *testing.T) {
		card := s.insert(t, 0, pki.alice.card(pivcard.Options{}))
		for i, step := range []struct {
			pin  string
			code int
			want string
		}{
			{"12345", 2, "a PIV PIN has 6 to 8 characters; nothing was sent to the card"},
			{"999999", 1, "wrong PIN: 2 tries left before the card blocks the PIN"},
			{"123456", 0, cardOK},
			{"999999", 1, "wrong PIN: 2 tries left"},
			{"888888", 1, "wrong PIN: 1 try left"},
			{"777777", 1, "wrong PIN, and that was the last try: the card's PIN is blocked"},
			{"123456", 1, "the card's PIN is blocked after too many wrong tries: unblock it with the PUK"},
		} {
			out, stderr, code := s.mfacard(t, step.pin+"\n", "sign", "--pin-stdin")
			if code != step.code || !strings.Contains(out+stderr, step.want) {
				t.Fatalf("step %d, PIN %s: exit %d, stdout %q, stderr %q; want exit %d and %q", i, step.pin, code, out, stderr, step.code, step.want)
			}
			if strings.Contains(out+stderr, step.pin) {
				t.Errorf("step %d: the PIN appears in the output", i)
			}
		}
		if card.TriesLeft() != 0 {
			t.Errorf("the card has %d tries left", card.TriesLeft())
		}
	})

	t.Run("KeyMismatch", func(t *testing.T) {
		s.insert(t, 0, pivcard.Options{Cert: pki.alice.cert.Raw, Key: pki.strangerKey})
		out, stderr, code := s.mfacard(t, "123456\n", "sign", "--pin-stdin")
		if code != 1 || !strings.Contains(out, "the card's signature does not match its certificate") || strings.Contains(out, cardOK) {
			t.Errorf("sign with a stranger's key: exit %d\n%s%s", code, out, stderr)
		}
	})

	t.Run("NoCertNoPIV", func(t *testing.T) {
		s.insert(t, 0, pivcard.Options{Key: pki.alice.key})
		s.insert(t, 1, pivcard.Options{NoPIV: true})
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"show", "--reader", slot0}, "the card holds no certificate in slot 9A (PIV authentication)"},
			{[]string{"sign", "--pin-stdin", "--reader", slot0}, "the card holds no certificate in slot 9A"},
			{[]string{"show", "--reader", slot1}, "the card has no PIV application"},
			{[]string{"check", "--config", pki.bridgeConf, "--reader", slot1}, "the card has no PIV application"},
		} {
			_, stderr, code := s.mfacard(t, "123456\n", tc.args...)
			if code != 1 || !strings.Contains(stderr, tc.want) {
				t.Errorf("%q: exit %d, %q; want exit 1 and %q", tc.args, code, stderr, tc.want)
			}
		}
	})
}

// wantShow checks what show printed about cert.
func wantShow(t *testing.T, out string, cert *x509.Certificate, upn, key string, gzipped bool) {
	t.Helper()
	sum := sha256.Sum256(cert.Raw)
	want := []string{
		"UPN:         " + upn + "\n",
		"subject:     " + cert.Subject.String() + "\n",
		"issuer:      " + cert.Issuer.String() + "\n",
		"serial:      " + hex.EncodeToString(cert.SerialNumber.Bytes()) + "\n",
		"not after:   " + cert.NotAfter.UTC().Format(time.RFC3339) + " (valid now)\n",
		"key:         " + key + "\n",
		"SHA-256:     " + hex.EncodeToString(sum[:]) + "\n",
		"EKUs:        client authentication, smartcard logon\n",
	}
	if len(cert.EmailAddresses) > 0 {
		want = append(want, "email:       "+cert.EmailAddresses[0]+"\n")
	}
	if gzipped {
		want = append(want, "stored:      gzip-compressed")
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("show lacks %q:\n%s", w, out)
		}
	}
	if !gzipped && strings.Contains(out, "gzip") {
		t.Errorf("show calls a plain certificate compressed:\n%s", out)
	}
}

// wantPEM checks that path holds cert as one PEM block.
func wantPEM(t *testing.T, path string, cert *x509.Certificate) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, rest := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" || len(bytes.TrimSpace(rest)) > 0 || !bytes.Equal(blk.Bytes, cert.Raw) {
		t.Errorf("%s does not hold the card's certificate as PEM:\n%s", path, b)
	}
}
