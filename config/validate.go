package config

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// validator collects problems by key path; Parse places them in the file.
type validator struct {
	probs []Problem
	warn  []Problem
}

func (v *validator) bad(path, msg, hint string) {
	v.probs = append(v.probs, Problem{Path: path, Message: msg, Hint: hint})
}

func (v *validator) warning(path, msg string) {
	v.warn = append(v.warn, Problem{Path: path, Message: msg})
}

func clientPath(i int) string { return "clients[" + strconv.Itoa(i) + "]" }

// validate checks every rule that the types alone cannot express and
// reports all problems at once. Warnings go to c.Warnings.
func (c *Config) validate() []Problem {
	v := &validator{}
	c.validateServer(v)
	c.validateClients(v)
	c.validateLDAP(v)
	c.validateStoreState(v)
	c.validateFactors(v)
	c.validatePolicies(v)
	c.validateLockoutLogging(v)
	c.validatePortal(v)
	for _, w := range v.warn {
		c.addWarning(w)
	}
	return v.probs
}

func (c *Config) addWarning(p Problem) {
	if p.Line == 0 {
		p.Line, p.Column = c.pos.find(p.Path)
	}
	c.Warnings = append(c.Warnings, "warning: "+p.format(c.File))
}

func (c *Config) validateServer(v *validator) {
	s := c.Server
	if len(s.RadiusListen) == 0 {
		v.bad("server.radius_listen", "no RADIUS listener", `list at least one address, such as ["0.0.0.0:1812"]`)
	}
	seen := map[string]bool{}
	for i, a := range s.RadiusListen {
		p := fmt.Sprintf("server.radius_listen[%d]", i)
		checkListen(v, p, a)
		if seen[a] {
			v.bad(p, fmt.Sprintf("%q is listed twice", a), "remove the duplicate")
		}
		seen[a] = true
	}
	if s.RadsecListen != "" {
		checkListen(v, "server.radsec_listen", s.RadsecListen)
		for key, f := range map[string]string{"cert_file": s.RadsecTLS.CertFile, "key_file": s.RadsecTLS.KeyFile,
			"client_ca_file": s.RadsecTLS.ClientCAFile} {
			if f == "" {
				v.bad("server.radsec_tls."+key, "missing: RadSec needs a server certificate, its key and the CA of client certificates",
					"give PEM files: cert_file, key_file and client_ca_file")
			}
		}
		positive(v, "server.radsec_idle_timeout", s.RadsecIdleTimeout, time.Hour)
		if s.RadsecMaxConnections < 1 || s.RadsecMaxConnections > 65536 {
			v.bad("server.radsec_max_connections", fmt.Sprintf("%d is not from 1 to 65536", s.RadsecMaxConnections), "256 suits most sites")
		}
	}
	if s.AdminListen != "" {
		checkListen(v, "server.admin_listen", s.AdminListen)
	}
	if s.WebhookListen != "" {
		checkListen(v, "server.webhook_listen", s.WebhookListen)
		if s.WebhookListen == s.AdminListen {
			v.bad("server.webhook_listen", "the same address as admin_listen", "give the webhooks their own address, or leave webhook_listen empty")
		}
	}
	if s.DuplicateCacheEntries < 64 || s.DuplicateCacheEntries > 1<<24 {
		v.bad("server.duplicate_cache_entries", fmt.Sprintf("%d is not from 64 to 16777216", s.DuplicateCacheEntries),
			"65536 holds 30s of more than 2,000 requests a second from one client")
	}
	if s.PublicURL != "" {
		if u, err := url.Parse(s.PublicURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			v.bad("server.public_url", fmt.Sprintf("%q is not an http(s) URL", s.PublicURL),
				"write the address Twilio uses to reach admin_listen, such as https://mfa.example.org")
		}
	}
	if s.MaxInFlightPerClient < 1 || s.MaxInFlightPerClient > 65536 {
		v.bad("server.max_in_flight_per_client", fmt.Sprintf("%d is not from 1 to 65536", s.MaxInFlightPerClient),
			"32 suits most sites; a few times ldap.pool_size is enough")
	}
	positive(v, "server.duplicate_window", s.DuplicateWindow, time.Minute*10)
	positive(v, "server.challenge_timeout", s.ChallengeTimeout, time.Hour)
}

// checkListen requires host:port with an IP literal (or an empty host for
// every address) and a port from 1 to 65535.
func checkListen(v *validator, path, addr string) {
	hint := `write an IP address and port, such as "0.0.0.0:1812" or "[::]:1812"`
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		v.bad(path, fmt.Sprintf("%q is not host:port", addr), hint)
		return
	}
	if host != "" {
		if _, err := netip.ParseAddr(host); err != nil {
			v.bad(path, fmt.Sprintf("%q is not an IP address", host), hint)
		}
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		v.bad(path, fmt.Sprintf("%q is not a port from 1 to 65535", port), hint)
	}
}

func positive(v *validator, path string, d, max time.Duration) {
	if d <= 0 {
		v.bad(path, "must be longer than zero", "write a duration such as 30s")
	} else if d > max {
		v.bad(path, fmt.Sprintf("%s is longer than the limit of %s", d, max), "write a shorter duration")
	}
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)

