package ldapbind

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/mfabridge/mfabridge/config"
	"github.com/mfabridge/mfabridge/factors"
)

// Options configure a Directory.
type Options struct {
	Log *slog.Logger
	Now func() time.Time
	// IdleCheck is how long a pooled connection may sit idle before it is
	// probed on checkout; default 30s.
	IdleCheck time.Duration
}

// Directory is the LDAP or Active Directory behind the bridge. It is safe
// for concurrent use.
type Directory struct {
	cfg     config.LDAP
	servers []*server
	search  *pool // bound as the service account
	bind    *pool // user binds
	cache   *entryCache
	log     *slog.Logger
	now     func() time.Time
}

// New prepares a Directory from a resolved configuration; it dials
// nothing until the first request.
func New(cfg config.LDAP, o Options) (*Directory, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.IdleCheck <= 0 {
		o.IdleCheck = 30 * time.Second
	}
	base := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         cfg.TLS.ServerName,
		InsecureSkipVerify: cfg.TLS.InsecureSkipVerify,
	}
	if cfg.TLS.CAFile != "" {
		pem, err := os.ReadFile(cfg.TLS.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ldapbind: ldap.tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ldapbind: ldap.tls.ca_file %s holds no PEM certificate", cfg.TLS.CAFile)
		}
		base.RootCAs = pool
	}
	d := &Directory{cfg: cfg, log: o.Log, now: o.Now, cache: newEntryCache(cfg.CacheTTL, 100_000, o.Now)}
	for _, u := range cfg.URLs {
		s, err := newServer(u, base)
		if err != nil {
			return nil, fmt.Errorf("ldapbind: %q: %w", u, err)
		}
		d.servers = append(d.servers, s)
	}
	if len(d.servers) == 0 {
		return nil, errors.New("ldapbind: no ldap.urls")
	}
	probe := func(c *conn) error { return c.do(func() error { _, err := c.WhoAmI(nil); return err }) }
	d.search = newPool("search", cfg.PoolSize, cfg.Timeout, o.IdleCheck, o.Now,
		func(ctx context.Context) (*conn, error) { return d.dial(ctx, true) }, probe)
	d.bind = newPool("bind", cfg.PoolSize, cfg.Timeout, o.IdleCheck, o.Now,
		func(ctx context.Context) (*conn, error) { return d.dial(ctx, false) }, probe)
	return d, nil
}

// Close closes idle connections.
func (d *Directory) Close() {
	d.search.close()
	d.bind.close()
}

// with runs f on a pooled connection, and once more on a fresh one when a
// reused connection fails with a network error (the server may have
// dropped it while idle, or restarted).
func (d *Directory) with(ctx context.Context, p *pool, f func(*conn) error) error {
	for try := 0; ; try++ {
		c, reused, err := p.get(ctx)
		if err != nil {
			return factors.Unavailable("ldapbind: "+p.name+" connection", err)
		}
		err = c.do(func() error { return f(c) })
		broken := err != nil && isNetwork(err)
		p.put(c, broken)
		// A connection the server closed while idle is worth one retry; a
		// server too slow to answer is not: a retry would double the wait.
		if broken && reused && try == 0 && !isTimeout(err) {
			continue
		}
		return err
	}
}

// Authenticate checks password for username (DESIGN §2 step 8): search
// with the service account, then bind as the entry's DN on a connection of
// the bind pool.
func (d *Directory) Authenticate(ctx context.Context, username, password string) (*factors.User, error) {
	if password == "" {
		// An empty simple bind is an anonymous bind (RFC 4513 §5.1.2).
		return nil, factors.ErrBadCredentials
	}
	if u := d.cache.get(username); u != nil {
		err := d.with(ctx, d.bind, func(c *conn) error { return c.Bind(u.DN, password) })
		if err == nil {
			return u, nil
		}
		if errors.Is(err, factors.ErrUnavailable) {
			return nil, err
		}
		// One bind per attempt, as without the cache (a directory counts
		// failed binds towards its own lockout); the next login searches
		// afresh, in case the entry moved.
		d.cache.drop(username)
		return nil, bindError(err)
	}
	e, err := d.findUser(ctx, username, false)
	if err != nil {
		if errors.Is(err, errNoSuchUser) {
			// Spend a bind anyway, so that an unknown user takes as long
			// as a wrong password and timing does not tell them apart.
			d.with(ctx, d.bind, func(c *conn) error { return c.Bind(d.decoyDN(), password) })
			return nil, factors.ErrBadCredentials
		}
		return nil, err
	}
	err = d.with(ctx, d.bind, func(c *conn) error { return c.Bind(e.DN, password) })
	if err != nil {
		if errors.Is(err, factors.ErrUnavailable) {
			return nil, err
		}
		return nil, bindError(err)
	}
	u, err := d.user(ctx, username, e)
	if err == nil {
		d.cache.put(u)
	}
	return u, err
}

// Lookup finds a user without a password, for factors that prove identity
// another way (a smartcard certificate). It reads the certificate
// attribute too. No bind tells it that the account is disabled, so it
// reads the usual markers: Active Directory's userAccountControl
// (ACCOUNTDISABLE, LOCKOUT), OpenLDAP ppolicy's pwdAccountLockedTime and
// 389 Directory Server's nsAccountLock.
func (d *Directory) Lookup(ctx context.Context, username string) (*factors.User, error) {
	e, err := d.findUser(ctx, username, true)
	if err != nil {
		if errors.Is(err, errNoSuchUser) {
			return nil, factors.ErrBadCredentials
		}
		return nil, err
	}
	if reason := disabled(e); reason != "" {
		return nil, &factors.AccountError{Reason: reason}
	}
	return d.user(ctx, username, e)
}

