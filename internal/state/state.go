// Package state holds the bridge's ephemeral state: challenge sessions,
// the one-time-code replay guard, lockout counters, rate limits and
// remembered logins. Everything here may be lost on restart without
// letting anyone in; what must survive (HOTP counters, enrolments) lives
// in the enrolment store.
//
// Every call is one atomic operation on one key, values are bytes, and
// expiry is a TTL: Memory keeps them in the process, Redis for several
// bridge instances, and Sealed encrypts the values of either.
package state

import (
	"context"
	"time"
)

// Store is the ephemeral state. Implementations are safe for concurrent
// use and every method is atomic.
type Store interface {
	// SetNX stores val under key for ttl unless key exists; it reports
	// whether it stored it. A once-only guard.
	SetNX(ctx context.Context, key string, val []byte, ttl time.Duration) (bool, error)
	// Set stores val under key for ttl, replacing any value.
	Set(ctx context.Context, key string, val []byte, ttl time.Duration) error
	// Get returns the value under key.
	Get(ctx context.Context, key string) (val []byte, ok bool, err error)
	// Take returns the value under key and deletes it, so that exactly one
	// of several concurrent callers gets it.
	Take(ctx context.Context, key string) (val []byte, ok bool, err error)
	// Delete removes key.
	Delete(ctx context.Context, key string) error
	// Incr adds one to the counter under key and returns the new value; a
	// new counter expires ttl after its first increment (a fixed window).
	Incr(ctx context.Context, key string, ttl time.Duration) (int64, error)
	// Decr takes one from the counter under key, keeping its expiry, and
	// returns the new value; a counter that reaches zero goes. A counter
	// that is not there stays away (0).
	Decr(ctx context.Context, key string) (int64, error)
	// Count returns the counter under key (0 when it is not there).
	// Counters are read with Count, values with Get: a store may keep
	// the two differently.
	Count(ctx context.Context, key string) (int64, error)
	// Close releases resources.
	Close() error
}
