package radius

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"layeh.com/radius"
	"layeh.com/radius/rfc2865"
)

// testServer is a Server on 127.0.0.1 with fakeDirectory behind it.
type testServer struct {
	srv     *Server
	addr    *net.UDPAddr
	dir     *fakeDirectory
	metrics *Metrics
	served  chan error // what Serve returned
}

// startServer runs a Server on 127.0.0.1:0; edit changes its options. It
// is shut down, and the directory released, when the test ends.
func startServer(t *testing.T, edit func(*Options)) *testServer {
	t.Helper()
	ts := &testServer{dir: newFakeDirectory(), metrics: NewMetrics(prometheus.NewRegistry()), served: make(chan error, 1)}
	o := Options{
		Clients: NewClientTable(testClients()),
		Handler: newTestConversation(t, ts.dir, ts.metrics),
		Metrics: ts.metrics,
	}
	if edit != nil {
		edit(&o)
	}
	ts.srv = NewServer(o)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts.addr = pc.LocalAddr().(*net.UDPAddr)
	go func() { ts.served <- ts.srv.Serve(pc) }()
	t.Cleanup(func() {
		ts.dir.release()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := ts.srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		select {
		case err := <-ts.served:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return after Shutdown")
		}
	})
	return ts
}

// dropped reads the dropped-packet counter for cause.
func (ts *testServer) dropped(cause string) float64 {
	return testutil.ToFloat64(ts.metrics.Dropped.WithLabelValues(cause))
}

// rawClient is a UDP socket bound to ip that talks to the server.
type rawClient struct {
	t    *testing.T
	conn *net.UDPConn
}

func (ts *testServer) dial(t *testing.T, ip string) *rawClient {
	t.Helper()
	conn, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(ip)}, ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &rawClient{t: t, conn: conn}
}

func (c *rawClient) send(b []byte) {
	c.t.Helper()
	if _, err := c.conn.Write(b); err != nil {
		c.t.Fatal(err)
	}
}

// read returns the next datagram, failing the test after 5 seconds.
func (c *rawClient) read() []byte {
	c.t.Helper()
	b, err := c.readWithin(5 * time.Second)
	if err != nil {
		c.t.Fatalf("no reply: %v", err)
	}
	return b
}

func (c *rawClient) readWithin(d time.Duration) ([]byte, error) {
	buf := make([]byte, 4096)
	c.conn.SetReadDeadline(time.Now().Add(d))
	n, err := c.conn.Read(buf)
	if err != nil {
		return nil, err
	}
	return buf[:n], nil
}

// expectNoReply checks that nothing arrives for a short while.
func (c *rawClient) expectNoReply() {
	c.t.Helper()
	if b, err := c.readWithin(100 * time.Millisecond); err == nil {
		c.t.Fatalf("unexpected reply %x", b)
	}
}

