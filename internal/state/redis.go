package state

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is the Store several bridge instances share. Every method is one
// Redis command or one Lua script, so each is atomic on the server
// however many instances call it at once; nothing is read into Go and
// written back. Every key is the prefix followed by the caller's key,
// and every key has an expiry, so Redis holds nothing for ever.
type Redis struct {
	c      redis.UniversalClient
	prefix string
}

// RedisOptions configure NewRedis.
type RedisOptions struct {
	// Addresses are host:port: one server, or the Sentinels of
	// SentinelMaster.
	Addresses        []string
	Username         string
	Password         string
	DB               int
	Prefix           string // begins every key
	SentinelMaster   string
	SentinelUsername string
	SentinelPassword string
	TLS              *tls.Config // nil: clear text
	// Timeout bounds each dial, read and write (default 1s): a Redis that
	// is gone fails a request at once, not after the client's retries.
	Timeout time.Duration
}

// quiet drops go-redis's own log lines: every failure they tell of also
// comes back to the caller, which logs it once, its own way.
type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

var quietOnce sync.Once

// NewRedis returns a Store on Redis. It does not connect: Ping says
// whether Redis answers.
func NewRedis(o RedisOptions) (*Redis, error) {
	quietOnce.Do(func() { redis.SetLogger(quiet{}) })
	if len(o.Addresses) == 0 {
		return nil, errors.New("state: redis: no address")
	}
	if o.Timeout <= 0 {
		o.Timeout = time.Second
	}
	var c redis.UniversalClient
	if o.SentinelMaster != "" {
		c = redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName:       o.SentinelMaster,
			SentinelAddrs:    o.Addresses,
			SentinelUsername: o.SentinelUsername,
			SentinelPassword: o.SentinelPassword,
			Username:         o.Username,
			Password:         o.Password,
			DB:               o.DB,
			TLSConfig:        o.TLS,
			DialTimeout:      o.Timeout,
			ReadTimeout:      o.Timeout,
			WriteTimeout:     o.Timeout,
			PoolTimeout:      o.Timeout,
			PoolSize:         poolSize,
			MaxRetries:       1,
			DialerRetries:    1,
			DisableIdentity:  true,
		})
	} else {
		if len(o.Addresses) > 1 {
			return nil, errors.New("state: redis: several addresses need a Sentinel master name")
		}
		c = redis.NewClient(&redis.Options{
			Addr:            o.Addresses[0],
			Username:        o.Username,
			Password:        o.Password,
			DB:              o.DB,
			TLSConfig:       o.TLS,
			DialTimeout:     o.Timeout,
			ReadTimeout:     o.Timeout,
			WriteTimeout:    o.Timeout,
			PoolTimeout:     o.Timeout,
			PoolSize:        poolSize,
			MaxRetries:      1,
			DialerRetries:   1,
			DisableIdentity: true,
		})
	}
	return &Redis{c: c, prefix: o.Prefix}, nil
}

// poolSize is the connections kept to Redis. go-redis's default (ten per
// core) makes the requests of a busy client queue for a connection: a
// challenge flow makes about ten round trips, and a NAS keeps up to
// max_in_flight_per_client requests in flight. Redis serves many
// connections at no cost to itself.
const poolSize = 128

// Ping reports whether Redis answers, and as the primary: a replica
// would refuse every write.
func (r *Redis) Ping(ctx context.Context) error {
	role, err := r.c.Do(ctx, "ROLE").Slice()
	if err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	if len(role) == 0 || role[0] != "master" {
		return fmt.Errorf("redis: the server is a %v, not the primary", role[0])
	}
	return nil
}

// ErrNoExpiry refuses a key without an expiry: Redis would keep it for
// ever.
var ErrNoExpiry = errors.New("state: redis: every key needs an expiry")

func (r *Redis) SetNX(ctx context.Context, key string, val []byte, ttl time.Duration) (bool, error) {
	if ttl <= 0 {
		return false, ErrNoExpiry
	}
	ok, err := r.c.SetNX(ctx, r.prefix+key, val, ttl).Result()
	return ok, wrap(err)
}

func (r *Redis) Set(ctx context.Context, key string, val []byte, ttl time.Duration) error {
	if ttl <= 0 {
		return ErrNoExpiry
	}
	return wrap(r.c.Set(ctx, r.prefix+key, val, ttl).Err())
}

func (r *Redis) Get(ctx context.Context, key string) ([]byte, bool, error) {
	return found(r.c.Get(ctx, r.prefix+key).Bytes())
}

// Take is GETDEL: of several instances taking one key, one gets it.
func (r *Redis) Take(ctx context.Context, key string) ([]byte, bool, error) {
	return found(r.c.GetDel(ctx, r.prefix+key).Bytes())
}

func (r *Redis) Delete(ctx context.Context, key string) error {
	return wrap(r.c.Del(ctx, r.prefix+key).Err())
}

// incr adds one and gives a new counter its window's expiry in the same
// step; a counter found without one (it cannot be, but a key left by
// hand could) gets it too, so no counter outlives its window for ever.
var incr = redis.NewScript(`
local n = redis.call('INCR', KEYS[1])
if n == 1 or redis.call('PTTL', KEYS[1]) < 0 then
	redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return n`)

// decr takes one from a counter that is there, keeping its expiry, and
// removes it at zero; a counter that is not there stays away.
var decr = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then
	return 0
end
local n = redis.call('DECR', KEYS[1])
if n <= 0 then
	redis.call('DEL', KEYS[1])
	return 0
end
return n`)

func (r *Redis) Incr(ctx context.Context, key string, ttl time.Duration) (int64, error) {
	if ttl <= 0 {
		return 0, ErrNoExpiry
	}
	n, err := incr.Run(ctx, r.c, []string{r.prefix + key}, ttl.Milliseconds()).Int64()
	return n, wrap(err)
}

func (r *Redis) Decr(ctx context.Context, key string) (int64, error) {
	n, err := decr.Run(ctx, r.c, []string{r.prefix + key}).Int64()
	return n, wrap(err)
}

func (r *Redis) Count(ctx context.Context, key string) (int64, error) {
	n, err := r.c.Get(ctx, r.prefix+key).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	return n, wrap(err)
}

// Close closes the connections.
func (r *Redis) Close() error { return r.c.Close() }

func found(b []byte, err error) ([]byte, bool, error) {
	if errors.Is(err, redis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, wrap(err)
	}
	return b, true, nil
}

// wrap names Redis in an error, without the command's arguments (which
// hold keys and values).
func wrap(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if i := strings.Index(msg, "\n"); i >= 0 {
		msg = msg[:i]
	}
	return fmt.Errorf("state: redis: %s", msg)
}
