package store

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/mfabridge/mfabridge/factors"
)

var (
	key1 = bytes.Repeat([]byte{0x11}, 32)
	key2 = bytes.Repeat([]byte{0x22}, 32)
)

// newStore opens a new store and returns it with where it lives: a
// SQLite file, or under TestPostgres (pg_test.go) a PostgreSQL database
// of the test's own, named by its connection string.
func newStore(t *testing.T) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "store.db")
	if onPostgres(t) {
		path = newPGDatabase(t)
	}
	s, err := reopen(path, key1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

// reopen opens the store at path (a file or a connection string) again.
func reopen(path string, key []byte) (*Store, error) {
	if strings.HasPrefix(path, "postgres://") {
		return OpenPostgres(path, key)
	}
	return Open(path, key)
}

// twoHandles opens a store and a second handle on its file, as the
// server and an admin command have.
func twoHandles(t *testing.T) (server, cli *Store) {
	t.Helper()
	server, path := newStore(t)
	cli, err := reopen(path, key1)
	if err != nil {
		t.Fatalf("second handle: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	return server, cli
}

func totpCred(secret string) factors.Credential {
	return factors.Credential{Method: factors.TOTP, Secret: []byte(secret), Algorithm: "SHA1", Digits: 6, Period: 30, Active: true}
}

func hotpCred(secret string, counter uint64) factors.Credential {
	return factors.Credential{Method: factors.HOTP, Secret: []byte(secret), Algorithm: "SHA1", Digits: 6, Counter: counter, Active: true}
}

func enrolment(t *testing.T, s *Store, user string) *factors.Enrolment {
	t.Helper()
	e, err := s.Enrolment(context.Background(), user)
	if err != nil {
		t.Fatalf("Enrolment(%q): %v", user, err)
	}
	return e
}

func defaultOf(e *factors.Enrolment) factors.Method {
	var out factors.Method
	for _, c := range e.Credentials {
		if c.Default {
			if out != "" {
				return "two defaults"
			}
			out = c.Method
		}
	}
	return out
}

// rawDB opens the file with a second, plain database/sql handle.
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	driver := "sqlite"
	if strings.HasPrefix(path, "postgres://") {
		driver = "pgx"
	}
	db, err := sql.Open(driver, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestOpen(t *testing.T) {
	t.Run("creates, then reopens with the same key", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "store.db")
		s, err := Open(path, key1)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Put(context.Background(), "alice", totpCred("alice-secret-0123456"), false); err != nil {
			t.Fatal(err)
		}
		if err := s.Ping(context.Background()); err != nil {
			t.Errorf("Ping: %v", err)
		}
		s.Close()
		s, err = Open(path, key1)
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		defer s.Close()
		if e := enrolment(t, s, "alice"); len(e.Credentials) != 1 {
			t.Errorf("after reopening: %d credentials", len(e.Credentials))
		}
	})

	t.Run("wrong key is ErrWrongKey and changes nothing", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "store.db")
		s, err := Open(path, key1)
		if err != nil {
			t.Fatal(err)
		}
		s.Put(context.Background(), "alice", totpCred("alice-secret-0123456"), false)
		s.Close()
		before := readFile(t, path)
		if _, err := Open(path, key2); !errors.Is(err, ErrWrongKey) {
			t.Fatalf("Open with another key: %v, want ErrWrongKey", err)
		}
		if !bytes.Equal(before, readFile(t, path)) {
			t.Errorf("the store file changed after a wrong key")
		}
		if _, err := os.Stat(path + "-wal"); err == nil {
			if n := len(readFile(t, path+"-wal")); n != 0 {
				t.Errorf("a %d-byte write-ahead log was left after a wrong key", n)
			}
		}
		// The right key still opens it.
		s, err = Open(path, key1)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if e := enrolment(t, s, "alice"); len(e.Credentials) != 1 {
			t.Errorf("after a wrong key: %d credentials", len(e.Credentials))
		}
	})

	t.Run("a file that is not SQLite is refused and unchanged", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "store.db")
		junk := bytes.Repeat([]byte("this is not an SQLite database, only text. "), 200)
		if err := os.WriteFile(path, junk, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Open(path, key1)
		if err == nil || !strings.Contains(err.Error(), "not an SQLite database") || !strings.Contains(err.Error(), path) {
			t.Fatalf("Open of a text file: %v, want an error naming the file and saying it is not SQLite", err)
		}
		if !bytes.Equal(junk, readFile(t, path)) {
			t.Errorf("the file changed")
		}
	})

	t.Run("an SQLite file of another program is refused", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "other.db")
		db := rawDB(t, path)
		if _, err := db.Exec(`CREATE TABLE things (x INTEGER)`); err != nil {
			t.Fatal(err)
		}
		db.Close()
		before := readFile(t, path)
		_, err := Open(path, key1)
		if err == nil || !strings.Contains(err.Error(), "not an mfabridge store") {
			t.Fatalf("Open of another program's database: %v", err)
		}
		if after := readFile(t, path); !bytes.Equal(before, after) {
			// Bytes 18 and 19 of the header are the write and read format
			// versions: 1 for a rollback journal, 2 for WAL.
			t.Errorf("the file changed although the error says nothing was changed (header format versions %d,%d became %d,%d)",
				before[18], before[19], after[18], after[19])
		}
	})

	t.Run("bad arguments", func(t *testing.T) {
		dir := t.TempDir()
		for name, tc := range map[string]struct {
			path string
			key  []byte
			want string
		}{
			"short key":         {filepath.Join(dir, "a.db"), key1[:16], "32 bytes"},
			"no path":           {"", key1, "no path"},
			"missing directory": {filepath.Join(dir, "nope", "a.db"), key1, "does not exist"},
		} {
			t.Run(name, func(t *testing.T) {
				if _, err := Open(tc.path, tc.key); err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("got %v, want an error containing %q", err, tc.want)
				}
			})
		}
	})

	t.Run("schema version recorded", func(t *testing.T) {
		_, path := newStore(t)
		var v string
		if err := rawDB(t, path).QueryRow(`SELECT CAST(value AS TEXT) FROM meta WHERE name = 'schema_version'`).Scan(&v); err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprint(len(sqliteMigrations)); v != want {
			t.Errorf("schema_version = %q, want %q", v, want)
		}
	})

	t.Run("a store from a newer mfabridge is refused", func(t *testing.T) {
		s, path := newStore(t)
		s.Close()
		if _, err := rawDB(t, path).Exec(`UPDATE meta SET value = '99' WHERE name = 'schema_version'`); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(path, key1); err == nil || !strings.Contains(err.Error(), "newer") {
			t.Errorf("Open of a newer schema: %v", err)
		}
	})
}

