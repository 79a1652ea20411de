package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mfabridge/mfabridge/test/pivcard"
)

// files writes a self-signed certificate and its key, and a second key.
func files(t *testing.T) (cert, key, otherKey string) {
	t.Helper()
	dir := t.TempDir()
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "card"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(k)
	k2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	k2der, _ := x509.MarshalECPrivateKey(k2)
	return write("c.pem", "CERTIFICATE", der), write("k.pem", "PRIVATE KEY", kder), write("k2.pem", "EC PRIVATE KEY", k2der)
}

func TestUsage(t *testing.T) {
	cert, key, other := files(t)
	for _, args := range [][]string{
		{"--cert", cert},
		{"--cert", cert, "--key", key, "--no-cert"},
		{"--cert", cert, "--key", other},
		{"extra"},
	} {
		var stderr bytes.Buffer
		if code := run(t.Context(), args, &stderr); code != 2 {
			t.Errorf("%q: exit %d (%s), want 2", args, code, stderr.String())
		}
	}
}

// TestServesVPCD runs the program against a listener that plays vpcd.
func TestServesVPCD(t *testing.T) {
	cert, _, other := files(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan int)
	var stderr bytes.Buffer
	go func() {
		done <- run(ctx, []string{"--cert", cert, "--key", other, "--allow-key-mismatch", "--gzip-cert", "--port", port, "--retry", "5s"}, &stderr)
	}()
	conn, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	exchange := func(msg []byte) []byte {
		conn.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(msg))), msg...))
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
	if got := exchange([]byte{0x04}); !bytes.Equal(got, pivcard.ATR) {
		t.Errorf("ATR % X", got)
	}
	exchange([]byte{0x00, 0xA4, 0x04, 0x00, 0x05, 0xA0, 0x00, 0x00, 0x03, 0x08, 0x00})
	r := exchange([]byte{0x00, 0xCB, 0x3F, 0xFF, 0x00, 0x00, 0x05, 0x5C, 0x03, 0x5F, 0xC1, 0x05, 0x00, 0x00})
	if !bytes.HasSuffix(r, []byte{0x71, 0x01, 0x01, 0xFE, 0x00, 0x90, 0x00}) {
		t.Errorf("certificate object not gzip-flagged: % X", r[max(0, len(r)-8):])
	}
	conn.Close() // pcscd went away
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit %d: %s", code, stderr.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the card did not exit when vpcd closed the connection")
	}
}

func TestNoVPCD(t *testing.T) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	var stderr bytes.Buffer
	if code := run(t.Context(), []string{"--no-cert", "--port", port, "--retry", "200ms"}, &stderr); code != 1 ||
		!strings.Contains(stderr.String(), "is pcscd running with the vpcd reader") {
		t.Errorf("exit %d: %s", code, stderr.String())
	}
}
