package state

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"
)

// ErrFull is returned when the memory store holds its maximum number of
// live entries; callers treat it as a failure, never as success.
var ErrFull = errors.New("state: memory store is full")

// Memory is the in-process Store. Its size is bounded by max entries;
// expired entries are swept every sweep interval and on demand when full.
type Memory struct {
	mu    sync.Mutex
	m     map[string]entry
	max   int
	now   func() time.Time
	stop  chan struct{}
	done  chan struct{}
	close sync.Once
}

type entry struct {
	val     []byte
	expires time.Time
}

// MemoryOptions configure NewMemory.
type MemoryOptions struct {
	MaxEntries int              // default 1,000,000
	Sweep      time.Duration    // default 30s; negative: no sweeper goroutine
	Now        func() time.Time // default time.Now
}

// NewMemory returns an empty memory store with its sweeper running.
func NewMemory(o MemoryOptions) *Memory {
	if o.MaxEntries <= 0 {
		o.MaxEntries = 1_000_000
	}
	if o.Sweep == 0 {
		o.Sweep = 30 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Memory{m: map[string]entry{}, max: o.MaxEntries, now: o.Now, stop: make(chan struct{}), done: make(chan struct{})}
	if o.Sweep > 0 {
		go s.sweeper(o.Sweep)
	} else {
		close(s.done)
	}
	return s
}

func (s *Memory) sweeper(every time.Duration) {
	defer close(s.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.mu.Lock()
			s.sweepLocked()
			s.mu.Unlock()
		}
	}
}

func (s *Memory) sweepLocked() {
	now := s.now()
	for k, e := range s.m {
		if !now.Before(e.expires) {
			delete(s.m, k)
		}
	}
}

// live returns the unexpired entry under key.
func (s *Memory) live(key string) (entry, bool) {
	e, ok := s.m[key]
	if ok && !s.now().Before(e.expires) {
		delete(s.m, key)
		return entry{}, false
	}
	return e, ok
}

// room makes space for one new key.
func (s *Memory) room() error {
	if len(s.m) < s.max {
		return nil
	}
	s.sweepLocked()
	if len(s.m) < s.max {
		return nil
	}
	return ErrFull
}

func (s *Memory) SetNX(_ context.Context, key string, val []byte, ttl time.Duration) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.live(key); ok {
		return false, nil
	}
	if err := s.room(); err != nil {
		return false, err
	}
	s.m[key] = entry{val: clone(val), expires: s.now().Add(ttl)}
	return true, nil
}

func (s *Memory) Set(_ context.Context, key string, val []byte, ttl time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.live(key); !ok {
		if err := s.room(); err != nil {
			return err
		}
	}
	s.m[key] = entry{val: clone(val), expires: s.now().Add(ttl)}
	return nil
}

func (s *Memory) Get(_ context.Context, key string) ([]byte, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.live(key)
	return clone(e.val), ok, nil
}

func (s *Memory) Take(_ context.Context, key string) ([]byte, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.live(key)
	if ok {
		delete(s.m, key)
	}
	return e.val, ok, nil
}

func (s *Memory) Delete(_ context.Context, key string) error {
	s.mu.Lock()
	delete(s.m, key)
	s.mu.Unlock()
	return nil
}

func (s *Memory) Incr(_ context.Context, key string, ttl time.Duration) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.live(key)
	var n int64
	if ok {
		n, _ = strconv.ParseInt(string(e.val), 10, 64)
	} else {
		if err := s.room(); err != nil {
			return 0, err
		}
		e.expires = s.now().Add(ttl)
	}
	n++
	e.val = strconv.AppendInt(nil, n, 10)
	s.m[key] = e
	return n, nil
}

// Len returns the number of entries, expired ones included until swept.
func (s *Memory) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

// Close stops the sweeper.
func (s *Memory) Close() error {
	s.close.Do(func() { close(s.stop) })
	<-s.done
	return nil
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}
