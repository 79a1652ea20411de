package store

import (
	"context"
	"database/sql"
	"sync"

	"github.com/mfabridge/mfabridge/factors"
)

// cacheSize bounds the enrolments kept: past it the cache starts afresh.
// A challenge's second round trip follows its first within the challenge
// timeout, and that is the read the cache is for.
const cacheSize = 8192

// cache keeps the enrolments read since the file last changed, so that a
// challenge reads a user's row once, not once per round trip.
//
// It is exact, never a few seconds stale: every lookup first reads the
// wal-index header, which SQLite rewrites on every commit by any
// connection in any process (the enrol command, or this one advancing a
// counter), and a header unlike the last one seen empties the cache;
// only this store's own writes of last-use times are let through, when
// provably alone (ownCommit). Reading the header is a few loads from
// shared memory; asking SQLite (PRAGMA data_version) costs a read
// transaction, half a lookup. Entries hold opened secrets, which the
// process can open at will with store.key anyway.
type cache struct {
	mu   sync.Mutex
	wal  *walIndex // nil: no caching
	file *walIndex // the wal-index opened, to close after the database
	conn *sql.Conn // held open, so that SQLite keeps the -shm file
	seen header    // the header when the entries were read
	gen  uint64    // counts the times the entries were emptied
	// entries are the enrolments read since seen.
	entries map[string]*factors.Enrolment
}

// openCache maps the wal-index of the database at path. When it cannot,
// the store works without a cache.
func openCache(ctx context.Context, db *sql.DB, path string) *cache {
	c := &cache{entries: map[string]*factors.Enrolment{}}
	conn, err := db.Conn(ctx)
	if err != nil {
		return c
	}
	c.conn = conn
	// A read makes this connection open the wal-index, creating it if
	// need be; while any connection of this process holds it open,
	// SQLite never deletes it.
	var n int
	if err := conn.QueryRowContext(ctx, `SELECT count(*) FROM meta`).Scan(&n); err != nil {
		return c
	}
	wal, err := openWALIndex(path)
	c.file = wal
	if err == nil {
		c.wal = wal
	}
	return c
}

// lookup reads the header, empties the cache if the file changed since
// the entries were read, and returns a copy of user's entry when it has
// one. Otherwise it returns the generation to store the entry read from
// the file under; cacheable is false when there is no cache or a commit
// is being written this very moment, and the caller then stores nothing.
func (c *cache) lookup(user string) (e *factors.Enrolment, gen uint64, cacheable bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.wal == nil {
		return nil, 0, false
	}
	h, ok := c.wal.header()
	if !ok || h != c.seen {
		c.seen = h
		clear(c.entries)
		c.gen++
	}
	if hit, found := c.entries[user]; found {
		return hit.Clone(), c.gen, ok
	}
	return nil, c.gen, ok
}

// header reads the wal-index header now; ok is false when there is no
// cache or a commit is being written.
func (c *cache) header() (h header, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.wal == nil {
		return h, false
	}
	return c.wal.header()
}

// ownCommit keeps the entries across a commit of this store that changed
// nothing they hold but last-use times (which no login reads), given the
// header read inside the commit's transaction, with the write lock held,
// and the header read after it. The commit must have written something:
// one that wrote nothing leaves the header alone, and the next commit, by
// anyone, would then count as its. Only when that commit is provably the
// one commit since the entries were read: before is the header they were
// read under, and after counts exactly one transaction more with the
// same salts (no restart of the log between). Anything else is left to
// lookup, which empties the cache.
//
// This is what lets a person's answer, typed half a minute after the
// challenge, still find the enrolment read for it: recorded uses are
// written every few seconds on a busy server.
func (c *cache) ownCommit(before, after header) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.wal == nil || before != c.seen {
		return
	}
	if after[hdrChange] != before[hdrChange]+1 || after[hdrSalt1] != before[hdrSalt1] || after[hdrSalt2] != before[hdrSalt2] {
		return
	}
	c.seen = after
}

// header is one copy of the wal-index header, as 32-bit words in the
// machine's order.
type header [12]uint32

// Words of the header (https://sqlite.org/walformat.html).
const (
	hdrChange = 2 // iChange: one more for every transaction committed
	hdrSalt1  = 8 // the log's salts, new whenever it restarts
	hdrSalt2  = 9
)

// put stores a copy of e, read after lookup returned gen, unless the
// file changed since (an entry read before a change must not outlive
// it). The read may have seen a commit newer than gen; the next lookup
// then finds a new header and empties the cache, so that is safe.
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

// close ends the cache: no lookup reads the wal-index after it. The
// file is closed only after the database, by closeFile (see
// walIndex.close).
func (c *cache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
	c.wal = nil
	clear(c.entries)
	c.gen++
}

func (c *cache) closeFile() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.file != nil {
		c.file.close()
		c.file = nil
	}
}
