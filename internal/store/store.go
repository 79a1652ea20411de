// Package store is the enrolment store: each user's second-factor
// credentials (TOTP and HOTP secrets, the HOTP counter, the default
// method) and the lockout epoch, in one SQLite file through the pure-Go
// modernc.org/sqlite.
//
// The file is in WAL mode with a busy timeout, so the admin commands and a
// running server use it at the same time, and every write is synchronous
// (durable before the command reports success; a crash or kill never
// leaves a half-written credential). Secrets are sealed with AES-256-GCM
// under store.key, bound to their user and method; a missing or wrong key
// is an error, never a new empty store. The SQL is plain database/sql so
// that a PostgreSQL backend can share the schema. Lookups are cached
// until the next commit by anyone but this store's own writes of last-use
// times (cache.go), so a challenge's second round trip does not read the
// file again.
//
// It must not import radius, ldapbind or the factor packages.
package store

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/mfabridge/mfabridge/factors"
)

// ErrWrongKey means store.key is not the key the store was created with.
var ErrWrongKey = errors.New("store: store.key does not open this store (it was created with another key); nothing was changed")

// ErrNotFound means the user holds no such credential.
var ErrNotFound = errors.New("store: no such credential")

// ErrExists means the user already holds a credential of that method.
var ErrExists = errors.New("store: the user already holds a credential of this method")

// Store is an open enrolment store. It is safe for concurrent use.
type Store struct {
	db    *sql.DB
	d     *dialect
	aead  cipher.AEAD
	now   func() time.Time
	where string // the file, or the PostgreSQL database, for messages

	// readUser is the one query of the login path, prepared once.
	readUser *sql.Stmt
	// cache keeps what readUser read until the store changes.
	cache *cache

	// used collects last-use times, written in one transaction every
	// usedFlush (a login should not wait for a disk write to record a
	// timestamp kept to the hour).
	usedMu  sync.Mutex
	used    map[usedKey]int64
	signins map[string][]factors.SignIn // written with the uses (signins.go)
	stop    chan struct{}
	stopped chan struct{}
	closeMu sync.Once
}

type usedKey struct {
	user   string
	method factors.Method
}

// usedFlush is how often recorded uses reach the file.
const usedFlush = 5 * time.Second

// keyCheck is sealed under the key when a store is created; opening
// unseals it to prove the key is right before anything is read or written.
const keyCheck = "mfabridge enrolment store key check"

func newAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("store: the key must be 32 bytes, not %d (create one with: openssl rand -hex 32)", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// Open opens or creates the SQLite store at path with a 32-byte key.
func Open(path string, key []byte) (*Store, error) {
	aead, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	if path == "" {
		return nil, errors.New("store: no path")
	}
	if dir := filepath.Dir(path); dir != "" {
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("store: directory %s does not exist: create it, owned by the user mfabridge runs as", dir)
		}
	}
	q := url.Values{}
	// journal_mode is set by init, once the file is known to be a store:
	// another program's database must be left as it was.
	// mmap_size lets reads come from the file mapped read-only (SQLite
	// writes through the journal as before): a login's lookup costs half
	// as much as with reads copied through the page cache.
	for _, p := range []string{"busy_timeout(5000)", "synchronous(FULL)", "foreign_keys(1)", "mmap_size(268435456)"} {
		q.Add("_pragma", p)
	}
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	// Connections are kept: a new one costs its pragmas, its prepared
	// statement and a cold page cache, which under concurrent logins (the
	// default keeps two idle) was most of the cost of a read. The
	// ninth is the cache's, held so that the wal-index stays.
	db.SetMaxOpenConns(9)
	db.SetMaxIdleConns(9)
	return start(db, &sqlite, path, aead, func(s *Store) watcher { return openWALWatcher(context.Background(), db, path) })
}