func (c *Config) validateClients(v *validator) {
	if len(c.Clients) == 0 {
		v.bad("clients", "no RADIUS clients are configured, so every packet would be dropped",
			"add a client with name, address and secret")
	}
	names := map[string]int{}
	prefixes := map[clientKey]int{}
	for i := range c.Clients {
		cl := &c.Clients[i]
		p := clientPath(i)
		switch {
		case cl.Name == "":
			v.bad(p+".name", "missing client name", "give each client a short name, used in logs and metrics")
		case !nameRE.MatchString(cl.Name):
			v.bad(p+".name", fmt.Sprintf("%q is not a valid name", cl.Name), "use letters, digits, '.', '_' and '-'")
		default:
			if j, dup := names[cl.Name]; dup {
				v.bad(p+".name", fmt.Sprintf("client name %q is already used by clients[%d]", cl.Name, j), "give each client its own name")
			}
			names[cl.Name] = i
		}
		pfx, msg := parseClientAddress(cl.Address)
		if msg != "" {
			v.bad(p+".address", msg, "write an IP address such as 192.0.2.10, or a range such as 192.0.2.0/24")
		} else {
			cl.Prefix = pfx
			// UDP clients are told apart by address alone; RadSec clients
			// by certificate name and address.
			key := clientKey{pfx, strings.ToLower(cl.RadsecName)}
			if j, dup := prefixes[key]; dup {
				v.bad(p+".address", fmt.Sprintf("%s overlaps clients[%d] (%s): the same addresses", pfx, j, c.Clients[j].Name),
					"merge the two clients, or narrow one of them; a more specific range inside a wider one is allowed and wins")
			}
			prefixes[key] = i
		}
		switch {
		case cl.RadsecName != "":
			if c.Server.RadsecListen == "" {
				v.bad(p+".radsec_name", "a RadSec client, but server.radsec_listen is not set", "set server.radsec_listen, or remove radsec_name for a UDP client")
			}
			if !cl.Secret.IsZero() && cl.Secret.ref != "radsec" {
				v.bad(p+".secret", `a RadSec client's secret is the fixed "radsec" (RFC 6614)`, "remove secret from this client")
			}
		case cl.Secret.IsZero():
			v.bad(p+".secret", "missing shared secret", `write secret: "env:NAME" or "file:/path" (a literal works but lands in backups)`)
		}
		if _, ok := c.Policies[cl.Policy]; !ok {
			v.bad(p+".policy", fmt.Sprintf("no policy named %q", cl.Policy), "policies defined: "+keys(c.Policies))
		}
		nasSeen := map[string]bool{}
		for j, n := range cl.NAS {
			np := fmt.Sprintf("%s.nas[%d]", p, j)
			if !cl.Proxy {
				v.bad(np, "a policy per NAS-Identifier is for proxies: the client itself is the NAS otherwise", "set proxy: true, or use policy")
			}
			switch {
			case n.Identifier == "":
				v.bad(np+".identifier", "missing", "write the NAS-Identifier the proxy passes on, such as asa-london")
			case nasSeen[n.Identifier]:
				v.bad(np+".identifier", fmt.Sprintf("%q is listed twice", n.Identifier), "remove the duplicate")
			}
			nasSeen[n.Identifier] = true
			if _, ok := c.Policies[n.Policy]; !ok {
				v.bad(np+".policy", fmt.Sprintf("no policy named %q", n.Policy), "policies defined: "+keys(c.Policies))
			}
		}
		if cl.RequireMessageAuthenticator == MAFalse {
			v.warning(p+".require_message_authenticator",
				"false leaves this client open to Blast-RADIUS (CVE-2024-3596) forgery; prefer auto or true")
		}
	}
}

// clientKey identifies a client: its range, and for RadSec its name.
type clientKey struct {
	prefix netip.Prefix
	name   string
}

// parseClientAddress accepts an IP or a CIDR without host bits.
func parseClientAddress(s string) (netip.Prefix, string) {
	if s == "" {
		return netip.Prefix{}, "missing client address"
	}
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return p, fmt.Sprintf("%q is not a CIDR range", s)
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		if p.Masked() != p {
			return p, fmt.Sprintf("%q has host bits set; did you mean %s?", s, p.Masked())
		}
		return p, ""
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Sprintf("%q is not an IP address or CIDR range", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), ""
}

func keys[V any](m map[string]V) string {
	k := make([]string, 0, len(m))
	for n := range m {
		k = append(k, n)
	}
	sort.Strings(k)
	if len(k) == 0 {
		return "(none)"
	}
	return strings.Join(k, ", ")
}