// checkReply verifies a reply to req and returns it parsed.
func checkReply(t *testing.T, reply, req []byte, secret string, want radius.Code) *radius.Packet {
	t.Helper()
	if !radius.IsAuthenticResponse(reply, req, []byte(secret)) {
		t.Fatal("the reply's Response Authenticator does not verify")
	}
	var auth [16]byte
	copy(auth[:], req[4:20])
	if present, err := VerifyResponse(reply, auth, []byte(secret)); !present || err != nil {
		t.Fatalf("the reply's Message-Authenticator: present=%t err=%v", present, err)
	}
	p, err := radius.Parse(reply, []byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	if p.Code != want || p.Identifier != req[1] {
		t.Fatalf("reply %s id %d, want %s id %d", p.Code, p.Identifier, want, req[1])
	}
	return p
}

func TestServerAnswers(t *testing.T) {
	ts := startServer(t, nil)
	one := &radius.Client{Retry: 0, MaxPacketErrors: 1}
	two := &radius.Client{Retry: 0, MaxPacketErrors: 1, Dialer: net.Dialer{LocalAddr: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2)}}}
	tests := []struct {
		name    string
		fromTwo bool // from client two (127.0.0.2), which never signs
		req     request
		want    radius.Code // 0: no reply
	}{
		{"right password", false, request{user: "alice", password: rightPassword}, radius.CodeAccessAccept},
		{"wrong password", false, request{user: "alice", password: "wrong"}, radius.CodeAccessReject},
		{"unsigned from a client that never signed", true, request{user: "bob", password: rightPassword, unsigned: true}, radius.CodeAccessAccept},
		{"unsigned from a client that has signed", false, request{user: "bob", password: rightPassword, unsigned: true}, 0},
		{"unsigned with Proxy-State", true, request{user: "bob", password: rightPassword, unsigned: true,
			attrs: radius.Attributes{{Type: typeProxyState, Attribute: []byte("p")}}}, 0},
		{"no password", false, request{user: "alice"}, radius.CodeAccessReject},
		{"CHAP", false, request{user: "alice", attrs: radius.Attributes{{Type: rfc2865.CHAPPassword_Type, Attribute: make([]byte, 17)}}}, radius.CodeAccessReject},
		{"Status-Server", false, request{code: radius.CodeStatusServer}, radius.CodeAccessAccept},
		{"unsigned Status-Server", true, request{code: radius.CodeStatusServer, unsigned: true}, 0},
		{"unsigned EAP", true, request{user: "alice", unsigned: true, attrs: radius.Attributes{{Type: typeEAPMessage, Attribute: []byte{2, 1, 0, 5, 1}}}}, 0},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.req.id = byte(i)
			tt.req.randomAuth = true
			c, secret := one, secretOne
			if tt.fromTwo {
				c, secret = two, secretTwo
			}
			p := tt.req.packet(t, secret)
			wait := 5 * time.Second
			if tt.want == 0 {
				wait = 150 * time.Millisecond
			}
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			resp, err := c.Exchange(ctx, p, ts.addr.String())
			if tt.want == 0 {
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("Exchange = %v, %v; want no reply", resp, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Exchange: %v", err)
			}
			if resp.Code != tt.want {
				t.Errorf("reply %s (%s), want %s", resp.Code, rfc2865.ReplyMessage_GetString(resp), tt.want)
			}
			if resp.Attributes[0].Type != typeMessageAuthenticator {
				t.Error("Message-Authenticator is not the first attribute")
			}
		})
	}
	if got := ts.dropped(DropMissingAuth); got != 3 {
		t.Errorf("dropped for a missing Message-Authenticator: %v, want 3", got)
	}
	if got := ts.dropped(DropUnsignedProxy); got != 1 {
		t.Errorf("dropped for an unsigned Proxy-State: %v, want 1", got)
	}
	if got := testutil.ToFloat64(ts.metrics.Unsigned.WithLabelValues("two")); got != 1 {
		t.Errorf("unsigned requests accepted from two: %v, want 1", got)
	}
}

func TestServerDropsUnknownClient(t *testing.T) {
	ts := startServer(t, func(o *Options) { o.Clients = NewClientTable(testClients()[1:]) })
	c := ts.dial(t, "127.0.0.1")
	c.send(request{user: "alice", password: rightPassword}.encode(t, secretOne))
	c.expectNoReply()
	waitFor(t, "the unknown-client count", func() bool { return ts.dropped(DropUnknownClient) == 1 })
}

// TestServerRetransmission sends a request, its copy while the directory
// is still working on the first, and another copy after the reply.
func TestServerRetransmission(t *testing.T) {
	ts := startServer(t, nil)
	c := ts.dial(t, "127.0.0.1")
	req := request{id: 7, user: userSlow, password: rightPassword}.encode(t, secretOne)

	c.send(req)
	ts.dir.waitEntered(t, userSlow)
	c.send(req) // absorbed: the first copy is still being handled
	waitFor(t, "the copy to be absorbed", func() bool { return ts.dropped(DropDuplicate) == 1 })
	ts.dir.release()
	first := c.read()
	checkReply(t, first, req, secretOne, radius.CodeAccessAccept)

	c.send(req) // answered from the reply cache
	second := c.read()
	if !bytes.Equal(first, second) {
		t.Errorf("the retransmission's reply differs:\n%x\n%x", first, second)
	}
	c.expectNoReply() // the absorbed copy got no reply of its own
	if n := ts.dir.calls.Load(); n != 1 {
		t.Errorf("the directory ran %d times, want 1", n)
	}
	if got := testutil.ToFloat64(ts.metrics.Resent.WithLabelValues("one")); got != 1 {
		t.Errorf("retransmissions counted: %v, want 1", got)
	}
	if got := testutil.ToFloat64(ts.metrics.Requests.WithLabelValues("one", "Access-Request")); got != 3 {
		t.Errorf("requests counted: %v, want 3", got)
	}

	// A new request (new Request Authenticator) with the same Identifier is
	// not a retransmission.
	fresh := request{id: 7, user: "alice", password: rightPassword, randomAuth: true}.encode(t, secretOne)
	c.send(fresh)
	checkReply(t, c.read(), fresh, secretOne, radius.CodeAccessAccept)
	if n := ts.dir.calls.Load(); n != 2 {
		t.Errorf("the directory ran %d times, want 2", n)
	}
}

