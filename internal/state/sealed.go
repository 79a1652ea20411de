package state

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"time"
)

// Sealed seals the values another Store keeps, for a store other
// processes can reach (Redis): each value is encrypted and authenticated
// with AES-256-GCM, bound to its key. Whoever can read Redis learns no
// session's content (names, numbers, groups), and whoever can write it
// cannot make a session, an approval or a pending code that a bridge
// would take for its own, nor move one value under another key.
// Counters (Incr, Decr) are numbers Redis must add to, so they stay
// as they are: writing Redis can reset a counter, never log anyone in.
type Sealed struct {
	Store
	aead cipher.AEAD
}

// ErrTampered is a value that does not open under the key: written by
// something other than a bridge with this store.key, or moved.
var ErrTampered = errors.New("state: a stored value does not open under the key (changed, moved, or written with another store.key)")

// NewSealed seals s's values under key (32 bytes).
func NewSealed(s Store, key []byte) (*Sealed, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Sealed{Store: s, aead: aead}, nil
}

// sealVersion is the first byte of every sealed value.
const sealVersion = 1

func (s *Sealed) seal(key string, val []byte) ([]byte, error) {
	out := make([]byte, 1+s.aead.NonceSize(), 1+s.aead.NonceSize()+len(val)+s.aead.Overhead())
	out[0] = sealVersion
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, err
	}
	return s.aead.Seal(out, out[1:], val, ad(key)), nil
}

func (s *Sealed) open(key string, b []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(b) < 1+n || b[0] != sealVersion {
		return nil, ErrTampered
	}
	val, err := s.aead.Open(nil, b[1:1+n], b[1+n:], ad(key))
	if err != nil {
		return nil, ErrTampered
	}
	return val, nil
}

func ad(key string) []byte { return append([]byte("mfabridge state\x00"), key...) }

func (s *Sealed) SetNX(ctx context.Context, key string, val []byte, ttl time.Duration) (bool, error) {
	b, err := s.seal(key, val)
	if err != nil {
		return false, err
	}
	return s.Store.SetNX(ctx, key, b, ttl)
}

func (s *Sealed) Set(ctx context.Context, key string, val []byte, ttl time.Duration) error {
	b, err := s.seal(key, val)
	if err != nil {
		return err
	}
	return s.Store.Set(ctx, key, b, ttl)
}

func (s *Sealed) Get(ctx context.Context, key string) ([]byte, bool, error) {
	return s.opened(key)(s.Store.Get(ctx, key))
}

func (s *Sealed) Take(ctx context.Context, key string) ([]byte, bool, error) {
	return s.opened(key)(s.Store.Take(ctx, key))
}

func (s *Sealed) opened(key string) func([]byte, bool, error) ([]byte, bool, error) {
	return func(b []byte, ok bool, err error) ([]byte, bool, error) {
		if err != nil || !ok {
			return nil, ok, err
		}
		val, err := s.open(key, b)
		if err != nil {
			return nil, false, err
		}
		return val, true, nil
	}
}

// Ping passes on to the sealed store when it can tell.
func (s *Sealed) Ping(ctx context.Context) error {
	if p, ok := s.Store.(interface{ Ping(context.Context) error }); ok {
		return p.Ping(ctx)
	}
	return nil
}
