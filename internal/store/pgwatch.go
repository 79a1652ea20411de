package store

import (
	"context"
	"database/sql"
)

// pgWatcher is PostgreSQL's watcher: the mark in the changes table,
// which the schema's triggers set to the transaction's id in the same
// transaction as every change a lookup could see (and not for last-use
// times), read with one small query per lookup. Every instance's next lookup after a commit
// anywhere therefore sees it: exact, at the cost of one round trip (see
// docs/benchmark.md). LISTEN/NOTIFY would save the round trip but
// arrives after the commit, so a login at another instance just after an
// admin's change could still be served from before it.
type pgWatcher struct {
	read *sql.Stmt
}

func newPGWatcher(s *Store) watcher {
	st, err := s.db.Prepare(`SELECT n FROM changes WHERE id = 1`)
	if err != nil {
		return nil
	}
	return &pgWatcher{read: st}
}

func (w *pgWatcher) mark(ctx context.Context) (mark, bool) {
	var n int64
	if err := w.read.QueryRowContext(ctx).Scan(&n); err != nil {
		return mark{}, false
	}
	return mark{uint32(n), uint32(uint64(n) >> 32), 1}, true
}

// follows is never needed: last-use times do not move the counter.
func (w *pgWatcher) follows(mark, mark) bool { return false }

func (w *pgWatcher) close()     { w.read.Close() }
func (w *pgWatcher) closeFile() {}