func TestReplyCacheSweep(t *testing.T) {
	clock := newFakeClock()
	c := newReplyCache(30*time.Second, 100, clock.Now)
	k1 := dupKey{id: 1}
	k2 := dupKey{id: 2}
	reply := []byte{2, 1, 0, 20}

	e, first, _ := c.begin(k1, "one")
	if !first {
		t.Fatal("the first copy is not first")
	}
	clock.Advance(5 * time.Second)
	if e2, first, _ := c.begin(k1, "one"); first || e2.gen != e.gen || e2.done {
		t.Fatalf("a copy in progress: first=%t same=%t done=%t", first, e2.gen == e.gen, e2.done)
	}
	c.finish(k1, e.gen, reply)

	clock.Advance(29 * time.Second) // 34s after begin, 29s after finish
	if e2, first, _ := c.begin(k1, "one"); first || !e2.done || !bytes.Equal(e2.reply, reply) {
		t.Fatalf("inside the window: first=%t done=%t reply=%x", first, e2.done, e2.reply)
	}
	clock.Advance(time.Second) // the window has passed since finish
	if _, first, _ := c.begin(k2, "one"); !first {
		t.Fatal("k2 is not first")
	}
	if n := c.len(); n != 1 {
		t.Errorf("%d entries after the sweep, want 1 (k2 in progress)", n)
	}
	clock.Advance(time.Hour) // an entry in progress stays however long it runs
	if _, first, _ := c.begin(k1, "one"); !first {
		t.Error("k1 was not swept")
	}
	e2, ok := c.m[k2]
	if !ok {
		t.Error("k2, still in progress, was swept")
	}
	c.finish(k2, e2.gen, nil)
	clock.Advance(31 * time.Second)
	c.begin(dupKey{id: 3}, "one")
	if _, ok := c.m[k2]; ok {
		t.Error("k2 was not swept after it finished and its window passed")
	}
}

// TestReplyCacheNeverEvicts: a full cache refuses new requests rather
// than drop an entry inside its window, finished or in progress, and a
// client's share leaves room for the others.
func TestReplyCacheNeverEvicts(t *testing.T) {
	clock := newFakeClock()
	c := newReplyCache(time.Minute, 3, clock.Now)
	inProgress, _, _ := c.begin(dupKey{id: 1}, "one")
	for id := byte(2); id <= 3; id++ {
		e, first, full := c.begin(dupKey{id: id}, "one")
		if !first || full {
			t.Fatalf("key %d: first=%t full=%t", id, first, full)
		}
		clock.Advance(time.Second)
		c.finish(dupKey{id: id}, e.gen, []byte{byte(id)})
	}
	if _, first, full := c.begin(dupKey{id: 4}, "one"); first || !full {
		t.Fatalf("a fourth request of a full client: first=%t full=%t, want refused", first, full)
	}
	for id := byte(1); id <= 3; id++ {
		if _, first, full := c.begin(dupKey{id: id}, "one"); first || full {
			t.Errorf("key %d sent again: first=%t full=%t, want its entry", id, first, full)
		}
	}
	if _, first, _ := c.begin(dupKey{id: 4}, "two"); !first {
		t.Error("another client has no room")
	}
	// An hour later the finished entries are gone, the one in progress
	// stays until it finishes.
	clock.Advance(time.Hour)
	if _, first, full := c.begin(dupKey{id: 5}, "one"); !first || full {
		t.Fatalf("after the window: first=%t full=%t", first, full)
	}
	if e, ok := c.m[dupKey{id: 1}]; !ok || e.gen != inProgress.gen || e.done {
		t.Fatalf("the entry in progress: %+v, %t", e, ok)
	}
	c.finish(dupKey{id: 1}, inProgress.gen, []byte("late"))
	if e, _, _ := c.begin(dupKey{id: 1}, "one"); !e.done || string(e.reply) != "late" {
		t.Errorf("its retransmission gets %+v, want the late reply", e)
	}
}

func TestReplyCacheTotal(t *testing.T) {
	clock := newFakeClock()
	c := newReplyCache(time.Minute, 2, clock.Now) // 8 in all
	n := 0
	for client := range 6 {
		for id := range 2 {
			if _, first, _ := c.begin(dupKey{id: byte(id), port: uint16(client)}, fmt.Sprint(client)); first {
				n++
			}
		}
	}
	if n != 8 || c.len() != 8 {
		t.Errorf("%d requests began, %d entries; want the total of 8", n, c.len())
	}
}

