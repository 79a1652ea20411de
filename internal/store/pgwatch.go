package store

import (
	"context"
	"database/sql"
	"sync"
	"time"
)

// pgWatcher is PostgreSQL's watcher: the mark in the changes table,
// which the schema's triggers set to the transaction's id in the same
// transaction as every change a lookup could see (and not for last-use
// times). Every instance's next lookup after a commit anywhere therefore
// sees it: exact, at the cost of a round trip (see docs/benchmark.md).
// LISTEN/NOTIFY would save the round trip but arrives after the commit,
// so a login at another instance just after an admin's change could
// still be served from before it.
//
// Lookups share reads: one read is in flight at a time, and the lookups
// that arrive meanwhile wait for the next one, which starts after they
// arrived, so each still learns of every commit before it; under load
// the database answers one query per round trip instead of one per
// lookup.
type pgWatcher struct {
	read *sql.Stmt

	mu       sync.Mutex
	inFlight bool      // a read is being made
	next     *markRead // the read the lookups that came meanwhile wait for
}

// markRead is one read of the mark and the lookups waiting for it.
type markRead struct {
	done chan struct{}
	m    mark
	ok   bool
}

// markTimeout bounds one shared read: a lookup that cannot wait for it
// gives up on the cache (its context), not on the read.
const markTimeout = 5 * time.Second

func newPGWatcher(s *Store) watcher {
	st, err := s.db.Prepare(`SELECT n FROM changes WHERE id = 1`)
	if err != nil {
		return nil
	}
	return &pgWatcher{read: st}
}

func (w *pgWatcher) mark(ctx context.Context) (mark, bool) {
	w.mu.Lock()
	if w.next == nil {
		w.next = &markRead{done: make(chan struct{})}
	}
	r := w.next
	if !w.inFlight {
		w.inFlight, w.next = true, nil
		w.mu.Unlock()
		w.run(r)
	} else {
		w.mu.Unlock()
	}
	select {
	case <-r.done:
		return r.m, r.ok
	case <-ctx.Done():
		return mark{}, false
	}
}

// run makes read r, then hands the next one, if lookups wait for it, to
// a goroutine of its own, so that no lookup waits for reads after its
// own.
func (w *pgWatcher) run(r *markRead) {
	ctx, cancel := context.WithTimeout(context.Background(), markTimeout)
	var n int64
	err := w.read.QueryRowContext(ctx).Scan(&n)
	cancel()
	r.m, r.ok = mark{uint32(n), uint32(uint64(n) >> 32), 1}, err == nil
	close(r.done)
	w.mu.Lock()
	next := w.next
	w.next, w.inFlight = nil, next != nil
	w.mu.Unlock()
	if next != nil {
		go w.run(next)
	}
}

// follows is never needed: last-use times do not move the mark.
func (w *pgWatcher) follows(mark, mark) bool { return false }

func (w *pgWatcher) close()     { w.read.Close() }
func (w *pgWatcher) closeFile() {}
