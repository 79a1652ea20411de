package test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"layeh.com/radius"
	"layeh.com/radius/rfc2865"

	mradius "github.com/mfabridge/mfabridge/radius"
	"github.com/mfabridge/mfabridge/test/harness"
)

// radsecSetup is a RadSec CA with the bridge's server certificate and
// client certificates for a known name and an unknown one.
type radsecSetup struct {
	ca                               *harness.CA
	serverCert, serverKey            string
	clientCert, clientKey            string // name radsecproxy.test
	strangerCert, strangerKey        string // same CA, a name no client has
	otherCACert, otherCert, otherKey string // another CA altogether
}

func newRadsecSetup(t *testing.T) radsecSetup {
	t.Helper()
	dir := t.TempDir()
	var s radsecSetup
	var err error
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	s.ca, err = harness.NewCA(dir, "radsec")
	must(err)
	s.serverCert, s.serverKey, err = s.ca.ServerCert(dir, "bridge")
	must(err)
	s.clientCert, s.clientKey, err = s.ca.ClientCert(dir, "client", "radsecproxy.test", "radsecproxy.test")
	must(err)
	s.strangerCert, s.strangerKey, err = s.ca.ClientCert(dir, "stranger", "stranger.test")
	must(err)
	other, err := harness.NewCA(dir, "other")
	must(err)
	s.otherCACert = other.CertFile
	s.otherCert, s.otherKey, err = other.ClientCert(dir, "other-client", "radsecproxy.test", "radsecproxy.test")
	must(err)
	return s
}

// startRadsecBridge starts a bridge with a RadSec listener and a RadSec
// client named radsecproxy.test on loopback.
func startRadsecBridge(t *testing.T, s radsecSetup, extra string, policies string) (*bridge, string) {
	t.Helper()
	p, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(p)
	b := startBridge(t, conf{
		ServerExtra: `  radsec_listen: "` + addr + `"
  radsec_tls: {cert_file: "` + s.serverCert + `", key_file: "` + s.serverKey + `", client_ca_file: "` + s.ca.CertFile + `"}
` + extra,
		Clients: defaultClients + `
  - name: radsec-proxy
    address: 127.0.0.0/8
    radsec_name: radsecproxy.test
    proxy: true`,
		Policies: policies,
	})
	return b, addr
}

func TestRadSecThroughRadsecproxy(t *testing.T) {
	s := newRadsecSetup(t)
	b, addr := startRadsecBridge(t, s, "", `  default:
    mfa: required
    factors: [totp]
    bypass_groups: [vpn-admins]`)
	p, err := harness.StartRadsecproxy(harness.RadsecproxyConfig{Dir: t.TempDir(), UDPSecret: "udp-side-secret-000",
		Server: addr, CAFile: s.ca.CertFile, CertFile: s.clientCert, KeyFile: s.clientKey, StatusServer: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	defer func() {
		if t.Failed() {
			t.Logf("radsecproxy log:\n%s", p.Log())
		}
	}()
	radclient := func(attrs string) harness.RadReply {
		t.Helper()
		r := b.radclientTo(t, p.UDPAddr, "udp-side-secret-000", "auth", attrs)
		return r
	}
	// alice bypasses the second factor: password alone, over RadSec.
	if r := radclient(pap(alice.UID, alice.Password)); r.Code != "Access-Accept" {
		t.Fatalf("alice through radsecproxy: %q\n%s", r.Code, r.Out)
	}
	if rec := b.lastAudit(t, alice.UID); rec.Client != "radsec-proxy" {
		t.Errorf("audit client = %q, want radsec-proxy", rec.Client)
	}
	// A full challenge through the proxy: State survives the hop.
	u := newUser(t)
	tk := b.enrolTOTP(t, u.UID)
	r := radclient(pap(u.UID, u.Password))
	if r.Code != "Access-Challenge" || len(r.Attrs["State"]) != 1 {
		t.Fatalf("challenge through radsecproxy: %q %v", r.Code, r.Attrs)
	}
	if r = radclient(pap(u.UID, tk.code(0)) + ", State = " + r.Attrs["State"][0]); r.Code != "Access-Accept" {
		t.Fatalf("answer through radsecproxy: %q\n%s", r.Code, r.Out)
	}
	if r = radclient(pap(bob.UID, "wrong")); r.Code != "Access-Reject" {
		t.Fatalf("wrong password through radsecproxy: %q", r.Code)
	}
	if n := b.metric(t, `mfabridge_radius_requests_total{client="radsec-proxy",code="Access-Request"}`); n < 4 {
		t.Errorf("RadSec requests counted = %v, want at least 4", n)
	}
}

// radclientTo runs radclient against another server (a proxy).
func (b *bridge) radclientTo(t *testing.T, server, secret, kind, attrs string) harness.RadReply {
	t.Helper()
	saved := b.Radius
	b.Radius = server
	defer func() { b.Radius = saved }()
	return b.radclient(t, kind, secret, attrs)
}

// radsecDial opens a TLS connection as a RadSec client would.
func radsecDial(t *testing.T, addr string, s radsecSetup, cert, key, ca string) (*tls.Conn, error) {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	pem, _ := os.ReadFile(s.ca.CertFile)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr,
		&tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12})
	if err != nil {
		return nil, err
	}
	if err := c.Handshake(); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// radsecExchange sends p over c and reads one framed reply.
func radsecExchange(c net.Conn, p *radius.Packet, timeout time.Duration) (*radius.Packet, error) {
	b, err := p.Encode()
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write(b); err != nil {
		return nil, err
	}
	var hdr [4]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return nil, err
	}
	body := make([]byte, binary.BigEndian.Uint16(hdr[2:4]))
	copy(body, hdr[:])
	if _, err := io.ReadFull(c, body[4:]); err != nil {
		return nil, err
	}
	if !radius.IsAuthenticResponse(body, b, []byte(mradius.RadSecSecret)) {
		return nil, io.ErrUnexpectedEOF
	}
	return radius.Parse(body, []byte(mradius.RadSecSecret))
}

