package ldapbind

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// conn is one pooled connection.
type conn struct {
	*ldap.Conn
	raw      net.Conn // the TCP connection under go-ldap (and TLS)
	timeout  time.Duration
	server   *server
	lastUsed time.Time
}

// errTimedOut is what a request that missed its deadline returns.
var errTimedOut = ldap.NewError(ldap.ErrorNetwork, errors.New("ldap: no answer in time: request timed out"))

// do runs one request of f under a deadline on the socket. go-ldap's own
// request timeout would cost a goroutine and a timer per request; the
// deadline costs neither. A request that misses it breaks the connection
// (go-ldap's reader fails and closes it), and the pool throws it away: a
// server too slow to answer is not trusted with the next request either.
func (c *conn) do(f func() error) error {
	deadline := time.Now().Add(c.timeout)
	if err := c.raw.SetDeadline(deadline); err != nil {
		return ldap.NewError(ldap.ErrorNetwork, err)
	}
	err := f()
	if err != nil && c.IsClosing() {
		if !time.Now().Before(deadline) {
			return errTimedOut
		}
		// The server went away mid-request: whatever go-ldap made of it,
		// it is a network error, never an answer about the password.
		var le *ldap.Error
		if !errors.As(err, &le) || le.ResultCode != ldap.ErrorNetwork {
			return ldap.NewError(ldap.ErrorNetwork, err)
		}
		return err
	}
	if derr := c.raw.SetDeadline(time.Time{}); derr != nil && err == nil {
		return ldap.NewError(ldap.ErrorNetwork, derr)
	}
	return err
}

// pool bounds the connections of one kind. A connection is used by one
// request at a time; open connections (idle and in use) never exceed the
// size, because a new one is dialled only by a holder of a slot when no
// idle one is left.
type pool struct {
	name      string // "search" or "bind", for errors and metrics
	dial      func(ctx context.Context) (*conn, error)
	check     func(c *conn) error // health probe for long-idle connections
	slots     chan struct{}
	wait      time.Duration // how long to wait for a free slot
	idleCheck time.Duration
	now       func() time.Time

	mu     sync.Mutex
	idle   []*conn
	closed bool
	stats  poolStats
}

// poolStats are counters for metrics and tests.
type poolStats struct {
	Dials, DialErrors, Discarded, Probes uint64
}

var errPoolClosed = errors.New("pool closed")
var errPoolBusy = errors.New("every connection is busy")

func newPool(name string, size int, wait, idleCheck time.Duration, now func() time.Time,
	dial func(context.Context) (*conn, error), check func(*conn) error) *pool {
	return &pool{name: name, dial: dial, check: check, slots: make(chan struct{}, size), wait: wait,
		idleCheck: idleCheck, now: now}
}

// get returns a connection: an idle one that still answers, or a new one.
// reused tells the caller whether a network error may just mean the
// server closed an idle connection, so that one retry is worth it.
func (p *pool) get(ctx context.Context) (c *conn, reused bool, err error) {
	select {
	case p.slots <- struct{}{}: // a free slot: no timer needed
	default:
		if err := p.waitSlot(ctx); err != nil {
			return nil, false, err
		}
	}
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			<-p.slots
			return nil, false, errPoolClosed
		}
		if n := len(p.idle); n > 0 {
			c = p.idle[n-1]
			p.idle = p.idle[:n-1]
		}
		p.mu.Unlock()
		if c == nil {
			break
		}
		if c.IsClosing() {
			p.discard(c)
			c = nil
			continue
		}
		if p.now().Sub(c.lastUsed) > p.idleCheck {
			p.count(func(s *poolStats) { s.Probes++ })
			if err := p.check(c); err != nil {
				p.discard(c)
				c = nil
				continue
			}
		}
		return c, true, nil
	}
	c, err = p.dial(ctx)
	if err != nil {
		p.count(func(s *poolStats) { s.DialErrors++ })
		<-p.slots
		return nil, false, err
	}
	p.count(func(s *poolStats) { s.Dials++ })
	return c, false, nil
}

// waitSlot waits for a free slot, at most p.wait.
func (p *pool) waitSlot(ctx context.Context) error {
	t := time.NewTimer(p.wait)
	defer t.Stop()
	select {
	case p.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return errPoolBusy
	}
}

// put returns c to the pool, or closes it when broken.
func (p *pool) put(c *conn, broken bool) {
	defer func() { <-p.slots }()
	if broken || c.IsClosing() {
		p.discard(c)
		return
	}
	c.lastUsed = p.now()
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		c.Close()
		return
	}
	p.idle = append(p.idle, c)
	p.mu.Unlock()
}

func (p *pool) discard(c *conn) {
	p.count(func(s *poolStats) { s.Discarded++ })
	go c.Close() // Close waits for the server's goodbye, bounded by the request timeout
}

func (p *pool) count(f func(*poolStats)) {
	p.mu.Lock()
	f(&p.stats)
	p.mu.Unlock()
}

// Stats returns a snapshot of the counters, and the connections idle and
// in use.
func (p *pool) Stats() (s poolStats, idle, inUse int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats, len(p.idle), len(p.slots)
}

// close closes the idle connections; those in use are closed on return.
func (p *pool) close() {
	p.mu.Lock()
	idle := p.idle
	p.idle, p.closed = nil, true
	p.mu.Unlock()
	for _, c := range idle {
		c.Close()
	}
}