// disabledAttrs are read by Lookup; see disabled.
var disabledAttrs = []string{"userAccountControl", "pwdAccountLockedTime", "nsAccountLock"}

func disabled(e *ldap.Entry) string {
	if v := e.GetAttributeValue("userAccountControl"); v != "" {
		if n, err := strconv.ParseUint(v, 10, 32); err == nil {
			switch {
			case n&0x2 != 0:
				return factors.ReasonAccountDisabled
			case n&0x10 != 0:
				return factors.ReasonAccountLocked
			}
		}
	}
	if e.GetAttributeValue("pwdAccountLockedTime") != "" {
		return factors.ReasonAccountLocked
	}
	if strings.EqualFold(e.GetAttributeValue("nsAccountLock"), "true") {
		return factors.ReasonAccountDisabled
	}
	return ""
}

// Ping checks that a search connection can be had and answers: readiness.
func (d *Directory) Ping(ctx context.Context) error {
	return d.with(ctx, d.search, func(c *conn) error { _, err := c.WhoAmI(nil); return err })
}

var errNoSuchUser = errors.New("no such user")

// decoyDN is a DN no entry has, under base_dn.
func (d *Directory) decoyDN() string { return "cn=mfabridge-no-such-user," + d.cfg.BaseDN }

// findUser searches base_dn with user_filter, the name escaped as RFC 4515
// requires, asking for at most two entries: one is the user, none is
// errNoSuchUser, two means the filter is ambiguous and nobody gets in.
func (d *Directory) findUser(ctx context.Context, username string, withCert bool) (*ldap.Entry, error) {
	filter := strings.ReplaceAll(d.cfg.UserFilter, "{username}", ldap.EscapeFilter(username))
	attrs := []string{"dn"}
	a := d.cfg.Attributes
	for _, n := range []string{a.Mobile, a.Voice, a.UPN} {
		if n != "" {
			attrs = append(attrs, n)
		}
	}
	if withCert && a.Certificate != "" {
		attrs = append(attrs, a.Certificate)
	}
	if withCert {
		attrs = append(attrs, disabledAttrs...)
	}
	if d.cfg.Groups.Mode == config.GroupsMemberOf {
		attrs = append(attrs, "memberOf")
	}
	req := ldap.NewSearchRequest(d.cfg.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
		2, int(d.cfg.Timeout/time.Second), false, filter, attrs, nil)
	var res *ldap.SearchResult
	err := d.with(ctx, d.search, func(c *conn) error {
		var err error
		res, err = c.Search(req)
		return err
	})
	switch {
	case ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) || (err == nil && len(res.Entries) > 1):
		d.log.Warn("user filter matches more than one entry; refusing", "user", username)
		return nil, factors.ErrBadCredentials
	case ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject):
		return nil, errNoSuchUser
	case errors.Is(err, factors.ErrUnavailable):
		return nil, err
	case err != nil:
		return nil, factors.Unavailable("ldapbind: search", err)
	case len(res.Entries) == 0:
		return nil, errNoSuchUser
	}
	return res.Entries[0], nil
}

// user builds the User from the entry, reading groups as configured.
func (d *Directory) user(ctx context.Context, username string, e *ldap.Entry) (*factors.User, error) {
	a := d.cfg.Attributes
	u := &factors.User{
		Name:   username,
		DN:     e.DN,
		Mobile: attr(e, a.Mobile),
		Voice:  attr(e, a.Voice),
		UPN:    attr(e, a.UPN),
	}
	if a.Certificate != "" {
		base, _, _ := strings.Cut(a.Certificate, ";")
		for _, n := range []string{a.Certificate, base, base + ";binary"} {
			if v := e.GetRawAttributeValues(n); len(v) > 0 {
				u.Certificates = v
				break
			}
		}
	}
	var err error
	if d.cfg.Groups.Mode == config.GroupsMemberOf {
		u.Groups = d.groupNames(e.GetAttributeValues("memberOf"))
	} else {
		u.Groups, err = d.searchGroups(ctx, username, e.DN)
	}
	return u, err
}

func attr(e *ldap.Entry, name string) string {
	if name == "" {
		return ""
	}
	return e.GetAttributeValue(name)
}

// groupNames returns each group DN and, beside it, the value of its first
// RDN, so policies may name a group by cn or by DN.
func (d *Directory) groupNames(dns []string) []string {
	out := make([]string, 0, 2*len(dns))
	for _, dn := range dns {
		out = append(out, dn)
		if p, err := ldap.ParseDN(dn); err == nil && len(p.RDNs) > 0 && len(p.RDNs[0].Attributes) > 0 {
			out = append(out, p.RDNs[0].Attributes[0].Value)
		}
	}
	return out
}

// maxGroups bounds the groups read for one user.
const maxGroups = 1000

func (d *Directory) searchGroups(ctx context.Context, username, dn string) ([]string, error) {
	g := d.cfg.Groups
	filter := strings.NewReplacer("{dn}", ldap.EscapeFilter(dn), "{username}", ldap.EscapeFilter(username)).Replace(g.Filter)
	req := ldap.NewSearchRequest(g.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
		maxGroups, int(d.cfg.Timeout/time.Second), false, filter, []string{g.NameAttribute}, nil)
	var res *ldap.SearchResult
	err := d.with(ctx, d.search, func(c *conn) error {
		var err error
		res, err = c.Search(req)
		return err
	})
	if err != nil && !ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) {
		if errors.Is(err, factors.ErrUnavailable) {
			return nil, err
		}
		return nil, factors.Unavailable("ldapbind: group search", err)
	}
	var out []string
	if res == nil {
		return nil, nil
	}
	for _, e := range res.Entries {
		out = append(out, e.DN)
		if n := e.GetAttributeValue(g.NameAttribute); n != "" {
			out = append(out, n)
		}
	}
	return out, nil
}
