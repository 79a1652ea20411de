package config

import (
	"fmt"
	"strings"
)

// Summary describes the configuration for check-config. It never shows a
// secret: each is named by its source (env:NAME, file:/path or literal).
func (c *Config) Summary() string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	s := c.Server
	p("config %s", c.File)
	p("server")
	p("  radius_listen      %s", strings.Join(s.RadiusListen, ", "))
	p("  admin_listen       %s", orNone(s.AdminListen))
	p("  webhook_listen     %s", orDefault(s.WebhookListen, "(on admin_listen)"))
	if s.RadsecListen != "" {
		p("  radsec_listen      %s (cert %s, client CA %s, idle %s, max %d connections)", s.RadsecListen, s.RadsecTLS.CertFile,
			s.RadsecTLS.ClientCAFile, s.RadsecIdleTimeout, s.RadsecMaxConnections)
	}
	p("  duplicate_window   %s (%d replies per client)", s.DuplicateWindow, s.DuplicateCacheEntries)
	p("  challenge_timeout  %s", s.ChallengeTimeout)
	p("  username           strip_realm=%t strip_domain=%t lowercase=%t", s.Username.StripRealm, s.Username.StripDomain, s.Username.Lowercase)
	p("clients (%d)", len(c.Clients))
	for _, cl := range c.Clients {
		if cl.RadsecName != "" {
			p("  %-16s %-20s policy=%s radsec certificate name %q", cl.Name, cl.Prefix, cl.Policy, cl.RadsecName)
			continue
		}
		p("  %-16s %-20s policy=%s message_authenticator=%s proxy=%t secret=%s",
			cl.Name, cl.Prefix, cl.Policy, cl.RequireMessageAuthenticator, cl.Proxy, cl.Secret.Source())
		for _, n := range cl.NAS {
			p("  %-16s NAS-Identifier %q: policy=%s", "", n.Identifier, n.Policy)
		}
	}
	l := c.LDAP
	p("ldap")
	p("  urls               %s", strings.Join(l.URLs, ", "))
	p("  tls                start_tls=%t ca_file=%s server_name=%s verify=%t", l.StartTLS, orNone(l.TLS.CAFile), orNone(l.TLS.ServerName), !l.TLS.InsecureSkipVerify)
	p("  bind_dn            %s (password from %s)", orNone(l.BindDN), orNone(l.BindPassword.Source()))
	p("  base_dn            %s", l.BaseDN)
	p("  user_filter        %s", l.UserFilter)
	p("  users are named by %s (the entry's value: enrolments, lockout and audit are keyed on it)", l.Attributes.Username)
	p("  groups             mode=%s base_dn=%s name_attribute=%s nested=%t", l.Groups.Mode, l.Groups.BaseDN, l.Groups.NameAttribute, l.Groups.Nested)
	p("  pool_size          %d per pool, timeout %s", l.PoolSize, l.Timeout)
	if c.Store.Driver == DriverPostgres {
		p("store                postgres (connection string from %s, key from %s)", orNone(c.Store.DSN.Source()), orNone(c.Store.Key.Source()))
	} else {
		p("store                sqlite %s (key from %s)", c.Store.Path, orNone(c.Store.Key.Source()))
	}
	if r := c.State.Redis; c.State.Backend == "redis" {
		mode := "server"
		if r.SentinelMaster != "" {
			mode = "sentinels of " + r.SentinelMaster
		}
		p("state                redis, %s %s, user %s (password from %s), prefix %q, tls=%t",
			mode, strings.Join(r.Addresses, ", "), orNone(r.Username), orNone(r.Password.Source()), r.Prefix, r.TLS != nil)
	} else {
		p("state                memory (at most %d entries)", c.State.MaxEntries)
	}
	if pc := c.Portal; pc.Listen != "" {
		p("portal               %s as %s, policy %s, first method by %s, sessions idle %s", pc.Listen, pc.PublicURL, pc.Policy,
			strings.Join(pc.FirstMethod, "/"), pc.SessionTimeout)
	}
	if c.usesSmartcards() {
		sc := c.Factors.Smartcard
		p("smartcard            identity=%s revocation=%s allowed_realms=[%s] match_stored_certificate=%t", sc.Identity, sc.Revocation,
			strings.Join(sc.AllowedRealms, ","), sc.MatchStoredCertificate)
		for _, ca := range sc.CAFiles {
			p("  ca %s revocation=%s", ca.File, orDefault(ca.Revocation, sc.Revocation))
		}
	}
	p("policies (%d)", len(c.Policies))
	for _, name := range sortedKeys(c.Policies) {
		po := c.Policies[name]
		p("  %-16s mode=%s mfa=%s factors=[%s] unenrolled=%s attempts=%d remember=%s", name, po.Mode, po.MFA,
			strings.Join(po.Factors, ","), po.Unenrolled, po.Attempts, po.Remember)
		if len(po.DenyGroups)+len(po.RequireGroups)+len(po.BypassGroups) > 0 {
			p("  %-16s deny=[%s] require=[%s] bypass=[%s]", "", strings.Join(po.DenyGroups, ","),
				strings.Join(po.RequireGroups, ","), strings.Join(po.BypassGroups, ","))
		}
		for _, r := range po.ReplyAttributes {
			p("  %-16s reply to [%s]: %s", "", strings.Join(r.Groups, ","), strings.Join(sortedKeys(r.Attributes), ", "))
		}
	}
	lo := c.Lockout
	p("lockout              %d passwords / %d codes in %s locks for %s", lo.MaxFailures, lo.MaxCodeFailures, lo.Window, lo.Duration)
	p("logging              level=%s format=%s audit=%s", c.Logging.Level, c.Logging.Format, orDefault(c.Logging.AuditFile, "stdout"))
	return b.String()
}

func orNone(s string) string { return orDefault(s, "(none)") }

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
