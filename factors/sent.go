package factors

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strconv"
	"strings"
	"sync"
	"time"
)

// KV is the ephemeral state the sending factors keep their codes,
// approvals and send counters in; internal/state satisfies it. Every
// call is atomic.
type KV interface {
	SetNX(ctx context.Context, key string, val []byte, ttl time.Duration) (bool, error)
	Set(ctx context.Context, key string, val []byte, ttl time.Duration) error
	Get(ctx context.Context, key string) ([]byte, bool, error)
	Take(ctx context.Context, key string) ([]byte, bool, error)
	Incr(ctx context.Context, key string, ttl time.Duration) (int64, error)
	Delete(ctx context.Context, key string) error
}

// SentCodes issues and checks the one-time codes a factor sends out of
// band: random digits from crypto/rand, one pending code per user and
// method (a new one replaces it), single-use, expiring after TTL, and
// dropped after MaxTries wrong answers.
//
// A pending code is kept as an HMAC-SHA256 under Key, never as it is: who
// reads the state store (a shared Redis) cannot read a code off it, and
// six digits under a key they do not hold cannot be searched.
type SentCodes struct {
	KV       KV
	Length   int
	TTL      time.Duration
	MaxTries int       // default 3
	Rand     io.Reader // default crypto/rand
	Now      func() time.Time
	// Key is the HMAC key; instances sharing a state store share it
	// (derived from store.key). nil: a random key of this process.
	Key []byte

	keyOnce sync.Once
}

type pendingCode struct {
	MAC     []byte    `json:"mac"`
	Expires time.Time `json:"expires"`
}

// mac binds a code to its method and user, so that a pending code's
// value is worth nothing under another key.
func (s *SentCodes) mac(m Method, user, code string) []byte {
	s.keyOnce.Do(func() {
		if s.Key == nil {
			s.Key = make([]byte, 32)
			rand.Read(s.Key)
		}
	})
	h := hmac.New(sha256.New, s.Key)
	h.Write([]byte(string(m) + "\x00" + user + "\x00" + code))
	return h.Sum(nil)
}

func codeKey(m Method, user string) string  { return "code:" + string(m) + ":" + user }
func triesKey(m Method, user string) string { return "codetries:" + string(m) + ":" + user }

// Issue makes and stores a new code for user, replacing any pending one.
func (s *SentCodes) Issue(ctx context.Context, m Method, user string) (string, error) {
	r := s.Rand
	if r == nil {
		r = rand.Reader
	}
	var b strings.Builder
	for range s.Length {
		d, err := rand.Int(r, big.NewInt(10))
		if err != nil {
			return "", err
		}
		b.WriteByte(byte('0' + d.Int64()))
	}
	code := b.String()
	v, _ := json.Marshal(pendingCode{MAC: s.mac(m, user, code), Expires: s.now().Add(s.TTL)})
	if err := s.KV.Set(ctx, codeKey(m, user), v, s.TTL); err != nil {
		return "", fmt.Errorf("store the code: %w", err)
	}
	// A fresh code gets fresh tries.
	if err := s.KV.Delete(ctx, triesKey(m, user)); err != nil {
		return "", err
	}
	return code, nil
}

func (s *SentCodes) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Check compares answer with the pending code in constant time. A right
// code is taken (used once); a wrong one counts, and the code is dropped
// after MaxTries. ErrExpired means no code is pending.
func (s *SentCodes) Check(ctx context.Context, m Method, user, answer string) error {
	v, ok, err := s.KV.Get(ctx, codeKey(m, user))
	if err != nil {
		return err
	}
	if !ok {
		return ErrExpired
	}
	var p pendingCode
	if err := json.Unmarshal(v, &p); err != nil || !s.now().Before(p.Expires) {
		return ErrExpired
	}
	answer = strings.ReplaceAll(strings.TrimSpace(answer), " ", "")
	if !hmac.Equal(s.mac(m, user, answer), p.MAC) {
		max := s.MaxTries
		if max <= 0 {
			max = 3
		}
		n, err := s.KV.Incr(ctx, triesKey(m, user), s.TTL)
		if err == nil && n >= int64(max) {
			s.KV.Delete(ctx, codeKey(m, user))
		}
		return ErrWrongCode
	}
	// Of two requests racing with the right code, one takes it.
	if _, ok, err := s.KV.Take(ctx, codeKey(m, user)); err != nil {
		return err
	} else if !ok {
		return ErrReplayed
	}
	return nil
}

// SendLimits caps sends: per user per hour for each method, and for all
// users together per minute (DESIGN: rate limits on anything that costs
// money).
type SendLimits struct {
	KV           KV
	PerUserHour  int
	GlobalMinute int
	Now          func() time.Time
}

// Allow counts one send of m to user and refuses it past either limit.
func (l *SendLimits) Allow(ctx context.Context, m Method, user string) error {
	now := time.Now()
	if l.Now != nil {
		now = l.Now()
	}
	// The user's own limit first: a user retrying past it must not use up
	// the ceiling everyone shares.
	n, err := l.KV.Incr(ctx, "rate:"+string(m)+":"+user, time.Hour)
	if err != nil {
		return err
	}
	if n > int64(l.PerUserHour) {
		return fmt.Errorf("%w: more than %d per hour for this user", ErrRateLimited, l.PerUserHour)
	}
	minute := strconv.FormatInt(now.Unix()/60, 10)
	n, err = l.KV.Incr(ctx, "rate:global:"+minute, 2*time.Minute)
	if err != nil {
		return err
	}
	if n > int64(l.GlobalMinute) {
		return fmt.Errorf("%w: more than %d sends this minute for all users", ErrBusy, l.GlobalMinute)
	}
	return nil
}

// ErrBusy is a send refused by the ceiling all users share; it is a
// kind of ErrRateLimited.
var ErrBusy = fmt.Errorf("%w for everyone", ErrRateLimited)

// ErrRefused is an approval refused by the user (a key other than #).
var ErrRefused = errors.New("refused by the user")

// ErrNotYet is an approval not given yet.
var ErrNotYet = errors.New("not approved yet")
