package radius

import (
	"net/netip"
	"sync"
	"time"

	"layeh.com/radius"
)

// dupKey identifies a request for RFC 5080 §2.2.2: the same source
// address and port, Identifier and Request Authenticator is the same
// request sent again. It holds no pointer, and neither do the cache's
// entries apart from the reply bytes, so that tens of thousands of them
// cost the garbage collector little.
type dupKey struct {
	addr [16]byte
	port uint16
	id   byte
	auth [16]byte
}

func newDupKey(from netip.AddrPort, id byte, auth [16]byte) dupKey {
	return dupKey{addr: from.Addr().As16(), port: from.Port(), id: id, auth: auth}
}

type dupEntry struct {
	gen    uint64        // which request the entry belongs to
	at     time.Duration // since the cache's epoch: when begun, then when finished
	done   bool
	client uint32 // the client's number in the cache, for its count
	reply  []byte // the sealed reply; nil when the handler sent nothing
}

type queued struct {
	key dupKey
	gen uint64
	at  time.Duration
}

// replyCache keeps each reply, sealed, for window so that a retransmission
// gets the same bytes without running the conversation again: a
// retransmit must never send a second text message, burn a one-time code
// or cost a second LDAP bind.
//
// Its size is bounded per client (perClient) and in all (four times
// that), and nothing is ever evicted before its window is over, a
// request still in progress least of all: an entry dropped early would
// let its retransmission be handled a second time. A request that finds
// no room is refused instead (the NAS sends it again later), so a flood
// from one client costs that client its new requests and nothing else.
type replyCache struct {
	mu        sync.Mutex
	window    time.Duration
	perClient int
	max       int
	now       func() time.Time
	epoch     time.Time
	gen       uint64
	m         map[dupKey]dupEntry
	queue     []queued // in order of at; stale items are skipped
	clients   map[string]uint32
	counts    []int // entries by client number
}

func newReplyCache(window time.Duration, perClient int, now func() time.Time) *replyCache {
	return &replyCache{window: window, perClient: perClient, max: 4 * perClient, now: now, epoch: now(),
		m: map[dupKey]dupEntry{}, clients: map[string]uint32{}}
}

// begin reports what to do with a request of client: handle it (first),
// answer with a finished entry's reply, or absorb it (a copy of a
// request still in progress). full means there is no room to handle a
// new request: it must be dropped. The entry's gen is what finish needs.
func (c *replyCache) begin(k dupKey, client string) (e dupEntry, first, full bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now().Sub(c.epoch)
	c.sweep(now)
	if e, ok := c.m[k]; ok {
		return e, false, false
	}
	id, ok := c.clients[client]
	if !ok {
		id = uint32(len(c.counts))
		c.clients[client] = id
		c.counts = append(c.counts, 0)
	}
	if c.counts[id] >= c.perClient || len(c.m) >= c.max {
		return dupEntry{}, false, true
	}
	c.gen++
	e = dupEntry{gen: c.gen, at: now, client: id}
	c.m[k] = e
	c.counts[id]++
	c.queue = append(c.queue, queued{k, e.gen, now})
	return e, true, false
}

// finish stores the sealed reply of the request that began entry gen.
func (c *replyCache) finish(k dupKey, gen uint64, reply []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	if !ok || e.gen != gen {
		return
	}
	now := c.now().Sub(c.epoch)
	c.m[k] = dupEntry{gen: gen, at: now, done: true, client: e.client, reply: reply}
	c.queue = append(c.queue, queued{k, gen, now})
}

// sweep removes entries whose window has passed. An entry still in
// progress stays: it is queued again when it finishes.
func (c *replyCache) sweep(now time.Duration) {
	i := 0
	for ; i < len(c.queue); i++ {
		q := c.queue[i]
		if now-q.at < c.window {
			break
		}
		if e, ok := c.m[q.key]; ok && e.gen == q.gen && e.done && e.at == q.at {
			delete(c.m, q.key)
			c.counts[e.client]--
		}
	}
	c.queue = c.queue[i:]
	if cap(c.queue) > 1024 && len(c.queue) < cap(c.queue)/4 {
		c.queue = append([]queued(nil), c.queue...)
	}
}

func (c *replyCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

// sealedWriter is a ResponseWriter that can send a reply already sealed
// for its request. Every writer on the handler chain implements it (the
// server's UDP and RadSec writers, and the wrappers of this package), so
// that a reply is sealed once and the reply cache resends the very bytes
// it kept.
type sealedWriter interface {
	radius.ResponseWriter
	writeSealed(b []byte) error
}

// dedup answers retransmissions from the cache and absorbs copies that
// arrive while the first is still being handled.
func dedup(c *replyCache, m *Metrics, warn *sourceWarnings, now func() time.Time) middleware {
	return func(next radius.Handler) radius.Handler {
		return radius.HandlerFunc(func(w radius.ResponseWriter, r *radius.Request) {
			info := infoFrom(r.Context())
			k := newDupKey(info.from, r.Identifier, r.Authenticator)
			e, first, full := c.begin(k, info.client.Name)
			if full {
				m.Dropped.WithLabelValues(DropCacheFull).Inc()
				warn.note(now(), DropCacheFull, info.from.Addr().Unmap(), info.client.Name,
					"the reply cache holds as many requests of this client as server.duplicate_cache_entries allows; new requests are dropped until replies age out of server.duplicate_window")
				return
			}
			if !first {
				switch {
				case !e.done:
					m.Dropped.WithLabelValues(DropDuplicate).Inc()
				case e.reply != nil:
					m.Resent.WithLabelValues(info.client.Name).Inc()
					w.(sealedWriter).writeSealed(e.reply)
				}
				return
			}
			cw := &cachingWriter{next: w.(sealedWriter), req: r.Packet, finish: func(b []byte) { c.finish(k, e.gen, b) }}
			defer func() {
				if !cw.wrote {
					c.finish(k, e.gen, nil)
				}
			}()
			next.ServeRADIUS(cw, r)
		})
	}
}

// cachingWriter seals the reply, stores it in the cache and then sends
// it, so that a retransmission sent the moment the reply arrives already
// finds it.
type cachingWriter struct {
	next   sealedWriter
	req    *radius.Packet
	finish func([]byte)
	wrote  bool
}

func (w *cachingWriter) Write(p *radius.Packet) error {
	b, err := seal(p, w.req)
	if err != nil {
		return err
	}
	if !w.wrote {
		w.wrote = true
		w.finish(b)
	}
	return w.next.writeSealed(b)
}
