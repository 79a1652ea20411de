package main

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"golang.org/x/term"
)

// sign proves that the card holds the private key of its certificate: it
// verifies the PIN, has key 9A sign the hash of a random challenge, and
// checks the signature with the certificate's public key. The PIN is
// never printed, logged or kept.
func (t *tool) sign(_ context.Context, args []string) int {
	fs := flag.NewFlagSet("sign", flag.ContinueOnError)
	fs.SetOutput(t.stderr)
	pinStdin := fs.Bool("pin-stdin", false, "read the PIN from the first line of standard input instead of asking for it")
	reader := fs.String("reader", "", "reader `NAME` as mfacard readers lists it; default: the first with a card")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		return t.misuse("usage: mfacard sign [--pin-stdin] [--reader NAME]")
	}

	// Read the certificate first: no card, no PIV application or an empty
	// slot should be said before the PIN is asked for.
	cc, name, err := t.readCard(*reader)
	if err != nil {
		return t.fail(err)
	}
	scheme, err := signScheme(cc.cert.PublicKey)
	if err != nil {
		return t.fail(err)
	}

	pin, err := t.readPIN(*pinStdin, name)
	if err != nil {
		if errors.Is(err, errNoTerminal) || errors.Is(err, errPINLength) {
			fmt.Fprintln(t.stderr, err)
			return exitUsage
		}
		return t.fail(err)
	}
	defer clear(pin)

	s, err := t.connect(name)
	if err != nil {
		return t.fail(err)
	}
	// Reset the card afterwards: the verified PIN must not outlive this
	// command for other programs on the workstation.
	defer s.close(true)
	if err := s.piv.selectPIV(); err != nil {
		return t.fail(err)
	}
	// The card may have been swapped while the PIN was typed: check the
	// key of the certificate that is in the reader now.
	if cc, err = s.piv.readCert(); err != nil {
		return t.fail(err)
	}
	if scheme, err = signScheme(cc.cert.PublicKey); err != nil {
		return t.fail(err)
	}
	if err := s.piv.verifyPIN(pin); err != nil {
		return t.fail(err)
	}
	clear(pin)

	nonce := make([]byte, 32)
	if _, err := rand.Read(nonce); err != nil {
		return t.fail(err)
	}
	digest := scheme.hash(nonce)
	sig, err := s.piv.authenticate(scheme.alg, scheme.challenge(digest))
	if err != nil {
		return t.fail(err)
	}
	fmt.Fprintf(t.stdout, "reader: %s\nkey:    %s in slot 9A (PIV algorithm %02X)\nsigned: %s of a random 32-byte challenge\n",
		name, keyName(cc.cert.PublicKey), scheme.alg, scheme.hashName)
	if !scheme.verify(digest, sig) {
		fmt.Fprintln(t.stdout, "the card's signature does not match its certificate: the key in slot 9A is not the certificate's key, so the bridge would refuse this card; have the card's issuer load a matching certificate")
		return exitFail
	}
	fmt.Fprintln(t.stdout, "the card holds the private key of its certificate")
	return exitOK
}

// readPIN reads the PIN from the terminal without echo, or with fromStdin
// the first line of standard input. The caller clears the result.
func (t *tool) readPIN(fromStdin bool, reader string) ([]byte, error) {
	var pin []byte
	if fromStdin {
		// Byte by byte, so that no reader's buffer keeps a copy and
		// nothing past the first line is consumed.
		var err error
		if pin, err = readLine(t.stdin, 64); err != nil {
			return nil, err
		}
	} else {
		f, ok := t.stdin.(*os.File)
		if !ok || !term.IsTerminal(int(f.Fd())) {
			return nil, errNoTerminal
		}
		fmt.Fprintf(t.stderr, "PIN for the card in %q: ", reader)
		p, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(t.stderr)
		if err != nil {
			clear(p)
			return nil, fmt.Errorf("cannot read the PIN: %w", err)
		}
		pin = p
	}
	if len(pin) < 6 || len(pin) > 8 {
		clear(pin)
		return nil, errPINLength
	}
	return pin, nil
}