func (c *Config) validateLDAP(v *validator) {
	l := c.LDAP
	if len(l.URLs) == 0 {
		v.bad("ldap.urls", "no directory URL", `list one or more, such as ["ldaps://dc1.example.org"]`)
	}
	for i, s := range l.URLs {
		p := fmt.Sprintf("ldap.urls[%d]", i)
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "ldap" && u.Scheme != "ldaps") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			v.bad(p, fmt.Sprintf("%q is not an ldap:// or ldaps:// URL", s), "write a URL such as ldaps://dc1.example.org:636")
			continue
		}
		if u.Scheme == "ldaps" && l.StartTLS {
			v.bad(p, "start_tls is set but this URL is already ldaps://", "use ldap:// with start_tls, or ldaps:// without it")
		}
		if u.Scheme == "ldap" && !l.StartTLS && !isLoopbackHost(u.Hostname()) {
			v.warning(p, "passwords cross the network in clear text: use ldaps:// or start_tls: true")
		}
	}
	if l.TLS.InsecureSkipVerify {
		v.warning("ldap.tls.insecure_skip_verify", "the directory's certificate is not verified; anyone on the path can read passwords")
	}
	if l.BaseDN == "" {
		v.bad("ldap.base_dn", "missing base DN", `write where users live, such as "ou=people,dc=example,dc=org"`)
	}
	switch {
	case l.UserFilter == "":
		v.bad("ldap.user_filter", "missing user filter", `write one such as "(&(objectClass=user)(sAMAccountName={username}))"`)
	case !strings.Contains(l.UserFilter, "{username}"):
		v.bad("ldap.user_filter", "the filter does not contain {username}", "put {username} where the login name goes")
	case !balancedFilter(l.UserFilter):
		v.bad("ldap.user_filter", "the filter's parentheses do not balance", "an LDAP filter is written like (&(a=b)(c=d))")
	}
	if l.BindDN != "" && l.BindPassword.IsZero() {
		v.bad("ldap.bind_password", "bind_dn is set but bind_password is missing", `write bind_password: "file:/etc/mfabridge/ldap.secret"`)
	}
	if l.BindDN == "" && !l.BindPassword.IsZero() {
		v.bad("ldap.bind_dn", "bind_password is set but bind_dn is missing", "write the service account's DN")
	}
	switch l.Groups.Mode {
	case GroupsMemberOf:
	case GroupsSearch:
		if !strings.Contains(l.Groups.Filter, "{dn}") && !strings.Contains(l.Groups.Filter, "{username}") {
			v.bad("ldap.groups.filter", "the group filter contains neither {dn} nor {username}", `write one such as "(member={dn})"`)
		} else if !balancedFilter(l.Groups.Filter) {
			v.bad("ldap.groups.filter", "the filter's parentheses do not balance", "an LDAP filter is written like (member={dn})")
		}
	default:
		v.bad("ldap.groups.mode", fmt.Sprintf("%q is not member_of or search", l.Groups.Mode), "write member_of or search")
	}
	if l.Groups.NameAttribute == "" {
		v.bad("ldap.groups.name_attribute", "missing", "write the attribute that names a group, usually cn")
	}
	if !c.groupsBaseSet {
		c.groupNamesNeedBase(v)
	}
	switch {
	case l.Attributes.Username == "" && strings.Contains(l.UserFilter, "{username}"):
		v.bad("ldap.attributes.username", "user_filter does not compare {username} with exactly one attribute, so the attribute that names a user is not known",
			"set ldap.attributes.username to the attribute whose value is the user's name, such as uid or sAMAccountName")
	case l.Attributes.Username != "" && !attrNameRE.MatchString(l.Attributes.Username):
		v.bad("ldap.attributes.username", fmt.Sprintf("%q is not an attribute name", l.Attributes.Username), "write a name such as uid")
	}
	if l.PoolSize < 1 || l.PoolSize > 256 {
		v.bad("ldap.pool_size", fmt.Sprintf("%d is not from 1 to 256", l.PoolSize), "8 suits most sites")
	}
	positive(v, "ldap.timeout", l.Timeout, time.Minute)
	if l.CacheTTL < 0 || l.CacheTTL > 10*time.Minute {
		v.bad("ldap.cache_ttl", fmt.Sprintf("%s is not from 0s to 10m", l.CacheTTL), "0s turns it off; 30s is usual")
	}
}

var attrNameRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9-]*$`)

// groupNamesNeedBase refuses a group named without a DN when
// ldap.groups.base_dn was left to default to ldap.base_dn: any group of
// that name anywhere under the base would then match, including one a
// user may create.
func (c *Config) groupNamesNeedBase(v *validator) {
	for _, name := range sortedKeys(c.Policies) {
		p := c.Policies[name]
		lists := []struct {
			key  string
			list []string
		}{{"deny_groups", p.DenyGroups}, {"require_groups", p.RequireGroups}, {"bypass_groups", p.BypassGroups}}
		for i, r := range p.ReplyAttributes {
			lists = append(lists, struct {
				key  string
				list []string
			}{fmt.Sprintf("reply_attributes[%d].groups", i), r.Groups})
		}
		for _, l := range lists {
			for i, g := range l.list {
				if !strings.Contains(g, "=") && strings.TrimSpace(g) != "" {
					v.bad(fmt.Sprintf("policies.%s.%s[%d]", name, l.key, i),
						fmt.Sprintf("group %q is named without its DN and ldap.groups.base_dn is not set, so a group of that name anywhere under ldap.base_dn would match", g),
						"set ldap.groups.base_dn to where your groups live (such as ou=groups,dc=example,dc=org), or name the group by its DN")
					return
				}
			}
		}
	}
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(h)
	return err == nil && a.IsLoopback()
}

func balancedFilter(f string) bool {
	if !strings.HasPrefix(f, "(") {
		return false
	}
	depth := 0
	for i := 0; i < len(f); i++ {
		switch f[i] {
		case '(':
			depth++
		case ')':
			depth--
			if depth < 0 {
				return false
			}
		}
	}
	return depth == 0
}

func (c *Config) validateStoreState(v *validator) {
	switch c.Store.Driver {
	case DriverSQLite:
		if c.Store.Path == "" {
			v.bad("store.path", "missing", "write the path of the enrolment database, such as /var/lib/mfabridge/store.db")
		}
	case DriverPostgres:
		if c.Store.DSN.IsZero() {
			v.bad("store.dsn", "the postgres driver needs a connection string",
				`write dsn: "env:MFABRIDGE_PG_DSN" and set it to postgres://mfabridge@db.example.org/mfabridge?sslmode=verify-full`)
		}
	default:
		v.bad("store.driver", fmt.Sprintf("%q is not sqlite or postgres", c.Store.Driver), "write sqlite (one instance) or postgres (several)")
	}
	for _, name := range sortedKeys(c.Policies) {
		if c.Policies[name].MFA != MFAOff && c.Store.Key.IsZero() {
			v.bad("store.key", fmt.Sprintf("policy %q asks for a second factor, which needs the enrolment store and its key", name),
				`create a key with: openssl rand -hex 32 > /etc/mfabridge/store.key, then write key: "file:/etc/mfabridge/store.key"`)
			break
		}
	}
	if c.State.MaxEntries < 100 || c.State.MaxEntries > 100_000_000 {
		v.bad("state.max_entries", fmt.Sprintf("%d is not from 100 to 100000000", c.State.MaxEntries), "1000000 suits most sites")
	}
	switch c.State.Backend {
	case "memory":
		if c.Store.Driver == DriverPostgres {
			v.warning("state.backend", "the enrolment store is shared but the state is in this process: if several instances run, "+
				"a challenge answered at another fails, a code works once at each, and each counts its own lockout; use backend: redis")
		}
	case "redis":
		c.validateRedis(v)
		if c.Store.Driver == DriverSQLite {
			v.warning("store.driver", "the state is shared but the enrolment store is a file of this machine: instances elsewhere "+
				"do not see its enrolments; use driver: postgres unless every instance runs here on the same file")
		}
	default:
		v.bad("state.backend", fmt.Sprintf("%q is not memory or redis", c.State.Backend), "write memory (one instance) or redis (several)")
	}
}

