package ldapbind

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/mfabridge/mfabridge/factors"
)

// pipeDialer dials go-ldap connections over net.Pipe; nothing answers on
// the other end, which the pool never needs.
type pipeDialer struct {
	now    func() time.Time
	fail   atomic.Bool // the next dials fail
	mu     sync.Mutex
	peers  []net.Conn
	dialed []*conn
}

var errDial = errors.New("dial refused")

func (d *pipeDialer) dial(ctx context.Context) (*conn, error) {
	if d.fail.Load() {
		return nil, errDial
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	client, server := net.Pipe()
	lc := ldap.NewConn(client, false)
	lc.SetTimeout(time.Second)
	lc.Start()
	c := &conn{Conn: lc, raw: client, timeout: time.Second, lastUsed: d.now()}
	d.mu.Lock()
	d.peers = append(d.peers, server)
	d.dialed = append(d.dialed, c)
	d.mu.Unlock()
	return c, nil
}

func newPipeDialer(t *testing.T, now func() time.Time) *pipeDialer {
	d := &pipeDialer{now: now}
	t.Cleanup(func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		for _, c := range d.dialed {
			c.Close()
		}
		for _, p := range d.peers {
			p.Close()
		}
	})
	return d
}

// probe is the health check of a test pool: it returns err.
type probe struct {
	mu  sync.Mutex
	err error
}

func (p *probe) set(err error) {
	p.mu.Lock()
	p.err = err
	p.mu.Unlock()
}

func (p *probe) check(*conn) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// testPool is a pool of size over a pipeDialer with a probe tests set.
func testPool(t *testing.T, size int, wait time.Duration, now func() time.Time) (*pool, *pipeDialer, *probe) {
	t.Helper()
	if now == nil {
		now = time.Now
	}
	d := newPipeDialer(t, now)
	pr := &probe{}
	p := newPool("test", size, wait, 30*time.Second, now, d.dial, pr.check)
	t.Cleanup(p.close)
	return p, d, pr
}

func mustGet(t *testing.T, p *pool) (*conn, bool) {
	t.Helper()
	c, reused, err := p.get(context.Background())
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	return c, reused
}

func TestPoolNeverExceedsSize(t *testing.T) {
	const size = 3
	p, _, _ := testPool(t, size, 20*time.Millisecond, nil)
	var held, maxHeld, busy atomic.Int32
	// Open connections are those dialled and not discarded. (Idle plus
	// in use may count one twice for a moment: a slot is taken before an
	// idle connection, and freed after one is put back.)
	check := func() {
		s, idle, inUse := p.Stats()
		if open := int(s.Dials) - int(s.Discarded); open > size || idle > size || inUse > size {
			t.Errorf("%d open (%d dialled - %d discarded), %d idle, %d in use: over the size of %d",
				open, s.Dials, s.Discarded, idle, inUse, size)
		}
	}
	var wg sync.WaitGroup
	for g := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 40 {
				c, _, err := p.get(context.Background())
				if errors.Is(err, errPoolBusy) {
					busy.Add(1)
					continue
				}
				if err != nil {
					t.Errorf("get: %v", err)
					return
				}
				n := held.Add(1)
				for m := maxHeld.Load(); n > m && !maxHeld.CompareAndSwap(m, n); m = maxHeld.Load() {
				}
				check()
				time.Sleep(100 * time.Microsecond)
				held.Add(-1)
				p.put(c, (g+i)%7 == 0) // now and then a broken one
			}
		}()
	}
	wg.Wait()
	check()
	if m := maxHeld.Load(); m > size || m < 1 {
		t.Errorf("%d connections held at once, want 1 to %d", m, size)
	}
	s, idle, inUse := p.Stats()
	if inUse != 0 || idle > size || s.Discarded == 0 {
		t.Errorf("after the run: %+v, idle %d, in use %d", s, idle, inUse)
	}
	t.Logf("max held %d, busy %d, stats %+v", maxHeld.Load(), busy.Load(), s)
}

