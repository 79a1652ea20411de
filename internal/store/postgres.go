package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// postgresMigrations are sqliteMigrations in PostgreSQL's DDL, and the
// change mark the cache watches (pgwatch.go): a row the triggers set to
// the id of every transaction that changes what a lookup could see, and
// leave alone for last-use times.
var postgresMigrations = []string{
	`CREATE TABLE users (
		name          TEXT PRIMARY KEY,
		lockout_epoch BIGINT NOT NULL DEFAULT 0
	);
	CREATE TABLE credentials (
		"user"       TEXT NOT NULL,
		method       TEXT NOT NULL,
		secret       BYTEA NOT NULL,
		algorithm    TEXT NOT NULL,
		digits       INTEGER NOT NULL,
		period       INTEGER NOT NULL,
		counter      BIGINT NOT NULL DEFAULT 0,
		active       INTEGER NOT NULL,
		is_default   INTEGER NOT NULL DEFAULT 0,
		created_at   BIGINT NOT NULL,
		last_used_at BIGINT NOT NULL DEFAULT 0,
		PRIMARY KEY ("user", method)
	);
	CREATE TABLE changes (
		id INTEGER PRIMARY KEY CHECK (id = 1),
		n  BIGINT NOT NULL
	);
	INSERT INTO changes (id, n) VALUES (1, 0);
	CREATE FUNCTION mfabridge_changed() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		-- Once per transaction, however many rows it changes (a row
		-- updated again and again in one transaction grows a chain each
		-- update walks): the counter becomes the transaction's id, which
		-- no other transaction has.
		UPDATE changes SET n = txid_current() WHERE id = 1 AND n <> txid_current();
		RETURN NULL;
	END
	$$;
	CREATE TRIGGER users_changed AFTER INSERT OR UPDATE OR DELETE ON users
		FOR EACH ROW EXECUTE FUNCTION mfabridge_changed();
	CREATE TRIGGER credentials_added AFTER INSERT OR DELETE ON credentials
		FOR EACH ROW EXECUTE FUNCTION mfabridge_changed();
	CREATE TRIGGER credentials_changed AFTER UPDATE ON credentials FOR EACH ROW
		WHEN ((to_jsonb(OLD) - 'last_used_at') IS DISTINCT FROM (to_jsonb(NEW) - 'last_used_at'))
		EXECUTE FUNCTION mfabridge_changed();`,
	`ALTER TABLE users ADD COLUMN default_method TEXT NOT NULL DEFAULT '';`,
	`ALTER TABLE credentials ADD COLUMN seal INTEGER NOT NULL DEFAULT 1;`,
	`CREATE TABLE invites (
		name       TEXT PRIMARY KEY,
		hash       BYTEA NOT NULL,
		created_at BIGINT NOT NULL,
		expires_at BIGINT NOT NULL
	);`,
	`CREATE TABLE signins (
		id      BIGSERIAL PRIMARY KEY,
		name    TEXT NOT NULL,
		at      BIGINT NOT NULL,
		client  TEXT NOT NULL,
		station TEXT NOT NULL,
		outcome TEXT NOT NULL,
		method  TEXT NOT NULL,
		reason  TEXT NOT NULL
	);
	CREATE INDEX signins_by_name ON signins (name, id);
	ALTER TABLE users ADD COLUMN reported_at BIGINT NOT NULL DEFAULT 0;`,
	`CREATE TABLE tokens (
		serial     TEXT PRIMARY KEY,
		secret     BYTEA NOT NULL,
		digits     INTEGER NOT NULL,
		counter    BIGINT NOT NULL,
		created_at BIGINT NOT NULL
	);`,
}

// initLock is the advisory lock init takes: instances starting together
// migrate one after another, and all but the first find nothing to do.
const initLock = 0x6d6661627269 // "mfabri"

var postgres = dialect{
	name:       "postgres",
	numbered:   true,
	migrations: postgresMigrations,
	metaDDL:    `CREATE TABLE meta (name TEXT PRIMARY KEY, value BYTEA NOT NULL)`,
	forUpdate:  " FOR UPDATE",
	tables: func(ctx context.Context, q querier) (meta, others int, err error) {
		err = q.QueryRowContext(ctx, `SELECT count(*) FILTER (WHERE table_name = 'meta'), count(*) FILTER (WHERE table_name IN ('users', 'credentials'))
			FROM information_schema.tables WHERE table_schema = current_schema()`).Scan(&meta, &others)
		return meta, others, err
	},
	lock: func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(initLock))
		return err
	},
	ready: func(context.Context, querier) (bool, error) { return true, nil },
}

// OpenPostgres opens or creates the store in the PostgreSQL database dsn
// names (a key=value or postgres:// connection string), with a 32-byte
// key. Several instances share it; every commit is synchronous, so a
// write the CLI reported is on the server's disk.
func OpenPostgres(dsn string, key []byte) (*Store, error) {
	aead, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		// pgx's message may quote the string, password and all.
		return nil, errors.New("store: store.dsn is not a PostgreSQL connection string (postgres://USER@HOST/DATABASE?sslmode=verify-full, or host=… dbname=…)")
	}
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	cfg.RuntimeParams["synchronous_commit"] = "on"
	cfg.RuntimeParams["application_name"] = "mfabridge"
	where := fmt.Sprintf("PostgreSQL database %s on %s:%d", cfg.Database, cfg.Host, cfg.Port)
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(16)
	db.SetMaxIdleConns(16)
	ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: %s: %w", where, err)
	}
	return start(db, &postgres, where, aead, func(s *Store) watcher { return newPGWatcher(s) })
}

// connectTimeout bounds the first connection of OpenPostgres.
const connectTimeout = 10 * time.Second
