package eap

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"fmt"
	"io"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"
)

// This file is the other side of the tests: an EAP-TLS peer written from
// RFC 5216 §2.1.5 and RFC 9190, independent of the server's code (it
// uses neither Parse nor parseTLS nor pipe), over crypto/tls.Client.

// testPKI is a server certificate and a client certificate, from two
// throwaway CAs, made once per test binary.
type testPKI struct {
	server      tls.Certificate
	serverRoots *x509.CertPool
	client      tls.Certificate
	clientLeaf  *x509.Certificate
}

var (
	pkiOnce sync.Once
	pkiVal  *testPKI
	pkiErr  error
)

func newTestPKI(t testing.TB) *testPKI {
	t.Helper()
	pkiOnce.Do(func() { pkiVal, pkiErr = makeTestPKI() })
	if pkiErr != nil {
		t.Fatal(pkiErr)
	}
	return pkiVal
}

func makeTestPKI() (*testPKI, error) {
	mkCA := func(cn string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, nil, err
		}
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			return nil, nil, err
		}
		c, err := x509.ParseCertificate(der)
		return c, key, err
	}
	leaf := func(ca *x509.Certificate, caKey *ecdsa.PrivateKey, tmpl *x509.Certificate) (tls.Certificate, *x509.Certificate, error) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return tls.Certificate{}, nil, err
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			return tls.Certificate{}, nil, err
		}
		c, err := x509.ParseCertificate(der)
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: c}, c, err
	}
	srvCA, srvKey, err := mkCA("eap server CA")
	if err != nil {
		return nil, err
	}
	cliCA, cliKey, err := mkCA("card CA")
	if err != nil {
		return nil, err
	}
	p := &testPKI{serverRoots: x509.NewCertPool()}
	p.serverRoots.AddCert(srvCA)
	if p.server, _, err = leaf(srvCA, srvKey, &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "eap.example"},
		DNSNames: []string{"eap.example"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		return nil, err
	}
	if p.client, p.clientLeaf, err = leaf(cliCA, cliKey, &x509.Certificate{SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "alice"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return nil, err
	}
	return p, nil
}

// peerConn is the net.Conn under the peer's tls.Client: what the server
// sent is fed in; what TLS writes is taken out after each step.
type peerConn struct {
	mu       sync.Mutex
	cond     *sync.Cond
	in, out  []byte
	reading  bool // Read is blocked for want of input
	finished bool // the TLS goroutine has returned
	closed   bool
	hsDone   bool
	hsErr    error
	app      []byte // application data received after the handshake
}

func newPeerConn() *peerConn {
	c := &peerConn{}
	c.cond = sync.NewCond(&c.mu)
	return c
}

func (c *peerConn) Read(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.in) == 0 {
		if c.closed {
			return 0, io.EOF
		}
		c.reading = true
		c.cond.Broadcast()
		c.cond.Wait()
	}
	c.reading = false
	n := copy(b, c.in)
	c.in = c.in[n:]
	return n, nil
}

func (c *peerConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, net.ErrClosed
	}
	c.out = append(c.out, b...)
	return len(b), nil
}

func (c *peerConn) Close() error {
	c.mu.Lock()
	c.closed = true
	c.cond.Broadcast()
	c.mu.Unlock()
	return nil
}

func (c *peerConn) LocalAddr() net.Addr              { return &net.UnixAddr{Name: "peer", Net: "unix"} }
func (c *peerConn) RemoteAddr() net.Addr             { return &net.UnixAddr{Name: "server", Net: "unix"} }
func (c *peerConn) SetDeadline(time.Time) error      { return nil }
func (c *peerConn) SetReadDeadline(time.Time) error  { return nil }
func (c *peerConn) SetWriteDeadline(time.Time) error { return nil }