// closedByPeer reports whether the server closes c within timeout.
func closedByPeer(c net.Conn, timeout time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(timeout))
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	return err != nil && !(strings.Contains(err.Error(), "timeout") || (errorsAs(err, &ne) && ne.Timeout()))
}

func TestRadSecGoClient(t *testing.T) {
	s := newRadsecSetup(t)
	b, addr := startRadsecBridge(t, s, `  radsec_idle_timeout: 2s
  radsec_max_connections: 3`, "")

	t.Run("Status-Server and PAP", func(t *testing.T) {
		c, err := radsecDial(t, addr, s, s.clientCert, s.clientKey, s.ca.CertFile)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		st := radius.New(radius.CodeStatusServer, []byte(mradius.RadSecSecret))
		mradius.Sign(st)
		if resp, err := radsecExchange(c, st, 5*time.Second); err != nil || resp.Code != radius.CodeAccessAccept {
			t.Fatalf("Status-Server: %v %v", resp, err)
		}
		req := harness.Request(mradius.RadSecSecret, bob.UID, bob.Password, true)
		if resp, err := radsecExchange(c, req, 5*time.Second); err != nil || resp.Code != radius.CodeAccessAccept {
			t.Fatalf("PAP: %v %v", resp, err)
		}
		// Many requests in flight on one connection, answered in any order.
		for i := 0; i < 20; i++ {
			req := harness.Request(mradius.RadSecSecret, bob.UID, bob.Password, true)
			if resp, err := radsecExchange(c, req, 5*time.Second); err != nil || resp.Code != radius.CodeAccessAccept {
				t.Fatalf("PAP %d: %v %v", i, resp, err)
			}
		}
	})

	t.Run("certificate from another CA is refused", func(t *testing.T) {
		c, err := radsecDial(t, addr, s, s.otherCert, s.otherKey, s.ca.CertFile)
		if err == nil {
			// TLS 1.3 reports a refused client certificate on the first read.
			defer c.Close()
			if _, err := radsecExchange(c, radius.New(radius.CodeStatusServer, []byte("radsec")), 3*time.Second); err == nil {
				t.Fatal("a client certificate from another CA was accepted")
			}
		}
	})

	t.Run("certificate naming no client is closed", func(t *testing.T) {
		before := b.metric(t, `mfabridge_radius_dropped_total{cause="unknown_client"}`)
		c, err := radsecDial(t, addr, s, s.strangerCert, s.strangerKey, s.ca.CertFile)
		if err == nil {
			defer c.Close()
			if !closedByPeer(c, 3*time.Second) {
				t.Fatal("connection with an unknown certificate name stayed open")
			}
		}
		if d := b.metric(t, `mfabridge_radius_dropped_total{cause="unknown_client"}`) - before; d != 1 {
			t.Errorf("unknown_client drops = %v, want 1", d)
		}
	})

	t.Run("bad framing closes the connection", func(t *testing.T) {
		c, err := radsecDial(t, addr, s, s.clientCert, s.clientKey, s.ca.CertFile)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte{1, 1, 0, 5}) // Length 5 < 20
		if !closedByPeer(c, 3*time.Second) {
			t.Fatal("connection stayed open after a bad Length")
		}
	})

	t.Run("idle connection is closed", func(t *testing.T) {
		c, err := radsecDial(t, addr, s, s.clientCert, s.clientKey, s.ca.CertFile)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		start := time.Now()
		if !closedByPeer(c, 6*time.Second) {
			t.Fatal("idle connection stayed open past radsec_idle_timeout")
		}
		if took := time.Since(start); took < 1500*time.Millisecond {
			t.Errorf("closed after %s, before the 2s idle timeout", took)
		}
	})

	t.Run("connection limit", func(t *testing.T) {
		var open []net.Conn
		defer func() {
			for _, c := range open {
				c.Close()
			}
		}()
		for i := 0; i < 3; i++ {
			c, err := radsecDial(t, addr, s, s.clientCert, s.clientKey, s.ca.CertFile)
			if err != nil {
				t.Fatalf("connection %d: %v", i, err)
			}
			open = append(open, c)
		}
		if c, err := radsecDial(t, addr, s, s.clientCert, s.clientKey, s.ca.CertFile); err == nil {
			c.Close()
			t.Fatal("a fourth connection over radsec_max_connections: 3 was accepted")
		}
		if n := b.metric(t, `mfabridge_radius_dropped_total{cause="radsec_connection_limit"}`); n < 1 {
			t.Errorf("radsec_connection_limit drops = %v", n)
		}
	})

	// The UDP side still answers.
	c := b.client(t, "127.0.0.1", secretLocal)
	if resp, _, err := c.Exchange(harness.Request(secretLocal, bob.UID, bob.Password, true, func(p *radius.Packet) {
		rfc2865.CallingStationID_SetString(p, "after-radsec")
	}), 5*time.Second); err != nil || resp.Code != radius.CodeAccessAccept {
		t.Fatalf("UDP after RadSec: %v %v", resp, err)
	}
}