func TestPutAndEnrolment(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)

	if e := enrolment(t, s, "nobody"); len(e.Credentials) != 0 || e.LockoutEpoch != 0 {
		t.Errorf("unknown user: %+v", e)
	}

	c := totpCred("alice-secret-0123456")
	if err := s.Put(ctx, "alice", c, false); err != nil {
		t.Fatal(err)
	}
	e := enrolment(t, s, "alice")
	if len(e.Credentials) != 1 {
		t.Fatalf("%d credentials", len(e.Credentials))
	}
	got := e.Credentials[0]
	if got.Method != factors.TOTP || !bytes.Equal(got.Secret, c.Secret) || got.Algorithm != "SHA1" || got.Digits != 6 ||
		got.Period != 30 || !got.Active || !got.Default || got.Created.IsZero() || !got.LastUsed.IsZero() {
		t.Errorf("round trip: %+v (secret equal: %t)", got, bytes.Equal(got.Secret, c.Secret))
	}

	t.Run("secret is not stored in the clear", func(t *testing.T) {
		_, path := newStore(t)
		s2, err := reopen(path, key1)
		if err != nil {
			t.Fatal(err)
		}
		defer s2.Close()
		s2.Put(ctx, "bob", totpCred("bob-clear-text-secret"), false)
		var sealed []byte
		if err := rawDB(t, path).QueryRow(`SELECT secret FROM credentials WHERE "user" = 'bob'`).Scan(&sealed); err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(sealed, []byte("bob-clear-text-secret")) {
			t.Errorf("the secret is stored in the clear")
		}
	})

	t.Run("ErrExists without replace", func(t *testing.T) {
		err := s.Put(ctx, "alice", totpCred("another-secret-01234"), false)
		if !errors.Is(err, ErrExists) {
			t.Fatalf("second TOTP without replace: %v, want ErrExists", err)
		}
		if e := enrolment(t, s, "alice"); !bytes.Equal(e.Credentials[0].Secret, c.Secret) {
			t.Errorf("a refused Put changed the secret")
		}
		if err := s.Put(ctx, "alice", totpCred("another-secret-01234"), true); err != nil {
			t.Fatalf("with replace: %v", err)
		}
		e := enrolment(t, s, "alice")
		if len(e.Credentials) != 1 || string(e.Credentials[0].Secret) != "another-secret-01234" || !e.Credentials[0].Default {
			t.Errorf("after replace: %+v", e.Credentials)
		}
	})

	t.Run("first credential is the default; SetDefault; Activate", func(t *testing.T) {
		pending := hotpCred("carol-hotp-seed-0123", 5)
		pending.Active = false
		if err := s.Put(ctx, "carol", pending, false); err != nil {
			t.Fatal(err)
		}
		if err := s.Put(ctx, "carol", totpCred("carol-totp-secret-01"), false); err != nil {
			t.Fatal(err)
		}
		e := enrolment(t, s, "carol")
		if len(e.Credentials) != 2 || defaultOf(e) != factors.HOTP {
			t.Fatalf("default %q, want hotp (the first): %+v", defaultOf(e), e.Credentials)
		}
		if _, ok := e.Credential(factors.HOTP); ok {
			t.Errorf("a pending credential is returned as active")
		}
		if err := s.Activate(ctx, "carol", factors.HOTP); err != nil {
			t.Fatal(err)
		}
		if cr, ok := enrolment(t, s, "carol").Credential(factors.HOTP); !ok || cr.Counter != 5 {
			t.Errorf("after Activate: %+v %v", cr, ok)
		}
		if err := s.Activate(ctx, "carol", factors.SMS); !errors.Is(err, ErrNotFound) {
			t.Errorf("Activate of a missing method: %v", err)
		}
		if err := s.SetDefault(ctx, "carol", factors.TOTP); err != nil {
			t.Fatal(err)
		}
		if d := defaultOf(enrolment(t, s, "carol")); d != factors.TOTP {
			t.Errorf("after SetDefault(totp): default %q", d)
		}
		if err := s.SetDefault(ctx, "dave", factors.HOTP); !errors.Is(err, ErrNotFound) {
			t.Errorf("SetDefault of a credential not held: %v, want ErrNotFound", err)
		}
		if d := defaultOf(enrolment(t, s, "carol")); d != factors.TOTP {
			t.Errorf("a refused SetDefault changed the default to %q", d)
		}
		// A text message needs no stored credential: its number is in
		// the directory.
		if err := s.SetDefault(ctx, "carol", factors.SMS); err != nil {
			t.Fatal(err)
		}
		if e := enrolment(t, s, "carol"); e.Default != factors.SMS || defaultOf(e) != "" {
			t.Errorf("after SetDefault(sms): Default %q, credential default %q", e.Default, defaultOf(e))
		}
		if err := s.SetDefault(ctx, "carol", factors.TOTP); err != nil {
			t.Fatal(err)
		}
		if e := enrolment(t, s, "carol"); e.Default != "" || defaultOf(e) != factors.TOTP {
			t.Errorf("back to totp: Default %q, credential default %q", e.Default, defaultOf(e))
		}
		if err := s.SetDefault(ctx, "nobody", factors.TOTP); !errors.Is(err, ErrNotFound) {
			t.Errorf("SetDefault for an unknown user: %v, want ErrNotFound", err)
		}
	})

	t.Run("Remove moves the default to the remaining one", func(t *testing.T) {
		s.Put(ctx, "dave", totpCred("dave-totp-secret-012"), false)
		s.Put(ctx, "dave", hotpCred("dave-hotp-seed-01234", 0), false)
		if d := defaultOf(enrolment(t, s, "dave")); d != factors.TOTP {
			t.Fatalf("default %q", d)
		}
		n, err := s.Remove(ctx, "dave", factors.TOTP)
		if err != nil || n != 1 {
			t.Fatalf("Remove: %d %v", n, err)
		}
		e := enrolment(t, s, "dave")
		if len(e.Credentials) != 1 || defaultOf(e) != factors.HOTP {
			t.Errorf("after removing the default: %+v", e.Credentials)
		}
		if n, err := s.Remove(ctx, "dave", factors.TOTP); err != nil || n != 0 {
			t.Errorf("Remove of a method not held: %d %v", n, err)
		}
		s.Put(ctx, "dave", totpCred("dave-totp-secret-012"), false)
		if d := defaultOf(enrolment(t, s, "dave")); d != factors.HOTP {
			t.Errorf("a new credential took the default from hotp: %q", d)
		}
		if n, err := s.Remove(ctx, "dave", ""); err != nil || n != 2 {
			t.Errorf("Remove all: %d %v", n, err)
		}
		if e := enrolment(t, s, "dave"); len(e.Credentials) != 0 {
			t.Errorf("after Remove all: %+v", e.Credentials)
		}
	})

	t.Run("Used records last use", func(t *testing.T) {
		if err := s.Used(ctx, "alice", factors.TOTP); err != nil {
			t.Fatal(err)
		}
		// Uses are written in batches, a few seconds apart.
		s.flushUsed()
		if cr, _ := enrolment(t, s, "alice").Credential(factors.TOTP); cr.LastUsed.IsZero() {
			t.Errorf("LastUsed not set")
		}
	})
}

