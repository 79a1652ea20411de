package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"layeh.com/radius"
	"layeh.com/radius/rfc2865"

	mradius "github.com/mfabridge/mfabridge/radius"
)

// replyTimeout is how long a request waits for its reply; the request is
// then counted as a timeout and never retransmitted.
const replyTimeout = time.Second

// stats are the outcomes of one measured step. An operation is one
// request, or for a challenge flow both round trips; ok counts the
// operations that ended as they should (Access-Accept, or
// Access-Challenge when opening sessions), and only those have a latency.
type stats struct {
	elapsed   time.Duration
	ok        int64
	accept    int64
	reject    int64
	challenge int64
	other     int64 // another reply code
	timeouts  int64
	errors    int64 // send or receive errors, bad Response Authenticator
	firstErr  string
	late      int64 // open loop: sends that left more than 1 ms after their time
	waits     int64 // code flows: waits for the next time step (users used up)
	lat       []time.Duration
	cpu       *cpuUse // nil when not sampled
}

func (s *stats) merge(o *stats) {
	s.ok += o.ok
	s.accept += o.accept
	s.reject += o.reject
	s.challenge += o.challenge
	s.other += o.other
	s.timeouts += o.timeouts
	s.errors += o.errors
	s.late += o.late
	s.waits += o.waits
	if s.firstErr == "" {
		s.firstErr = o.firstErr
	}
	s.lat = append(s.lat, o.lat...)
}

// rate is successful operations per second.
func (s *stats) rate() float64 {
	if s.elapsed <= 0 {
		return 0
	}
	return float64(s.ok) / s.elapsed.Seconds()
}

func (s *stats) sortLat() { sort.Slice(s.lat, func(i, j int) bool { return s.lat[i] < s.lat[j] }) }

// pct returns the p-th quantile of the latencies (sorted by sortLat).
func (s *stats) pct(p float64) time.Duration {
	if len(s.lat) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(s.lat)))) - 1
	return s.lat[max(0, min(len(s.lat)-1, i))]
}

func (s *stats) fail(err error) {
	var ne net.Error
	switch {
	case errors.Is(err, errTimeout) || (errors.As(err, &ne) && ne.Timeout()):
		s.timeouts++
	default:
		s.errors++
		if s.firstErr == "" {
			s.firstErr = err.Error()
		}
	}
}

func (s *stats) count(code radius.Code) {
	switch code {
	case radius.CodeAccessAccept:
		s.accept++
	case radius.CodeAccessReject:
		s.reject++
	case radius.CodeAccessChallenge:
		s.challenge++
	default:
		s.other++
	}
}

// counts describes the replies for the table.
func (s *stats) counts() string {
	out := fmt.Sprintf("A %d, R %d, C %d", s.accept, s.reject, s.challenge)
	if s.other > 0 {
		out += fmt.Sprintf(", other %d", s.other)
	}
	out += fmt.Sprintf(", timeouts %d, errors %d", s.timeouts, s.errors)
	if s.late > 0 {
		out += fmt.Sprintf(", sent late %d", s.late)
	}
	if s.waits > 0 {
		out += fmt.Sprintf(", waits for a fresh time step %d", s.waits)
	}
	return out
}

var errTimeout = errors.New("no reply within 1s")

// client is one load-generator socket: a connected UDP socket, its own
// Identifier sequence, one request in flight at a time.
type client struct {
	conn   *net.UDPConn
	secret []byte
	id     uint8
	buf    []byte
}

func newClient(local, server string, secret []byte) (*client, error) {
	ra, err := net.ResolveUDPAddr("udp", server)
	if err != nil {
		return nil, err
	}
	c, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(local)}, ra)
	if err != nil {
		return nil, err
	}
	var b [1]byte
	rand.Read(b[:])
	return &client{conn: c, secret: secret, id: b[0], buf: make([]byte, 4096)}, nil
}

func (c *client) close() { c.conn.Close() }

// request builds a signed Access-Request (Message-Authenticator first).
func (c *client) request(user, password string, state []byte) (*radius.Packet, error) {
	p := radius.New(radius.CodeAccessRequest, c.secret)
	c.id++
	p.Identifier = c.id
	if err := rfc2865.UserName_SetString(p, user); err != nil {
		return nil, err
	}
	if err := rfc2865.UserPassword_SetString(p, password); err != nil {
		return nil, err
	}
	rfc2865.NASIdentifier_SetString(p, "bench")
	if state != nil {
		rfc2865.State_Set(p, state)
	}
	return p, mradius.Sign(p)
}

// statusServer builds a signed Status-Server.
func (c *client) statusServer() (*radius.Packet, error) {
	p := radius.New(radius.CodeStatusServer, c.secret)
	c.id++
	p.Identifier = c.id
	rfc2865.NASIdentifier_SetString(p, "bench")
	return p, mradius.Sign(p)
}

