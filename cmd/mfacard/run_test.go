package main

import (
	"crypto"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mfabridge/mfabridge/test/pivcard"
)

const testPIN = "123456"

func TestRunUsage(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no command", nil, exitUsage, "usage: mfacard COMMAND"},
		{"help", []string{"help"}, exitOK, "commands:"},
		{"unknown command", []string{"frobnicate"}, exitUsage, `unknown command "frobnicate"`},
		{"readers with an argument", []string{"readers", "x"}, exitUsage, "usage: mfacard readers"},
		{"export without --out", []string{"export"}, exitUsage, "usage: mfacard export --out cert.pem"},
		{"check without --config", []string{"check"}, exitUsage, "usage: mfacard check --config FILE"},
		{"sign with an argument", []string{"sign", "123456"}, exitUsage, "usage: mfacard sign"},
		{"unknown flag", []string{"show", "--nope"}, exitUsage, "flag provided but not defined"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, code := runTool(t, &fakePCSC{}, "", tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.want) {
				t.Errorf("mfacard %q: exit %d, stderr %q; want exit %d and %q", tc.args, code, stderr, tc.code, tc.want)
			}
		})
	}
}

// TestRunErrors checks the sentence for each thing that can be wrong
// with the service, the reader or the card.
func TestRunErrors(t *testing.T) {
	pki := newTestPKI(t, "cards")
	key := newECKey(t, elliptic.P256())
	cert := pki.leaf(t, key, leafOpts{cn: "Alice", upn: "alice@example.org"})
	for _, tc := range []struct {
		name string
		sys  pcsc // nil: pcscd down
		args []string
		want string
	}{
		{"pcscd down", nil, []string{"readers"}, "the PC/SC service (pcscd) is not running: start it with systemctl start pcscd"},
		{"pcscd down, show", nil, []string{"show"}, "the PC/SC service (pcscd) is not running: start it with systemctl start pcscd"},
		{"no reader", &fakePCSC{}, []string{"show"}, "no smartcard reader was found"},
		{"no card anywhere", &fakePCSC{readers: []fakeReader{{name: "A"}, {name: "B"}}}, []string{"show"},
			`no card is in any reader ("A", "B"): insert the card`},
		{"named reader empty", oneCard(newCard(t, pivcard.Options{})), []string{"show", "--reader", "Reader B"},
			`no card is in the reader "Reader B": insert the card`},
		{"unknown reader", oneCard(newCard(t, pivcard.Options{})), []string{"show", "--reader", "Reader C"},
			`there is no reader "Reader C": give --reader one of "Reader A", "Reader B"`},
		{"no PIV application", oneCard(newCard(t, pivcard.Options{NoPIV: true})), []string{"show"}, "the card has no PIV application"},
		{"no certificate", oneCard(newCard(t, pivcard.Options{Key: key})), []string{"show"}, "the card holds no certificate in slot 9A"},
		{"no certificate, sign", oneCard(newCard(t, pivcard.Options{Key: key})), []string{"sign", "--pin-stdin"}, "the card holds no certificate in slot 9A"},
		{"no certificate, export", oneCard(newCard(t, pivcard.Options{})), []string{"export", "--out", "-"}, "the card holds no certificate in slot 9A"},
		{"sign without a terminal", oneCard(newCard(t, pivcard.Options{Cert: cert.Raw, Key: key})), []string{"sign"},
			"standard input is not a terminal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, code := runTool(t, tc.sys, "", tc.args...)
			want := exitFail
			if strings.Contains(tc.name, "terminal") {
				want = exitUsage
			}
			if code != want || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, stderr, want, tc.want)
			}
		})
	}
}

func TestReaders(t *testing.T) {
	sys := oneCard(newCard(t, pivcard.Options{}))
	out, _, code := runTool(t, sys, "", "readers")
	if code != exitOK {
		t.Fatalf("exit %d", code)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "Reader A  card present  ATR 3B 8C 80 01") ||
		strings.TrimSpace(lines[1]) != "Reader B  no card" {
		t.Errorf("readers printed:\n%s", out)
	}
	if len(sys.transcript()) != 0 {
		t.Errorf("readers sent APDUs: %x", sys.transcript())
	}
}

