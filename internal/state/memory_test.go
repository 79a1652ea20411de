package state

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newMem(t *testing.T, o MemoryOptions) *Memory {
	t.Helper()
	if o.Sweep == 0 {
		o.Sweep = -1
	}
	m := NewMemory(o)
	t.Cleanup(func() { m.Close() })
	return m
}

// Memory must satisfy the package's contract.
var _ Store = (*Memory)(nil)

func TestSetNXOnceUnderConcurrency(t *testing.T) {
	ctx := context.Background()
	m := newMem(t, MemoryOptions{})
	const n = 50
	var wins atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			ok, err := m.SetNX(ctx, "otp:totp:alice:123", []byte{byte(i)}, time.Minute)
			if err != nil {
				t.Error(err)
			}
			if ok {
				wins.Add(1)
			}
		}()
	}
	close(start)
	wg.Wait()
	if w := wins.Load(); w != 1 {
		t.Errorf("%d of %d SetNX calls stored the key, want exactly 1", w, n)
	}
}

func TestTakeExactlyOnce(t *testing.T) {
	ctx := context.Background()
	m := newMem(t, MemoryOptions{})
	for round := range 20 {
		if err := m.Set(ctx, "session:x", []byte("payload"), time.Minute); err != nil {
			t.Fatal(err)
		}
		const n = 50
		var got atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				v, ok, err := m.Take(ctx, "session:x")
				if err != nil {
					t.Error(err)
				}
				if ok {
					got.Add(1)
					if string(v) != "payload" {
						t.Errorf("Take returned %q", v)
					}
				}
			}()
		}
		close(start)
		wg.Wait()
		if g := got.Load(); g != 1 {
			t.Fatalf("round %d: %d of %d Take calls got the value, want exactly 1", round, g, n)
		}
	}
	if _, ok, _ := m.Get(ctx, "session:x"); ok {
		t.Errorf("the key survived Take")
	}
}

func TestTTLExpiry(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	m := newMem(t, MemoryOptions{Now: clk.Now, Sweep: -1})

	m.Set(ctx, "a", []byte("1"), 10*time.Second)
	if ok, _ := m.SetNX(ctx, "b", []byte("2"), 20*time.Second); !ok {
		t.Fatal("SetNX of a new key")
	}
	clk.Advance(9 * time.Second)
	if v, ok, _ := m.Get(ctx, "a"); !ok || string(v) != "1" {
		t.Errorf("a before its TTL: %q %v", v, ok)
	}
	if ok, _ := m.SetNX(ctx, "a", []byte("x"), time.Minute); ok {
		t.Errorf("SetNX over a live key stored it")
	}
	clk.Advance(time.Second) // exactly the TTL: gone
	if _, ok, _ := m.Get(ctx, "a"); ok {
		t.Errorf("a lives at its TTL")
	}
	if _, ok, _ := m.Take(ctx, "a"); ok {
		t.Errorf("Take returned an expired key")
	}
	if ok, _ := m.SetNX(ctx, "a", []byte("new"), time.Minute); !ok {
		t.Errorf("SetNX over an expired key refused")
	}
	if v, ok, _ := m.Get(ctx, "b"); !ok || string(v) != "2" {
		t.Errorf("b before its TTL: %q %v", v, ok)
	}
	// Set replaces value and TTL.
	m.Set(ctx, "b", []byte("3"), time.Hour)
	clk.Advance(30 * time.Minute)
	if v, ok, _ := m.Get(ctx, "b"); !ok || string(v) != "3" {
		t.Errorf("b after Set with a longer TTL: %q %v", v, ok)
	}
	if err := m.Delete(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := m.Get(ctx, "b"); ok {
		t.Errorf("b after Delete")
	}
}

func TestValuesAreCopied(t *testing.T) {
	ctx := context.Background()
	m := newMem(t, MemoryOptions{})
	v := []byte("abc")
	m.Set(ctx, "k", v, time.Minute)
	v[0] = 'X'
	got, _, _ := m.Get(ctx, "k")
	if string(got) != "abc" {
		t.Errorf("the store kept the caller's slice: %q", got)
	}
	got[1] = 'Y'
	if again, _, _ := m.Get(ctx, "k"); string(again) != "abc" {
		t.Errorf("Get handed out the stored slice: %q", again)
	}
}

func TestIncrFixedWindow(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	m := newMem(t, MemoryOptions{Now: clk.Now})
	for want := int64(1); want <= 3; want++ {
		n, err := m.Incr(ctx, "fail:pw:0:alice", 10*time.Second)
		if err != nil || n != want {
			t.Fatalf("Incr = %d %v, want %d", n, err, want)
		}
		clk.Advance(3 * time.Second)
	}
	// 9s after the first: still the same window; increments do not extend it.
	if n, _ := m.Incr(ctx, "fail:pw:0:alice", 10*time.Second); n != 4 {
		t.Errorf("Incr at 9s = %d, want 4", n)
	}
	clk.Advance(time.Second) // 10s after the first: a new window
	if n, _ := m.Incr(ctx, "fail:pw:0:alice", 10*time.Second); n != 1 {
		t.Errorf("Incr after the window = %d, want 1", n)
	}
	if n, _ := m.Incr(ctx, "fail:pw:0:bob", 10*time.Second); n != 1 {
		t.Errorf("another key = %d, want 1", n)
	}
	if v, ok, _ := m.Get(ctx, "fail:pw:0:alice"); !ok || string(v) != "1" {
		t.Errorf("Get of a counter: %q %v", v, ok)
	}
}

func TestIncrConcurrent(t *testing.T) {
	ctx := context.Background()
	m := newMem(t, MemoryOptions{})
	var wg sync.WaitGroup
	seen := make([]atomic.Bool, 101)
	for range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := m.Incr(ctx, "c", time.Minute)
			if err != nil || n < 1 || n > 100 {
				t.Errorf("Incr = %d %v", n, err)
				return
			}
			if seen[n].Swap(true) {
				t.Errorf("Incr returned %d twice", n)
			}
		}()
	}
	wg.Wait()
}

