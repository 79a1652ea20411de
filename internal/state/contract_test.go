package state

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testContract checks what every Store promises, on real time: each
// method atomic under concurrent callers, expiries kept, counters exact.
// newStore returns an empty store; keys are unique to each subtest.
func testContract(t *testing.T, s Store) {
	ctx := context.Background()
	run := func(name string, f func(t *testing.T, key string)) {
		t.Run(name, func(t *testing.T) { f(t, "other:"+name+":"+strconv.FormatInt(time.Now().UnixNano(), 36)) })
	}
	race := func(n int, f func(i int)) {
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				f(i)
			}()
		}
		close(start)
		wg.Wait()
	}
	run("SetNXOnce", func(t *testing.T, key string) {
		var wins atomic.Int32
		race(40, func(i int) {
			ok, err := s.SetNX(ctx, key, []byte{byte(i)}, time.Minute)
			if err != nil {
				t.Error(err)
			}
			if ok {
				wins.Add(1)
			}
		})
		if wins.Load() != 1 {
			t.Fatalf("%d callers stored the guard, want 1", wins.Load())
		}
	})
	run("TakeOnce", func(t *testing.T, key string) {
		if err := s.Set(ctx, key, []byte("session"), time.Minute); err != nil {
			t.Fatal(err)
		}
		var got atomic.Int32
		race(40, func(int) {
			v, ok, err := s.Take(ctx, key)
			if err != nil {
				t.Error(err)
			}
			if ok {
				got.Add(1)
				if string(v) != "session" {
					t.Errorf("took %q", v)
				}
			}
		})
		if got.Load() != 1 {
			t.Fatalf("%d callers took the value, want 1", got.Load())
		}
		if _, ok, _ := s.Get(ctx, key); ok {
			t.Fatal("the value is still there after Take")
		}
	})
	run("SetGetDelete", func(t *testing.T, key string) {
		s.Set(ctx, key, []byte("one"), time.Minute)
		s.Set(ctx, key, []byte("two"), time.Minute)
		if v, ok, err := s.Get(ctx, key); err != nil || !ok || string(v) != "two" {
			t.Fatalf("Get = %q %v %v, want two", v, ok, err)
		}
		if err := s.Delete(ctx, key); err != nil {
			t.Fatal(err)
		}
		if _, ok, _ := s.Get(ctx, key); ok {
			t.Fatal("deleted value still there")
		}
		if err := s.Delete(ctx, key); err != nil {
			t.Fatalf("deleting nothing: %v", err)
		}
	})
	run("Expiry", func(t *testing.T, key string) {
		s.Set(ctx, key, []byte("v"), 150*time.Millisecond)
		if ok, _ := s.SetNX(ctx, key+"nx", []byte("v"), 150*time.Millisecond); !ok {
			t.Fatal("SetNX of a new key refused")
		}
		time.Sleep(400 * time.Millisecond)
		if _, ok, _ := s.Get(ctx, key); ok {
			t.Fatal("value outlived its expiry")
		}
		if ok, _ := s.SetNX(ctx, key+"nx", []byte("v"), time.Minute); !ok {
			t.Fatal("an expired guard still refuses")
		}
	})
	run("IncrExact", func(t *testing.T, key string) {
		race(100, func(int) {
			if _, err := s.Incr(ctx, key, time.Minute); err != nil {
				t.Error(err)
			}
		})
		if n, err := s.Count(ctx, key); err != nil || n != 100 {
			t.Fatalf("Count = %d %v after 100 concurrent Incr", n, err)
		}
		race(60, func(int) { s.Decr(ctx, key) })
		if n, _ := s.Count(ctx, key); n != 40 {
			t.Fatalf("Count = %d after 60 Decr, want 40", n)
		}
	})
	run("IncrFixedWindow", func(t *testing.T, key string) {
		for i := 1; i <= 3; i++ {
			if n, _ := s.Incr(ctx, key, 300*time.Millisecond); n != int64(i) {
				t.Fatalf("Incr %d = %d", i, n)
			}
			time.Sleep(50 * time.Millisecond)
		}
		// The window began at the first increment; later ones do not
		// extend it, and Decr keeps it.
		s.Decr(ctx, key)
		time.Sleep(300 * time.Millisecond)
		if n, _ := s.Count(ctx, key); n != 0 {
			t.Fatalf("the counter outlived its window: %d", n)
		}
		if n, _ := s.Incr(ctx, key, time.Minute); n != 1 {
			t.Fatalf("a new window starts at %d", n)
		}
	})
	run("DecrGoneStaysGone", func(t *testing.T, key string) {
		if n, err := s.Decr(ctx, key); err != nil || n != 0 {
			t.Fatalf("Decr of nothing = %d %v", n, err)
		}
		if n, _ := s.Count(ctx, key); n != 0 {
			t.Fatalf("Decr of nothing made a counter of %d", n)
		}
		s.Incr(ctx, key, time.Minute)
		if n, _ := s.Decr(ctx, key); n != 0 {
			t.Fatalf("Decr to zero = %d", n)
		}
		if n, _ := s.Decr(ctx, key); n != 0 {
			t.Fatalf("Decr below zero = %d", n)
		}
	})
	run("BinaryKeysAndValues", func(t *testing.T, key string) {
		k := key + "\x00user\xffname with spaces"
		v := []byte{0, 1, 2, 0xff, '\n'}
		s.Set(ctx, k, v, time.Minute)
		if got, ok, _ := s.Get(ctx, k); !ok || !bytes.Equal(got, v) {
			t.Fatalf("Get = %x %v, want %x", got, ok, v)
		}
		if _, ok, _ := s.Get(ctx, key); ok {
			t.Fatal("a key with a NUL in it collided with its prefix")
		}
	})
}

