package factors

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strconv"
	"strings"
	"time"
)

// KV is the ephemeral state the sending factors keep their codes,
// approvals and send counters in; internal/state satisfies it. Every
// call is atomic.
type KV interface {
	Set(ctx context.Context, key string, val []byte, ttl time.Duration) error
	Get(ctx context.Context, key string) ([]byte, bool, error)
	Take(ctx context.Context, key string) ([]byte, bool, error)
	Incr(ctx context.Context, key string, ttl time.Duration) (int64, error)
}

// SentCodes issues and checks the one-time codes a factor sends out of
// band: random digits from crypto/rand, one pending code per user and
// method (a new one replaces it), single-use, expiring after TTL, and
// dropped after MaxTries wrong answers.
type SentCodes struct {
	KV       KV
	Length   int
	TTL      time.Duration
	MaxTries int       // default 3
	Rand     io.Reader // default crypto/rand
	Now      func() time.Time
}

type pendingCode struct {
	Code    string    `json:"code"`
	Expires time.Time `json:"expires"`
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
	v, _ := json.Marshal(pendingCode{Code: code, Expires: s.now().Add(s.TTL)})
	if err := s.KV.Set(ctx, codeKey(m, user), v, s.TTL); err != nil {
		return "", fmt.Errorf("store the code: %w", err)
	}
	// A fresh code gets fresh tries.
	if _, _, err := s.KV.Take(ctx, triesKey(m, user)); err != nil {
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
	if subtle.ConstantTimeCompare([]byte(answer), []byte(p.Code)) != 1 {
		max := s.MaxTries
		if max <= 0 {
			max = 3
		}
		n, err := s.KV.Incr(ctx, triesKey(m, user), s.TTL)
		if err == nil && n >= int64(max) {
			s.KV.Take(ctx, codeKey(m, user))
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