func TestMaxEntries(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	// 50 entries: every kind gets the least share, minQuota.
	m := newMem(t, MemoryOptions{MaxEntries: 50, Now: clk.Now})
	key := func(i int) string { return fmt.Sprintf("session:%d", i) }
	for i := range minQuota {
		if ok, err := m.SetNX(ctx, key(i), []byte("x"), 10*time.Second); !ok || err != nil {
			t.Fatalf("SetNX %d: %v %v", i, ok, err)
		}
	}
	if ok, err := m.SetNX(ctx, "session:new", nil, time.Minute); ok || !errors.Is(err, ErrFull) {
		t.Errorf("SetNX when full: %v %v, want ErrFull", ok, err)
	}
	if err := m.Set(ctx, "session:new", nil, time.Minute); !errors.Is(err, ErrFull) {
		t.Errorf("Set when full: %v, want ErrFull", err)
	}
	if _, err := m.Incr(ctx, "session:new", time.Minute); !errors.Is(err, ErrFull) {
		t.Errorf("Incr when full: %v, want ErrFull", err)
	}
	// Existing keys still work when full.
	if err := m.Set(ctx, key(0), []byte("A"), 10*time.Second); err != nil {
		t.Errorf("Set of an existing key when full: %v", err)
	}
	if ok, err := m.SetNX(ctx, key(1), nil, time.Minute); ok || err != nil {
		t.Errorf("SetNX of an existing key when full: %v %v, want false, nil", ok, err)
	}
	if m.Len() != minQuota {
		t.Errorf("Len = %d", m.Len())
	}
	// Once they expire there is room again, without a sweeper.
	clk.Advance(10 * time.Second)
	if ok, err := m.SetNX(ctx, "session:d", []byte("d"), time.Minute); !ok || err != nil {
		t.Errorf("SetNX after expiry: %v %v", ok, err)
	}
	if m.Len() != 1 {
		t.Errorf("Len after the sweep on demand = %d, want 1", m.Len())
	}
	// Taking a key makes room too.
	for i := range minQuota - 1 {
		m.Set(ctx, key(100+i), nil, time.Minute)
	}
	if err := m.Set(ctx, "session:g", nil, time.Minute); !errors.Is(err, ErrFull) {
		t.Fatalf("Set when full again: %v", err)
	}
	m.Take(ctx, key(100))
	if err := m.Set(ctx, "session:g", nil, time.Minute); err != nil {
		t.Errorf("Set after a Take: %v", err)
	}
}