func TestAdvanceCounterIsCompareAndSet(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	if err := s.Put(ctx, "alice", hotpCred("alice-hotp-seed-0123", 5), false); err != nil {
		t.Fatal(err)
	}
	const racers = 20
	var wins atomic.Int32
	var wg sync.WaitGroup
	errs := make(chan error, racers)
	start := make(chan struct{})
	for range racers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			ok, err := s.AdvanceCounter(ctx, "alice", 5, 9)
			if err != nil {
				errs <- err
			}
			if ok {
				wins.Add(1)
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("AdvanceCounter: %v", err)
	}
	if n := wins.Load(); n != 1 {
		t.Errorf("%d of %d racers advanced the counter from 5, want exactly 1", n, racers)
	}
	cr, _ := enrolment(t, s, "alice").Credential(factors.HOTP)
	if cr.Counter != 9 || cr.LastUsed.IsZero() {
		t.Errorf("after the race: counter %d, last used %v", cr.Counter, cr.LastUsed)
	}
	if ok, err := s.AdvanceCounter(ctx, "alice", 5, 7); ok || err != nil {
		t.Errorf("advance from a stale counter: %v %v", ok, err)
	}
	if ok, err := s.AdvanceCounter(ctx, "nobody", 0, 1); ok || err != nil {
		t.Errorf("advance for a user without HOTP: %v %v", ok, err)
	}
}

