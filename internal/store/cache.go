package store

import (
	"context"
	"sync"

	"github.com/mfabridge/mfabridge/factors"
)

// cacheSize bounds the enrolments kept: past it the cache starts afresh.
// A challenge's second round trip follows its first within the challenge
// timeout, and that is the read the cache is for.
const cacheSize = 8192

// cache keeps the enrolments read since the store last changed, so that
// a challenge reads a user's row once, not once per round trip.
//
// It is exact, never a few seconds stale: every lookup first asks the
// store's watcher for its change mark, which moves on every commit by
// any process that could change what a lookup reads, and a mark unlike
// the last one seen empties the cache. The cache knows nothing of how
// a mark is made: for SQLite it is the wal-index header (walwatch.go),
// for PostgreSQL a counter the schema's triggers move (pgwatch.go).
// Entries hold opened secrets, which the process can open at will with
// store.key anyway.
type cache struct {
	mu   sync.Mutex
	w    watcher // nil: no caching
	seen mark    // the mark when the entries were read
	gen  uint64  // counts the times the entries were emptied
	// entries are the enrolments read since seen.
	entries map[string]*factors.Enrolment
}

// A watcher tells the cache when the store may have changed.
type watcher interface {
	// mark returns the store's change mark now; ok is false when it
	// cannot tell (a commit is being written, the database does not
	// answer), and nothing is then cached.
	mark(ctx context.Context) (m mark, ok bool)
	// follows reports whether after is exactly one commit past before,
	// with no other between (see cache.ownCommit); a watcher that cannot
	// tell says false.
	follows(before, after mark) bool
	// close stops watching; closeFile releases what must outlive the
	// database's connections, after they are closed.
	close()
	closeFile()
}

// mark is a snapshot of a store's change counter: two equal marks mean
// nothing a lookup reads changed between them.
type mark [12]uint32

// newCache returns a cache fed by w; nil w caches nothing.
func newCache(w watcher) *cache {
	return &cache{w: w, entries: map[string]*factors.Enrolment{}}
}

// lookup reads the mark, empties the cache if the store changed since
// the entries were read, and returns a copy of user's entry when it has
// one. Otherwise it returns the generation to store the entry read from
// the store under; cacheable is false when there is no cache or no mark,
// and the caller then stores nothing. The mark is read outside the lock
// (for PostgreSQL it is a query): a mark older than the one seen empties
// the cache too, so an entry is never served across a change.
func (c *cache) lookup(ctx context.Context, user string) (e *factors.Enrolment, gen uint64, cacheable bool) {
	c.mu.Lock()
	w := c.w
	c.mu.Unlock()
	if w == nil {
		return nil, 0, false
	}
	m, ok := w.mark(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.w == nil {
		return nil, 0, false
	}
	if !ok || m != c.seen {
		c.seen = m
		clear(c.entries)
		c.gen++
	}
	if hit, found := c.entries[user]; found {
		return hit.Clone(), c.gen, ok
	}
	return nil, c.gen, ok
}

// mark reads the store's mark now; ok is false when there is no cache
// or no mark.
func (c *cache) mark(ctx context.Context) (m mark, ok bool) {
	c.mu.Lock()
	w := c.w
	c.mu.Unlock()
	if w == nil {
		return m, false
	}
	return w.mark(ctx)
}

// ownCommit keeps the entries across a commit of this store that changed
// nothing they hold but last-use times (which no login reads), given the
// mark read inside the commit's transaction, with the write lock held,
// and the mark read after it. The commit must have written something:
// one that wrote nothing leaves the mark alone, and the next commit, by
// anyone, would then count as its. Only when that commit is provably the
// one commit since the entries were read: before is the mark they were
// read under, and the watcher says after follows it by exactly one
// commit. Anything else is left to lookup, which empties the cache.
//
// This is what lets a person's answer, typed half a minute after the
// challenge, still find the enrolment read for it: recorded uses are
// written every few seconds on a busy server. (PostgreSQL's counter
// does not move for last-use times at all.)
func (c *cache) ownCommit(before, after mark) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.w == nil || before != c.seen || !c.w.follows(before, after) {
		return
	}
	c.seen = after
}

// put stores a copy of e, read after lookup returned gen, unless the
// store changed since (an entry read before a change must not outlive
// it). The read may have seen a commit newer than gen; the next lookup
// then finds a new mark and empties the cache, so that is safe.
func (c *cache) put(user string, gen uint64, e *factors.Enrolment) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	if len(c.entries) >= cacheSize {
		clear(c.entries)
	}
	c.entries[user] = e.Clone()
}

// close ends the cache: no lookup asks the watcher after it.
func (c *cache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.w != nil {
		c.w.close()
	}
	clear(c.entries)
	c.gen++
}

// closeFile releases the watcher's files, after the database is closed.
func (c *cache) closeFile() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.w != nil {
		c.w.closeFile()
		c.w = nil
	}
}