// exchange sends p once and waits up to replyTimeout for the reply with its
// Identifier and a valid Response Authenticator. Replies to earlier
// requests that timed out are skipped.
func (c *client) exchange(p *radius.Packet, parse bool) (radius.Code, *radius.Packet, error) {
	raw, err := p.Encode()
	if err != nil {
		return 0, nil, err
	}
	if _, err := c.conn.Write(raw); err != nil {
		return 0, nil, err
	}
	deadline := time.Now().Add(replyTimeout)
	c.conn.SetReadDeadline(deadline)
	for {
		n, err := c.conn.Read(c.buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return 0, nil, errTimeout
			}
			return 0, nil, err
		}
		rb := c.buf[:n]
		if n < 20 || rb[1] != raw[1] {
			continue
		}
		if !radius.IsAuthenticResponse(rb, raw, c.secret) {
			// A late reply to an earlier request with the same
			// Identifier, 256 requests ago, or a forged one.
			if time.Now().After(deadline) {
				return 0, nil, errTimeout
			}
			continue
		}
		code := radius.Code(rb[0])
		if !parse {
			return code, nil, nil
		}
		resp, err := radius.Parse(rb, c.secret)
		return code, resp, err
	}
}

// op is one operation of a worker; it returns whether it ended as it
// should, and when it began if that is later than when the worker was
// ready for it (a code flow waiting for a user; zero otherwise), and
// records its replies in s. ctx ends when the step does.
type op func(ctx context.Context, c *client, s *stats) (ok bool, began time.Time)

// runOpts describe one measured step.
type runOpts struct {
	local   string // source address, which picks the bridge's client and policy
	server  string
	secret  []byte
	workers int
	dur     time.Duration
	rate    float64 // > 0: open loop at this many operations per second in all
	op      op
}

// run drives workers for dur, each with its own socket, back to back
// (closed loop) or paced (open loop, latency counted from the time the
// operation was due). It stops sending at dur and waits at most
// replyTimeout per flow round trip for the last replies.
func run(ctx context.Context, o runOpts) *stats {
	total := &stats{}
	clients := make([]*client, 0, o.workers)
	for i := 0; i < o.workers; i++ {
		c, err := newClient(o.local, o.server, o.secret)
		if err != nil {
			total.fail(err)
			continue
		}
		clients = append(clients, c)
	}
	defer func() {
		for _, c := range clients {
			c.close()
		}
	}()
	start := time.Now()
	stop := start.Add(o.dur)
	ctx, cancel := context.WithDeadline(ctx, stop)
	defer cancel()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func(i int, c *client) {
			defer wg.Done()
			s := &stats{lat: make([]time.Duration, 0, 4096)}
			pace := newPacer(start, o.rate, i, len(clients))
			for ctx.Err() == nil {
				due := pace.wait(ctx, s)
				if !due.Before(stop) || ctx.Err() != nil {
					break
				}
				ok, began := o.op(ctx, c, s)
				if ok {
					if !pace.open() && began.After(due) {
						due = began
					}
					s.ok++
					s.lat = append(s.lat, time.Since(due))
				}
			}
			mu.Lock()
			total.merge(s)
			mu.Unlock()
		}(i, c)
	}
	wg.Wait()
	total.elapsed = time.Since(start)
	if total.elapsed > o.dur && o.rate > 0 {
		// Open loop: the offered window is dur; the tail is replies.
		total.elapsed = o.dur
	}
	total.sortLat()
	return total
}

// pacer spaces one worker's operations for an open loop: n workers
// together offer rate operations per second, worker i offset by i/n of an
// interval. With rate 0 it is a closed loop: no waiting, due is now.
type pacer struct {
	interval time.Duration
	next     time.Time
}

func newPacer(start time.Time, rate float64, i, n int) *pacer {
	if rate <= 0 {
		return &pacer{}
	}
	interval := time.Duration(float64(time.Second) * float64(n) / rate)
	return &pacer{interval: interval, next: start.Add(interval * time.Duration(i) / time.Duration(n))}
}

func (p *pacer) open() bool { return p.interval > 0 }

// wait sleeps until the next operation is due (or ctx ends) and returns
// the time it was due; an operation more than 1 ms late counts in s.late.
func (p *pacer) wait(ctx context.Context, s *stats) time.Time {
	if !p.open() {
		return time.Now()
	}
	if d := time.Until(p.next); d > 0 {
		select {
		case <-ctx.Done():
		case <-time.After(d):
		}
	} else if d < -time.Millisecond {
		s.late++
	}
	due := p.next
	p.next = p.next.Add(p.interval)
	return due
}

// papOp sends the right password of a random user and wants Access-Accept.
func papOp(users []benchUser) op {
	var seq atomic.Uint64
	return func(ctx context.Context, c *client, s *stats) (bool, time.Time) {
		var began time.Time
		n := seq.Add(1)
		u := users[int(mix(n)%uint64(len(users)))]
		p, err := c.request(u.UID, u.Password, nil)
		if err != nil {
			s.fail(err)
			return false, began
		}
		code, _, err := c.exchange(p, false)
		if err != nil {
			s.fail(err)
			return false, began
		}
		s.count(code)
		return code == radius.CodeAccessAccept, began
	}
}

// statusOp sends Status-Server and wants Access-Accept (RFC 5997).
func statusOp() op {
	return func(ctx context.Context, c *client, s *stats) (bool, time.Time) {
		var began time.Time
		p, err := c.statusServer()
		if err != nil {
			s.fail(err)
			return false, began
		}
		code, _, err := c.exchange(p, false)
		if err != nil {
			s.fail(err)
			return false, began
		}
		s.count(code)
		return code == radius.CodeAccessAccept, began
	}
}

// mix spreads a sequence number over the users (splitmix64), so that
// workers pick users at random without sharing a generator.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

func warn(format string, a ...any) { fmt.Fprintf(os.Stderr, "bench: "+format+"\n", a...) }
