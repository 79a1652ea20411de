package radius

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"layeh.com/radius"
	"layeh.com/radius/rfc2865"
)

var update = flag.Bool("update", false, "rewrite the seed corpus in testdata/fuzz")

// packetConn is a net.PacketConn that keeps what is written to it, so that
// the server's dispatch can be driven without a network.
type packetConn struct {
	mu  sync.Mutex
	out [][]byte
}

func (c *packetConn) WriteTo(b []byte, _ net.Addr) (int, error) {
	c.mu.Lock()
	c.out = append(c.out, append([]byte(nil), b...))
	c.mu.Unlock()
	return len(b), nil
}

// take returns the datagrams written since the last call.
func (c *packetConn) take() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.out
	c.out = nil
	return out
}

func (c *packetConn) ReadFrom([]byte) (int, net.Addr, error) { return 0, nil, net.ErrClosed }
func (c *packetConn) Close() error                           { return nil }
func (c *packetConn) LocalAddr() net.Addr {
	return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1812}
}
func (c *packetConn) SetDeadline(time.Time) error      { return nil }
func (c *packetConn) SetReadDeadline(time.Time) error  { return nil }
func (c *packetConn) SetWriteDeadline(time.Time) error { return nil }

// fuzzSeeds are encoded requests, made with our own encoders, from
// client one (secretOne).
func fuzzSeeds(t testing.TB) map[string][]byte {
	t.Helper()
	ms := func(id uint32, vsa ...byte) radius.Attributes {
		a, err := radius.NewVendorSpecific(id, vsa)
		if err != nil {
			t.Fatal(err)
		}
		return radius.Attributes{{Type: rfc2865.VendorSpecific_Type, Attribute: a}}
	}
	seeds := map[string]request{
		"pap":                  {user: "alice", password: rightPassword},
		"pap-wrong":            {user: "Alice@example.org", password: "wrong"},
		"pap-unsigned":         {user: "alice", password: rightPassword, unsigned: true},
		"pap-long-password":    {user: "alice", password: "0123456789abcdef0123456789abcdef0123456789abcdef!"},
		"state":                {user: "alice", password: "123456", attrs: radius.Attributes{{Type: rfc2865.State_Type, Attribute: make([]byte, 16)}}},
		"chap":                 {user: "alice", attrs: radius.Attributes{{Type: rfc2865.CHAPPassword_Type, Attribute: make([]byte, 17)}}},
		"ms-chap2":             {user: "alice", attrs: ms(vendorMicrosoft, 25, 4, 0, 0)},
		"other-vendor":         {user: "alice", password: rightPassword, attrs: ms(9, 1, 5, 'a', 'b', 'c')},
		"eap":                  {user: "alice", attrs: radius.Attributes{{Type: typeEAPMessage, Attribute: []byte{2, 7, 0, 10, 1, 'a', 'l', 'i', 'c', 'e'}}}},
		"eap-unsigned":         {user: "alice", unsigned: true, attrs: radius.Attributes{{Type: typeEAPMessage, Attribute: []byte{2, 7, 0, 5, 1}}}},
		"proxy-state":          {user: "alice", password: rightPassword, attrs: radius.Attributes{{Type: typeProxyState, Attribute: []byte("p1")}, {Type: typeProxyState, Attribute: []byte("p2")}}},
		"proxy-state-unsigned": {user: "alice", password: rightPassword, unsigned: true, attrs: radius.Attributes{{Type: typeProxyState, Attribute: []byte("p1")}}},
		"two-passwords":        {user: "alice", password: rightPassword, attrs: radius.Attributes{{Type: rfc2865.UserPassword_Type, Attribute: make([]byte, 16)}}},
		"two-names":            {user: "alice", password: rightPassword, attrs: radius.Attributes{{Type: rfc2865.UserName_Type, Attribute: []byte("bob")}}},
		"no-user":              {password: rightPassword},
		"control-user":         {user: "al\x01ice", password: rightPassword},
		"calling-station":      {user: "alice", password: rightPassword, attrs: radius.Attributes{{Type: rfc2865.CallingStationID_Type, Attribute: []byte("00-11-22-33-44-55")}}},
		"status-server":        {code: radius.CodeStatusServer},
		"status-unsigned":      {code: radius.CodeStatusServer, unsigned: true},
		"accounting":           {code: radius.CodeAccountingRequest, user: "alice", unsigned: true},
		"slow-user":            {user: userSlow, password: rightPassword},
		"panic-user":           {user: userPanic, password: rightPassword},
	}
	out := map[string][]byte{}
	for name, r := range seeds {
		out[name] = r.encode(t, secretOne)
	}
	// Sign replaces a Message-Authenticator, so these are made by hand.
	out["two-mas"] = withAttribute(out["pap"], byte(typeMessageAuthenticator), make([]byte, 16))
	out["short-ma"] = withAttribute(out["pap-unsigned"], byte(typeMessageAuthenticator), make([]byte, 8))
	return out
}

