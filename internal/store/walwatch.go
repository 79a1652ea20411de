package store

import (
	"context"
	"database/sql"
)

// walWatcher is SQLite's watcher: the wal-index header (walindex.go),
// which SQLite rewrites on every commit by any connection in any process.
// Reading it is a few loads from shared memory; asking SQLite (PRAGMA
// data_version) costs a read transaction, half a lookup.
type walWatcher struct {
	wal  *walIndex // nil: no mark
	file *walIndex // the wal-index opened, to close after the database
	conn *sql.Conn // held open, so that SQLite keeps the -shm file
}

// openWALWatcher maps the wal-index of the database at path. When it
// cannot, it returns nil and the store works without a cache.
func openWALWatcher(ctx context.Context, db *sql.DB, path string) watcher {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil
	}
	w := &walWatcher{conn: conn}
	// A read makes this connection open the wal-index, creating it if
	// need be; while any connection of this process holds it open,
	// SQLite never deletes it.
	var n int
	if err := conn.QueryRowContext(ctx, `SELECT count(*) FROM meta`).Scan(&n); err != nil {
		conn.Close()
		return nil
	}
	wal, err := openWALIndex(path)
	w.file = wal
	if err == nil {
		w.wal = wal
	}
	return w
}

func (w *walWatcher) mark(context.Context) (mark, bool) {
	if w.wal == nil {
		return mark{}, false
	}
	h, ok := w.wal.header()
	return mark(h), ok
}

// Words of the header (https://sqlite.org/walformat.html).
const (
	hdrChange = 2 // iChange: one more for every transaction committed
	hdrSalt1  = 8 // the log's salts, new whenever it restarts
	hdrSalt2  = 9
)

// follows: after counts exactly one transaction more than before, with
// the same salts (no restart of the log between).
func (w *walWatcher) follows(before, after mark) bool {
	return after[hdrChange] == before[hdrChange]+1 && after[hdrSalt1] == before[hdrSalt1] && after[hdrSalt2] == before[hdrSalt2]
}

func (w *walWatcher) close() {
	if w.conn != nil {
		w.conn.Close()
		w.conn = nil
	}
	w.wal = nil
}

// closeFile closes the wal-index; see walIndex.close for why only after
// the database.
func (w *walWatcher) closeFile() {
	if w.file != nil {
		w.file.close()
		w.file = nil
	}
}

// header is one copy of the wal-index header, as 32-bit words in the
// machine's order.
type header [12]uint32