func TestResetLockoutBumpsEpoch(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	for _, user := range []string{"alice", "never-enrolled"} {
		if user == "alice" {
			s.Put(ctx, user, totpCred("alice-secret-0123456"), false)
		}
		if e := enrolment(t, s, user).LockoutEpoch; e != 0 {
			t.Errorf("%s: initial epoch %d", user, e)
		}
		for want := int64(1); want <= 3; want++ {
			if err := s.ResetLockout(ctx, user); err != nil {
				t.Fatal(err)
			}
			if e := enrolment(t, s, user).LockoutEpoch; e != want {
				t.Errorf("%s: epoch %d after %d resets", user, e, want)
			}
		}
	}
	if cs := enrolment(t, s, "alice").Credentials; len(cs) != 1 {
		t.Errorf("reset touched the credentials: %+v", cs)
	}
}

func TestImportIsAllOrNothing(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	if err := s.Put(ctx, "zed", totpCred("zed-existing-secret0"), false); err != nil {
		t.Fatal(err)
	}
	users := []string{"ann", "ben", "zed"}
	creds := []factors.Credential{totpCred("ann-secret-012345678"), hotpCred("ben-seed-01234567890", 3), totpCred("zed-new-secret-01234")}
	err := s.Import(ctx, users, creds, false)
	if !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), "entry 3") {
		t.Fatalf("Import with a clash in entry 3: %v", err)
	}
	for _, u := range []string{"ann", "ben"} {
		if e := enrolment(t, s, u); len(e.Credentials) != 0 {
			t.Errorf("%s was imported although the import failed: %+v", u, e.Credentials)
		}
	}
	if e := enrolment(t, s, "zed"); string(e.Credentials[0].Secret) != "zed-existing-secret0" {
		t.Errorf("zed's credential changed")
	}
	// A duplicate inside the import fails it too.
	if err := s.Import(ctx, []string{"ann", "ann"}, []factors.Credential{totpCred("ann-secret-012345678"), totpCred("ann-secret-876543210")}, false); !errors.Is(err, ErrExists) {
		t.Errorf("Import with a duplicate: %v", err)
	}
	if e := enrolment(t, s, "ann"); len(e.Credentials) != 0 {
		t.Errorf("ann imported by a failed import")
	}
	if err := s.Import(ctx, users[:2], creds[:1], false); err == nil {
		t.Errorf("Import with mismatched lengths succeeded")
	}

	if err := s.Import(ctx, users, creds, true); err != nil {
		t.Fatalf("Import with replace: %v", err)
	}
	for i, u := range users {
		cr, ok := enrolment(t, s, u).Credential(creds[i].Method)
		if !ok || !bytes.Equal(cr.Secret, creds[i].Secret) {
			t.Errorf("%s after import: %+v %v", u, cr, ok)
		}
	}
	if cr, _ := enrolment(t, s, "ben").Credential(factors.HOTP); cr.Counter != 3 {
		t.Errorf("ben's counter %d, want 3", cr.Counter)
	}
}

