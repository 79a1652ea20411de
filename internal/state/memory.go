package state

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ErrFull is returned when the memory store holds its maximum number of
// live entries of a kind; callers treat it as a failure, never as
// success.
var ErrFull = errors.New("state: memory store is full")

// Memory is the in-process Store. Its size is bounded: each kind of
// entry (the part of its key before the first colon: "session",
// "fail", "otp", …) has its own share of MaxEntries, so that entries of
// one kind, however many, never push out or shut out another. Expired
// entries are swept every sweep interval and on demand when a share is
// full.
type Memory struct {
	mu     sync.Mutex
	m      map[string]entry
	max    int
	quota  map[string]int // by kind
	counts map[string]int // live entries by kind, expired ones until swept
	now    func() time.Time
	stop   chan struct{}
	done   chan struct{}
	close  sync.Once
}

type entry struct {
	val     []byte
	expires time.Time
}

// Shares are the percentages of MaxEntries each kind of entry may hold;
// a kind not listed shares the "other" share. They add up to 100.
var Shares = map[string]int{
	"session":   20, // challenge sessions
	"lock":      5,  // lockouts in force
	"fail":      15, // failure counters (lockout)
	"otp":       10, // the TOTP replay guard
	"remember":  12, // remembered logins
	"station":   10, // known Calling-Station-Ids
	"code":      5,  // sent codes
	"codetries": 3,  // wrong tries at sent codes
	"rate":      5,  // send limits
	"approve":   5,  // phone approvals
	"send":      3,  // sends claimed by a login
	"portal":    3,  // portal sessions and limits
	"other":     4,
}

// minQuota is the least any kind may hold, whatever MaxEntries is.
const minQuota = 16

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
	s := &Memory{m: map[string]entry{}, max: o.MaxEntries, quota: map[string]int{}, counts: map[string]int{},
		now: o.Now, stop: make(chan struct{}), done: make(chan struct{})}
	for kind, share := range Shares {
		s.quota[kind] = max(o.MaxEntries*share/100, minQuota)
	}
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
			s.remove(k)
		}
	}
}

// kind is the share key counts against.
func (s *Memory) kind(key string) string {
	k, _, _ := strings.Cut(key, ":")
	if _, ok := s.quota[k]; ok {
		return k
	}
	return "other"
}

func (s *Memory) remove(key string) {
	if _, ok := s.m[key]; ok {
		delete(s.m, key)
		s.counts[s.kind(key)]--
	}
}

// live returns the unexpired entry under key.
func (s *Memory) live(key string) (entry, bool) {
	e, ok := s.m[key]
	if ok && !s.now().Before(e.expires) {
		s.remove(key)
		return entry{}, false
	}
	return e, ok
}

// add stores a new key, within its kind's share.
func (s *Memory) add(key string, e entry) error {
	kind := s.kind(key)
	if s.counts[kind] >= s.quota[kind] {
		s.sweepLocked()
		if s.counts[kind] >= s.quota[kind] {
			return fmt.Errorf("%w (%d entries of kind %s)", ErrFull, s.counts[kind], kind)
		}
	}
	s.m[key] = e
	s.counts[kind]++
	return nil
}

func (s *Memory) SetNX(_ context.Context, key string, val []byte, ttl time.Duration) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.live(key); ok {
		return false, nil
	}
	if err := s.add(key, entry{val: clone(val), expires: s.now().Add(ttl)}); err != nil {
		return false, err
	}
	return true, nil
}

func (s *Memory) Set(_ context.Context, key string, val []byte, ttl time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := entry{val: clone(val), expires: s.now().Add(ttl)}
	if _, ok := s.live(key); !ok {
		return s.add(key, e)
	}
	s.m[key] = e
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
		s.remove(key)
	}
	return e.val, ok, nil
}

func (s *Memory) Delete(_ context.Context, key string) error {
	s.mu.Lock()
	s.remove(key)
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
	}
	n++
	e.val = strconv.AppendInt(nil, n, 10)
	if !ok {
		e.expires = s.now().Add(ttl)
		return n, s.add(key, e)
	}
	s.m[key] = e
	return n, nil
}

func (s *Memory) Decr(_ context.Context, key string) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.live(key)
	if !ok {
		return 0, nil
	}
	n, _ := strconv.ParseInt(string(e.val), 10, 64)
	if n--; n <= 0 {
		s.remove(key)
		return 0, nil
	}
	e.val = strconv.AppendInt(nil, n, 10)
	s.m[key] = e
	return n, nil
}

func (s *Memory) Count(_ context.Context, key string) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.live(key)
	if !ok {
		return 0, nil
	}
	n, _ := strconv.ParseInt(string(e.val), 10, 64)
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