func (c *Config) validateRedis(v *validator) {
	r := c.State.Redis
	if c.Store.Key.IsZero() {
		// Values in Redis are sealed under a key derived from it.
		v.bad("state.backend", "the redis backend seals what it stores under store.key, which is missing",
			`create a key with: openssl rand -hex 32 > /etc/mfabridge/store.key, then write store: {key: "file:/etc/mfabridge/store.key"}`)
	}
	switch {
	case len(r.Addresses) == 0:
		v.bad("state.redis.addresses", "missing", `write the Redis server's address, such as ["redis.example.org:6379"]`)
	case len(r.Addresses) > 1 && r.SentinelMaster == "":
		v.bad("state.redis.addresses", fmt.Sprintf("%d addresses without sentinel_master", len(r.Addresses)),
			"give one Redis server, or Sentinels and the name they monitor in sentinel_master (Redis Cluster is not supported)")
	}
	clear := r.TLS == nil
	for i, a := range r.Addresses {
		p := "state.redis.addresses[" + strconv.Itoa(i) + "]"
		host, port, err := net.SplitHostPort(a)
		if err != nil || host == "" || port == "" {
			v.bad(p, fmt.Sprintf("%q is not host:port", a), "write an address such as redis.example.org:6379")
			continue
		}
		if clear && !isLoopbackHost(host) {
			v.warning(p, "Redis is reached in clear text: add tls: {ca_file: ...} so sessions and counters cannot be read or changed on the way")
		}
	}
	if !strings.HasPrefix(r.Prefix, DefaultRedisPrefix) {
		v.bad("state.redis.prefix", fmt.Sprintf("%q does not start with %q", r.Prefix, DefaultRedisPrefix),
			`keep "mfabridge:", or name a site after it, such as "mfabridge:london:"`)
	}
	if r.DB < 0 {
		v.bad("state.redis.db", fmt.Sprintf("%d is negative", r.DB), "write 0 unless the Redis server is shared by database number")
	}
	if r.Timeout < 50*time.Millisecond || r.Timeout > 10*time.Second {
		v.bad("state.redis.timeout", fmt.Sprintf("%s is not from 50ms to 10s", r.Timeout), "1s suits a Redis on the local network")
	}
	if r.SentinelMaster == "" && (r.SentinelUsername != "" || !r.SentinelPassword.IsZero()) {
		v.bad("state.redis.sentinel_password", "Sentinel credentials without sentinel_master", "name the monitored primary in sentinel_master, or remove them")
	}
	if r.TLS != nil {
		if r.TLS.InsecureSkipVerify {
			v.warning("state.redis.tls.insecure_skip_verify", "Redis's certificate is not verified; anyone on the path can read and change sessions and counters")
		}
		if f := r.TLS.CAFile; f != "" {
			if _, err := os.ReadFile(f); err != nil {
				v.bad("state.redis.tls.ca_file", err.Error(), "give the PEM file of the CA that signed Redis's certificate")
			}
		}
	}
}

var (
	e164RE        = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)
	countryCodeRE = regexp.MustCompile(`^[1-9][0-9]{0,3}$`)
)