// TestWriteFuzzCorpus rewrites testdata/fuzz/FuzzRequest from fuzzSeeds
// when run with -update.
func TestWriteFuzzCorpus(t *testing.T) {
	if !*update {
		t.Skip("run with -update to rewrite the seed corpus")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzRequest")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range fuzzSeeds(t) {
		data := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\nuint8(0)\n", strconv.Quote(string(b)))
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// FuzzRequest drives arbitrary datagrams through the whole front (client
// lookup, parsing, the Message-Authenticator rules, the duplicate cache,
// the conversation, sealing) without a network, and through the pure
// functions one by one. Properties: no panic; every reply verifies; an
// Access-Accept to an Access-Request only when the directory accepted the
// password; every decision has a reason; and the server still answers a
// signed Status-Server afterwards.
func FuzzRequest(f *testing.F) {
	for _, b := range fuzzSeeds(f) {
		f.Add(b, uint8(0))
	}
	f.Add(fuzzSeeds(f)["pap-unsigned"], uint8(1))
	status := request{code: radius.CodeStatusServer, id: 200}.encode(f, secretOne)
	secrets := [][]byte{[]byte(secretOne), []byte(secretTwo)}
	sources := []*net.UDPAddr{{IP: net.IPv4(127, 0, 0, 1), Port: 5000}, {IP: net.IPv4(127, 0, 0, 2), Port: 5000}}

	f.Fuzz(func(t *testing.T, data []byte, from uint8) {
		which := int(from % 2)
		dir := newFakeDirectory()
		dir.release() // slow users answer at once
		m := NewMetrics(nil)
		conv := newTestConversation(t, dir, m)
		clients := NewClientTable(testClients())
		srv := NewServer(Options{Clients: clients, Handler: conv, Metrics: m})
		defer srv.Shutdown(context.Background())

		// The pure functions.
		client := clients.Lookup(sources[which].AddrPort().Addr())
		if pkt, err := radius.Parse(data, secrets[which]); err == nil {
			checkMessageAuthenticator(data, secrets[which])
			for _, pw := range attributesOf(pkt, rfc2865.UserPassword_Type) {
				decodePassword(pw, pkt.Secret, pkt.Authenticator)
			}
			isCHAP(pkt)
			before := dir.accepted.Load()
			func() {
				defer func() {
					if v := recover(); v != nil && v != "fake directory panics" {
						panic(v)
					}
				}()
				d := conv.decide(context.Background(), pkt, client, conv.policies[client.Policy])
				if d.reason == "" {
					t.Errorf("decision %v has no reason", d)
				}
				if d.code == radius.CodeAccessAccept && dir.accepted.Load() == before {
					t.Errorf("Access-Accept (%s) without the directory's yes", d.reason)
				}
			}()
		}

		// The whole front.
		conn := &packetConn{}
		before := dir.accepted.Load()
		srv.dispatch(conn, sources[which], data)
		srv.handlers.Wait()
		replies := conn.take()
		if len(replies) > 1 {
			t.Fatalf("%d replies to one request", len(replies))
		}
		for _, reply := range replies {
			if len(data) < 20 {
				t.Fatalf("a reply to %d bytes", len(data))
			}
			if !radius.IsAuthenticResponse(reply, data, secrets[which]) {
				t.Error("the reply's Response Authenticator does not verify")
			}
			var auth [16]byte
			copy(auth[:], data[4:20])
			if present, err := VerifyResponse(reply, auth, secrets[which]); !present || err != nil {
				t.Errorf("the reply's Message-Authenticator: present=%t err=%v", present, err)
			}
			code := radius.Code(reply[0])
			if code == radius.CodeAccessAccept && radius.Code(data[0]) != radius.CodeStatusServer && dir.accepted.Load() == before {
				t.Error("Access-Accept without the directory's yes")
			}
		}

		// Still answering.
		srv.dispatch(conn, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 6000}, status)
		srv.handlers.Wait()
		if replies := conn.take(); len(replies) != 1 || radius.Code(replies[0][0]) != radius.CodeAccessAccept {
			t.Fatalf("Status-Server afterwards: %d replies", len(replies))
		}
	})
}