// start initialises the store, prepares the login query and starts the
// flusher of last-use times.
func start(db *sql.DB, d *dialect, where string, aead cipher.AEAD, watch func(*Store) watcher) (*Store, error) {
	s := &Store{db: db, d: d, aead: aead, now: time.Now, where: where, used: map[usedKey]int64{},
		stop: make(chan struct{}), stopped: make(chan struct{})}
	if err := s.init(context.Background()); err != nil {
		db.Close()
		return nil, err
	}
	// One query: the user's row (if any) and each credential (if any).
	var err error
	s.readUser, err = db.Prepare(s.q(`SELECT u.lockout_epoch, u.default_method, u.reported_at, c.method, c.secret, c.algorithm, c.digits, c.period,
		c.counter, c.active, c.is_default, c.created_at, c.last_used_at, c.seal
		FROM (SELECT CAST(?1 AS TEXT) AS name) AS q
		LEFT JOIN users u ON u.name = q.name
		LEFT JOIN credentials c ON c."user" = q.name
		ORDER BY c.is_default DESC, c.created_at`))
	if err != nil {
		db.Close()
		return nil, s.openError(err)
	}
	s.cache = newCache(watch(s))
	go s.flusher()
	return s, nil
}

// Close writes the recorded uses and closes the database.
func (s *Store) Close() error {
	s.closeMu.Do(func() { close(s.stop) })
	<-s.stopped
	s.cache.close()
	err := s.db.Close()
	s.cache.closeFile()
	return err
}

func (s *Store) flusher() {
	defer close(s.stopped)
	t := time.NewTicker(usedFlush)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			s.flushUsed()
			return
		case <-t.C:
			s.flushUsed()
		}
	}
}

// Ping checks the database answers: readiness.
func (s *Store) Ping(ctx context.Context) error {
	var n int
	return s.db.QueryRowContext(ctx, "SELECT count(*) FROM meta").Scan(&n)
}

// sqliteMigrations are applied in order, each once; schema_version in
// meta counts those applied. Append only, and with postgresMigrations
// (dialect.go): migration n is the same change in both.
var sqliteMigrations = []string{
	`CREATE TABLE users (
		name          TEXT PRIMARY KEY,
		lockout_epoch INTEGER NOT NULL DEFAULT 0
	);
	CREATE TABLE credentials (
		user         TEXT NOT NULL,
		method       TEXT NOT NULL,
		secret       BLOB NOT NULL,   -- nonce || AES-256-GCM(secret), additional data "user NUL method"
		algorithm    TEXT NOT NULL,
		digits       INTEGER NOT NULL,
		period       INTEGER NOT NULL,
		counter      INTEGER NOT NULL DEFAULT 0,
		active       INTEGER NOT NULL,
		is_default   INTEGER NOT NULL DEFAULT 0,
		created_at   INTEGER NOT NULL,
		last_used_at INTEGER NOT NULL DEFAULT 0,
		PRIMARY KEY (user, method)
	);`,
	// The default may be a method with no stored credential (a text
	// message or a call, whose numbers come from the directory).
	`ALTER TABLE users ADD COLUMN default_method TEXT NOT NULL DEFAULT '';`,
	// seal says which additional data a secret is sealed with: 1, user
	// and method; 2, also algorithm, digits, period, counter and active
	// (see credentialAAD). init reseals every row of 1 as 2, and only 2
	// opens: a row copied back from an older backup (an HOTP counter set
	// back, a pending credential made active) no longer does.
	`ALTER TABLE credentials ADD COLUMN seal INTEGER NOT NULL DEFAULT 1;`,
	// One-time first-enrolment codes for the portal, as hashes (invite.go).
	`CREATE TABLE invites (
		name       TEXT PRIMARY KEY,
		hash       BLOB NOT NULL,
		created_at INTEGER NOT NULL,
		expires_at INTEGER NOT NULL
	);`,
	// Each user's last sign-ins, for the portal (signins.go), and when
	// the user reported one that was not theirs (0: never, or reset).
	`CREATE TABLE signins (
		id      INTEGER PRIMARY KEY AUTOINCREMENT,
		name    TEXT NOT NULL,
		at      INTEGER NOT NULL,
		client  TEXT NOT NULL,
		station TEXT NOT NULL,
		outcome TEXT NOT NULL,
		method  TEXT NOT NULL,
		reason  TEXT NOT NULL
	);
	CREATE INDEX signins_by_name ON signins (name, id);
	ALTER TABLE users ADD COLUMN reported_at INTEGER NOT NULL DEFAULT 0;`,
	// Hardware tokens that are nobody's yet, by serial (tokens.go).
	`CREATE TABLE tokens (
		serial     TEXT PRIMARY KEY,
		secret     BLOB NOT NULL,
		digits     INTEGER NOT NULL,
		counter    INTEGER NOT NULL,
		created_at INTEGER NOT NULL
	);`,
}