// One kind filling its share leaves every other kind its own.
func TestKindsHaveTheirOwnShare(t *testing.T) {
	ctx := context.Background()
	m := newMem(t, MemoryOptions{MaxEntries: 1000})
	var full int
	for i := 0; i < 10_000; i++ {
		if _, err := m.Incr(ctx, fmt.Sprintf("fail:pw:0:nobody-%d", i), time.Minute); err != nil {
			if !errors.Is(err, ErrFull) {
				t.Fatal(err)
			}
			full++
		}
	}
	if want := 10_000 - 1000*Shares["fail"]/100; full != want {
		t.Errorf("%d failure counters refused, want %d (the share of fail)", full, want)
	}
	for _, k := range []string{"session:abc", "lock:0:alice", "otp:totp:alice:1", "remember:x", "rate:sms:alice", "anything"} {
		if err := m.Set(ctx, k, []byte{1}, time.Minute); err != nil {
			t.Errorf("Set %s after the fail share filled: %v", k, err)
		}
	}
	total := 0
	for _, share := range Shares {
		total += share
	}
	if total != 100 {
		t.Errorf("shares add up to %d%%", total)
	}
}

func TestDecr(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	m := newMem(t, MemoryOptions{Now: clk.Now})
	if n, err := m.Decr(ctx, "fail:x"); n != 0 || err != nil {
		t.Errorf("Decr of nothing: %d %v", n, err)
	}
	if _, ok, _ := m.Get(ctx, "fail:x"); ok {
		t.Error("Decr of nothing made a counter")
	}
	m.Incr(ctx, "fail:x", time.Minute)
	m.Incr(ctx, "fail:x", time.Minute)
	if n, _ := m.Decr(ctx, "fail:x"); n != 1 {
		t.Errorf("Decr from 2: %d", n)
	}
	clk.Advance(30 * time.Second)
	if n, _ := m.Incr(ctx, "fail:x", time.Minute); n != 2 {
		t.Errorf("Incr after Decr: %d", n)
	}
	clk.Advance(31 * time.Second) // the window of the first Incr is over
	if _, ok, _ := m.Get(ctx, "fail:x"); ok {
		t.Error("Decr and Incr moved the expiry of the window")
	}
	m.Incr(ctx, "fail:y", time.Minute)
	if n, _ := m.Decr(ctx, "fail:y"); n != 0 || m.Len() != 0 {
		t.Errorf("Decr to zero: %d, %d entries left", n, m.Len())
	}
}

func TestSweeper(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	m := NewMemory(MemoryOptions{Now: clk.Now, Sweep: time.Millisecond})
	defer m.Close()
	m.Set(ctx, "a", nil, time.Second)
	m.Set(ctx, "b", nil, time.Hour)
	clk.Advance(2 * time.Second)
	deadline := time.Now().Add(5 * time.Second)
	for m.Len() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("the sweeper left %d entries, want 1", m.Len())
		}
		time.Sleep(time.Millisecond)
	}
}

// sweepers counts goroutines running the sweeper.
func sweepers() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	return strings.Count(string(buf), "(*Memory).sweeper")
}

// waitSweepers waits until n sweeper goroutines run: a goroutine shows
// on the stack a moment after go and leaves it a moment after it ends.
func waitSweepers(t *testing.T, n int, what string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for sweepers() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d sweeper goroutines, want %d", what, sweepers(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestCloseStopsSweeper(t *testing.T) {
	waitSweepers(t, 0, "before the test") // the other tests closed theirs
	m := NewMemory(MemoryOptions{Sweep: time.Millisecond})
	waitSweepers(t, 1, "after NewMemory")
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	waitSweepers(t, 0, "after Close")
	if err := m.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	// Without a sweeper, Close returns at once.
	done := make(chan struct{})
	go func() { NewMemory(MemoryOptions{Sweep: -1}).Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("Close of a store without a sweeper blocks")
	}
}