func TestServerInFlightLimit(t *testing.T) {
	ts := startServer(t, func(o *Options) { o.MaxInFlightPerClient = 2 })
	one := ts.dial(t, "127.0.0.1")
	slow := make([][]byte, 3)
	for i := range slow {
		slow[i] = request{id: byte(i), user: userSlow, password: rightPassword}.encode(t, secretOne)
	}
	one.send(slow[0])
	one.send(slow[1])
	ts.dir.waitEntered(t, userSlow)
	ts.dir.waitEntered(t, userSlow)
	one.send(slow[2])
	waitFor(t, "the third request to be dropped", func() bool { return ts.dropped(DropOverload) == 1 })
	status := request{id: 9, code: radius.CodeStatusServer}.encode(t, secretOne)
	one.send(status) // even Status-Server: the client has no room left
	waitFor(t, "Status-Server to be dropped", func() bool { return ts.dropped(DropOverload) == 2 })

	two := ts.dial(t, "127.0.0.2")
	req := request{id: 1, user: "alice", password: rightPassword}.encode(t, secretTwo)
	two.send(req)
	checkReply(t, two.read(), req, secretTwo, radius.CodeAccessAccept)

	ts.dir.release()
	got := map[byte]bool{}
	for range 2 {
		b := one.read()
		got[b[1]] = true
	}
	if !got[0] || !got[1] {
		t.Errorf("replies for identifiers %v, want 0 and 1", got)
	}
	one.expectNoReply()
	if n := ts.dir.calls.Load(); n != 3 {
		t.Errorf("the directory ran %d times, want 3", n)
	}
	// With room again, the client is answered.
	one.send(status)
	checkReply(t, one.read(), status, secretOne, radius.CodeAccessAccept)
}

func TestServerRecoversPanic(t *testing.T) {
	ts := startServer(t, nil)
	c := ts.dial(t, "127.0.0.1")
	c.send(request{id: 1, user: userPanic, password: rightPassword}.encode(t, secretOne))
	waitFor(t, "the panic to be counted", func() bool { return ts.dropped(DropPanic) == 1 })
	c.expectNoReply()
	req := request{id: 2, user: "alice", password: rightPassword}.encode(t, secretOne)
	c.send(req)
	checkReply(t, c.read(), req, secretOne, radius.CodeAccessAccept)
	// The slot is given back when the handler returns, just after the
	// reply is sent.
	waitFor(t, "no request in flight after the panic", func() bool { return testutil.ToFloat64(ts.metrics.InFlight) == 0 })
}

func TestServerShutdownLeavesNoGoroutine(t *testing.T) {
	before := runtime.NumGoroutine()
	dir := newFakeDirectory()
	m := NewMetrics(nil)
	srv := NewServer(Options{Clients: NewClientTable(testClients()), Handler: newTestConversation(t, dir, m), Metrics: m})
	var served []chan error
	var addrs []string
	for range 2 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, pc.LocalAddr().String())
		ch := make(chan error, 1)
		served = append(served, ch)
		go func() { ch <- srv.Serve(pc) }()
	}
	c := &radius.Client{Retry: 0}
	for _, addr := range addrs {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		resp, err := c.Exchange(ctx, request{user: "alice", password: rightPassword, randomAuth: true}.packet(t, secretOne), addr)
		cancel()
		if err != nil || resp.Code != radius.CodeAccessAccept {
			t.Fatalf("Exchange with %s: %v %v", addr, resp, err)
		}
	}
	// One request still in the directory when Shutdown starts: Shutdown
	// waits for it.
	conn, err := net.Dial("udp", addrs[0])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Write(request{user: userSlow, password: rightPassword}.encode(t, secretOne))
	dir.waitEntered(t, userSlow)
	time.AfterFunc(50*time.Millisecond, dir.release)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if n := dir.accepted.Load(); n != 3 {
		t.Errorf("Shutdown returned before the slow request finished (%d accepted)", n)
	}
	for _, ch := range served {
		if err := <-ch; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}
	if err := srv.Serve(nil); err == nil {
		t.Error("Serve after Shutdown did not fail")
	}
	const slack = 1
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before+slack {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines before, %d after Shutdown:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestServerShutdownDeadline(t *testing.T) {
	ts := startServer(t, nil)
	c := ts.dial(t, "127.0.0.1")
	c.send(request{user: userSlow, password: rightPassword}.encode(t, secretOne))
	ts.dir.waitEntered(t, userSlow)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	// The slow request sees its context cancelled once the deadline
	// passes, and Shutdown then returns.
	if err := ts.srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown = %v, want the deadline", err)
	}
	if n := ts.dir.accepted.Load(); n != 0 {
		t.Errorf("%d accepted", n)
	}
}
