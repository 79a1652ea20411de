package eap

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"
)

// newTestServer is a Server with the test certificate and a Verify that
// accepts and remembers the chains it saw; tweak may change cfg.
func newTestServer(t testing.TB, tweak ...func(*Config)) (*Server, *verifyLog) {
	t.Helper()
	pki := newTestPKI(t)
	vl := &verifyLog{}
	cfg := Config{TLS: &tls.Config{Certificates: []tls.Certificate{pki.server}}, Verify: vl.verify}
	for _, f := range tweak {
		f(&cfg)
	}
	s, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s, vl
}

// verifyLog records Verify calls.
type verifyLog struct {
	mu     sync.Mutex
	chains [][]*x509.Certificate
}

func (v *verifyLog) verify(chain []*x509.Certificate) error {
	v.mu.Lock()
	v.chains = append(v.chains, chain)
	v.mu.Unlock()
	return nil
}

func (v *verifyLog) calls() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.chains)
}

// exchange is the record of one conversation.
type exchange struct {
	replies []Reply // every reply, the last one final
	lastID  byte    // identifier of the last response sent
}

func (x exchange) final() Reply { return x.replies[len(x.replies)-1] }

// converse runs the peer against the server from the identity until the
// server stops continuing; an error from the peer fails the test.
func converse(t testing.TB, s *Server, p *testPeer) exchange {
	t.Helper()
	var x exchange
	r := s.Handle(testOwner, nil, identity(7, "alice@example.org"))
	x.replies, x.lastID = append(x.replies, r), 7
	if r.Status != Continue {
		t.Fatalf("identity: status %v, err %v", r.Status, r.Err)
	}
	if len(r.State) != 16 || r.Identity != "alice@example.org" {
		t.Fatalf("identity: State %x identity %q; want 16 bytes and the identity", r.State, r.Identity)
	}
	state := r.State
	for r.Status == Continue {
		if len(x.replies) > 5000 {
			t.Fatal("more than 5000 rounds")
		}
		if !bytes.Equal(r.State, state) {
			t.Fatalf("State changed within the session: %x then %x", state, r.State)
		}
		resp, err := p.respond(r.EAP)
		if err != nil {
			t.Fatal(err)
		}
		x.lastID = resp[1]
		r = s.Handle(testOwner, state, resp)
		x.replies = append(x.replies, r)
	}
	return x
}

// wantFailure checks a Failed reply: an EAP-Failure for the identifier of
// the response, and err.
func wantFailure(t *testing.T, r Reply, id byte, err error) {
	t.Helper()
	if r.Status != Failed {
		t.Fatalf("status %v (err %v), want Failed", r.Status, r.Err)
	}
	if !errors.Is(r.Err, err) {
		t.Errorf("err %v, want %v", r.Err, err)
	}
	if want := []byte{CodeFailure, id, 0, 4}; !bytes.Equal(r.EAP, want) {
		t.Errorf("EAP %x, want EAP-Failure %x", r.EAP, want)
	}
	if r.MSK != nil {
		t.Errorf("a failed session has an MSK")
	}
}

