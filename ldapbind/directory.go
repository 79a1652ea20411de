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
	"github.com/mfabridge/mfabridge/internal/audit"
	"github.com/mfabridge/mfabridge/internal/username"
)

// Options configure a Directory.
type Options struct {
	Log *slog.Logger
	Now func() time.Time
	// IdleCheck is how long a pooled connection may sit idle before it is
	// probed on checkout; default 30s.
	IdleCheck time.Duration
	// Lowercase is server.username.lowercase: the form of canonical names.
	Lowercase bool
	// Groups are the groups policies name (DNs or names); a User's Groups
	// are those of them it is in, as written here.
	Groups []string
}

// Directory is the LDAP or Active Directory behind the bridge. It is safe
// for concurrent use.
type Directory struct {
	cfg     config.LDAP
	servers []*server
	search  *pool // bound as the service account
	bind    *pool // user binds
	cache   *entryCache
	groups  *groupMatcher
	// lowercase is the form of canonical names (server.username).
	lowercase bool
	log       *slog.Logger
	now       func() time.Time
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
	if cfg.Attributes.Username == "" {
		return nil, errors.New("ldapbind: ldap.attributes.username is not set")
	}
	d := &Directory{cfg: cfg, log: o.Log, now: o.Now, cache: newEntryCache(cfg.CacheTTL, 100_000, o.Now),
		groups: newGroupMatcher(cfg.Groups.BaseDN, cfg.Groups.NameAttribute, o.Groups), lowercase: o.Lowercase}
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

// Find looks a user up with the service account (DESIGN §2 step 8, the
// search): login is the name as normalised from what the user typed. The
// User it returns carries the canonical name (see canonical), the DN and
// the attributes the factors read; Bind checks the password. A name no
// entry answers to, or more than one, is factors.ErrNoSuchUser.
func (d *Directory) Find(ctx context.Context, login string) (*factors.User, error) {
	if u := d.cache.get(login); u != nil {
		return u, nil
	}
	e, err := d.findUser(ctx, d.userFilter(login), login, false)
	if err != nil {
		return nil, err
	}
	u, err := d.user(e)
	if err != nil {
		return nil, err
	}
	u.Login = loginOf(login, u.Name)
	return u, nil
}

// Bind checks password against u's entry (found by Find) with a bind on a
// connection of the bind pool, then completes u with its groups. Errors
// are factors.ErrBadCredentials, *factors.AccountError, or wrap
// factors.ErrUnavailable.
func (d *Directory) Bind(ctx context.Context, u *factors.User, password string) (*factors.User, error) {
	if password == "" {
		// An empty simple bind is an anonymous bind (RFC 4513 §5.1.2).
		return nil, factors.ErrBadCredentials
	}
	err := d.with(ctx, d.bind, func(c *conn) error { return c.Bind(u.DN, password) })
	if err != nil {
		if errors.Is(err, factors.ErrUnavailable) {
			return nil, err
		}
		// One bind per attempt, as without the cache (a directory counts
		// failed binds towards its own lockout); the next login searches
		// afresh, in case the entry moved.
		d.cache.drop(cacheKey(u))
		return nil, bindError(err)
	}
	if u.Groups == nil {
		if u, err = d.withGroups(ctx, u); err != nil {
			return nil, err
		}
	}
	d.cache.put(cacheKey(u), u)
	return u, nil
}

// Decoy spends a bind that fails, against a DN no entry has: a login by
// a name nobody holds then costs what a wrong password costs, and timing
// does not tell the two apart.
func (d *Directory) Decoy(ctx context.Context, password string) {
	if password == "" {
		return
	}
	d.with(ctx, d.bind, func(c *conn) error { return c.Bind(d.decoyDN(), password) })
}

// Lookup finds a user without a password, for factors that prove
// identity another way (a smartcard certificate): by login name with
// user_filter. It reads the certificate attribute too. No bind tells it
// that the account is disabled, so it reads the usual markers: Active
// Directory's userAccountControl (ACCOUNTDISABLE, LOCKOUT), its computed
// msDS-User-Account-Control-Computed (a lockout still in force) and
// accountExpires, OpenLDAP ppolicy's pwdAccountLockedTime and 389
// Directory Server's nsAccountLock.
func (d *Directory) Lookup(ctx context.Context, login string) (*factors.User, error) {
	return d.lookup(ctx, d.userFilter(login), login)
}

// LookupIdentity finds a user by the whole UPN or email address a
// certificate carries, in ldap.attributes.upn, as Lookup does: a realm
// is never dropped, so a card of another domain finds no local user.
func (d *Directory) LookupIdentity(ctx context.Context, id string) (*factors.User, error) {
	if d.cfg.Attributes.UPN == "" {
		return nil, factors.ErrNoSuchUser
	}
	filter := "(" + d.cfg.Attributes.UPN + "=" + ldap.EscapeFilter(id) + ")"
	return d.lookup(ctx, filter, id)
}

func (d *Directory) lookup(ctx context.Context, filter, login string) (*factors.User, error) {
	e, err := d.findUser(ctx, filter, login, true)
	if err != nil {
		return nil, err
	}
	u, err := d.user(e)
	if err != nil {
		return nil, err
	}
	if reason := disabled(e, d.now()); reason != "" {
		return nil, &factors.AccountError{Reason: reason, User: u.Name}
	}
	u.Login = loginOf(login, u.Name)
	return d.withGroups(ctx, u)
}

func loginOf(login, name string) string {
	if login == name {
		return ""
	}
	return login
}

func cacheKey(u *factors.User) string {
	if u.Login != "" {
		return u.Login
	}
	return u.Name
}

// disabledAttrs are read by Lookup; see disabled.
var disabledAttrs = []string{"userAccountControl", "msDS-User-Account-Control-Computed", "accountExpires",
	"pwdAccountLockedTime", "nsAccountLock"}

// Active Directory's userAccountControl flags (MS-ADTS 2.2.16).
const (
	uacAccountDisable = 0x2
	uacLockout        = 0x10
)

// adNeverExpires are accountExpires values that mean never: 0 and the
// largest FILETIME.
const adNeverExpires = 0x7FFFFFFFFFFFFFFF

// disabled returns the reason an entry may not log in without a
// password check to say so, or "".
func disabled(e *ldap.Entry, now time.Time) audit.Reason {
	for _, a := range []string{"userAccountControl", "msDS-User-Account-Control-Computed"} {
		v := e.GetAttributeValue(a)
		if v == "" {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return audit.ReasonAccountDisabled // unreadable: refuse rather than guess
		}
		switch {
		case n&uacAccountDisable != 0:
			return audit.ReasonAccountDisabled
		case n&uacLockout != 0:
			return audit.ReasonAccountLocked
		}
	}
	if v := e.GetAttributeValue("accountExpires"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return audit.ReasonAccountExpired
		}
		if n != 0 && n != adNeverExpires && !now.Before(fileTime(n)) {
			return audit.ReasonAccountExpired
		}
	}
	if e.GetAttributeValue("pwdAccountLockedTime") != "" {
		return audit.ReasonAccountLocked
	}
	if strings.EqualFold(e.GetAttributeValue("nsAccountLock"), "true") {
		return audit.ReasonAccountDisabled
	}
	return ""
}