// sealVersion is the additional data rows are sealed with now.
const sealVersion = 2

// init checks the key and brings the schema up to date. A store that is
// current is only read, so that a read-only disk still serves logins and
// read-only commands; writes happen in one transaction, when the store is
// new or older than this program, under a lock that makes instances
// starting together migrate once.
func (s *Store) init(ctx context.Context) error {
	if current, err := s.check(ctx, s.db); err != nil || current {
		return err
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return s.openError(err)
	}
	defer tx.Rollback()
	if err := s.d.lock(ctx, tx); err != nil {
		return s.openError(err)
	}
	// Check again inside the lock: another process may have done it.
	if current, err := s.check(ctx, tx); err != nil || current {
		if err == nil {
			err = s.commit(tx)
		}
		return err
	}
	meta, _, err := s.d.tables(ctx, tx)
	if err != nil {
		return s.openError(err)
	}
	if meta == 0 {
		if _, err := tx.ExecContext(ctx, s.d.metaDDL); err != nil {
			return s.openError(err)
		}
		sealed, err := s.seal([]byte(keyCheck), "meta", "key_check")
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO meta (name, value) VALUES ('key_check', ?), ('schema_version', ?)`), sealed, []byte("0")); err != nil {
			return s.openError(err)
		}
	}
	version, err := s.version(ctx, tx)
	if err != nil {
		return err
	}
	for i := version; i < len(s.d.migrations); i++ {
		if _, err := tx.ExecContext(ctx, s.d.migrations[i]); err != nil {
			return fmt.Errorf("store: migration %d: %w", i+1, err)
		}
	}
	if err := s.reseal(ctx, tx); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, s.q(`UPDATE meta SET value = ? WHERE name = 'schema_version'`), []byte(strconv.Itoa(len(s.d.migrations)))); err != nil {
		return s.openError(err)
	}
	if err := s.commit(tx); err != nil {
		return err
	}
	if s.d.afterInit != nil {
		return s.d.afterInit(ctx, s)
	}
	return nil
}

// querier is a *sql.DB or a *sql.Tx.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// version reads schema_version.
func (s *Store) version(ctx context.Context, q querier) (int, error) {
	var v []byte
	if err := q.QueryRowContext(ctx, `SELECT value FROM meta WHERE name = 'schema_version'`).Scan(&v); err != nil {
		return 0, s.openError(err)
	}
	n, err := strconv.Atoi(string(v))
	if err != nil {
		return 0, fmt.Errorf("store: %s: schema_version %q is not a number", s.where, v)
	}
	return n, nil
}

// check reads what init needs to know, writing nothing: it refuses a
// database that is not a store or a wrong key, and reports whether the
// store is current (key check, schema and, for SQLite, WAL mode all in
// place).
func (s *Store) check(ctx context.Context, q querier) (current bool, err error) {
	metaTables, otherTables, err := s.d.tables(ctx, q)
	if err != nil {
		return false, s.openError(err)
	}
	if metaTables == 0 {
		if otherTables > 0 {
			return false, fmt.Errorf("store: %s holds tables but no key check: it is not an mfabridge store; nothing was changed", s.where)
		}
		return false, nil // new
	}
	var check []byte
	if err := q.QueryRowContext(ctx, `SELECT value FROM meta WHERE name = 'key_check'`).Scan(&check); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return false, fmt.Errorf("store: %s holds tables but no key check: it is not an mfabridge store; nothing was changed", s.where)
		}
		return false, s.openError(err)
	}
	if plain, err := s.open(check, "meta", "key_check"); err != nil || string(plain) != keyCheck {
		return false, ErrWrongKey
	}
	version, err := s.version(ctx, q)
	if err != nil {
		return false, err
	}
	if version > len(s.d.migrations) {
		return false, fmt.Errorf("store: %s has schema version %d, newer than this mfabridge knows (%d): upgrade mfabridge", s.where, version, len(s.d.migrations))
	}
	ready, err := s.d.ready(ctx, q)
	if err != nil {
		return false, s.openError(err)
	}
	return version == len(s.d.migrations) && ready, nil
}

func (s *Store) openError(err error) error {
	msg := err.Error()
	if strings.Contains(msg, "not a database") || strings.Contains(msg, "file is encrypted") {
		return fmt.Errorf("store: %s is not an SQLite database; nothing was changed", s.where)
	}
	if strings.Contains(msg, "readonly") || strings.Contains(msg, "read-only") || strings.Contains(msg, "unable to open") {
		return fmt.Errorf("store: %s: %w (mfabridge needs to read and write the file and its directory)", s.where, err)
	}
	return fmt.Errorf("store: %s: %w", s.where, err)
}

func (s *Store) commit(tx *sql.Tx) error {
	if err := tx.Commit(); err != nil {
		return s.writeError(err)
	}
	return nil
}

// writeError names the file and what to check when a write fails; the
// transaction was rolled back, so nothing was changed.
func (s *Store) writeError(err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "full"):
		return fmt.Errorf("store: %s: the disk is full; free space on it, then try again (nothing was changed): %w", s.where, err)
	case strings.Contains(msg, "readonly") || strings.Contains(msg, "read-only"):
		return fmt.Errorf("store: %s is read-only here; mount it writable or run as its owner (nothing was changed): %w", s.where, err)
	}
	return fmt.Errorf("store: %s: write failed (nothing was changed): %w", s.where, err)
}

// seal encrypts plain with a fresh nonce, bound to user and method so
// that a sealed secret copied to another row does not open.
func (s *Store) seal(plain []byte, user, method string) ([]byte, error) {
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plain)+s.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return s.aead.Seal(nonce, nonce, plain, aad(user, method)), nil
}

func (s *Store) open(sealed []byte, user, method string) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n {
		return nil, errors.New("store: sealed value too short")
	}
	return s.aead.Open(nil, sealed[:n], sealed[n:], aad(user, method))
}

func aad(user, method string) []byte { return []byte(user + "\x00" + method) }

// credentialAAD is the additional data of a credential's secret: whose
// it is and every column that decides how it is used, so that none of
// them can be changed in the file without the key.
func credentialAAD(user string, c factors.Credential) []byte {
	active := "0"
	if c.Active {
		active = "1"
	}
	return []byte(strings.Join([]string{"v2", user, string(c.Method), c.Algorithm, strconv.Itoa(c.Digits),
		strconv.Itoa(c.Period), strconv.FormatUint(c.Counter, 10), active}, "\x00"))
}

// sealCredential seals c.Secret for user under credentialAAD.
func (s *Store) sealCredential(user string, c factors.Credential) ([]byte, error) {
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(c.Secret)+s.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return s.aead.Seal(nonce, nonce, c.Secret, credentialAAD(user, c)), nil
}

func (s *Store) openCredential(sealed []byte, user string, c factors.Credential) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n {
		return nil, errors.New("store: sealed value too short")
	}
	return s.aead.Open(nil, sealed[:n], sealed[n:], credentialAAD(user, c))
}

// sealedRow is a credential as the file holds it: sealed, with its
// seal version.
type sealedRow struct {
	user   string
	c      factors.Credential // Secret unset
	sealed []byte
	seal   int
}

// sealedRows reads the credentials that where (SQL on credentials)
// selects, in tx.
func (s *Store) sealedRows(ctx context.Context, tx *sql.Tx, where string, args ...any) ([]sealedRow, error) {
	rows, err := tx.QueryContext(ctx, s.q(`SELECT "user", method, secret, algorithm, digits, period, counter, active, seal FROM credentials WHERE `+where), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []sealedRow
	for rows.Next() {
		var r sealedRow
		var method string
		var counter int64
		if err := rows.Scan(&r.user, &method, &r.sealed, &r.c.Algorithm, &r.c.Digits, &r.c.Period, &counter, &r.c.Active, &r.seal); err != nil {
			return nil, err
		}
		r.c.Method, r.c.Counter = factors.Method(method), uint64(counter)
		out = append(out, r)
	}
	return out, rows.Err()
}

// reseal seals every credential of an older seal version again, in the
// migration's transaction.
func (s *Store) reseal(ctx context.Context, tx *sql.Tx) error {
	old, err := s.sealedRows(ctx, tx, `seal = 1`)
	if err != nil {
		return s.openError(err)
	}
	for _, r := range old {
		secret, err := s.open(r.sealed, r.user, string(r.c.Method))
		if err != nil {
			return fmt.Errorf("store: the %s secret of %q does not open under store.key (altered or moved row); nothing was changed", r.c.Method, r.user)
		}
		r.c.Secret = secret
		sealed, err := s.sealCredential(r.user, r.c)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE credentials SET secret = ?, seal = ? WHERE "user" = ? AND method = ?`),
			sealed, sealVersion, r.user, string(r.c.Method)); err != nil {
			return s.writeError(err)
		}
	}
	return nil
}

