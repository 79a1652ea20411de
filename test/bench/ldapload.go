package main

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/mfabridge/mfabridge/test/harness"
)

// ldapTimeout bounds each LDAP operation of the ceiling measurements.
const ldapTimeout = 5 * time.Second

// userFilter is the bridge's default ldap.user_filter; the ceiling
// search and FreeRADIUS use the same.
const userFilter = "(&(objectClass=inetOrgPerson)(uid={username}))"

// searchAttrs are what the bridge asks for with its default
// configuration (ldap.attributes and groups.mode member_of).
var searchAttrs = []string{"dn", "mobile", "mail", "memberOf"}

// ldapCeiling measures slapd directly with go-ldap, workers goroutines
// each with its own connections: with search false, simple binds of
// random users on one connection; with search true, a search for a random
// user by uid on a connection bound as the service account, then a simple
// bind as the entry's DN on a second connection: what a login needs.
// With rate > 0 it is an open loop at that many logins per second in all,
// paced as run paces RADIUS requests, latency counted from the due time:
// the directory's own tail at a given load.
func ldapCeiling(ctx context.Context, url string, users []benchUser, workers int, dur time.Duration, search bool, rate float64) *stats {
	total := &stats{}
	type pair struct{ s, b *ldap.Conn }
	conns := make([]pair, 0, workers)
	dial := func(service bool) (*ldap.Conn, error) {
		c, err := ldap.DialURL(url, ldap.DialWithDialer(&net.Dialer{Timeout: ldapTimeout}))
		if err != nil {
			return nil, err
		}
		c.SetTimeout(ldapTimeout)
		if service {
			if err := c.Bind(harness.ServiceDN, harness.ServicePass); err != nil {
				c.Close()
				return nil, err
			}
		}
		return c, nil
	}
	defer func() {
		for _, p := range conns {
			if p.s != nil {
				p.s.Close()
			}
			p.b.Close()
		}
	}()
	for i := 0; i < workers; i++ {
		var p pair
		var err error
		if search {
			if p.s, err = dial(true); err != nil {
				total.fail(err)
				continue
			}
		}
		if p.b, err = dial(false); err != nil {
			if p.s != nil {
				p.s.Close()
			}
			total.fail(err)
			continue
		}
		conns = append(conns, p)
	}
	var seq atomic.Uint64
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	stop := start.Add(dur)
	for i, p := range conns {
		wg.Add(1)
		go func(i int, p pair) {
			defer wg.Done()
			s := &stats{lat: make([]time.Duration, 0, 4096)}
			pace := newPacer(start, rate, i, len(conns))
			for ctx.Err() == nil && time.Now().Before(stop) {
				t0 := pace.wait(ctx, s)
				if !t0.Before(stop) {
					break
				}
				u := users[int(mix(seq.Add(1))%uint64(len(users)))]
				dn := "uid=" + ldap.EscapeDN(u.UID) + "," + harness.PeopleDN
				if search {
					req := ldap.NewSearchRequest(harness.PeopleDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 2,
						int(ldapTimeout/time.Second), false, fmt.Sprintf("(&(objectClass=inetOrgPerson)(uid=%s))", ldap.EscapeFilter(u.UID)),
						searchAttrs, nil)
					res, err := p.s.Search(req)
					if err != nil {
						s.fail(err)
						continue
					}
					if len(res.Entries) != 1 {
						s.reject++
						continue
					}
					dn = res.Entries[0].DN
				}
				if err := p.b.Bind(dn, u.Password); err != nil {
					if ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
						s.reject++
					} else {
						s.fail(err)
					}
					continue
				}
				s.accept++
				s.ok++
				s.lat = append(s.lat, time.Since(t0))
			}
			mu.Lock()
			total.merge(s)
			mu.Unlock()
		}(i, p)
	}
	wg.Wait()
	total.elapsed = time.Since(start)
	if total.elapsed > dur && rate > 0 {
		total.elapsed = dur
	}
	total.sortLat()
	return total
}