// fileTime converts a Windows FILETIME (100 ns intervals since 1601) to
// a time.
func fileTime(n int64) time.Time {
	const epochDiff = 116444736000000000 // 1601-01-01 to 1970-01-01 in 100 ns
	n -= epochDiff
	return time.Unix(n/10_000_000, n%10_000_000*100)
}

// Ping checks that a search connection can be had and answers: readiness.
func (d *Directory) Ping(ctx context.Context) error {
	return d.with(ctx, d.search, func(c *conn) error { _, err := c.WhoAmI(nil); return err })
}

// decoyDN is a DN no entry has, under base_dn.
func (d *Directory) decoyDN() string { return "cn=mfabridge-no-such-user," + d.cfg.BaseDN }

// userFilter is user_filter with login in place of {username}, escaped
// as RFC 4515 requires.
func (d *Directory) userFilter(login string) string {
	return strings.ReplaceAll(d.cfg.UserFilter, "{username}", ldap.EscapeFilter(login))
}

// findUser searches base_dn with filter, asking for at most two entries:
// one is the user; none, or two (the filter is ambiguous and nobody gets
// in), is factors.ErrNoSuchUser.
func (d *Directory) findUser(ctx context.Context, filter, login string, withCert bool) (*ldap.Entry, error) {
	a := d.cfg.Attributes
	attrs := []string{a.Username}
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
		attrs = append(attrs, "objectSid")
	}
	if d.cfg.Groups.Mode == config.GroupsMemberOf && !d.cfg.Groups.Nested {
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
		d.log.Warn("user filter matches more than one entry; refusing", "user", login)
		return nil, factors.ErrNoSuchUser
	case ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject):
		return nil, factors.ErrNoSuchUser
	case errors.Is(err, factors.ErrUnavailable):
		return nil, err
	case err != nil:
		return nil, factors.Unavailable("ldapbind: search", err)
	case len(res.Entries) == 0:
		return nil, factors.ErrNoSuchUser
	}
	return res.Entries[0], nil
}