// Enrolment returns the user's credentials (pending ones included) and
// lockout epoch; a user with nothing enrolled gets an empty Enrolment.
// What was read since the file last changed comes from the cache (see
// cache); anything else from the file. The result is the caller's own.
// Its last-use times may lag behind those this process recorded since.
func (s *Store) Enrolment(ctx context.Context, user string) (*factors.Enrolment, error) {
	e, gen, cacheable := s.cache.lookup(ctx, user)
	if e != nil {
		return e, nil
	}
	e, err := s.read(ctx, user)
	if err == nil && cacheable {
		s.cache.put(user, gen, e)
	}
	return e, err
}

func (s *Store) read(ctx context.Context, user string) (*factors.Enrolment, error) {
	e := &factors.Enrolment{}
	rows, err := s.readUser.QueryContext(ctx, user)
	if err != nil {
		return nil, fmt.Errorf("store: read %q: %w", user, err)
	}
	defer rows.Close()
	for rows.Next() {
		var epoch, reported, counter, created, used, digits, period, seal sql.NullInt64
		var def, method, algorithm sql.NullString
		var active, isDefault sql.NullBool
		var sealed []byte
		if err := rows.Scan(&epoch, &def, &reported, &method, &sealed, &algorithm, &digits, &period, &counter, &active, &isDefault, &created, &used, &seal); err != nil {
			return nil, fmt.Errorf("store: read %q: %w", user, err)
		}
		e.LockoutEpoch, e.Default = epoch.Int64, factors.Method(def.String)
		if reported.Int64 > 0 {
			e.Reported = time.Unix(reported.Int64, 0)
		}
		if !method.Valid {
			continue // a user row without credentials, or nothing at all
		}
		c := factors.Credential{Method: factors.Method(method.String), Algorithm: algorithm.String, Digits: int(digits.Int64),
			Period: int(period.Int64), Counter: uint64(counter.Int64), Active: active.Bool, Default: isDefault.Bool,
			Created: time.Unix(created.Int64, 0)}
		if seal.Int64 != sealVersion {
			return nil, fmt.Errorf("store: the %s secret of %q is sealed as version %d, not %d (a row from an older store)", method.String, user, seal.Int64, sealVersion)
		}
		if c.Secret, err = s.openCredential(sealed, user, c); err != nil {
			return nil, fmt.Errorf("store: the %s secret of %q does not open under store.key (altered or moved row)", method.String, user)
		}
		if used.Int64 > 0 {
			c.LastUsed = time.Unix(used.Int64, 0)
		}
		e.Credentials = append(e.Credentials, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: read %q: %w", user, err)
	}
	return e, nil
}

// Put stores a credential for user. With replace unset, an existing
// credential of the same method is ErrExists. The first credential of a
// user becomes the default.
func (s *Store) Put(ctx context.Context, user string, c factors.Credential, replace bool) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return s.writeError(err)
	}
	defer tx.Rollback()
	if err := s.put(ctx, tx, user, c, replace); err != nil {
		return err
	}
	return s.commit(tx)
}