func TestHandshake(t *testing.T) {
	for _, tc := range []struct {
		name       string
		version    uint16
		serverFrag int // Config.FragmentSize; 0: default 1000
		peerFrag   int
	}{
		{"TLS 1.2", tls.VersionTLS12, 0, 0},
		{"TLS 1.3", tls.VersionTLS13, 0, 0},
		{"TLS 1.2 in fragments of 100", tls.VersionTLS12, 100, 100},
		{"TLS 1.3 in fragments of 100", tls.VersionTLS13, 100, 100},
		{"TLS 1.3 in fragments of 1", tls.VersionTLS13, 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, vl := newTestServer(t, func(c *Config) { c.FragmentSize = tc.serverFrag; c.MaxRounds = 10000 })
			versions := maxTLS12
			if tc.version == tls.VersionTLS13 {
				versions = onlyTLS13
			}
			p := newTestPeer(t, tc.peerFrag, versions)
			x := converse(t, s, p)
			r := x.final()
			if r.Status != Done {
				t.Fatalf("status %v, err %v", r.Status, r.Err)
			}
			if r.ID != x.lastID || r.Version != tc.version || r.Identity != "alice@example.org" {
				t.Errorf("Done: ID %d version %#x identity %q; want %d %#x alice@example.org", r.ID, r.Version, r.Identity, x.lastID, tc.version)
			}
			if len(r.Peer) != 1 || !r.Peer[0].Equal(newTestPKI(t).clientLeaf) || vl.calls() != 1 {
				t.Errorf("Peer %v after %d Verify calls; want the client certificate, verified once", r.Peer, vl.calls())
			}
			if ok, err := p.handshakeDone(); !ok || err != nil {
				t.Fatalf("peer handshake: done %v, err %v", ok, err)
			}
			if got := p.tls.ConnectionState().Version; got != tc.version {
				t.Errorf("peer negotiated %#x", got)
			}
			msk, err := p.exportMSK()
			if err != nil {
				t.Fatal(err)
			}
			if len(r.MSK) != 64 || !bytes.Equal(r.MSK, msk) {
				t.Errorf("MSK\n%x\nwant the peer's export\n%x", r.MSK, msk)
			}
			// RFC 9190 §2.5: TLS 1.3 ends with one byte of application
			// data, 0x00.
			if app := p.appData(); tc.version == tls.VersionTLS13 && !bytes.Equal(app, []byte{0}) {
				t.Errorf("application data %x, want the commitment message 00", app)
			} else if tc.version == tls.VersionTLS12 && len(app) != 0 {
				t.Errorf("application data %x under TLS 1.2", app)
			}
			checkServerFragments(t, p, s.cfg.FragmentSize)
			if tc.peerFrag > 0 {
				big := 0
				for _, n := range p.sentFrags {
					if n > tc.peerFrag {
						t.Errorf("peer sent %d bytes in one fragment", n)
					}
					if n == tc.peerFrag {
						big++
					}
				}
				if big < 2 {
					t.Errorf("peer fragments %v: want its flights split", p.sentFrags)
				}
			}
			if n := s.Open(); n != 0 {
				t.Errorf("%d sessions open after Done", n)
			}
		})
	}
}

// checkServerFragments checks the server's EAP-TLS requests: none over
// size; the first fragment of a split message has L with the total, the
// others not; all but the last have M; the identifiers count up.
func checkServerFragments(t *testing.T, p *testPeer, size int) {
	t.Helper()
	split := 0
	inMessage, got, total := false, 0, 0
	for i, f := range p.serverFrags {
		if i > 0 && f.id != p.serverFrags[i-1].id+1 {
			t.Errorf("request %d has identifier %d after %d", i, f.id, p.serverFrags[i-1].id)
		}
		if f.data > size {
			t.Errorf("request %d carries %d TLS bytes; FragmentSize is %d", i, f.data, size)
		}
		switch {
		case f.flags&flagMore != 0 && !inMessage:
			if f.flags&flagLength == 0 {
				t.Errorf("request %d starts a split message without L", i)
			}
			inMessage, got, total = true, f.data, f.total
			split++
		case inMessage:
			if f.flags&flagLength != 0 {
				t.Errorf("request %d: L on a later fragment", i)
			}
			got += f.data
			if f.flags&flagMore == 0 {
				inMessage = false
				if got != total {
					t.Errorf("split message of %d bytes announced %d", got, total)
				}
			}
		}
	}
	if size <= 100 && split == 0 {
		t.Errorf("no message was split with FragmentSize %d", size)
	}
}