// ErrNoName is an entry whose naming attribute (ldap.attributes.username)
// gives no single name the bridge can key on.
var ErrNoName = errors.New("ldapbind: the entry has no usable name in its naming attribute")

// canonical is the one name of an entry: the value of the naming
// attribute as stored, in the normalised form of internal/username. An
// entry with several values (uid is multi-valued) is named by the one
// in its RDN, if its RDN is that attribute; otherwise it has no one name
// and nobody may log in as it.
func (d *Directory) canonical(e *ldap.Entry) (string, error) {
	attr := d.cfg.Attributes.Username
	values := e.GetEqualFoldAttributeValues(attr)
	if len(values) > 1 {
		values = nil
		if dn, err := ldap.ParseDN(e.DN); err == nil && len(dn.RDNs) > 0 {
			for _, a := range dn.RDNs[0].Attributes {
				if strings.EqualFold(a.Type, attr) {
					values = []string{a.Value}
				}
			}
		}
	}
	if len(values) != 1 {
		return "", fmt.Errorf("%w: %s has %d values of %s", ErrNoName, e.DN, len(values), attr)
	}
	name, err := username.Canonical(values[0], d.lowercase)
	if err != nil {
		return "", fmt.Errorf("%w: %s: %s %q: %v", ErrNoName, e.DN, attr, values[0], err)
	}
	return name, nil
}

// user builds the User from the entry; in member_of mode its groups too.
func (d *Directory) user(e *ldap.Entry) (*factors.User, error) {
	name, err := d.canonical(e)
	if err != nil {
		d.log.Warn("directory entry refused: no single name to key it on", "err", err)
		return nil, factors.ErrNoSuchUser
	}
	a := d.cfg.Attributes
	u := &factors.User{
		Name:   name,
		DN:     e.DN,
		Mobile: attr(e, a.Mobile),
		Voice:  attr(e, a.Voice),
		UPN:    attr(e, a.UPN),
		SID:    sidString(e.GetRawAttributeValue("objectSid")),
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
	if d.cfg.Groups.Mode == config.GroupsMemberOf && !d.cfg.Groups.Nested {
		u.Groups = d.groups.match(e.GetAttributeValues("memberOf"), nil)
	}
	return u, nil
}

func attr(e *ldap.Entry, name string) string {
	if name == "" {
		return ""
	}
	return e.GetAttributeValue(name)
}

// maxGroups bounds the groups read for one user.
const maxGroups = 1000

// inChain is Active Directory's LDAP_MATCHING_RULE_IN_CHAIN: membership
// through nested groups.
const inChain = "1.2.840.113556.1.4.1941"

// withGroups fills u.Groups by a search under groups.base_dn (search
// mode, or nested groups).
func (d *Directory) withGroups(ctx context.Context, u *factors.User) (*factors.User, error) {
	if u.Groups != nil {
		return u, nil
	}
	g := d.cfg.Groups
	filter := d.groupFilter(u)
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
	var dns []string
	names := map[string]string{}
	if res != nil {
		for _, e := range res.Entries {
			dns = append(dns, e.DN)
			if n := e.GetEqualFoldAttributeValues(g.NameAttribute); len(n) > 0 {
				names[e.DN] = n[0]
			}
		}
	}
	u.Groups = d.groups.match(dns, names)
	return u, nil
}

// groupFilter is the filter of a group search for u: the configured one,
// or with nested groups the in-chain rule on member.
func (d *Directory) groupFilter(u *factors.User) string {
	if d.cfg.Groups.Nested {
		return "(member:" + inChain + ":=" + ldap.EscapeFilter(u.DN) + ")"
	}
	return strings.NewReplacer("{dn}", ldap.EscapeFilter(u.DN), "{username}", ldap.EscapeFilter(u.Name)).Replace(d.cfg.Groups.Filter)
}