// step feeds b and waits until TLS blocks for more input or its goroutine
// ends; it returns what TLS wrote meanwhile.
func (c *peerConn) step(b []byte) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.in = append(c.in, b...)
	if len(b) > 0 {
		c.reading = false
	}
	c.cond.Broadcast()
	timedOut := false
	t := time.AfterFunc(10*time.Second, func() {
		c.mu.Lock()
		timedOut = true
		c.cond.Broadcast()
		c.mu.Unlock()
	})
	defer t.Stop()
	for !(c.reading && len(c.in) == 0) && !c.finished && !timedOut {
		c.cond.Wait()
	}
	if timedOut {
		return nil, fmt.Errorf("peer: TLS made no progress")
	}
	out := c.out
	c.out = nil
	return out, nil
}

// testPeer is an EAP-TLS peer.
type testPeer struct {
	t     testing.TB
	cfg   *tls.Config
	frag  int // most TLS bytes per EAP-TLS response; 0: all at once
	conn  *peerConn
	tls   *tls.Conn
	out   []byte // TLS data not yet sent
	total int    // length of the message being sent
	first bool   // the next fragment is the message's first
	in    []byte // fragments received so far

	// What the server sent, for the tests to check.
	serverFrags []serverFrag
	// What the peer sent.
	sentFrags []int
}

// serverFrag is one EAP-TLS request as received.
type serverFrag struct {
	id    byte
	flags byte
	total int // with L
	data  int // TLS bytes
}

// newTestPeer returns a peer with the client certificate, trusting the
// server's CA; tweak may change the TLS configuration.
func newTestPeer(t testing.TB, frag int, tweak ...func(*tls.Config)) *testPeer {
	t.Helper()
	pki := newTestPKI(t)
	cfg := &tls.Config{Certificates: []tls.Certificate{pki.client}, RootCAs: pki.serverRoots, ServerName: "eap.example",
		MinVersion: tls.VersionTLS12}
	for _, f := range tweak {
		f(cfg)
	}
	p := &testPeer{t: t, cfg: cfg, frag: frag, conn: newPeerConn()}
	t.Cleanup(p.close)
	return p
}

func maxTLS12(c *tls.Config)     { c.MaxVersion = tls.VersionTLS12 }
func onlyTLS13(c *tls.Config)    { c.MinVersion = tls.VersionTLS13 }
func noClientCert(c *tls.Config) { c.Certificates = nil }

// close ends the peer's TLS goroutine.
func (p *testPeer) close() { p.conn.Close() }

// startTLS runs the client handshake, then reads application data (the
// TLS 1.3 commitment message, RFC 9190 §2.5) until the conn closes.
func (p *testPeer) startTLS() {
	p.tls = tls.Client(p.conn, p.cfg)
	go func() {
		err := p.tls.Handshake()
		p.conn.mu.Lock()
		p.conn.hsDone, p.conn.hsErr = true, err
		p.conn.mu.Unlock()
		if err == nil {
			buf := make([]byte, 64)
			for {
				n, err := p.tls.Read(buf)
				p.conn.mu.Lock()
				p.conn.app = append(p.conn.app, buf[:n]...)
				p.conn.mu.Unlock()
				if err != nil {
					break
				}
			}
		}
		p.conn.mu.Lock()
		p.conn.finished = true
		p.conn.cond.Broadcast()
		p.conn.mu.Unlock()
	}()
}

// handshakeDone reports whether the client handshake succeeded.
func (p *testPeer) handshakeDone() (bool, error) {
	p.conn.mu.Lock()
	defer p.conn.mu.Unlock()
	return p.conn.hsDone, p.conn.hsErr
}

func (p *testPeer) appData() []byte {
	p.conn.mu.Lock()
	defer p.conn.mu.Unlock()
	return append([]byte(nil), p.conn.app...)
}

// identity is an EAP-Response/Identity.
func identity(id byte, name string) []byte {
	b := make([]byte, 5+len(name))
	b[0], b[1], b[4] = CodeResponse, id, TypeIdentity
	binary.BigEndian.PutUint16(b[2:4], uint16(len(b)))
	copy(b[5:], name)
	return b
}