func (c *Config) validateFactors(v *validator) {
	f := c.Factors
	if f.TOTP.Issuer == "" {
		v.bad("factors.totp.issuer", "missing", "write the name staff see in their authenticator app")
	}
	if f.TOTP.Digits != 6 && f.TOTP.Digits != 8 {
		v.bad("factors.totp.digits", fmt.Sprintf("%d is not 6 or 8", f.TOTP.Digits), "write 6 (what every app supports) or 8")
	}
	if f.TOTP.Period < time.Second || f.TOTP.Period%time.Second != 0 || f.TOTP.Period > 5*time.Minute {
		v.bad("factors.totp.period", fmt.Sprintf("%s is not whole seconds from 1s to 5m", f.TOTP.Period), "write 30s (what every app supports)")
	}
	if f.TOTP.Skew < 0 || f.TOTP.Skew > 10 {
		v.bad("factors.totp.skew", fmt.Sprintf("%d is not from 0 to 10", f.TOTP.Skew), "1 accepts the step before and after")
	}
	if !slices.Contains([]string{"SHA1", "SHA256", "SHA512"}, f.TOTP.Algorithm) {
		v.bad("factors.totp.algorithm", fmt.Sprintf("%q is not SHA1, SHA256 or SHA512", f.TOTP.Algorithm), "write SHA1 (what every app supports)")
	}
	if f.HOTP.LookAhead < 0 || f.HOTP.LookAhead > 1000 {
		v.bad("factors.hotp.look_ahead", fmt.Sprintf("%d is not from 0 to 1000", f.HOTP.LookAhead), "20 suits most tokens")
	}
	if f.Twilio.From != "" && !e164RE.MatchString(f.Twilio.From) {
		v.bad("factors.twilio.from", fmt.Sprintf("%q is not an E.164 number", f.Twilio.From), "write it as +441234567890")
	}
	if f.Twilio.APIURL != "" {
		if u, err := url.Parse(f.Twilio.APIURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			v.bad("factors.twilio.api_url", fmt.Sprintf("%q is not an http(s) URL", f.Twilio.APIURL), "leave it empty to use Twilio itself")
		}
	}
	if cc := f.Twilio.DefaultCountryCode; cc != "" && !countryCodeRE.MatchString(cc) {
		v.bad("factors.twilio.default_country_code", fmt.Sprintf("%q is not a country calling code", cc), `write digits without +, such as "44"`)
	}
	if f.Twilio.MaxPerMinute < 1 {
		v.bad("factors.twilio.max_per_minute", "must be at least 1", "30 is usual; every message and call costs money")
	}
	positive(v, "factors.twilio.timeout", f.Twilio.Timeout, time.Minute)
	positive(v, "factors.voice.approve_timeout", f.Voice.ApproveTimeout, 5*time.Minute)
	if !f.Twilio.AccountSID.IsZero() || !f.Twilio.AuthToken.IsZero() || f.Twilio.From != "" {
		for key, missing := range map[string]bool{"account_sid": f.Twilio.AccountSID.IsZero(), "auth_token": f.Twilio.AuthToken.IsZero(), "from": f.Twilio.From == ""} {
			if missing {
				v.bad("factors.twilio."+key, "missing: text messages and calls need account_sid, auth_token and from", `write it, e.g. account_sid: "env:TWILIO_SID"`)
			}
		}
	}
	if f.SMS.CodeLength < 4 || f.SMS.CodeLength > 10 {
		v.bad("factors.sms.code_length", fmt.Sprintf("%d is not from 4 to 10", f.SMS.CodeLength), "6 is usual")
	}
	positive(v, "factors.sms.code_ttl", f.SMS.CodeTTL, time.Hour)
	if f.SMS.MaxPerHour < 1 {
		v.bad("factors.sms.max_per_hour", "must be at least 1", "5 is usual; every message costs money")
	}
	if !strings.Contains(f.SMS.Message, "{code}") {
		v.bad("factors.sms.message", "the message does not contain {code}", `write one such as "Your {issuer} code is {code}"`)
	}
	if f.Voice.Mode != "code" && f.Voice.Mode != "approve" {
		v.bad("factors.voice.mode", fmt.Sprintf("%q is not code or approve", f.Voice.Mode), "code: the call reads a code; approve: the user presses #")
	}
	if f.Voice.MaxPerHour < 1 {
		v.bad("factors.voice.max_per_hour", "must be at least 1", "3 is usual; every call costs money")
	}
	c.validateSmartcard(v)
}

// validateSmartcard checks factors.smartcard: identity, revocation rules,
// realms, and the files a policy with smartcard: true needs.
func (c *Config) validateSmartcard(v *validator) {
	sc := c.Factors.Smartcard
	if !slices.Contains([]string{"upn", "email", "subject_cn"}, sc.Identity) {
		v.bad("factors.smartcard.identity", fmt.Sprintf("%q is not upn, email or subject_cn", sc.Identity), "upn suits Active Directory cards")
	}
	rules := []string{RevocationCRL, RevocationOCSP, RevocationCRLAndOCSP, RevocationNone}
	if !slices.Contains(rules, sc.Revocation) {
		v.bad("factors.smartcard.revocation", fmt.Sprintf("%q is not crl, ocsp, crl_and_ocsp or none", sc.Revocation), "crl suits a CA that publishes CRLs")
	}
	for i, ca := range sc.CAFiles {
		cp := fmt.Sprintf("factors.smartcard.ca_files[%d]", i)
		if ca.File == "" {
			v.bad(cp, "missing file", "write the path of the CA's PEM certificate")
		}
		if ca.Revocation != "" && !slices.Contains(rules, ca.Revocation) {
			v.bad(cp+".revocation", fmt.Sprintf("%q is not crl, ocsp, crl_and_ocsp or none", ca.Revocation), "crl suits a CA that publishes CRLs")
		}
		if ca.Revocation == RevocationNone || ca.Revocation == "" && sc.Revocation == RevocationNone {
			v.warning(cp, "revocation: none: a revoked card from this CA is accepted until it expires")
		}
	}
	if (sc.Revocation == RevocationOCSP || sc.Revocation == RevocationCRLAndOCSP) && !sc.OCSP {
		v.bad("factors.smartcard.ocsp", fmt.Sprintf("revocation: %s needs ocsp: true", sc.Revocation), "set ocsp: true, or revocation: crl")
	}
	for i, r := range sc.AllowedRealms {
		if r == "" || strings.ContainsAny(r, "@ ") {
			v.bad(fmt.Sprintf("factors.smartcard.allowed_realms[%d]", i), fmt.Sprintf("%q is not a realm", r), "write the part after @, such as example.org")
		}
	}
	if len(sc.AllowedRealms) > 0 && sc.Identity == "subject_cn" {
		v.bad("factors.smartcard.allowed_realms", "identity subject_cn names no realm", "use identity upn or email, or remove allowed_realms")
	}
	if sc.Identity != "subject_cn" && len(sc.AllowedRealms) == 0 && c.LDAP.Attributes.UPN == "" && c.usesSmartcards() {
		v.bad("ldap.attributes.upn", "empty: a card's UPN or email address is looked up in this attribute, so no card would find its user",
			"write the attribute holding it (userPrincipalName in Active Directory, mail), or list factors.smartcard.allowed_realms")
	}
	positive(v, "factors.smartcard.ocsp_timeout", sc.OCSPTimeout, time.Minute)
	if sc.FragmentSize < 200 || sc.FragmentSize > 3000 {
		v.bad("factors.smartcard.fragment_size", fmt.Sprintf("%d is not from 200 to 3000", sc.FragmentSize), "1000 suits most supplicants")
	}
	for _, name := range sortedKeys(c.Policies) {
		if !c.Policies[name].Smartcard {
			continue
		}
		for key, missing := range map[string]bool{"server_cert_file": sc.ServerCertFile == "", "server_key_file": sc.ServerKeyFile == "", "ca_files": len(sc.CAFiles) == 0} {
			if missing {
				v.bad("factors.smartcard."+key, fmt.Sprintf("policy %q accepts smartcards, which needs server_cert_file, server_key_file and ca_files", name),
					"give the PEM files: the bridge's EAP-TLS certificate and key, and the CAs that issue the cards")
			}
		}
		break
	}
	for i, e := range sc.RequireEKU {
		if e != "client_auth" && e != "smartcard_logon" {
			v.bad(fmt.Sprintf("factors.smartcard.require_eku[%d]", i), fmt.Sprintf("%q is not client_auth or smartcard_logon", e), "write client_auth, smartcard_logon or both")
		}
	}
}