func errorsAs(err error, target *net.Error) bool {
	ne, ok := err.(net.Error)
	if ok {
		*target = ne
	}
	return ok
}

// A RadSec connection costs a slot and a TLS handshake before its
// certificate says who it is: its source must be inside a RadSec client's
// range before either is spent, and one address holds a bounded number.
func TestRadSecSourceCheckedBeforeHandshake(t *testing.T) {
	t.Parallel()
	s := newRadsecSetup(t)
	p, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(p)
	b := startBridge(t, conf{
		ServerExtra: `  radsec_listen: "` + addr + `"
  radsec_tls: {cert_file: "` + s.serverCert + `", key_file: "` + s.serverKey + `", client_ca_file: "` + s.ca.CertFile + `"}`,
		Clients: defaultClients + `
  - name: radsec-proxy
    address: 127.0.0.9
    radsec_name: radsecproxy.test`,
	})
	dialFrom := func(ip string) net.Conn {
		t.Helper()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	series := `mfabridge_radius_dropped_total{cause="unknown_client"}`
	before := b.metric(t, series)
	if c := dialFrom("127.0.0.1"); !closedByPeer(c, 2*time.Second) {
		t.Error("a connection from outside every RadSec client's range stayed open")
	}
	if got := b.metric(t, series); got != before+1 {
		t.Errorf("%s = %v, want %v", series, got, before+1)
	}
	if !b.WaitLog("RadSec connection from an address inside no RadSec client's range", 5*time.Second) {
		t.Errorf("no warning for the stranger's connection:\n%s", b.Logs())
	}
	// From inside the range: held for the handshake, up to 16 at once.
	var open []net.Conn
	for range 16 {
		open = append(open, dialFrom("127.0.0.9"))
	}
	time.Sleep(200 * time.Millisecond)
	if closedByPeer(open[0], 300*time.Millisecond) {
		t.Error("a connection from a RadSec client's address was closed before its handshake")
	}
	if c := dialFrom("127.0.0.9"); !closedByPeer(c, 2*time.Second) {
		t.Error("a 17th connection from one address stayed open")
	}
	if got := b.metric(t, `mfabridge_radius_dropped_total{cause="radsec_source_limit"}`); got != 1 {
		t.Errorf("radsec_source_limit drops = %v, want 1", got)
	}
}