// tlsResponse is an EAP-Response of type EAP-TLS with flags, the TLS
// Message Length when L is set, and data.
func tlsResponse(id, flags byte, total int, data []byte) []byte {
	hdr := 6
	if flags&flagLength != 0 {
		hdr += 4
	}
	b := make([]byte, hdr+len(data))
	b[0], b[1], b[4], b[5] = CodeResponse, id, TypeTLS, flags
	binary.BigEndian.PutUint16(b[2:4], uint16(len(b)))
	if flags&flagLength != 0 {
		binary.BigEndian.PutUint32(b[6:10], uint32(total))
	}
	copy(b[hdr:], data)
	return b
}

// respond answers one EAP-Request from the server.
func (p *testPeer) respond(req []byte) ([]byte, error) {
	if len(req) < 6 || req[0] != CodeRequest || int(binary.BigEndian.Uint16(req[2:4])) != len(req) || req[4] != TypeTLS {
		return nil, fmt.Errorf("peer: not an EAP-Request/EAP-TLS: %x", req)
	}
	id, flags, data := req[1], req[5], req[6:]
	sf := serverFrag{id: id, flags: flags}
	if flags&flagLength != 0 {
		if len(data) < 4 {
			return nil, fmt.Errorf("peer: L without a length: %x", req)
		}
		sf.total = int(binary.BigEndian.Uint32(data[:4]))
		data = data[4:]
	}
	sf.data = len(data)
	p.serverFrags = append(p.serverFrags, sf)

	switch {
	case flags&flagStart != 0:
		if p.tls != nil {
			return nil, fmt.Errorf("peer: a second EAP-TLS Start")
		}
		p.startTLS()
		out, err := p.conn.step(nil)
		if err != nil {
			return nil, err
		}
		return p.send(id, out), nil
	case len(p.out) > 0:
		// RFC 5216 §2.1.5: the server acknowledges each fragment with an
		// empty EAP-TLS request.
		if flags != 0 || len(data) != 0 {
			return nil, fmt.Errorf("peer: want an ACK while sending fragments, got flags %#x and %d bytes", flags, len(data))
		}
		return p.next(id), nil
	}
	p.in = append(p.in, data...)
	if flags&flagMore != 0 {
		return tlsResponse(id, 0, 0, nil), nil
	}
	in := p.in
	p.in = nil
	out, err := p.conn.step(in)
	if err != nil {
		return nil, err
	}
	return p.send(id, out), nil
}

// send starts sending a TLS message; with nothing to send it is an ACK.
func (p *testPeer) send(id byte, out []byte) []byte {
	if len(out) == 0 {
		p.sentFrags = append(p.sentFrags, 0)
		return tlsResponse(id, 0, 0, nil)
	}
	p.out, p.total, p.first = out, len(out), true
	return p.next(id)
}

// next sends the next fragment: L on the first of several, M on all but
// the last (RFC 5216 §2.1.5).
func (p *testPeer) next(id byte) []byte {
	n := len(p.out)
	if p.frag > 0 && n > p.frag {
		n = p.frag
	}
	var flags byte
	if n < len(p.out) {
		flags |= flagMore
		if p.first {
			flags |= flagLength
		}
	}
	b := tlsResponse(id, flags, p.total, p.out[:n])
	p.sentFrags = append(p.sentFrags, n)
	p.out, p.first = p.out[n:], false
	return b
}

// exportMSK is the peer's own MSK: RFC 5216 §2.3 for TLS 1.2, RFC 9190
// §2.3 for TLS 1.3; the first 64 of 128 bytes of keying material.
func (p *testPeer) exportMSK() ([]byte, error) {
	cs := p.tls.ConnectionState()
	label, context := "client EAP encryption", []byte(nil)
	if cs.Version == tls.VersionTLS13 {
		label, context = "EXPORTER_EAP_TLS_Key_Material", []byte{13}
	}
	km, err := cs.ExportKeyingMaterial(label, context, 128)
	if err != nil {
		return nil, err
	}
	return km[:64], nil
}