func (c *Config) validatePolicies(v *validator) {
	for _, name := range sortedKeys(c.Policies) {
		p := c.Policies[name]
		at := "policies." + name
		if !nameRE.MatchString(name) {
			v.bad(at, fmt.Sprintf("%q is not a valid policy name", name), "use letters, digits, '.', '_' and '-'")
		}
		if !slices.Contains([]string{ModeChallenge, ModeAppend, ModeAuto}, p.Mode) {
			v.bad(at+".mode", fmt.Sprintf("%q is not challenge, append or auto", p.Mode), "challenge suits VPNs; append suits mail clients")
		}
		if !slices.Contains([]string{MFARequired, MFAOptional, MFAOff}, p.MFA) {
			v.bad(at+".mfa", fmt.Sprintf("%q is not required, optional or off", p.MFA), "write required")
		}
		if len(p.Factors) == 0 && p.MFA != MFAOff && !p.Smartcard {
			v.bad(at+".factors", "no factor is offered", "list one or more of: "+strings.Join(FactorNames, ", "))
		}
		seen := map[string]bool{}
		for i, f := range p.Factors {
			fp := fmt.Sprintf("%s.factors[%d]", at, i)
			if !slices.Contains(FactorNames, f) {
				v.bad(fp, fmt.Sprintf("unknown factor %q", f), "factors: "+strings.Join(FactorNames, ", ")+suggest(f, FactorNames))
			} else if seen[f] {
				v.bad(fp, fmt.Sprintf("%q is listed twice", f), "remove the duplicate")
			}
			seen[f] = true
			if (f == FactorSMS || f == FactorVoice) && p.MFA != MFAOff && c.Factors.Twilio.AccountSID.IsZero() {
				v.warning(fp, fmt.Sprintf("%s is offered but factors.twilio is not configured, so it will not be offered", f))
			}
		}
		if p.Mode == ModeAuto && (!seen[FactorVoice] || c.Factors.Voice.Mode != "approve") {
			v.bad(at+".mode", "auto mode needs the voice factor with factors.voice.mode: approve",
				"add voice to factors and set factors.voice.mode: approve, or use challenge")
		}
		if seen[FactorVoice] && p.MFA != MFAOff && c.Factors.Voice.Mode == "approve" &&
			(c.Server.PublicURL == "" || c.Server.AdminListen == "" && c.Server.WebhookListen == "") && !c.Factors.Twilio.AccountSID.IsZero() {
			v.bad(at+".factors", "voice approve needs server.public_url and server.webhook_listen (or admin_listen): Twilio posts the key pressed there",
				"set server.public_url to the https address that reaches webhook_listen")
		}
		if p.PhoneMethods != PhoneAlways && p.PhoneMethods != PhoneOnlyWithoutApp {
			v.bad(at+".phone_methods", fmt.Sprintf("%q is not always or only_without_app", p.PhoneMethods),
				"only_without_app keeps a number written into the directory from becoming an app user's second factor")
		}
		if p.Unenrolled != UnenrolledReject && p.Unenrolled != UnenrolledAllow {
			v.bad(at+".unenrolled", fmt.Sprintf("%q is not reject or allow", p.Unenrolled), "reject is the safe choice")
		}
		if p.Attempts < 1 || p.Attempts > 10 {
			v.bad(at+".attempts", fmt.Sprintf("%d is not from 1 to 10", p.Attempts), "3 is usual")
		}
		if p.Remember < 0 || p.Remember > 24*time.Hour {
			v.bad(at+".remember", fmt.Sprintf("%s is not from 0s to 24h", p.Remember), "0s turns it off; 8h covers a working day")
		}
		for _, g := range []struct {
			key  string
			list []string
		}{{"deny_groups", p.DenyGroups}, {"require_groups", p.RequireGroups}, {"bypass_groups", p.BypassGroups}} {
			for i, n := range g.list {
				if strings.TrimSpace(n) == "" {
					v.bad(fmt.Sprintf("%s.%s[%d]", at, g.key, i), "empty group name", "write the group's name (cn) or DN")
				}
			}
		}
		for i, r := range p.ReplyAttributes {
			rp := fmt.Sprintf("%s.reply_attributes[%d]", at, i)
			if len(r.Attributes) == 0 {
				v.bad(rp+".attributes", "no attributes", "write attributes: {Class: admins}")
			}
			for _, an := range sortedKeys(r.Attributes) {
				checkReplyAttribute(v, rp+".attributes."+an, an, r.Attributes[an])
			}
		}
	}
}