func (s *Store) put(ctx context.Context, tx *sql.Tx, user string, c factors.Credential, replace bool) error {
	sealed, err := s.sealCredential(user, c)
	if err != nil {
		return err
	}
	var exists, others int
	if err := tx.QueryRowContext(ctx, s.q(`SELECT count(*) FROM credentials WHERE "user" = ? AND method = ?`), user, string(c.Method)).Scan(&exists); err != nil {
		return s.writeError(err)
	}
	if exists > 0 && !replace {
		return fmt.Errorf("%w: %s holds %s", ErrExists, user, c.Method)
	}
	if err := tx.QueryRowContext(ctx, s.q(`SELECT count(*) FROM credentials WHERE "user" = ? AND method != ? AND method NOT IN ('cert', 'recovery')`), user, string(c.Method)).Scan(&others); err != nil {
		return s.writeError(err)
	}
	if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO users (name) VALUES (?) ON CONFLICT (name) DO NOTHING`), user); err != nil {
		return s.writeError(err)
	}
	_, err = tx.ExecContext(ctx, s.q(`INSERT INTO credentials ("user", method, secret, algorithm, digits, period, counter, active, is_default, created_at, seal)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT ("user", method) DO UPDATE SET secret = excluded.secret, algorithm = excluded.algorithm,
			digits = excluded.digits, period = excluded.period, counter = excluded.counter, active = excluded.active,
			created_at = excluded.created_at, last_used_at = 0, seal = excluded.seal`),
		user, string(c.Method), sealed, c.Algorithm, c.Digits, c.Period, int64(c.Counter), b2i(c.Active),
		b2i(others == 0 && c.Method != factors.Cert && c.Method != factors.Recovery), s.now().Unix(), sealVersion)
	if err != nil {
		return fmt.Errorf("%w (writing %s for %q)", s.writeError(err), c.Method, user)
	}
	return nil
}

// Activate marks a pending credential as confirmed; its secret is sealed
// again, as active is part of what it is sealed with.
func (s *Store) Activate(ctx context.Context, user string, m factors.Method) error {
	return s.change(ctx, user, m, func(c *factors.Credential) bool {
		c.Active = true
		return true
	})
}

// change reads the user's credential for m, lets f change it (f reports
// whether to write it), and writes it sealed again, in one transaction.
// ErrNotFound when there is no such credential.
func (s *Store) change(ctx context.Context, user string, m factors.Method, f func(*factors.Credential) bool) error {
	tx, err := s.db.BeginTx(ctx, nil) // BEGIN IMMEDIATE: the write lock is held from here
	if err != nil {
		return s.writeError(err)
	}
	defer tx.Rollback()
	var c factors.Credential
	var sealed []byte
	var counter int64
	var seal int
	// The row is locked from this read to the commit (SQLite: the whole
	// file, from BEGIN IMMEDIATE; PostgreSQL: FOR UPDATE), so that of two
	// writers racing with one HOTP counter, one wins.
	err = tx.QueryRowContext(ctx, s.q(`SELECT secret, algorithm, digits, period, counter, active, seal FROM credentials WHERE "user" = ? AND method = ?`+s.d.forUpdate),
		user, string(m)).Scan(&sealed, &c.Algorithm, &c.Digits, &c.Period, &counter, &c.Active, &seal)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	if err != nil {
		return s.writeError(err)
	}
	c.Method, c.Counter = m, uint64(counter)
	if seal != sealVersion {
		return fmt.Errorf("store: the %s secret of %q is sealed as version %d (a row from an older store)", m, user, seal)
	}
	if c.Secret, err = s.openCredential(sealed, user, c); err != nil {
		return fmt.Errorf("store: the %s secret of %q does not open under store.key (altered or moved row)", m, user)
	}
	if !f(&c) {
		return errUnchanged
	}
	if sealed, err = s.sealCredential(user, c); err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, s.q(`UPDATE credentials SET secret = ?, counter = ?, active = ?, last_used_at = CASE WHEN ? THEN ? ELSE last_used_at END
		WHERE "user" = ? AND method = ?`), sealed, int64(c.Counter), b2i(c.Active), m == factors.HOTP && c.Counter != uint64(counter), s.now().Unix(), user, string(m))
	if err != nil {
		return s.writeError(err)
	}
	return s.commit(tx)
}

// errUnchanged is change's answer when f declined to write.
var errUnchanged = errors.New("store: unchanged")

// SetDefault makes m the user's default method. m is a stored
// credential (totp, hotp) or a method whose means live in the directory
// (sms, voice).
func (s *Store) SetDefault(ctx context.Context, user string, m factors.Method) error {
	if m == factors.Cert || m == factors.Recovery {
		return fmt.Errorf("store: %s cannot be the default method", m)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return s.writeError(err)
	}
	defer tx.Rollback()
	stored := m == factors.TOTP || m == factors.HOTP
	if stored {
		var n int
		if err := tx.QueryRowContext(ctx, s.q(`SELECT count(*) FROM credentials WHERE "user" = ? AND method = ?`), user, string(m)).Scan(&n); err != nil {
			return s.writeError(err)
		}
		if n == 0 {
			return ErrNotFound
		}
	}
	if _, err := tx.ExecContext(ctx, s.q(`UPDATE credentials SET is_default = CASE WHEN method = ? THEN 1 ELSE 0 END WHERE "user" = ?`), string(m), user); err != nil {
		return s.writeError(err)
	}
	def := string(m)
	if stored {
		def = ""
	}
	if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO users (name, default_method) VALUES (?, ?)
		ON CONFLICT (name) DO UPDATE SET default_method = excluded.default_method`), user, def); err != nil {
		return s.writeError(err)
	}
	return s.commit(tx)
}

