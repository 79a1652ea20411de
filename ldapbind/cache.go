package ldapbind

import (
	"sync"
	"time"

	"github.com/mfabridge/mfabridge/factors"
)

// entryCache keeps the user entries of recent successful logins for a
// short time (ldap.cache_ttl), so that a login costs one bind instead of a
// search and a bind. The password is still checked by a bind every time;
// what the cache trades away is freshness: a change in the directory (a
// group membership, a mobile number, a renamed entry, an account disabled
// in a way that still lets it bind) is seen up to the TTL late.
type entryCache struct {
	ttl time.Duration
	max int
	now func() time.Time

	mu sync.Mutex
	m  map[string]cached
}

type cached struct {
	user    factors.User
	expires time.Time
}

func newEntryCache(ttl time.Duration, max int, now func() time.Time) *entryCache {
	if ttl <= 0 {
		return nil
	}
	return &entryCache{ttl: ttl, max: max, now: now, m: map[string]cached{}}
}

// get returns a copy of the user cached under the login name, or nil.
func (c *entryCache) get(name string) *factors.User {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[name]
	if !ok {
		return nil
	}
	if !c.now().Before(e.expires) {
		delete(c.m, name)
		return nil
	}
	u := e.user
	u.Groups = append([]string{}, e.user.Groups...)
	return &u
}

func (c *entryCache) put(key string, u *factors.User) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if len(c.m) >= c.max {
		for k, e := range c.m {
			if !now.Before(e.expires) {
				delete(c.m, k)
			}
		}
		if len(c.m) >= c.max {
			return
		}
	}
	cp := *u
	cp.Groups = append([]string{}, u.Groups...) // never nil: they are known
	cp.Certificates, cp.Enrolment = nil, nil
	c.m[key] = cached{user: cp, expires: now.Add(c.ttl)}
}

func (c *entryCache) drop(name string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	delete(c.m, name)
	c.mu.Unlock()
}
