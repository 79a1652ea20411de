package store

import (
	"context"
	"database/sql"
	"strconv"
	"strings"
)

// dialect is what differs between the SQL databases a store lives in.
// The queries are written once, with ? placeholders (?1 where one value
// is used twice) and the credentials' user column quoted ("user" is a
// reserved word in PostgreSQL); q rewrites them for PostgreSQL.
type dialect struct {
	name       string
	numbered   bool     // placeholders are $1, $2, …
	migrations []string // the same changes, in each one's DDL
	metaDDL    string
	forUpdate  string // locks a row read in a transaction until its commit
	// tables counts the meta table, and the other tables of a store, in
	// the database.
	tables func(ctx context.Context, q querier) (meta, others int, err error)
	// lock serialises init between processes, inside its transaction.
	lock func(ctx context.Context, tx *sql.Tx) error
	// ready reports what else a current store needs (SQLite: WAL mode).
	ready func(ctx context.Context, q querier) (bool, error)
	// afterInit runs after a migration committed.
	afterInit func(ctx context.Context, s *Store) error
}

var sqlite = dialect{
	name:       "sqlite",
	migrations: sqliteMigrations,
	metaDDL:    `CREATE TABLE meta (name TEXT PRIMARY KEY, value BLOB NOT NULL)`,
	tables: func(ctx context.Context, q querier) (meta, others int, err error) {
		err = q.QueryRowContext(ctx, `SELECT count(*) FILTER (WHERE name = 'meta'), count(*) FILTER (WHERE name != 'meta')
			FROM sqlite_master WHERE type = 'table'`).Scan(&meta, &others)
		return meta, others, err
	},
	// BEGIN IMMEDIATE (the _txlock of Open) holds the write lock already.
	lock: func(context.Context, *sql.Tx) error { return nil },
	ready: func(ctx context.Context, q querier) (bool, error) {
		var mode string
		err := q.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode)
		return strings.EqualFold(mode, "wal"), err
	},
	// WAL lets the admin commands write while the server reads; the mode
	// is kept in the file, so this changes it once.
	afterInit: func(ctx context.Context, s *Store) error {
		if _, err := s.db.ExecContext(ctx, `PRAGMA journal_mode=WAL`); err != nil {
			return s.openError(err)
		}
		return nil
	},
}

// q rewrites a query for the store's database.
func (s *Store) q(query string) string {
	if !s.d.numbered {
		return query
	}
	return numbered(query)
}

// numbered turns ? into $1, $2, … in order, and ?N into $N. The store's
// queries hold no ? in a string or an identifier.
func numbered(query string) string {
	var b strings.Builder
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] != '?' {
			b.WriteByte(query[i])
			continue
		}
		j := i + 1
		for j < len(query) && query[j] >= '0' && query[j] <= '9' {
			j++
		}
		b.WriteByte('$')
		if j > i+1 {
			b.WriteString(query[i+1 : j])
		} else {
			n++
			b.WriteString(strconv.Itoa(n))
		}
		i = j - 1
	}
	return b.String()
}

// b2i is a flag as the schema keeps it (an integer, in both databases).
func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