func TestConcurrentHandshakes(t *testing.T) {
	s, _ := newTestServer(t, func(c *Config) { c.FragmentSize = 200 })
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v := maxTLS12
			if i%2 == 0 {
				v = onlyTLS13
			}
			p := newTestPeer(t, 150, v)
			owner := Owner{Client: "nas", Station: fmt.Sprint(i)}
			r := s.Handle(owner, nil, identity(1, fmt.Sprintf("user%d", i)))
			state := r.State
			for r.Status == Continue {
				resp, err := p.respond(r.EAP)
				if err != nil {
					errs <- err
					return
				}
				r = s.Handle(owner, state, resp)
			}
			msk, err := p.exportMSK()
			if r.Status != Done || err != nil || !bytes.Equal(r.MSK, msk) {
				errs <- fmt.Errorf("session %d: status %v err %v, MSK match %v", i, r.Status, r.Err, bytes.Equal(r.MSK, msk))
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

var errRefused = errors.New("test: certificate refused")

func TestVerifyRefuses(t *testing.T) {
	for _, v := range []func(*tls.Config){maxTLS12, onlyTLS13} {
		s, _ := newTestServer(t, func(c *Config) {
			c.Verify = func([]*x509.Certificate) error { return fmt.Errorf("wrapped: %w", errRefused) }
		})
		p := newTestPeer(t, 0, v)
		x := converse(t, s, p)
		wantFailure(t, x.final(), x.lastID, errRefused)
		if n := s.Open(); n != 0 {
			t.Errorf("%d sessions open after a failure", n)
		}
	}
}

func TestNoClientCertificate(t *testing.T) {
	for _, v := range []func(*tls.Config){maxTLS12, onlyTLS13} {
		s, vl := newTestServer(t)
		p := newTestPeer(t, 0, v, noClientCert)
		x := converse(t, s, p)
		wantFailure(t, x.final(), x.lastID, ErrHandshake)
		if vl.calls() != 0 {
			t.Errorf("Verify called %d times without a certificate", vl.calls())
		}
	}
}

// started opens a session and returns its State and the identifier of the
// EAP-TLS Start.
func started(t *testing.T, s *Server) (state []byte, id byte) {
	t.Helper()
	r := s.Handle(testOwner, nil, identity(1, "alice"))
	if r.Status != Continue {
		t.Fatalf("identity: %v %v", r.Status, r.Err)
	}
	if want := []byte{CodeRequest, 2, 0, 6, TypeTLS, flagStart}; !bytes.Equal(r.EAP, want) {
		t.Fatalf("EAP-TLS Start %x, want %x", r.EAP, want)
	}
	return r.State, r.EAP[1]
}

func TestNakAndBadPackets(t *testing.T) {
	t.Run("Nak", func(t *testing.T) {
		s, _ := newTestServer(t)
		st, id := started(t, s)
		nak := []byte{CodeResponse, id, 0, 6, TypeNak, 25} // would rather PEAP
		wantFailure(t, s.Handle(testOwner, st, nak), id, ErrNotTLS)
		if s.Open() != 0 {
			t.Error("session open after Nak")
		}
	})
	t.Run("wrong identifier", func(t *testing.T) {
		s, _ := newTestServer(t)
		st, id := started(t, s)
		p := newTestPeer(t, 0)
		resp, err := p.respond([]byte{CodeRequest, id, 0, 6, TypeTLS, flagStart})
		if err != nil {
			t.Fatal(err)
		}
		resp[1] = id + 1
		wantFailure(t, s.Handle(testOwner, st, resp), id+1, ErrBadPacket)
		if s.Open() != 0 {
			t.Error("session open after a wrong identifier")
		}
	})
	t.Run("unknown State", func(t *testing.T) {
		s, _ := newTestServer(t)
		started(t, s)
		wantFailure(t, s.Handle(testOwner, bytes.Repeat([]byte{0xab}, 16), tlsResponse(2, 0, 0, nil)), 2, ErrExpired)
		if s.Open() != 1 {
			t.Error("an unknown State touched the open session")
		}
	})
	t.Run("first packet not an identity", func(t *testing.T) {
		s, _ := newTestServer(t)
		wantFailure(t, s.Handle(testOwner, nil, tlsResponse(3, 0, 0, []byte{22, 3, 1})), 3, ErrBadPacket)
	})
	t.Run("not a response", func(t *testing.T) {
		s, _ := newTestServer(t)
		for _, b := range [][]byte{nil, {2}, {1, 9, 0, 10, 1, 'a', 'l', 'i', 'c', 'e'}, {3, 9, 0, 4}, {2, 9, 0, 200, 1}, {2, 9, 0, 4}} {
			r := s.Handle(testOwner, nil, b)
			if r.Status != Failed || !errors.Is(r.Err, ErrBadPacket) || len(r.EAP) != 4 || r.EAP[0] != CodeFailure {
				t.Errorf("%x: %v %v %x, want Failed ErrBadPacket with EAP-Failure", b, r.Status, r.Err, r.EAP)
			}
		}
		if s.Open() != 0 {
			t.Error("a bad first packet opened a session")
		}
	})
	t.Run("data while the server is sending fragments", func(t *testing.T) {
		s, _ := newTestServer(t, func(c *Config) { c.FragmentSize = 100 })
		st, id := started(t, s)
		p := newTestPeer(t, 0)
		hello, err := p.respond([]byte{CodeRequest, id, 0, 6, TypeTLS, flagStart})
		if err != nil {
			t.Fatal(err)
		}
		r := s.Handle(testOwner, st, hello)
		if r.Status != Continue || r.EAP[5]&flagMore == 0 {
			t.Fatalf("server flight: %v %x", r.Status, r.EAP[:6])
		}
		// Not an ACK: TLS data where only an ACK may come.
		wantFailure(t, s.Handle(testOwner, st, tlsResponse(r.EAP[1], 0, 0, []byte{22})), r.EAP[1], ErrBadPacket)
	})
	t.Run("more data than announced", func(t *testing.T) {
		s, _ := newTestServer(t)
		st, id := started(t, s)
		r := s.Handle(testOwner, st, tlsResponse(id, flagLength|flagMore, 4, []byte{1, 2, 3}))
		if r.Status != Continue {
			t.Fatalf("first fragment: %v %v", r.Status, r.Err)
		}
		wantFailure(t, s.Handle(testOwner, st, tlsResponse(r.EAP[1], 0, 0, []byte{4, 5})), r.EAP[1], ErrBadPacket)
	})
	t.Run("an ACK when TLS waits for data", func(t *testing.T) {
		s, _ := newTestServer(t)
		st, id := started(t, s)
		wantFailure(t, s.Handle(testOwner, st, tlsResponse(id, 0, 0, nil)), id, ErrBadPacket)
	})
	t.Run("not TLS at all", func(t *testing.T) {
		s, _ := newTestServer(t)
		st, id := started(t, s)
		r := s.Handle(testOwner, st, tlsResponse(id, 0, 0, []byte("GET / HTTP/1.1\r\n\r\n")))
		wantFailure(t, r, id, ErrHandshake)
	})
}

func TestLimits(t *testing.T) {
	t.Run("MaxRounds", func(t *testing.T) {
		s, _ := newTestServer(t, func(c *Config) { c.FragmentSize = 200; c.MaxRounds = 5 })
		p := newTestPeer(t, 200)
		x := converse(t, s, p)
		wantFailure(t, x.final(), x.lastID, ErrLimit)
		if n := len(x.replies) - 1; n != 6 {
			t.Errorf("failed at round %d, want 6 (MaxRounds 5)", n)
		}
	})
	t.Run("MaxBytes", func(t *testing.T) {
		s, _ := newTestServer(t, func(c *Config) { c.MaxBytes = 1000 })
		p := newTestPeer(t, 0)
		x := converse(t, s, p)
		wantFailure(t, x.final(), x.lastID, ErrLimit)
	})
	t.Run("MaxBytes announced", func(t *testing.T) {
		s, _ := newTestServer(t, func(c *Config) { c.MaxBytes = 4096 })
		st, id := started(t, s)
		wantFailure(t, s.Handle(testOwner, st, tlsResponse(id, flagLength|flagMore, 1<<30, []byte{22})), id, ErrLimit)
	})
	t.Run("MaxRounds in empty fragments", func(t *testing.T) {
		// Fragments with M and no data cost nothing but rounds.
		s, _ := newTestServer(t, func(c *Config) { c.MaxRounds = 10 })
		st, id := started(t, s)
		var r Reply
		for i := range 11 {
			r = s.Handle(testOwner, st, tlsResponse(id, flagMore, 0, nil))
			if i < 10 && r.Status != Continue {
				t.Fatalf("round %d: %v %v", i+1, r.Status, r.Err)
			}
			id = r.EAP[1]
		}
		if r.Status != Failed || !errors.Is(r.Err, ErrLimit) {
			t.Errorf("round 11: %v %v, want ErrLimit", r.Status, r.Err)
		}
	})
	t.Run("MaxSessions", func(t *testing.T) {
		s, _ := newTestServer(t, func(c *Config) { c.MaxSessions = 2 })
		st1, _ := started(t, s)
		started(t, s)
		wantFailure(t, s.Handle(testOwner, nil, identity(1, "carol")), 1, ErrTooMany)
		if s.Open() != 2 {
			t.Errorf("Open %d, want 2", s.Open())
		}
		// Ending one makes room.
		s.Handle(testOwner, st1, []byte{CodeResponse, 2, 0, 6, TypeNak, 25})
		if r := s.Handle(testOwner, nil, identity(1, "carol")); r.Status != Continue {
			t.Errorf("after one ended: %v %v", r.Status, r.Err)
		}
	})
}

// fakeClock is the time the tests give the server.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// withClock makes s read the time from c; call it before the first
// Handle, as sessions take the clock when they start.
func withClock(s *Server, c *fakeClock) { s.now = c.Now }

func TestIdleSessionsAreSwept(t *testing.T) {
	base := runtime.NumGoroutine()
	s, _ := newTestServer(t, func(c *Config) { c.IdleTimeout = 30 * time.Second; c.FragmentSize = 100 })
	clock := &fakeClock{now: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	withClock(s, clock)

	// a: a peer that stops answering halfway through sending its
	// ClientHello (one fragment with M, then nothing).
	stA, id := started(t, s)
	pa := newTestPeer(t, 50)
	frag, err := pa.respond([]byte{CodeRequest, id, 0, 6, TypeTLS, flagStart})
	if err != nil {
		t.Fatal(err)
	}
	ra := s.Handle(testOwner, stA, frag)
	if ra.Status != Continue {
		t.Fatalf("a: %v %v", ra.Status, ra.Err)
	}

	clock.Advance(20 * time.Second)
	// b starts; a is idle 20s, under IdleTimeout.
	pb := newTestPeer(t, 0)
	rb := s.Handle(testOwner, nil, identity(1, "bob"))
	stB := rb.State
	if s.Open() != 2 {
		t.Fatalf("Open %d, want 2", s.Open())
	}
	rb = s.Handle(testOwner, stB, must(t)(pb.respond(rb.EAP)))

	clock.Advance(15 * time.Second) // a idle 35s, b 15s
	if r := s.Handle(testOwner, nil, identity(1, "carol")); r.Status != Continue {
		t.Fatalf("carol: %v %v", r.Status, r.Err)
	}
	if s.Open() != 2 {
		t.Errorf("Open %d after the sweep, want 2 (b and carol)", s.Open())
	}
	wantFailure(t, s.Handle(testOwner, stA, tlsResponse(ra.EAP[1], 0, 0, nil)), ra.EAP[1], ErrExpired)

	// b, idle under the limit, finishes.
	for rb.Status == Continue {
		rb = s.Handle(testOwner, stB, must(t)(pb.respond(rb.EAP)))
	}
	if rb.Status != Done {
		t.Errorf("b: %v %v", rb.Status, rb.Err)
	}

	clock.Advance(31 * time.Second) // carol idle 31s
	s.Handle(testOwner, nil, identity(1, "dave"))
	if n := s.Open(); n != 1 {
		t.Errorf("Open %d, want 1 (dave)", n)
	}
	s.Close()
	pa.close()
	pb.close()
	settle(t, base)
}

func must(t *testing.T) func([]byte, error) []byte {
	return func(b []byte, err error) []byte {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
}

// settle waits until no more goroutines run than base.
func settle(t *testing.T, base int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, %d before:\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestStepTimeout(t *testing.T) {
	base := runtime.NumGoroutine()
	release := make(chan struct{})
	s, _ := newTestServer(t, func(c *Config) {
		c.StepTimeout = 100 * time.Millisecond
		c.Verify = func([]*x509.Certificate) error { <-release; return nil } // an OCSP responder that hangs
	})
	p := newTestPeer(t, 0, onlyTLS13)
	start := time.Now()
	x := converse(t, s, p)
	wantFailure(t, x.final(), x.lastID, ErrStepTimeout)
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %v with StepTimeout 100ms", d)
	}
	if s.Open() != 0 {
		t.Error("session open after a step timeout")
	}
	close(release)
	p.close()
	settle(t, base)
}

// TestSlowRoundDoesNotStallOthers: one session whose TLS step is slow (a
// Verify waiting on an OCSP responder, up to StepTimeout) must not hold
// up the other sessions, even when a sweep falls due meanwhile.
func TestSlowRoundDoesNotStallOthers(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	defer once.Do(func() { close(release) })
	slow := make(chan struct{}, 1)
	s, _ := newTestServer(t, func(c *Config) {
		c.StepTimeout = 3 * time.Second
		c.Verify = func(chain []*x509.Certificate) error {
			slow <- struct{}{}
			<-release
			return nil
		}
	})
	clock := &fakeClock{now: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	withClock(s, clock)
	p := newTestPeer(t, 0, onlyTLS13)
	convDone := make(chan struct{})
	go func() { converseQuiet(s, p); close(convDone) }()
	defer func() { once.Do(func() { close(release) }); <-convDone }()
	<-slow // the round is inside Verify

	other := func(name string) {
		t.Helper()
		done := make(chan time.Duration, 1)
		go func() {
			start := time.Now()
			s.Handle(testOwner, nil, identity(1, name))
			done <- time.Since(start)
		}()
		select {
		case <-done:
		case <-time.After(time.Second):
			once.Do(func() { close(release) })
			t.Errorf("%s: a new session waited over 1s for a slow round of another session "+
				"(sweep holds Server.mu while idleSince waits for the slow session's mutex)", name)
			<-done
		}
	}
	other("bob")                   // no sweep due: quick
	clock.Advance(2 * time.Second) // a sweep is due
	other("carol")
}

func converseQuiet(s *Server, p *testPeer) {
	r := s.Handle(testOwner, nil, identity(1, "alice"))
	state := r.State
	for r.Status == Continue {
		resp, err := p.respond(r.EAP)
		if err != nil {
			return
		}
		r = s.Handle(testOwner, state, resp)
	}
}

func TestCloseLeavesNoGoroutines(t *testing.T) {
	base := runtime.NumGoroutine()
	s, _ := newTestServer(t)
	var peers []*testPeer
	for i := range 10 {
		p := newTestPeer(t, 0)
		peers = append(peers, p)
		owner := Owner{Client: "nas", Station: fmt.Sprint(i)}
		r := s.Handle(owner, nil, identity(1, fmt.Sprint("user", i)))
		// The ClientHello, answered: the server's TLS now waits for
		// the client's second flight.
		r = s.Handle(owner, r.State, must(t)(p.respond(r.EAP)))
		if r.Status != Continue {
			t.Fatalf("session %d: %v %v", i, r.Status, r.Err)
		}
	}
	open := runtime.NumGoroutine()
	s.Close()
	if s.Open() != 0 {
		t.Errorf("Open %d after Close", s.Open())
	}
	for _, p := range peers {
		p.close()
	}
	settle(t, base)
	// Compared with the count after, not before: goroutines of earlier
	// tests still ending would make "before" too high.
	if after := runtime.NumGoroutine(); open-after < 20 {
		t.Errorf("%d goroutines with 10 sessions open, %d after Close: want the server's and the peer's TLS for each", open, after)
	}
}

func TestNewServerChecks(t *testing.T) {
	pki := newTestPKI(t)
	ok := func([]*x509.Certificate) error { return nil }
	if _, err := NewServer(Config{Verify: ok}); err == nil {
		t.Error("no TLS config accepted")
	}
	if _, err := NewServer(Config{TLS: &tls.Config{}, Verify: ok}); err == nil {
		t.Error("no server certificate accepted")
	}
	if _, err := NewServer(Config{TLS: &tls.Config{Certificates: []tls.Certificate{pki.server}}}); err == nil {
		t.Error("no Verify accepted")
	}
	s, err := NewServer(Config{TLS: &tls.Config{Certificates: []tls.Certificate{pki.server}}, Verify: ok})
	if err != nil {
		t.Fatal(err)
	}
	c := s.cfg
	if c.FragmentSize != 1000 || c.MaxRounds != 64 || c.MaxBytes != 128<<10 || c.MaxSessions != 4096 ||
		c.IdleTimeout != 30*time.Second || c.StepTimeout != 5*time.Second {
		t.Errorf("defaults %+v", c)
	}
}

// testOwner is the client and station of the tests' sessions.
var testOwner = Owner{Client: "nas", Station: "02-00-00-00-00-01"}

// Sessions are bounded per client and per station behind it, and a
// session continues only from the client that began it.
func TestSessionOwners(t *testing.T) {
	s, _ := newTestServer(t, func(c *Config) { c.MaxPerClient, c.MaxPerStation = 5, 2 })
	open := func(o Owner) Reply { return s.Handle(o, nil, identity(1, "alice")) }
	a := Owner{Client: "nas-a", Station: "st-1"}
	for i := range 2 {
		if r := open(a); r.Status != Continue {
			t.Fatalf("session %d of a station: %v %v", i+1, r.Status, r.Err)
		}
	}
	if r := open(a); r.Status != Failed || !errors.Is(r.Err, ErrTooMany) {
		t.Errorf("third session of a station: %v %v, want ErrTooMany", r.Status, r.Err)
	}
	for i := range 3 {
		if r := open(Owner{Client: "nas-a", Station: fmt.Sprintf("st-%d", i+2)}); r.Status != Continue {
			t.Fatalf("session of another station: %v %v", r.Status, r.Err)
		}
	}
	if r := open(Owner{Client: "nas-a", Station: "st-9"}); r.Status != Failed || !errors.Is(r.Err, ErrTooMany) {
		t.Errorf("sixth session of a client: %v %v, want ErrTooMany", r.Status, r.Err)
	}
	b := Owner{Client: "nas-b"}
	r := open(b)
	if r.Status != Continue {
		t.Fatalf("another client: %v %v", r.Status, r.Err)
	}
	// Its State, presented by the first client: refused, and the session
	// is still the second client's.
	p := newTestPeer(t, 1000, maxTLS12)
	resp, err := p.respond(r.EAP)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Handle(a, r.State, resp); got.Status != Failed || !errors.Is(got.Err, ErrOwner) {
		t.Errorf("State of another client's session: %v %v, want ErrOwner", got.Status, got.Err)
	}
	if s.Open() != 6 {
		t.Errorf("%d sessions open, want 6", s.Open())
	}
	s.Close()
	if r := open(a); r.Status != Continue {
		t.Errorf("after Close the quotas are free again: %v %v", r.Status, r.Err)
	}
}
