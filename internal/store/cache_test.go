package store

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mfabridge/mfabridge/factors"
)

// The cache is exact: every change, by this handle or by another process
// (here a second handle on the file, as the enrol command is), shows in
// the very next lookup.
func TestCacheSeesEveryChange(t *testing.T) {
	ctx := context.Background()
	server, cli := twoHandles(t)

	cached := func() bool {
		server.cache.mu.Lock()
		defer server.cache.mu.Unlock()
		_, ok := server.cache.entries["alice"]
		return ok
	}
	if err := cli.Put(ctx, "alice", totpCred("alice-totp-seed-0123"), false); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, ok := enrolment(t, server, "alice").Credential(factors.TOTP); !ok {
			t.Fatal("the server does not see alice's enrolment")
		}
	}
	if !cached() {
		t.Fatal("alice's enrolment was read three times and never kept")
	}

	// Another process removes the credential: the next lookup misses it.
	if _, err := cli.Remove(ctx, "alice", factors.TOTP); err != nil {
		t.Fatal(err)
	}
	if e := enrolment(t, server, "alice"); len(e.Credentials) != 0 {
		t.Fatalf("after removal by another handle the server still sees %+v", e.Credentials)
	}
	// Another process resets the lockout.
	enrolment(t, server, "alice")
	if err := cli.ResetLockout(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if e := enrolment(t, server, "alice"); e.LockoutEpoch != 1 {
		t.Fatalf("epoch after a reset by another handle: %d", e.LockoutEpoch)
	}
	// This handle advances a counter: its own write shows too.
	if err := cli.Put(ctx, "alice", hotpCred("alice-hotp-seed-0123", 5), false); err != nil {
		t.Fatal(err)
	}
	enrolment(t, server, "alice")
	if ok, err := server.AdvanceCounter(ctx, "alice", 5, 9); err != nil || !ok {
		t.Fatalf("AdvanceCounter: %v %v", ok, err)
	}
	if cr, _ := enrolment(t, server, "alice").Credential(factors.HOTP); cr.Counter != 9 {
		t.Fatalf("counter after this handle's own advance: %d, want 9", cr.Counter)
	}

	// A caller changing what it got does not change the cache.
	e := enrolment(t, server, "alice")
	e.Credentials[0].Counter = 1000
	e.LockoutEpoch = 77
	if again := enrolment(t, server, "alice"); again.Credentials[0].Counter == 1000 || again.LockoutEpoch == 77 {
		t.Fatal("a caller's change to its copy reached the cache")
	}
}

// Lookups racing writes from another handle: once the writes are done,
// every lookup sees the last of them.
func TestCacheUnderConcurrentWrites(t *testing.T) {
	ctx := context.Background()
	server, cli := twoHandles(t)
	if err := cli.Put(ctx, "bob", hotpCred("bob-hotp-seed-012345", 0), false); err != nil {
		t.Fatal(err)
	}
	const writes = 40
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan error, 8)
	for r := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var last uint64
			for {
				select {
				case <-stop:
					return
				default:
				}
				e, err := server.Enrolment(ctx, "bob")
				if err != nil {
					errs <- err
					return
				}
				cr, _ := e.Credential(factors.HOTP)
				if cr.Counter < last {
					errs <- fmt.Errorf("reader %d: counter went back from %d to %d", r, last, cr.Counter)
					return
				}
				last = cr.Counter
			}
		}()
	}
	// This handle writes recorded uses all the while, the commits the
	// cache survives: they must never hide the other handle's. Its clock
	// runs 45 minutes a flush, so every other flush has something to
	// write (uses are written once an hour) and the others nothing, both
	// kinds a few a millisecond, as no server flushes, near enough to
	// meet the other handle's commits.
	var clock atomic.Int64
	clock.Store(time.Now().Unix())
	server.now = func() time.Time { return time.Unix(clock.Add(45*60), 0) }
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Microsecond):
			}
			server.Used(ctx, "bob", factors.HOTP)
			server.flushUsed()
		}
	}()
	for i := uint64(0); i < writes; i++ {
		if ok, err := cli.AdvanceCounter(ctx, "bob", i, i+1); err != nil || !ok {
			t.Fatalf("AdvanceCounter %d: %v %v", i, ok, err)
		}
		if cr, _ := enrolment(t, server, "bob").Credential(factors.HOTP); cr.Counter != i+1 {
			t.Fatalf("after advance to %d the server sees %d", i+1, cr.Counter)
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// The store's own writes of recorded uses leave the cache as it was: the
// answer to a challenge, typed half a minute later, finds the enrolment
// read for the challenge although uses were written in between.
func TestCacheSurvivesOwnLastUseFlush(t *testing.T) {
	ctx := context.Background()
	server, cli := twoHandles(t)
	if err := cli.Put(ctx, "carol", totpCred("carol-totp-seed-0123"), false); err != nil {
		t.Fatal(err)
	}
	enrolment(t, server, "carol")
	gen := server.cache.gen
	before, _ := server.cache.mark(ctx)

	server.Used(ctx, "carol", factors.TOTP)
	server.flushUsed()
	if after, _ := server.cache.mark(ctx); after == before {
		t.Fatal("the flush committed nothing")
	}
	if cr, _ := enrolment(t, cli, "carol").Credential(factors.TOTP); cr.LastUsed.IsZero() {
		t.Fatal("the use was not written")
	}
	if _, ok := enrolment(t, server, "carol").Credential(factors.TOTP); !ok {
		t.Fatal("carol's credential is gone")
	}
	if server.cache.gen != gen {
		t.Error("the cache was emptied by the store's own write of recorded uses")
	}

	// Any other commit still empties it: one by the other handle right
	// after a flush, and two where the flush's one should be.
	server.Used(ctx, "carol", factors.TOTP)
	server.flushUsed()
	if _, err := cli.Remove(ctx, "carol", factors.TOTP); err != nil {
		t.Fatal(err)
	}
	if e := enrolment(t, server, "carol"); len(e.Credentials) != 0 {
		t.Fatalf("the removal after a flush is not seen: %+v", e.Credentials)
	}
	if err := cli.Put(ctx, "carol", totpCred("carol-totp-seed-4567"), false); err != nil {
		t.Fatal(err)
	}
	// A commit by the other handle that no lookup has noticed yet, then
	// a flush: the flush's commit is the only one since its transaction
	// began, but not since the entries were read.
	stale := enrolment(t, server, "carol").LockoutEpoch
	if err := cli.ResetLockout(ctx, "carol"); err != nil {
		t.Fatal(err)
	}
	server.Used(ctx, "carol", factors.TOTP)
	server.flushUsed()
	if e := enrolment(t, server, "carol"); e.LockoutEpoch == stale {
		t.Fatalf("a commit before a flush was hidden by it: epoch still %d", e.LockoutEpoch)
	}

	stale = enrolment(t, server, "carol").LockoutEpoch
	before, _ = server.cache.mark(ctx)
	for range 2 { // two commits the flush did not make
		if err := cli.ResetLockout(ctx, "carol"); err != nil {
			t.Fatal(err)
		}
	}
	after, _ := server.cache.mark(ctx)
	server.cache.ownCommit(before, after)
	if e := enrolment(t, server, "carol"); e.LockoutEpoch == stale {
		t.Fatalf("two commits taken for the flush's one were hidden: epoch still %d", e.LockoutEpoch)
	}
}