func TestPoolBusy(t *testing.T) {
	const wait = 50 * time.Millisecond
	p, _, _ := testPool(t, 2, wait, nil)
	a, reused := mustGet(t, p)
	if reused {
		t.Error("a new connection reported as reused")
	}
	b, _ := mustGet(t, p)

	start := time.Now()
	if c, _, err := p.get(context.Background()); !errors.Is(err, errPoolBusy) {
		t.Fatalf("get with every slot busy = %v, %v; want errPoolBusy", c, err)
	}
	if took := time.Since(start); took < wait {
		t.Errorf("gave up after %s, want to wait %s", took, wait)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := p.get(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("get with a cancelled context = %v", err)
	}

	// A slot freed while waiting is taken.
	time.AfterFunc(10*time.Millisecond, func() { p.put(a, false) })
	c, reused := mustGet(t, p)
	if c != a || !reused {
		t.Errorf("got %p reused=%t, want the idle %p", c, reused, a)
	}
	p.put(b, false)
	p.put(c, false)
	if s, idle, inUse := p.Stats(); s.Dials != 2 || idle != 2 || inUse != 0 {
		t.Errorf("stats %+v idle %d in use %d; want 2 dials, 2 idle", s, idle, inUse)
	}
}

func TestPoolDialErrorFreesSlot(t *testing.T) {
	p, d, _ := testPool(t, 1, 10*time.Millisecond, nil)
	d.fail.Store(true)
	if _, _, err := p.get(context.Background()); !errors.Is(err, errDial) {
		t.Fatalf("get = %v, want the dial error", err)
	}
	d.fail.Store(false)
	c, _ := mustGet(t, p)
	p.put(c, false)
	if s, _, _ := p.Stats(); s.DialErrors != 1 || s.Dials != 1 {
		t.Errorf("stats %+v", s)
	}
}

func TestPoolDiscards(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }

	tests := []struct {
		name     string
		prepare  func(c *conn, pr *probe)
		reused   bool
		dials    uint64
		probes   uint64
		discards uint64
	}{
		{"fresh idle connection reused without a probe", func(*conn, *probe) {}, true, 1, 0, 0},
		{"long-idle connection probed and reused", func(*conn, *probe) { advance(31 * time.Second) }, true, 1, 1, 0},
		{"long-idle connection failing its probe replaced", func(_ *conn, pr *probe) {
			advance(31 * time.Second)
			pr.set(errors.New("no answer"))
		}, false, 2, 1, 1},
		{"closed connection replaced", func(c *conn, _ *probe) { c.Close() }, false, 2, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, _, pr := testPool(t, 1, 10*time.Millisecond, clock)
			c, _ := mustGet(t, p)
			p.put(c, false)
			tt.prepare(c, pr)
			c2, reused := mustGet(t, p)
			if reused != tt.reused || (c2 == c) != tt.reused {
				t.Errorf("reused=%t same=%t, want %t", reused, c2 == c, tt.reused)
			}
			p.put(c2, false)
			s, _, _ := p.Stats()
			if s.Dials != tt.dials || s.Probes != tt.probes || s.Discarded != tt.discards {
				t.Errorf("stats %+v, want %d dials, %d probes, %d discarded", s, tt.dials, tt.probes, tt.discards)
			}
		})
	}
}

func TestPoolClose(t *testing.T) {
	p, _, _ := testPool(t, 2, 10*time.Millisecond, nil)
	idle, _ := mustGet(t, p)
	held, _ := mustGet(t, p)
	p.put(idle, false)
	p.close()
	if !idle.IsClosing() {
		t.Error("close left an idle connection open")
	}
	if _, _, err := p.get(context.Background()); !errors.Is(err, errPoolClosed) {
		t.Errorf("get after close = %v, want errPoolClosed", err)
	}
	p.put(held, false)
	if !held.IsClosing() {
		t.Error("a connection returned after close was kept open")
	}
	if _, _, inUse := p.Stats(); inUse != 0 {
		t.Errorf("%d slots still held", inUse)
	}
}

// TestRequestDeadline: a request the server never answers ends at the
// connection's timeout as a network timeout (no retry, never a verdict on
// the password), and the connection is broken; a server that hangs up
// mid-request gives a network error.
func TestRequestDeadline(t *testing.T) {
	dial := func(t *testing.T) (*conn, net.Conn) {
		client, server := net.Pipe()
		lc := ldap.NewConn(client, false)
		lc.Start()
		t.Cleanup(func() { lc.Close(); server.Close() })
		// Read and discard what the client sends, answering nothing.
		go func() {
			b := make([]byte, 4096)
			for {
				if _, err := server.Read(b); err != nil {
					return
				}
			}
		}()
		return &conn{Conn: lc, raw: client, timeout: 200 * time.Millisecond}, server
	}

	c, _ := dial(t)
	start := time.Now()
	err := c.do(func() error { return c.Bind("uid=alice,dc=example,dc=org", "secret") })
	took := time.Since(start)
	if !isTimeout(err) || !isNetwork(err) {
		t.Fatalf("unanswered bind: %v (timeout %t, network %t)", err, isTimeout(err), isNetwork(err))
	}
	if took < 200*time.Millisecond || took > 2*time.Second {
		t.Errorf("unanswered bind took %s, want about the 200ms timeout", took)
	}
	if !c.IsClosing() {
		t.Error("the connection is still open after a missed deadline")
	}
	if be := bindError(err); !errors.Is(be, factors.ErrUnavailable) {
		t.Errorf("bindError of a timeout = %v, want unavailable", be)
	}

	c, server := dial(t)
	time.AfterFunc(50*time.Millisecond, func() { server.Close() })
	err = c.do(func() error { return c.Bind("uid=alice,dc=example,dc=org", "secret") })
	if !isNetwork(err) || isTimeout(err) {
		t.Fatalf("bind on a connection the server closed: %v (network %t, timeout %t)", err, isNetwork(err), isTimeout(err))
	}
	if be := bindError(err); !errors.Is(be, factors.ErrUnavailable) {
		t.Errorf("bindError of a dropped connection = %v, want unavailable", be)
	}
}