// readLine reads up to the first newline (dropped, with a CR before it)
// or the end of r; a line longer than max is a PIN of the wrong length.
func readLine(r io.Reader, max int) ([]byte, error) {
	line := make([]byte, 0, max)
	var b [1]byte
	for {
		n, err := r.Read(b[:])
		if n == 1 {
			if b[0] == '\n' {
				break
			}
			if len(line) == max {
				clear(line)
				return nil, errPINLength
			}
			line = append(line, b[0])
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			clear(line)
			return nil, fmt.Errorf("cannot read the PIN from standard input: %w", err)
		}
	}
	for len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	return line, nil
}

// scheme is how key 9A signs for one key type.
type scheme struct {
	alg       byte
	hashName  string
	hash      func([]byte) []byte
	challenge func(digest []byte) []byte // what GENERAL AUTHENTICATE gets
	verify    func(digest, sig []byte) bool
}

// signScheme picks the PIV algorithm for the certificate's key. RSA cards
// do the raw private-key operation, so the client pads (PKCS #1 v1.5,
// RFC 8017 §9.2); ECDSA cards sign the hash as given, which must be as
// long as the curve's order (SHA-256 for P-256, SHA-384 for P-384).
func signScheme(pub crypto.PublicKey) (scheme, error) {
	sha256sum := func(b []byte) []byte { s := sha256.Sum256(b); return s[:] }
	switch k := pub.(type) {
	case *rsa.PublicKey:
		algs := map[int]byte{1024: algRSA1024, 2048: algRSA2048, 3072: algRSA3072, 4096: algRSA4096}
		alg, ok := algs[k.N.BitLen()]
		if !ok {
			return scheme{}, fmt.Errorf("the certificate's key is %d-bit RSA, which PIV cards do not hold", k.N.BitLen())
		}
		return scheme{alg: alg, hashName: "SHA-256", hash: sha256sum,
			challenge: func(d []byte) []byte { return pkcs1v15(k.Size(), d) },
			verify:    func(d, sig []byte) bool { return rsa.VerifyPKCS1v15(k, crypto.SHA256, d, sig) == nil },
		}, nil
	case *ecdsa.PublicKey:
		verify := func(d, sig []byte) bool { return ecdsa.VerifyASN1(k, d, sig) }
		ident := func(d []byte) []byte { return d }
		switch k.Curve {
		case elliptic.P256():
			return scheme{alg: algECCP256, hashName: "SHA-256", hash: sha256sum, challenge: ident, verify: verify}, nil
		case elliptic.P384():
			sha384sum := func(b []byte) []byte { s := sha512.Sum384(b); return s[:] }
			return scheme{alg: algECCP384, hashName: "SHA-384", hash: sha384sum, challenge: ident, verify: verify}, nil
		}
		return scheme{}, fmt.Errorf("the certificate's key is on curve %s, which PIV cards do not hold", k.Curve.Params().Name)
	}
	return scheme{}, fmt.Errorf("the certificate's key is %s, which PIV cards do not hold", keyName(pub))
}

// sha256DigestInfo is the DER DigestInfo prefix for SHA-256 (RFC 8017
// §9.2 note 1).
var sha256DigestInfo = []byte{0x30, 0x31, 0x30, 0x0D, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20}

// pkcs1v15 builds EM = 00 01 FF…FF 00 DigestInfo for a k-byte modulus.
func pkcs1v15(k int, digest []byte) []byte {
	t := append(append([]byte(nil), sha256DigestInfo...), digest...)
	em := make([]byte, k)
	em[1] = 0x01
	for i := 2; i < k-len(t)-1; i++ {
		em[i] = 0xFF
	}
	copy(em[k-len(t):], t)
	return em
}