func checkReplyAttribute(v *validator, path, name string, vals Values) {
	spec, ok := LookupReplyAttribute(name)
	if !ok {
		v.bad(path, fmt.Sprintf("unknown reply attribute %q", name),
			"attributes: "+keys(ReplyAttributes)+", or VENDOR:TYPE such as 9:1"+suggest(name, sortedKeys(ReplyAttributes)))
		return
	}
	if len(vals) == 0 {
		v.bad(path, "no value", "write a value")
	}
	max := 253
	if spec.Vendor != 0 {
		max = 247 // vendor id and the vendor's type and length
	}
	for _, val := range vals {
		switch spec.Kind {
		case AttrInteger:
			if _, err := strconv.ParseUint(val, 10, 32); err != nil {
				v.bad(path, fmt.Sprintf("%q is not a whole number", val), "write seconds, such as 3600")
			}
		case AttrOctets:
			if b, err := OctetsValue(val); err != nil || len(b) == 0 || len(b) > max {
				v.bad(path, fmt.Sprintf("must be text or 0x and hex of 1 to %d bytes", max), "shorten the value, or check the hex")
			}
		default:
			if val == "" || len(val) > max || !utf8.ValidString(val) {
				v.bad(path, fmt.Sprintf("must be UTF-8 text of 1 to %d bytes", max), "shorten the value")
			}
		}
	}
}

// OctetsValue reads an octets value: 0x and hex, or the text itself.
func OctetsValue(s string) ([]byte, error) {
	if h, ok := strings.CutPrefix(s, "0x"); ok {
		return hex.DecodeString(h)
	}
	return []byte(s), nil
}

func suggest(s string, names []string) string {
	for _, n := range names {
		if editDistance(strings.ToLower(s), strings.ToLower(n)) <= 2 {
			return fmt.Sprintf("; did you mean %q?", n)
		}
	}
	return ""
}

func sortedKeys[V any](m map[string]V) []string {
	k := make([]string, 0, len(m))
	for n := range m {
		k = append(k, n)
	}
	sort.Strings(k)
	return k
}

func (c *Config) validateLockoutLogging(v *validator) {
	l := c.Lockout
	if l.MaxFailures < 1 {
		v.bad("lockout.max_failures", "must be at least 1", "keep it below the directory's own lockout threshold")
	}
	if l.MaxCodeFailures < 1 {
		v.bad("lockout.max_code_failures", "must be at least 1", "5 is usual")
	}
	positive(v, "lockout.window", l.Window, 24*time.Hour)
	positive(v, "lockout.duration", l.Duration, 24*time.Hour)
	if l.KnownStationTTL < 0 || l.KnownStationTTL > 8760*time.Hour {
		v.bad("lockout.known_station_ttl", fmt.Sprintf("%s is not from 0s to 8760h", l.KnownStationTTL), "720h is 30 days; 0s turns it off")
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.Logging.Level) {
		v.bad("logging.level", fmt.Sprintf("%q is not debug, info, warn or error", c.Logging.Level), "write info")
	}
	if c.Logging.Format != "json" && c.Logging.Format != "text" {
		v.bad("logging.format", fmt.Sprintf("%q is not json or text", c.Logging.Format), "write json")
	}
}

// resolve reads every secret reference and the files the configuration
// names, reporting what is missing or unreadable.
func (c *Config) resolve() []Problem {
	v := &validator{}
	warn := func(path string) func(string) {
		return func(m string) { v.warning(path, m) }
	}
	res := func(path string, s *Secret) bool {
		if msg, hint := s.resolve(warn(path)); msg != "" {
			v.bad(path, msg, hint)
			return false
		}
		return true
	}
	for i := range c.Clients {
		p := clientPath(i) + ".secret"
		if c.Clients[i].RadsecName != "" {
			continue
		}
		if res(p, &c.Clients[i].Secret) && len(c.Clients[i].Secret.Value()) < 16 {
			v.warning(p, "the shared secret is shorter than 16 characters; one captured packet lets an attacker guess it offline")
		}
	}
	res("ldap.bind_password", &c.LDAP.BindPassword)
	if res("store.key", &c.Store.Key) && !c.Store.Key.IsZero() {
		if _, err := DecodeKey(c.Store.Key.Value()); err != nil {
			v.bad("store.key", err.Error(), "create one with: openssl rand -hex 32")
		}
	}
	res("state.redis.password", &c.State.Redis.Password)
	res("state.redis.sentinel_password", &c.State.Redis.SentinelPassword)
	res("store.dsn", &c.Store.DSN)
	res("factors.twilio.account_sid", &c.Factors.Twilio.AccountSID)
	res("factors.twilio.auth_token", &c.Factors.Twilio.AuthToken)
	for key, f := range map[string]string{"cert_file": c.Server.RadsecTLS.CertFile, "key_file": c.Server.RadsecTLS.KeyFile,
		"client_ca_file": c.Server.RadsecTLS.ClientCAFile} {
		if f == "" {
			continue
		}
		if _, err := os.ReadFile(f); err != nil {
			v.bad("server.radsec_tls."+key, err.Error(), "give a PEM file mfabridge may read")
		}
	}
	scFiles := []string{c.Factors.Smartcard.ServerCertFile, c.Factors.Smartcard.ServerKeyFile}
	for _, ca := range c.Factors.Smartcard.CAFiles {
		scFiles = append(scFiles, ca.File)
	}
	for i, f := range append(scFiles, c.Factors.Smartcard.CRLFiles...) {
		if f == "" {
			continue
		}
		if _, err := os.ReadFile(f); err != nil {
			key := "factors.smartcard.crl_files"
			switch {
			case i == 0:
				key = "factors.smartcard.server_cert_file"
			case i == 1:
				key = "factors.smartcard.server_key_file"
			case i < len(scFiles):
				key = "factors.smartcard.ca_files"
			}
			v.bad(key, err.Error(), "give a PEM file mfabridge may read")
		}
	}
	if f := c.LDAP.TLS.CAFile; f != "" {
		if _, err := os.ReadFile(f); err != nil {
			v.bad("ldap.tls.ca_file", err.Error(), "give the PEM file of the CA that signed the directory's certificate")
		}
	}
	for _, w := range v.warn {
		c.addWarning(w)
	}
	return v.probs
}