// Remove deletes the user's credential for m, or every credential when m
// is empty, and returns how many went. A remaining credential becomes the
// default if the default went.
func (s *Store) Remove(ctx context.Context, user string, m factors.Method) (int, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, s.writeError(err)
	}
	defer tx.Rollback()
	var res sql.Result
	if m == "" {
		res, err = tx.ExecContext(ctx, s.q(`DELETE FROM credentials WHERE "user" = ?`), user)
	} else {
		res, err = tx.ExecContext(ctx, s.q(`DELETE FROM credentials WHERE "user" = ? AND method = ?`), user, string(m))
	}
	if err != nil {
		return 0, s.writeError(err)
	}
	n, _ := res.RowsAffected()
	_, err = tx.ExecContext(ctx, s.q(`UPDATE credentials SET is_default = 1 WHERE "user" = ?1
		AND NOT EXISTS (SELECT 1 FROM credentials WHERE "user" = ?1 AND is_default = 1)
		AND method = (SELECT method FROM credentials WHERE "user" = ?1 AND method NOT IN ('cert', 'recovery') ORDER BY created_at LIMIT 1)`), user)
	if err != nil {
		return 0, s.writeError(err)
	}
	return int(n), s.commit(tx)
}

// ResetLockout starts the user's lockout counters afresh (a new epoch),
// and lifts a block the user asked for ("This wasn't me", Report).
func (s *Store) ResetLockout(ctx context.Context, user string) error {
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO users (name, lockout_epoch) VALUES (?, 1)
		ON CONFLICT (name) DO UPDATE SET lockout_epoch = users.lockout_epoch + 1, reported_at = 0`), user)
	if err != nil {
		return s.writeError(err)
	}
	return nil
}

// AdvanceCounter moves the HOTP counter from from to to if it is still
// from: of two logins racing with the same code, one wins (the write
// lock is held from the read to the write). The secret is sealed again
// with the new counter, so that the counter cannot be set back in the
// file to replay an old code.
func (s *Store) AdvanceCounter(ctx context.Context, user string, from, to uint64) (bool, error) {
	return s.changeIf(ctx, user, factors.HOTP, func(c *factors.Credential) bool {
		if c.Counter != from {
			return false
		}
		c.Counter = to
		return true
	})
}

// changeIf is change for a compare-and-set: it reports whether f found
// what it looked for and the change was written; a user without the
// credential is no error, only no change.
func (s *Store) changeIf(ctx context.Context, user string, m factors.Method, f func(*factors.Credential) bool) (bool, error) {
	err := s.change(ctx, user, m, f)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, errUnchanged), errors.Is(err, ErrNotFound):
		return false, nil
	}
	return false, err
}

// lastUsedGranularity limits last-used writes to one per credential per
// hour, so a TOTP login costs no write at all most of the time.
const lastUsedGranularity = time.Hour

// Used records a successful use of the credential. It is written with
// others a few seconds later, and at most once an hour per credential.
func (s *Store) Used(_ context.Context, user string, m factors.Method) error {
	s.usedMu.Lock()
	s.used[usedKey{user, m}] = s.now().Unix()
	s.usedMu.Unlock()
	return nil
}

// flushUsed writes the recorded uses in one transaction. A batch that
// cannot be written (the disk full or read-only) is dropped: last-used
// times are information for admins, and the next use records them again.
func (s *Store) flushUsed() {
	s.usedMu.Lock()
	batch, signins := s.used, s.signins
	s.used, s.signins = map[usedKey]int64{}, nil
	s.usedMu.Unlock()
	if len(batch) == 0 && len(signins) == 0 {
		return
	}
	ctx := context.Background()
	tx, err := s.db.BeginTx(ctx, nil) // BEGIN IMMEDIATE: the write lock is held from here
	if err != nil {
		return
	}
	defer tx.Rollback()
	// Read with the write lock held, the header counts every commit
	// before this one; see cache.ownCommit. Neither last-use times nor
	// sign-ins change what a lookup reads.
	before, ok := s.cache.mark(ctx)
	update, err := tx.PrepareContext(ctx, s.q(`UPDATE credentials SET last_used_at = ? WHERE "user" = ? AND method = ? AND last_used_at < ?`))
	if err != nil {
		return
	}
	defer update.Close()
	changed := int64(0)
	for k, at := range batch {
		res, err := update.ExecContext(ctx, at, k.user, string(k.method), at-int64(lastUsedGranularity/time.Second))
		if err != nil {
			return
		}
		n, _ := res.RowsAffected()
		changed += n
	}
	n, err := s.writeSignIns(ctx, tx, signins)
	if err != nil {
		return
	}
	changed += n
	if changed == 0 {
		// Nothing to write (every use was recorded within the hour). A
		// commit of nothing leaves the header as it was, so another
		// process's commit right after it would pass for this one's in
		// ownCommit, and the cache would hide it: give the lock back
		// without one.
		return
	}
	if tx.Commit() != nil {
		return
	}
	if after, ok2 := s.cache.mark(ctx); ok && ok2 {
		s.cache.ownCommit(before, after)
	}
}

// Import stores every credential in one transaction: all or nothing.
func (s *Store) Import(ctx context.Context, users []string, creds []factors.Credential, replace bool) error {
	if len(users) != len(creds) {
		return errors.New("store: import: users and credentials differ in number")
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return s.writeError(err)
	}
	defer tx.Rollback()
	for i := range users {
		if err := s.put(ctx, tx, users[i], creds[i], replace); err != nil {
			return fmt.Errorf("entry %d (%s): %w", i+1, users[i], err)
		}
	}
	return s.commit(tx)
}

// Names lists every user the store holds anything for, in order.
func (s *Store) Names(ctx context.Context) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT name FROM users UNION SELECT "user" FROM credentials ORDER BY 1`))
	if err != nil {
		return nil, fmt.Errorf("store: list users: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("store: list users: %w", err)
		}
		out = append(out, n)
	}
	return out, rows.Err()
}

