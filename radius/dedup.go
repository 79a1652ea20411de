package radius

import (
	"net/netip"
	"sync"
	"time"

	"layeh.com/radius"
)

// dupKey identifies a request for RFC 5080 §2.2.2: the same source
// address and port, Identifier and Request Authenticator is the same
// request sent again.
type dupKey struct {
	from netip.AddrPort
	id   byte
	auth [16]byte
}

type dupEntry struct {
	done bool
	resp *radius.Packet // nil when the handler sent nothing
	at   time.Time      // when the entry was created or completed
}

type queued struct {
	key dupKey
	at  time.Time
}

// replyCache keeps each reply for window so that a retransmission gets the
// same answer without running the conversation again: a retransmit must
// never send a second text message, burn a one-time code or cost a second
// LDAP bind. Its size is bounded; past max the oldest entries go first.
type replyCache struct {
	mu     sync.Mutex
	window time.Duration
	max    int
	now    func() time.Time
	m      map[dupKey]*dupEntry
	queue  []queued // in order of at; stale items are skipped
}

func newReplyCache(window time.Duration, max int, now func() time.Time) *replyCache {
	return &replyCache{window: window, max: max, now: now, m: map[dupKey]*dupEntry{}}
}

// begin reports what to do with a request: handle it (the first copy), or
// answer with a finished entry's reply, or absorb it (a copy of a request
// still in progress).
func (c *replyCache) begin(k dupKey) (e *dupEntry, first bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	c.sweep(now)
	if e, ok := c.m[k]; ok {
		return e, false
	}
	if len(c.m) >= c.max {
		c.evictOldest()
	}
	e = &dupEntry{at: now}
	c.m[k] = e
	c.queue = append(c.queue, queued{k, now})
	return e, true
}

// finish stores the reply of a handled request.
func (c *replyCache) finish(k dupKey, e *dupEntry, resp *radius.Packet) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	e.done, e.resp, e.at = true, resp, now
	if c.m[k] == e {
		c.queue = append(c.queue, queued{k, now})
	}
}

// sweep removes entries whose window has passed. An entry still in
// progress stays: it is queued again when it finishes.
func (c *replyCache) sweep(now time.Time) {
	i := 0
	for ; i < len(c.queue); i++ {
		q := c.queue[i]
		if now.Sub(q.at) < c.window {
			break
		}
		if e, ok := c.m[q.key]; ok && e.done && e.at.Equal(q.at) {
			delete(c.m, q.key)
		}
	}
	c.queue = c.queue[i:]
	if cap(c.queue) > 1024 && len(c.queue) < cap(c.queue)/4 {
		c.queue = append([]queued(nil), c.queue...)
	}
}

func (c *replyCache) evictOldest() {
	for len(c.queue) > 0 {
		q := c.queue[0]
		c.queue = c.queue[1:]
		if e, ok := c.m[q.key]; ok && e.at.Equal(q.at) {
			delete(c.m, q.key)
			return
		}
	}
}

func (c *replyCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

// dedup answers retransmissions from the cache and absorbs copies that
// arrive while the first is still being handled.
func dedup(c *replyCache, m *Metrics) middleware {
	return func(next radius.Handler) radius.Handler {
		return radius.HandlerFunc(func(w radius.ResponseWriter, r *radius.Request) {
			info := infoFrom(r.Context())
			k := dupKey{from: info.from, id: r.Identifier, auth: r.Authenticator}
			e, first := c.begin(k)
			if !first {
				c.mu.Lock()
				done, resp := e.done, e.resp
				c.mu.Unlock()
				switch {
				case !done:
					m.Dropped.WithLabelValues(DropDuplicate).Inc()
				case resp != nil:
					m.Resent.WithLabelValues(info.client.Name).Inc()
					w.Write(resp)
				}
				return
			}
			cw := &cachingWriter{ResponseWriter: w, finish: func(p *radius.Packet) { c.finish(k, e, p) }}
			defer func() {
				if !cw.wrote {
					c.finish(k, e, nil)
				}
			}()
			next.ServeRADIUS(cw, r)
		})
	}
}

// cachingWriter stores the reply in the cache before sending it, so that
// a retransmission sent the moment the reply arrives already finds it.
type cachingWriter struct {
	radius.ResponseWriter
	finish func(*radius.Packet)
	wrote  bool
}

func (w *cachingWriter) Write(p *radius.Packet) error {
	if !w.wrote {
		w.wrote = true
		w.finish(p)
	}
	return w.ResponseWriter.Write(p)
}
