package config

import (
	"regexp"
	"slices"
	"strings"
	"time"
)

// Default returns the configuration every file starts from. Policies is
// empty: a file that defines none gets DefaultPolicy under the name
// "default".
func Default() Config {
	return Config{
		Server: Server{
			RadiusListen:          []string{"0.0.0.0:1812"},
			AdminListen:           "127.0.0.1:9812",
			RadsecIdleTimeout:     2 * time.Minute,
			RadsecMaxConnections:  256,
			MaxInFlightPerClient:  32,
			DuplicateWindow:       30 * time.Second,
			DuplicateCacheEntries: 65536,
			ChallengeTimeout:      2 * time.Minute,
			Username:              Username{Lowercase: true},
		},
		LDAP: LDAP{
			Groups: Groups{Mode: GroupsMemberOf, Filter: "(member={dn})", NameAttribute: "cn"},
			Attributes: UserAttributes{Mobile: "mobile", Voice: "mobile",
				Certificate: "userCertificate;binary", UPN: "mail"},
			UserFilter: "(&(objectClass=inetOrgPerson)(uid={username}))",
			PoolSize:   8,
			Timeout:    5 * time.Second,
		},
		Store: Store{Driver: DriverSQLite, Path: "/var/lib/mfabridge/store.db"},
		State: State{Backend: "memory", MaxEntries: 1_000_000,
			Redis: Redis{Prefix: DefaultRedisPrefix, Timeout: time.Second}},
		Factors: Factors{
			TOTP:   TOTP{Issuer: "mfabridge", Digits: 6, Period: 30 * time.Second, Skew: 1, Algorithm: "SHA1"},
			HOTP:   HOTP{LookAhead: 20},
			SMS:    SMS{CodeLength: 6, CodeTTL: 5 * time.Minute, MaxPerHour: 5, Message: "Your {issuer} code is {code}"},
			Voice:  Voice{Mode: "code", MaxPerHour: 3, ApproveTimeout: time.Minute},
			Twilio: Twilio{MaxPerMinute: 30, Timeout: 10 * time.Second},
			Smartcard: Smartcard{Identity: "upn", RequireEKU: []string{"client_auth"}, OCSPTimeout: 5 * time.Second, FragmentSize: 1000,
				Revocation: RevocationCRL},
		},
		Lockout: Lockout{MaxFailures: 5, MaxCodeFailures: 5, Window: 15 * time.Minute, Duration: 15 * time.Minute,
			KnownStationTTL: 720 * time.Hour},
		Logging: Logging{Level: "info", Format: "json"},
		Portal:  Portal{SessionTimeout: 15 * time.Minute},
	}
}

// DefaultPolicy is the policy a file gets when it defines none, and the
// value of every key a policy leaves out.
func DefaultPolicy() Policy {
	return Policy{
		Mode:         ModeChallenge,
		MFA:          MFARequired,
		Factors:      slices.Clone(FactorNames),
		Unenrolled:   UnenrolledReject,
		Attempts:     3,
		PhoneMethods: PhoneAlways,
	}
}

// applyDefaults fills the keys that lists and maps leave out: yaml.v3
// makes their elements from zero values, so Default cannot reach them.
func (c *Config) applyDefaults() {
	if len(c.Policies) == 0 && !c.pos.has("policies") {
		c.Policies = map[string]Policy{"default": DefaultPolicy()}
	}
	def := DefaultPolicy()
	for name, p := range c.Policies {
		at := "policies." + name + "."
		if !c.pos.has(at + "mode") {
			p.Mode = def.Mode
		}
		if !c.pos.has(at + "mfa") {
			p.MFA = def.MFA
		}
		if !c.pos.has(at + "factors") {
			p.Factors = def.Factors
		}
		if !c.pos.has(at + "unenrolled") {
			p.Unenrolled = def.Unenrolled
		}
		if !c.pos.has(at + "attempts") {
			p.Attempts = def.Attempts
		}
		if !c.pos.has(at + "phone_methods") {
			p.PhoneMethods = def.PhoneMethods
		}
		c.Policies[name] = p
	}
	for i := range c.Clients {
		if c.Clients[i].Policy == "" && !c.pos.has(clientPath(i)+".policy") {
			c.Clients[i].Policy = "default"
		}
	}
	if !c.pos.has("portal.first_method") {
		c.Portal.FirstMethod = []string{FirstInvite}
	}
	if c.Portal.Policy == "" {
		c.Portal.Policy = "default"
		if _, ok := c.Policies["portal"]; ok {
			c.Portal.Policy = "portal"
		}
	}
	c.groupsBaseSet = c.LDAP.Groups.BaseDN != ""
	if c.LDAP.Groups.BaseDN == "" {
		c.LDAP.Groups.BaseDN = c.LDAP.BaseDN
	}
	if c.LDAP.Attributes.Username == "" {
		c.LDAP.Attributes.Username = FilterAttribute(c.LDAP.UserFilter)
	}
	sc := &c.Factors.Smartcard
	if !c.pos.has("factors.smartcard.revocation") {
		// What is configured is required: CRLs, OCSP, or both.
		switch {
		case sc.OCSP && len(sc.CRLFiles) > 0:
			sc.Revocation = RevocationCRLAndOCSP
		case sc.OCSP:
			sc.Revocation = RevocationOCSP
		default:
			sc.Revocation = RevocationCRL
		}
	}
}

// filterAttrRE finds an equality assertion on {username}: (uid={username}).
var filterAttrRE = regexp.MustCompile(`\(([A-Za-z][A-Za-z0-9-]*)=\{username\}\)`)

// FilterAttribute returns the attribute a user filter compares
// {username} with, when it compares it with exactly one; "" otherwise.
func FilterAttribute(filter string) string {
	var found string
	for _, m := range filterAttrRE.FindAllStringSubmatch(filter, -1) {
		switch {
		case found == "":
			found = m[1]
		case !strings.EqualFold(found, m[1]):
			return ""
		}
	}
	if strings.Count(filter, "{username}") != len(filterAttrRE.FindAllString(filter, -1)) {
		return "" // {username} also inside something else, such as a substring
	}
	return found
}