// ErrTaken means the new name of a rename already holds something.
var ErrTaken = errors.New("store: the new name already holds credentials or a lockout epoch")

// Rename moves everything of user from to to (a store written before
// users were keyed on their directory entry's name), sealing each secret
// again for its new owner, in one transaction. to must hold nothing.
func (s *Store) Rename(ctx context.Context, from, to string) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return s.writeError(err)
	}
	defer tx.Rollback()
	var taken int
	if err := tx.QueryRowContext(ctx, s.q(`SELECT (SELECT count(*) FROM users WHERE name = ?1) + (SELECT count(*) FROM credentials WHERE "user" = ?1)`),
		to).Scan(&taken); err != nil {
		return s.writeError(err)
	}
	if taken > 0 {
		return fmt.Errorf("%w: %s", ErrTaken, to)
	}
	creds, err := s.sealedRows(ctx, tx, `"user" = ?`, from)
	if err != nil {
		return s.writeError(err)
	}
	for _, r := range creds {
		if r.seal != sealVersion {
			return fmt.Errorf("store: the %s secret of %q is sealed as version %d", r.c.Method, from, r.seal)
		}
	}
	if _, err := tx.ExecContext(ctx, s.q(`UPDATE users SET name = ? WHERE name = ?`), to, from); err != nil {
		return s.writeError(err)
	}
	for _, r := range creds {
		secret, err := s.openCredential(r.sealed, from, r.c)
		if err != nil {
			return fmt.Errorf("store: the %s secret of %q does not open under store.key (altered or moved row)", r.c.Method, from)
		}
		r.c.Secret = secret
		sealed, err := s.sealCredential(to, r.c)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE credentials SET "user" = ?, secret = ? WHERE "user" = ? AND method = ?`),
			to, sealed, from, string(r.c.Method)); err != nil {
			return s.writeError(err)
		}
	}
	return s.commit(tx)
}