func TestShow(t *testing.T) {
	pki := newTestPKI(t, "cards")
	for _, tc := range []struct {
		name string
		key  crypto.Signer
		gz   bool
		want []string
	}{
		{"ECDSA P-256", newECKey(t, elliptic.P256()), false, []string{"key:         ECDSA P-256\n"}},
		{"ECDSA P-384 gzip", newECKey(t, elliptic.P384()), true, []string{"key:         ECDSA P-384\n", "stored:      gzip-compressed"}},
		{"RSA 2048 gzip", newRSAKey(t), true, []string{"key:         RSA 2048\n", "stored:      gzip-compressed"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cert := pki.leaf(t, tc.key, leafOpts{cn: "Alice Example", upn: "alice@example.org", email: "alice@mail.example.org"})
			sys := oneCard(newCard(t, pivcard.Options{Cert: cert.Raw, Key: tc.key, GzipCert: tc.gz}))
			out, stderr, code := runTool(t, sys, "", "show")
			if code != exitOK {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			sum := sha256.Sum256(cert.Raw)
			want := append([]string{
				"reader:      Reader A\n",
				"subject:     CN=Alice Example\n",
				"UPN:         alice@example.org\n",
				"email:       alice@mail.example.org\n",
				"issuer:      CN=cards CA\n",
				"serial:      " + hex.EncodeToString(cert.SerialNumber.Bytes()) + "\n",
				"not after:   " + cert.NotAfter.UTC().Format(time.RFC3339) + " (valid now)\n",
				"SHA-256:     " + hex.EncodeToString(sum[:]) + "\n",
				"EKUs:        client authentication, smartcard logon\n",
			}, tc.want...)
			for _, w := range want {
				if !strings.Contains(out, w) {
					t.Errorf("show lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

func TestShowExpiredAndNoSAN(t *testing.T) {
	pki := newTestPKI(t, "cards")
	key := newECKey(t, elliptic.P256())
	cert := pki.leaf(t, key, leafOpts{cn: "Old", notAfter: time.Now().Add(-time.Hour)})
	out, _, code := runTool(t, oneCard(newCard(t, pivcard.Options{Cert: cert.Raw, Key: key})), "", "show")
	if code != exitOK || !strings.Contains(out, "(expired)") || !strings.Contains(out, "UPN:         (none)") {
		t.Errorf("exit %d:\n%s", code, out)
	}
}

func TestExport(t *testing.T) {
	pki := newTestPKI(t, "cards")
	key := newRSAKey(t)
	cert := pki.leaf(t, key, leafOpts{cn: "Bob", upn: "bob@example.org"})
	sys := oneCard(newCard(t, pivcard.Options{Cert: cert.Raw, Key: key, GzipCert: true}))
	path := filepath.Join(t.TempDir(), "bob.pem")
	pemOf := func(t *testing.T, b []byte) []byte {
		t.Helper()
		blk, rest := pem.Decode(b)
		if blk == nil || blk.Type != "CERTIFICATE" || len(strings.TrimSpace(string(rest))) > 0 {
			t.Fatalf("not one PEM certificate: %q", b)
		}
		return blk.Bytes
	}

	if _, stderr, code := runTool(t, sys, "", "export", "--out", path); code != exitOK {
		t.Fatalf("export: exit %d: %s", code, stderr)
	}
	b, _ := os.ReadFile(path)
	if der := pemOf(t, b); string(der) != string(cert.Raw) {
		t.Error("the exported certificate is not the card's")
	}

	os.WriteFile(path, []byte("keep me"), 0o644)
	_, stderr, code := runTool(t, sys, "", "export", "--out", path)
	if b, _ := os.ReadFile(path); code != exitFail || string(b) != "keep me" || !strings.Contains(stderr, "already exists: give --force") {
		t.Errorf("export over a file without --force: exit %d, %q, file %q", code, stderr, b)
	}
	if _, stderr, code := runTool(t, sys, "", "export", "--out", path, "--force"); code != exitOK {
		t.Fatalf("export --force: exit %d: %s", code, stderr)
	}
	b, _ = os.ReadFile(path)
	if der := pemOf(t, b); string(der) != string(cert.Raw) {
		t.Error("export --force did not write the card's certificate")
	}

	out, _, code := runTool(t, sys, "", "export", "--out", "-")
	if der := pemOf(t, []byte(out)); code != exitOK || string(der) != string(cert.Raw) {
		t.Errorf("export --out -: exit %d", code)
	}
}

func TestSign(t *testing.T) {
	pki := newTestPKI(t, "cards")
	for _, tc := range []struct {
		name    string
		key     crypto.Signer
		cardKey crypto.Signer // default key
		code    int
		want    string
	}{
		{"ECDSA P-256", newECKey(t, elliptic.P256()), nil, exitOK, "the card holds the private key of its certificate"},
		{"ECDSA P-384", newECKey(t, elliptic.P384()), nil, exitOK, "the card holds the private key of its certificate"},
		{"RSA 2048", newRSAKey(t), nil, exitOK, "the card holds the private key of its certificate"},
		{"mismatched P-256 key", newECKey(t, elliptic.P256()), newECKey(t, elliptic.P256()), exitFail, "the card's signature does not match its certificate"},
		{"RSA certificate, EC key", newRSAKey(t), newECKey(t, elliptic.P256()), exitFail, "the key in slot 9A is not the certificate's key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cert := pki.leaf(t, tc.key, leafOpts{cn: "Alice", upn: "alice@example.org"})
			cardKey := tc.cardKey
			if cardKey == nil {
				cardKey = tc.key
			}
			card := newCard(t, pivcard.Options{Cert: cert.Raw, Key: cardKey})
			out, stderr, code := runTool(t, oneCard(card), testPIN+"\n", "sign", "--pin-stdin")
			if code != tc.code || !strings.Contains(out+stderr, tc.want) {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit %d and %q", code, out, stderr, tc.code, tc.want)
			}
			if strings.Contains(out+stderr, testPIN) {
				t.Error("the PIN appears in the output")
			}
			if card.TriesLeft() != 3 {
				t.Errorf("%d tries left after the right PIN", card.TriesLeft())
			}
			// sign resets the card: the PIN is no longer verified.
			card.Process([]byte{0x00, 0xA4, 0x04, 0x00, 0x05, 0xA0, 0x00, 0x00, 0x03, 0x08, 0x00})
			if sw := card.Process([]byte{0x00, 0x20, 0x00, 0x80}); string(sw) != "\x63\xC3" {
				t.Errorf("after sign the card answers a PIN status query with % X, want 63 C3", sw)
			}
		})
	}
}

func TestSignPIN(t *testing.T) {
	pki := newTestPKI(t, "cards")
	key := newECKey(t, elliptic.P256())
	cert := pki.leaf(t, key, leafOpts{cn: "Alice", upn: "alice@example.org"})
	card := newCard(t, pivcard.Options{Cert: cert.Raw, Key: key})
	sys := oneCard(card)
	for _, step := range []struct {
		pin  string
		code int
		want string
	}{
		{"12345", exitUsage, "a PIV PIN has 6 to 8 characters"},
		{"123456789", exitUsage, "a PIV PIN has 6 to 8 characters"},
		{"", exitUsage, "a PIV PIN has 6 to 8 characters"},
		{"654321", exitFail, "wrong PIN: 2 tries left before the card blocks the PIN"},
		{"654321\r", exitFail, "wrong PIN: 1 try left before the card blocks the PIN"},
		{testPIN, exitOK, "the card holds the private key of its certificate"},
		{"111111", exitFail, "wrong PIN: 2 tries left"},
		{"111111", exitFail, "wrong PIN: 1 try left"},
		{"111111", exitFail, "wrong PIN, and that was the last try: the card's PIN is blocked"},
		{testPIN, exitFail, "the card's PIN is blocked after too many wrong tries: unblock it with the PUK"},
	} {
		out, stderr, code := runTool(t, sys, step.pin+"\n", "sign", "--pin-stdin")
		if code != step.code || !strings.Contains(out+stderr, step.want) {
			t.Fatalf("PIN %q: exit %d, stdout %q, stderr %q; want exit %d and %q", step.pin, code, out, stderr, step.code, step.want)
		}
		if p := strings.TrimSpace(step.pin); p != "" && strings.Contains(out+stderr, p) {
			t.Errorf("PIN %q appears in the output", step.pin)
		}
	}
	// The PIN reaches the card only in VERIFY, and a verified PIN ends
	// with the command: every sign resets the card.
	for _, apdu := range sys.transcript() {
		if len(apdu) > 4 && apdu[1] != 0x20 && strings.Contains(string(apdu), testPIN) {
			t.Errorf("the PIN went to the card outside VERIFY: % X", apdu)
		}
	}
}

func TestReadLine(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		err      error
	}{
		{"123456\n", "123456", nil},
		{"123456", "123456", nil},
		{"123456\r\n", "123456", nil},
		{"123456\nrest\n", "123456", nil},
		{"\n", "", nil},
		{"", "", nil},
		{strings.Repeat("1", 65) + "\n", "", errPINLength},
	} {
		r := strings.NewReader(tc.in)
		got, err := readLine(r, 64)
		if string(got) != tc.want || err != tc.err {
			t.Errorf("readLine(%q) = %q, %v; want %q, %v", tc.in, got, err, tc.want, tc.err)
		}
		if tc.err == nil && strings.Contains(tc.in, "rest") && r.Len() != len("rest\n") {
			t.Errorf("readLine(%q) read past the line", tc.in)
		}
	}
}