func TestSealedSecretIsBoundToItsRow(t *testing.T) {
	ctx := context.Background()
	s, path := newStore(t)
	s.Put(ctx, "alice", totpCred("alice-secret-0123456"), false)
	s.Put(ctx, "bob", totpCred("bob-secret-012345678"), false)
	s.Put(ctx, "bob", hotpCred("bob-hotp-seed-012345", 0), false)
	db := rawDB(t, path)

	// alice's sealed TOTP secret copied onto bob's TOTP row.
	if _, err := db.Exec(`UPDATE credentials SET secret = (SELECT secret FROM credentials WHERE user = 'alice' AND method = 'totp')
		WHERE user = 'bob' AND method = 'totp'`); err != nil {
		t.Fatal(err)
	}
	if e, err := s.Enrolment(ctx, "bob"); err == nil {
		t.Fatalf("a secret moved to another user opened: %+v", e.Credentials)
	} else if !strings.Contains(err.Error(), "does not open") {
		t.Errorf("error %v does not say the secret does not open", err)
	}
	if _, err := s.Enrolment(ctx, "alice"); err != nil {
		t.Errorf("alice's own row: %v", err)
	}

	// The same user's TOTP secret moved to their HOTP row.
	s.Put(ctx, "carol", totpCred("carol-totp-secret-01"), false)
	s.Put(ctx, "carol", hotpCred("carol-hotp-seed-0123", 0), false)
	if _, err := db.Exec(`UPDATE credentials SET secret = (SELECT secret FROM credentials WHERE user = 'carol' AND method = 'totp')
		WHERE user = 'carol' AND method = 'hotp'`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Enrolment(ctx, "carol"); err == nil {
		t.Errorf("a secret moved to another method opened")
	}

	// One flipped bit.
	s.Put(ctx, "dan", totpCred("dan-secret-012345678"), false)
	if _, err := db.Exec(`UPDATE credentials SET secret = CAST(substr(secret, 1, 20) AS BLOB) || x'00' || CAST(substr(secret, 22) AS BLOB) WHERE user = 'dan'`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Enrolment(ctx, "dan"); err == nil {
		t.Errorf("an altered secret opened")
	}
}

func TestTwoHandlesOnOneFile(t *testing.T) {
	ctx := context.Background()
	server, cli := twoHandles(t)

	// The CLI enrols; the server sees it at once.
	if err := cli.Put(ctx, "alice", hotpCred("alice-hotp-seed-0123", 0), false); err != nil {
		t.Fatal(err)
	}
	if _, ok := enrolment(t, server, "alice").Credential(factors.HOTP); !ok {
		t.Fatalf("the server does not see the CLI's enrolment")
	}
	// Writes from both at once: the server advancing counters, the CLI
	// enrolling others. None may fail with "database is locked".
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := uint64(0); i < 30; i++ {
			if ok, err := server.AdvanceCounter(ctx, "alice", i, i+1); err != nil || !ok {
				errs <- fmt.Errorf("AdvanceCounter %d: %v %v", i, ok, err)
			}
		}
	}()
	go func() {
		defer wg.Done()
		for i := range 30 {
			if err := cli.Put(ctx, fmt.Sprintf("user%02d", i), totpCred("some-secret-01234567"), false); err != nil {
				errs <- err
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if cr, _ := enrolment(t, cli, "alice").Credential(factors.HOTP); cr.Counter != 30 {
		t.Errorf("counter seen by the CLI: %d, want 30", cr.Counter)
	}
	if e := enrolment(t, server, "user29"); len(e.Credentials) != 1 {
		t.Errorf("the server does not see user29")
	}
	if err := cli.ResetLockout(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if e := enrolment(t, server, "alice").LockoutEpoch; e != 1 {
		t.Errorf("epoch seen by the server: %d", e)
	}
}

// Every column that decides how a secret is used is sealed with it: set
// back an HOTP counter, make a pending credential active or change its
// digits in the file, and the row no longer opens.
func TestSealCoversHowASecretIsUsed(t *testing.T) {
	ctx := context.Background()
	for name, tamper := range map[string]string{
		"counter set back":    `UPDATE credentials SET counter = counter - 5 WHERE method = 'hotp'`,
		"made active":         `UPDATE credentials SET active = 1 WHERE method = 'totp'`,
		"digits changed":      `UPDATE credentials SET digits = 8`,
		"algorithm changed":   `UPDATE credentials SET algorithm = 'SHA256'`,
		"period changed":      `UPDATE credentials SET period = 60 WHERE method = 'totp'`,
		"sealed as version 1": `UPDATE credentials SET seal = 1`,
	} {
		t.Run(name, func(t *testing.T) {
			s, path := newStore(t)
			pending := totpCred("pending-secret-01234")
			pending.Active = false
			if err := s.Put(ctx, "alice", pending, false); err != nil {
				t.Fatal(err)
			}
			if err := s.Put(ctx, "alice", hotpCred("alice-hotp-seed-0123", 10), false); err != nil {
				t.Fatal(err)
			}
			enrolment(t, s, "alice")
			if _, err := rawDB(t, path).Exec(tamper); err != nil {
				t.Fatal(err)
			}
			if e, err := s.Enrolment(ctx, "alice"); err == nil {
				t.Fatalf("the altered row opened: %+v", e.Credentials)
			}
		})
	}
}

// Activating and advancing seal the secret again; what they wrote opens.
func TestChangesAreSealed(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	pending := totpCred("pending-secret-01234")
	pending.Active = false
	s.Put(ctx, "alice", pending, false)
	s.Put(ctx, "alice", hotpCred("alice-hotp-seed-0123", 10), false)
	if err := s.Activate(ctx, "alice", factors.TOTP); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.AdvanceCounter(ctx, "alice", 10, 13); !ok || err != nil {
		t.Fatalf("AdvanceCounter: %v %v", ok, err)
	}
	if ok, err := s.AdvanceCounter(ctx, "alice", 10, 14); ok || err != nil {
		t.Errorf("a second advance from 10: %v %v, want false", ok, err)
	}
	e := enrolment(t, s, "alice")
	if c, ok := e.Credential(factors.TOTP); !ok || string(c.Secret) != "pending-secret-01234" {
		t.Errorf("the activated TOTP credential: %+v %v", c, ok)
	}
	if c, ok := e.Credential(factors.HOTP); !ok || c.Counter != 13 || string(c.Secret) != "alice-hotp-seed-0123" {
		t.Errorf("the advanced HOTP credential: %+v %v", c, ok)
	}
	if ok, err := s.AdvanceCounter(ctx, "nobody", 0, 1); ok || err != nil {
		t.Errorf("advance for nobody: %v %v", ok, err)
	}
}

// A store sealed with the additional data of earlier versions (user and
// method only) is sealed again when a newer mfabridge first opens it,
// and every credential still opens.
func TestOldSealsAreMigrated(t *testing.T) {
	ctx := context.Background()
	s, path := newStore(t)
	s.Put(ctx, "alice", totpCred("alice-secret-0123456"), false)
	s.Put(ctx, "bob", hotpCred("bob-hotp-seed-012345", 7), false)
	s.Close()
	// Turn the file into what schema version 2 wrote.
	db := rawDB(t, path)
	for _, u := range []struct{ user, method, secret string }{{"alice", "totp", "alice-secret-0123456"}, {"bob", "hotp", "bob-hotp-seed-012345"}} {
		old, err := s.seal([]byte(u.secret), u.user, u.method)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(`UPDATE credentials SET secret = ? WHERE user = ? AND method = ?`, old, u.user, u.method); err != nil {
			t.Fatal(err)
		}
	}
	for _, q := range []string{`ALTER TABLE credentials DROP COLUMN seal`, `DROP TABLE invites`, `DROP TABLE signins`, `DROP TABLE tokens`,
		`ALTER TABLE users DROP COLUMN reported_at`, `UPDATE meta SET value = '2' WHERE name = 'schema_version'`} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	s2, err := Open(path, key1)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if c, ok := enrolment(t, s2, "alice").Credential(factors.TOTP); !ok || string(c.Secret) != "alice-secret-0123456" {
		t.Errorf("alice after the migration: %+v %v", c, ok)
	}
	if c, ok := enrolment(t, s2, "bob").Credential(factors.HOTP); !ok || c.Counter != 7 || string(c.Secret) != "bob-hotp-seed-012345" {
		t.Errorf("bob after the migration: %+v %v", c, ok)
	}
}

func TestRename(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	s.Put(ctx, "alice@example.org", totpCred("alice-secret-0123456"), false)
	s.Put(ctx, "alice@example.org", hotpCred("alice-hotp-seed-0123", 3), false)
	s.ResetLockout(ctx, "alice@example.org")
	s.Put(ctx, "bob", totpCred("bob-secret-012345678"), false)
	if err := s.Rename(ctx, "alice@example.org", "bob"); !errors.Is(err, ErrTaken) {
		t.Errorf("rename onto bob: %v, want ErrTaken", err)
	}
	if err := s.Rename(ctx, "alice@example.org", "alice"); err != nil {
		t.Fatal(err)
	}
	e := enrolment(t, s, "alice")
	if len(e.Credentials) != 2 || e.LockoutEpoch != 1 {
		t.Errorf("alice after the rename: %+v", e)
	}
	if e := enrolment(t, s, "alice@example.org"); len(e.Credentials) != 0 {
		t.Errorf("the old name still holds %+v", e.Credentials)
	}
	names, err := s.Names(ctx)
	if err != nil || strings.Join(names, ",") != "alice,bob" {
		t.Errorf("Names = %q, %v", names, err)
	}
}