// DecodeKey reads a 32-byte key written in hex or base64.
func DecodeKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if b, err := hex.DecodeString(s); err == nil && len(b) == 32 {
		return b, nil
	}
	if b, err := base64.StdEncoding.DecodeString(s); err == nil && len(b) == 32 {
		return b, nil
	}
	return nil, fmt.Errorf("the key is not 32 bytes in hex (64 characters) or base64 (44 characters)")
}

// usesSmartcards reports whether a policy accepts EAP-TLS.
func (c *Config) usesSmartcards() bool {
	for _, p := range c.Policies {
		if p.Smartcard {
			return true
		}
	}
	return false
}

func (c *Config) validatePortal(v *validator) {
	p := &c.Portal
	if p.Listen == "" {
		return
	}
	host, _, err := net.SplitHostPort(p.Listen)
	if err != nil {
		v.bad("portal.listen", fmt.Sprintf("%q is not host:port", p.Listen), `write "0.0.0.0:8443"`)
	}
	u, uerr := url.Parse(p.PublicURL)
	switch {
	case p.PublicURL == "":
		v.bad("portal.public_url", "missing", "write the address staff open, such as https://mfa.example.org")
	case uerr != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") || u.User != nil || (u.Path != "" && u.Path != "/"):
		v.bad("portal.public_url", fmt.Sprintf("%q is not an https:// address of a host", p.PublicURL), "write https://mfa.example.org")
	case u.Scheme == "http" && !p.InsecureHTTPLoopback:
		v.bad("portal.public_url", "plain http is for the demo and tests", "serve the portal over https (portal.tls) and write an https:// address")
	case net.ParseIP(u.Hostname()) != nil:
		v.bad("portal.public_url", "the host is an IP address; security keys need a host name", "write the portal's DNS name (localhost on loopback)")
	}
	if p.InsecureHTTPLoopback {
		if err == nil && !isLoopbackHost(host) {
			v.bad("portal.insecure_http_loopback", fmt.Sprintf("plain HTTP on %s, which is not a loopback address", p.Listen),
				"listen on 127.0.0.1, or serve HTTPS with portal.tls")
		}
	} else if p.TLS.CertFile == "" || p.TLS.KeyFile == "" {
		v.bad("portal.tls", "the portal serves HTTPS and needs cert_file and key_file",
			"write the certificate and key of the portal's host name (insecure_http_loopback: true is for the demo only)")
	}
	if p.SessionTimeout < time.Minute || p.SessionTimeout > 8*time.Hour {
		v.bad("portal.session_timeout", fmt.Sprintf("%s is not from 1m to 8h", p.SessionTimeout), "15m suits most sites")
	}
	if len(p.FirstMethod) == 0 {
		v.bad("portal.first_method", "empty: nobody could enrol a first method", "write [invite]")
	}
	for i, m := range p.FirstMethod {
		if m != FirstInvite && m != FirstDirectoryPhone && m != FirstTrustedNetwork {
			v.bad(fmt.Sprintf("portal.first_method[%d]", i), fmt.Sprintf("%q is not invite, directory_phone or trusted_network", m), "write invite")
		}
	}
	p.TrustedPrefixes = nil
	for i, n := range p.TrustedNetworks {
		pfx, msg := parseClientAddress(n)
		if msg != "" {
			v.bad(fmt.Sprintf("portal.trusted_networks[%d]", i), msg, "write an IP or a CIDR such as 10.1.0.0/16")
			continue
		}
		p.TrustedPrefixes = append(p.TrustedPrefixes, pfx)
	}
	if slices.Contains(p.FirstMethod, FirstTrustedNetwork) && len(p.TrustedNetworks) == 0 {
		v.bad("portal.trusted_networks", "first_method trusted_network with no network listed", "list the networks, such as [10.1.0.0/16]")
	}
	for i, cl := range c.Clients {
		if cl.Name == "portal" {
			v.bad(clientPath(i)+".name", `"portal" names the portal's sign-ins in the audit log`, "give this client another name")
		}
	}
	pol, ok := c.Policies[p.Policy]
	switch {
	case !ok:
		v.bad("portal.policy", fmt.Sprintf("no policy named %q", p.Policy), "define it under policies, or name another")
	case pol.Mode != ModeChallenge:
		v.bad("portal.policy", fmt.Sprintf("policy %q has mode %s; the portal asks for the second factor as a challenge", p.Policy, pol.Mode),
			"name a policy with mode: challenge")
	case pol.MFA == MFAOff:
		v.bad("portal.policy", fmt.Sprintf("policy %q has mfa: off; the portal signs users in with a second factor they hold", p.Policy),
			"define a policy portal with mfa: required (or optional) and the factors staff may sign in with")
	}
	if slices.Contains(p.FirstMethod, FirstDirectoryPhone) && ok && !slices.Contains(pol.Factors, "sms") && !slices.Contains(pol.Factors, "voice") {
		v.warning("portal.first_method", fmt.Sprintf("directory_phone, but policy %q offers neither sms nor voice", p.Policy))
	}
}