func TestMemoryContract(t *testing.T) {
	m := NewMemory(MemoryOptions{Sweep: -1})
	t.Cleanup(func() { m.Close() })
	testContract(t, m)
}

func TestSealedMemoryContract(t *testing.T) {
	m := NewMemory(MemoryOptions{Sweep: -1})
	t.Cleanup(func() { m.Close() })
	s, err := NewSealed(m, bytes.Repeat([]byte{1}, 32))
	if err != nil {
		t.Fatal(err)
	}
	testContract(t, s)
}

// A sealed value reads back only under its own key and the same seal
// key; the store beneath holds no plain text.
func TestSealedValues(t *testing.T) {
	ctx := context.Background()
	m := NewMemory(MemoryOptions{Sweep: -1})
	t.Cleanup(func() { m.Close() })
	s, _ := NewSealed(m, bytes.Repeat([]byte{1}, 32))
	secret := []byte(`{"user":"alice","mobile":"+447700900123"}`)
	s.Set(ctx, "session:a", secret, time.Minute)
	raw, _, _ := m.Get(ctx, "session:a")
	if bytes.Contains(raw, []byte("alice")) || bytes.Contains(raw, []byte("447700900123")) {
		t.Fatalf("the store holds plain text: %q", raw)
	}
	if v, ok, err := s.Get(ctx, "session:a"); err != nil || !ok || !bytes.Equal(v, secret) {
		t.Fatalf("Get = %q %v %v", v, ok, err)
	}
	// Moved under another key.
	m.Set(ctx, "session:b", raw, time.Minute)
	if _, _, err := s.Take(ctx, "session:b"); err != ErrTampered {
		t.Fatalf("a moved value: %v, want ErrTampered", err)
	}
	// Written by whoever can write the store.
	for i, forged := range [][]byte{secret, {}, {sealVersion}, append([]byte{sealVersion}, make([]byte, 40)...), raw[:len(raw)-1]} {
		m.Set(ctx, "session:c", forged, time.Minute)
		if _, ok, err := s.Get(ctx, "session:c"); err != ErrTampered || ok {
			t.Fatalf("forged value %d: %v %v, want ErrTampered", i, ok, err)
		}
	}
	// Under another seal key.
	other, _ := NewSealed(m, bytes.Repeat([]byte{2}, 32))
	if _, _, err := other.Get(ctx, "session:a"); err != ErrTampered {
		t.Fatalf("another seal key: %v, want ErrTampered", err)
	}
	// Counters are the store's own.
	s.Incr(ctx, "fail:pw:0:alice", time.Minute)
	if n, _ := m.Count(ctx, "fail:pw:0:alice"); n != 1 {
		t.Fatalf("a counter through Sealed reads %d beneath", n)
	}
}

func ExampleNewSealed() {
	m := NewMemory(MemoryOptions{Sweep: -1})
	defer m.Close()
	s, _ := NewSealed(m, bytes.Repeat([]byte{1}, 32))
	ctx := context.Background()
	s.Set(ctx, "session:x", []byte("hello"), time.Minute)
	v, _, _ := s.Get(ctx, "session:x")
	raw, _, _ := m.Get(ctx, "session:x")
	fmt.Println(string(v), len(raw) > len(v))
	// Output: hello true
}
