package store

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mfabridge/mfabridge/factors"
	"github.com/mfabridge/mfabridge/test/harness"
)

// The store on a real PostgreSQL (the package postgresql; scripts/deps
// installs it), one cluster for the package, one database per test.

var pg struct {
	once sync.Once
	p    *harness.Postgres
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if pg.p != nil {
		pg.p.Remove()
	}
	os.Exit(code)
}

func postgresCluster(t testing.TB) *harness.Postgres {
	t.Helper()
	pg.once.Do(func() { pg.p, pg.err = harness.StartPostgres() })
	if pg.err != nil {
		t.Fatal(pg.err)
	}
	return pg.p
}

// newPGDatabase returns the connection string of a new, empty database.
func newPGDatabase(t testing.TB) string {
	t.Helper()
	p := postgresCluster(t)
	db, err := p.NewDatabase(t.Name())
	if err != nil {
		t.Fatal(err)
	}
	return p.DSN(db)
}

func onPostgres(t *testing.T) bool { return strings.HasPrefix(t.Name(), "TestPostgres/") }

// TestPostgres runs the store's tests that hold for any database on
// PostgreSQL, each in a database of its own.
func TestPostgres(t *testing.T) {
	for name, f := range map[string]func(*testing.T){
		"PutAndEnrolment":            TestPutAndEnrolment,
		"AdvanceCounterIsCAS":        TestAdvanceCounterIsCompareAndSet,
		"ResetLockoutBumpsEpoch":     TestResetLockoutBumpsEpoch,
		"ImportIsAllOrNothing":       TestImportIsAllOrNothing,
		"TwoHandles":                 TestTwoHandlesOnOneFile,
		"SealCoversHowASecretIsUsed": TestSealCoversHowASecretIsUsed,
		"ChangesAreSealed":           TestChangesAreSealed,
		"Rename":                     TestRename,
		"InviteWorksOnce":            TestInviteWorksOnce,
		"RecoveryCodesAreSpentOnce":  TestRecoveryCodesAreSpentOnce,
		"SignInsAndReports":          TestSignInsAndReports,
		"ClaimToken":                 TestClaimToken,
		"CacheSeesEveryChange":       TestCacheSeesEveryChange,
		"CacheUnderConcurrentWrites": TestCacheUnderConcurrentWrites,
		"InstancesStartTogether":     testPGInstancesStartTogether,
		"WrongKeyAndBadDSN":          testPGWrongKeyAndBadDSN,
		"LastUseKeepsTheCache":       testPGLastUseKeepsTheCache,
		"LostAndBack":                testPGLostAndBack,
	} {
		t.Run(name, f)
	}
}

// Four instances starting on one new database at once: the schema is
// made once, every one opens it, and each sees what another wrote.
func testPGInstancesStartTogether(t *testing.T) {
	dsn := newPGDatabase(t)
	var wg sync.WaitGroup
	stores := make([]*Store, 4)
	errs := make([]error, 4)
	for i := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stores[i], errs[i] = OpenPostgres(dsn, key1)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("instance %d: %v", i, err)
		}
		defer stores[i].Close()
	}
	var v string
	if err := rawDB(t, dsn).QueryRow(`SELECT convert_from(value, 'UTF8') FROM meta WHERE name = 'schema_version'`).Scan(&v); err != nil {
		t.Fatal(err)
	}
	if v != strconv.Itoa(len(postgresMigrations)) || len(postgresMigrations) != len(sqliteMigrations) {
		t.Fatalf("schema_version %q; migrations: %d postgres, %d sqlite", v, len(postgresMigrations), len(sqliteMigrations))
	}
	ctx := context.Background()
	if err := stores[0].Put(ctx, "alice", totpCred("alice-secret-0123456"), false); err != nil {
		t.Fatal(err)
	}
	for i, s := range stores {
		if _, ok := enrolment(t, s, "alice").Credential(factors.TOTP); !ok {
			t.Errorf("instance %d does not see alice", i)
		}
	}
}

// A wrong key is refused without writing; a connection string that does
// not parse is refused without repeating it (it holds the password).
func testPGWrongKeyAndBadDSN(t *testing.T) {
	_, dsn := newStore(t)
	if _, err := OpenPostgres(dsn, key2); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("wrong key: %v", err)
	}
	bad := "postgres://mfabridge:hunter2-secret@[::1:5432/db"
	_, err := OpenPostgres(bad, key1)
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("bad DSN: %v", err)
	}
	wrongPass := strings.Replace(dsn, harness.PostgresPass, "not-the-password", 1)
	_, err = OpenPostgres(wrongPass, key1)
	if err == nil || strings.Contains(err.Error(), "not-the-password") {
		t.Fatalf("wrong password: %v", err)
	}
}

// Last-use times do not move the change counter: the cache keeps the
// entry a challenge read across the flush.
func testPGLastUseKeepsTheCache(t *testing.T) {
	ctx := context.Background()
	s, dsn := newStore(t)
	s.Put(ctx, "carol", totpCred("carol-totp-seed-0123"), false)
	enrolment(t, s, "carol")
	gen := s.cache.gen
	s.Used(ctx, "carol", factors.TOTP)
	s.flushUsed()
	var used int64
	if err := rawDB(t, dsn).QueryRow(`SELECT last_used_at FROM credentials WHERE "user" = 'carol'`).Scan(&used); err != nil || used == 0 {
		t.Fatalf("last use not written: %d %v", used, err)
	}
	enrolment(t, s, "carol")
	if s.cache.gen != gen {
		t.Fatal("a write of last-use times emptied the cache")
	}
}

// PostgreSQL gone: lookups fail (never an empty enrolment, which would
// read as "not enrolled"); back: lookups succeed without a new store.
func testPGLostAndBack(t *testing.T) {
	ctx := context.Background()
	// A cluster of the test's own, to stop.
	p, err := harness.StartPostgres()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Remove()
	db, err := p.NewDatabase("lost")
	if err != nil {
		t.Fatal(err)
	}
	s, err := OpenPostgres(p.DSN(db), key1)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.Put(ctx, "dave", totpCred("dave-totp-seed-01234"), false)
	p.Kill()
	if e, err := s.Enrolment(ctx, "dave"); err == nil {
		t.Fatalf("a lookup with PostgreSQL gone: %+v", e)
	}
	if err := s.Ping(ctx); err == nil {
		t.Fatal("Ping with PostgreSQL gone")
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	if !harness.Eventually(5*time.Second, func() bool {
		e, err := s.Enrolment(ctx, "dave")
		return err == nil && len(e.Credentials) == 1
	}) {
		t.Fatal("lookups still failing 5 s after PostgreSQL came back")
	}
}
