package config

import (
	"net/netip"
	"time"
)

// Config is the whole configuration file. Field comments give the YAML key,
// the default and the unit. The key names are a contract with users' files:
// add to them, never rename them.
type Config struct {
	Server   Server            `yaml:"server"`
	Clients  []Client          `yaml:"clients"`
	LDAP     LDAP              `yaml:"ldap"`
	Store    Store             `yaml:"store"`
	State    State             `yaml:"state"`
	Factors  Factors           `yaml:"factors"`
	Policies map[string]Policy `yaml:"policies"` // default: one policy named "default"
	Lockout  Lockout           `yaml:"lockout"`
	Logging  Logging           `yaml:"logging"`
	Portal   Portal            `yaml:"portal"`

	// File is the path the configuration was loaded from ("" for Parse).
	File string `yaml:"-"`
	// Warnings are problems that do not stop the server, such as a secret
	// file readable by other users. Each names the file and line.
	Warnings []string `yaml:"-"`

	pos positions
	// groupsBaseSet: ldap.groups.base_dn was written, not defaulted.
	groupsBaseSet bool
}

// Server holds the listeners and the conversation timers.
type Server struct {
	RadiusListen []string  `yaml:"radius_listen"` // UDP host:port list; default ["0.0.0.0:1812"]
	RadsecListen string    `yaml:"radsec_listen"` // RFC 6614 TLS listener; default "" (off)
	RadsecTLS    RadsecTLS `yaml:"radsec_tls"`    // certificates for radsec_listen
	// RadsecIdleTimeout closes a RadSec connection idle this long; default 2m.
	RadsecIdleTimeout Duration `yaml:"radsec_idle_timeout"`
	// RadsecMaxConnections bounds open RadSec connections; default 256.
	RadsecMaxConnections int `yaml:"radsec_max_connections"`
	// MaxInFlightPerClient bounds the requests of one client handled at
	// once; more are dropped and counted, so one noisy client cannot
	// starve the others. Default 32.
	MaxInFlightPerClient int    `yaml:"max_in_flight_per_client"`
	AdminListen          string `yaml:"admin_listen"` // HTTP: /metrics /healthz /readyz; default "127.0.0.1:9812"; "" turns it off
	// WebhookListen serves the Twilio webhooks on their own listener, so
	// that what faces Twilio is not the listener of /metrics and /readyz;
	// default "" (on admin_listen).
	WebhookListen string `yaml:"webhook_listen"`
	// Pprof serves Go's profiler at /debug/pprof/ on admin_listen, for
	// diagnosis; default false.
	Pprof           bool     `yaml:"pprof"`
	PublicURL       string   `yaml:"public_url"`       // how Twilio reaches the webhooks; default ""
	DuplicateWindow Duration `yaml:"duplicate_window"` // RFC 5080 reply cache lifetime; default 30s
	// DuplicateCacheEntries bounds the replies kept for one client. A
	// reply is never dropped inside duplicate_window (a retransmission
	// would then be handled twice): a client with no room left has its
	// new requests dropped and counted. Default 65536.
	DuplicateCacheEntries int      `yaml:"duplicate_cache_entries"`
	ChallengeTimeout      Duration `yaml:"challenge_timeout"` // how long a challenge State lives; default 2m
	Username              Username `yaml:"username"`
}

// RadsecTLS names the RadSec server certificate and the CA that client
// certificates must chain to.
type RadsecTLS struct {
	CertFile     string `yaml:"cert_file"`
	KeyFile      string `yaml:"key_file"`
	ClientCAFile string `yaml:"client_ca_file"`
}

// Username says how a User-Name is normalised before the directory sees it.
type Username struct {
	StripRealm  bool `yaml:"strip_realm"`  // "alice@realm" → "alice"; default false
	StripDomain bool `yaml:"strip_domain"` // "DOMAIN\alice" → "alice"; default false
	Lowercase   bool `yaml:"lowercase"`    // default true
}

// Client is one RADIUS client (NAS) or a range of them.
type Client struct {
	Name    string `yaml:"name"`    // required, unique; used in logs and metrics
	Address string `yaml:"address"` // IP or CIDR, required
	Secret  Secret `yaml:"secret"`  // shared secret: literal, env:NAME or file:/path; required
	// RequireMessageAuthenticator is auto (the default: required once the
	// client has sent one), true or false.
	RequireMessageAuthenticator MARequirement `yaml:"require_message_authenticator"`
	// Proxy marks a RADIUS proxy, which may send Proxy-State without
	// Message-Authenticator; default false.
	Proxy  bool   `yaml:"proxy"`
	Policy string `yaml:"policy"` // name of a policy; default "default"
	// NAS chooses the policy by the NAS-Identifier a proxy passes on, so
	// that one proxy in front of many concentrators does not force one
	// policy on all; proxy clients only. A request whose NAS-Identifier
	// is not listed gets Policy.
	NAS []NASPolicy `yaml:"nas"`
	// RadsecName makes this a RadSec client: a connection to radsec_listen
	// whose client certificate carries this name (a DNS name or the
	// subject CN) and comes from address. Such a client is not reached
	// over UDP, and its secret is the fixed "radsec" (RFC 6614).
	RadsecName string `yaml:"radsec_name"`

	// Prefix is Address parsed; set by Parse.
	Prefix netip.Prefix `yaml:"-"`
}

// NASPolicy is the policy for requests a proxy passes on from one NAS.
type NASPolicy struct {
	Identifier string `yaml:"identifier"` // NAS-Identifier as the proxy sends it (exact)
	Policy     string `yaml:"policy"`
}

// LDAP describes the directory and how users are found in it.
type LDAP struct {
	URLs                 []string       `yaml:"urls"`      // ldap:// or ldaps://, tried in order; required
	StartTLS             bool           `yaml:"start_tls"` // StartTLS on ldap:// URLs; default false
	TLS                  LDAPTLS        `yaml:"tls"`
	BindDN               string         `yaml:"bind_dn"`       // service account; "" searches anonymously
	BindPassword         Secret         `yaml:"bind_password"` // required with bind_dn
	BaseDN               string         `yaml:"base_dn"`       // required
	UserFilter           string         `yaml:"user_filter"`   // must contain {username}
	Groups               Groups         `yaml:"groups"`
	Attributes           UserAttributes `yaml:"attributes"`
	PoolSize             int            `yaml:"pool_size"`              // connections per pool (searches, binds); default 8
	Timeout              Duration       `yaml:"timeout"`                // dial, StartTLS, search and bind; default 5s
	ReportPasswordExpiry bool           `yaml:"report_password_expiry"` // say why in the Reply-Message; default false
	// CacheTTL keeps the entries of users who logged in for this long, so
	// that a login costs one bind instead of a search and a bind; changes
	// in the directory are then seen up to this late. Default 0s (off).
	CacheTTL Duration `yaml:"cache_ttl"`
}

// LDAPTLS configures certificate verification for ldaps:// and StartTLS.
// Verification is on unless insecure_skip_verify is set.
type LDAPTLS struct {
	CAFile             string `yaml:"ca_file"`     // PEM bundle; default: the system roots
	ServerName         string `yaml:"server_name"` // default: the host of each URL
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// Groups says how group membership is read.
type Groups struct {
	Mode          string `yaml:"mode"`           // member_of (default) or search
	BaseDN        string `yaml:"base_dn"`        // search mode: where groups live; default ldap.base_dn
	Filter        string `yaml:"filter"`         // search mode: {dn} and {username} are replaced; default "(member={dn})"
	NameAttribute string `yaml:"name_attribute"` // attribute naming a group; default cn
	// Nested counts membership through nested groups with Active
	// Directory's in-chain matching rule (LDAP_MATCHING_RULE_IN_CHAIN,
	// 1.2.840.113556.1.4.1941): groups are then searched under base_dn
	// with (member:1.2.840.113556.1.4.1941:={dn}). Default false.
	Nested bool `yaml:"nested"`
}

// UserAttributes names the directory attributes the factors read.
type UserAttributes struct {
	// Username is the attribute whose value is the user's one identity
	// in the bridge (enrolments, lockout, audit). Default "": the one
	// attribute user_filter compares {username} with.
	Username    string `yaml:"username"`
	Mobile      string `yaml:"mobile"`      // text messages; default mobile
	Voice       string `yaml:"voice"`       // phone calls; default mobile
	Certificate string `yaml:"certificate"` // smartcard certificate; default "userCertificate;binary"
	UPN         string `yaml:"upn"`         // holds the UPN or email address smartcard certificates carry; default mail
}

// Store is the enrolment store.
type Store struct {
	// Driver is sqlite (default: one file, one machine) or postgres
	// (several instances share it).
	Driver string `yaml:"driver"`
	Path   string `yaml:"path"` // sqlite: the file; default /var/lib/mfabridge/store.db
	DSN    Secret `yaml:"dsn"`  // postgres: a connection string, as a secret reference
	Key    Secret `yaml:"key"`  // 32 bytes, hex or base64
}

// Store drivers.
const (
	DriverSQLite   = "sqlite"
	DriverPostgres = "postgres"
)

// State selects where ephemeral state lives.
type State struct {
	Backend string `yaml:"backend"` // memory (default) or redis
	// MaxEntries bounds the memory backend. Each kind of entry (challenge
	// sessions, lockout counters, the replay guard, rate limits,
	// remembered logins, …) has its own share, so that one kind filling
	// up never stops another. Default 1000000.
	MaxEntries int   `yaml:"max_entries"`
	Redis      Redis `yaml:"redis"`
}

// Redis is the shared state backend for several bridge instances.
type Redis struct {
	// Addresses are host:port: the one Redis server, or with
	// SentinelMaster the Sentinels that know the primary.
	Addresses []string `yaml:"addresses"`
	Username  string   `yaml:"username"` // ACL user; default: Redis's default user
	Password  Secret   `yaml:"password"`
	DB        int      `yaml:"db"`
	// Prefix begins every key; it starts with "mfabridge:", so that one
	// ACL rule (~mfabridge:*) covers every bridge. Default "mfabridge:".
	Prefix         string `yaml:"prefix"`
	SentinelMaster string `yaml:"sentinel_master"` // set: Addresses are Sentinels
	// SentinelUsername and SentinelPassword authenticate to the
	// Sentinels themselves, when they ask for it.
	SentinelUsername string `yaml:"sentinel_username"`
	SentinelPassword Secret `yaml:"sentinel_password"`
	// TLS, when present (even empty: tls: {}), encrypts every
	// connection and verifies the server's certificate.
	TLS *RedisTLS `yaml:"tls"`
	// Timeout bounds each command and each connection attempt, so that a
	// lost Redis refuses requests at once instead of holding them.
	// Default 1s.
	Timeout Duration `yaml:"timeout"`
}

// RedisTLS verifies Redis's certificate: against CAFile, or the system
// roots, for ServerName (default: the host of each address).
type RedisTLS struct {
	CAFile             string `yaml:"ca_file"`
	ServerName         string `yaml:"server_name"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// DefaultRedisPrefix begins every key in Redis.
const DefaultRedisPrefix = "mfabridge:"

// Factors configures each second factor.
type Factors struct {
	TOTP      TOTP      `yaml:"totp"`
	HOTP      HOTP      `yaml:"hotp"`
	Twilio    Twilio    `yaml:"twilio"`
	SMS       SMS       `yaml:"sms"`
	Voice     Voice     `yaml:"voice"`
	Smartcard Smartcard `yaml:"smartcard"`
}

// TOTP is RFC 6238. Many authenticator apps ignore anything but SHA1, 6
// digits and 30s, so change those only for tokens known to support them.
type TOTP struct {
	Issuer    string   `yaml:"issuer"`    // shown in the authenticator app; default "mfabridge"
	Digits    int      `yaml:"digits"`    // 6 (default) or 8
	Period    Duration `yaml:"period"`    // default 30s
	Skew      int      `yaml:"skew"`      // time steps accepted either side; default 1
	Algorithm string   `yaml:"algorithm"` // SHA1 (default), SHA256, SHA512
}

// HOTP is RFC 4226.
type HOTP struct {
	LookAhead int `yaml:"look_ahead"` // counters tried past the stored one; default 20
}

// Twilio holds the account used for text messages and calls.
type Twilio struct {
	AccountSID Secret `yaml:"account_sid"`
	AuthToken  Secret `yaml:"auth_token"`
	From       string `yaml:"from"`    // E.164 sender number
	APIURL     string `yaml:"api_url"` // default "" (Twilio's own); set for tests
	// DefaultCountryCode turns a national number from the directory
	// (07700 900001) into E.164 (+447700900001); digits, e.g. "44".
	// Default "": numbers must be written +… or 00….
	DefaultCountryCode string `yaml:"default_country_code"`
	// MaxPerMinute caps text messages and calls for all users together;
	// default 30.
	MaxPerMinute int `yaml:"max_per_minute"`
	// Timeout bounds each request to Twilio; default 10s.
	Timeout Duration `yaml:"timeout"`
}

// SMS is the text-message factor.
type SMS struct {
	CodeLength int      `yaml:"code_length"`  // default 6
	CodeTTL    Duration `yaml:"code_ttl"`     // default 5m
	MaxPerHour int      `yaml:"max_per_hour"` // per user; default 5
	Message    string   `yaml:"message"`      // {issuer} and {code}; default "Your {issuer} code is {code}"
}

// Voice is the phone-call factor.
type Voice struct {
	Mode       string `yaml:"mode"`         // code (default): the call reads a code; approve: press #
	MaxPerHour int    `yaml:"max_per_hour"` // per user; default 3
	// ApproveTimeout is how long auto mode holds a request for the #;
	// default 60s. Keep it below the NAS's own RADIUS timeout.
	ApproveTimeout Duration `yaml:"approve_timeout"`
}

// Smartcard is EAP-TLS with a certificate on a card.
type Smartcard struct {
	ServerCertFile string `yaml:"server_cert_file"`
	ServerKeyFile  string `yaml:"server_key_file"`
	// CAFiles are the CAs that issue cards: a path, or {file, revocation}
	// to give one CA its own revocation rule.
	CAFiles  []CAFile `yaml:"ca_files"`
	CRLFiles []string `yaml:"crl_files"`
	OCSP     bool     `yaml:"ocsp"`
	// Revocation is how every certificate of a chain, intermediates too,
	// is checked: crl (a CRL from crl_files signed by its issuer), ocsp
	// (its issuer's OCSP responder), crl_and_ocsp, or none. Default:
	// crl_and_ocsp with ocsp: true, crl otherwise. A CA with no source
	// for its rule does not load.
	Revocation string `yaml:"revocation"`
	// AllowedRealms, when set, are the UPN (or email) realms accepted:
	// the part before @ is then the login name, looked up with
	// user_filter. Empty (the default): the whole UPN is looked up in
	// ldap.attributes.upn.
	AllowedRealms          []string `yaml:"allowed_realms"`
	Identity               string   `yaml:"identity"`    // upn (default), email, subject_cn
	RequireEKU             []string `yaml:"require_eku"` // client_auth, smartcard_logon; default [client_auth]
	MatchStoredCertificate bool     `yaml:"match_stored_certificate"`
	// OCSPTimeout bounds a query to the responder; default 5s.
	OCSPTimeout Duration `yaml:"ocsp_timeout"`
	// OCSPSoftFail accepts a certificate when the responder cannot be
	// reached or does not answer usefully; default false (refuse).
	OCSPSoftFail bool `yaml:"ocsp_soft_fail"`
	// FragmentSize is the most TLS data in one EAP-TLS packet; default 1000.
	FragmentSize int `yaml:"fragment_size"`
}

// CAFile is one CA of factors.smartcard.ca_files.
type CAFile struct {
	File string `yaml:"file"`
	// Revocation overrides factors.smartcard.revocation for this CA's
	// certificates; "" keeps it.
	Revocation string `yaml:"revocation"`
}

// Revocation rules.
const (
	RevocationCRL        = "crl"
	RevocationOCSP       = "ocsp"
	RevocationCRLAndOCSP = "crl_and_ocsp"
	RevocationNone       = "none"
)

// Policy is what a client's users must do to get in.
type Policy struct {
	Mode          string   `yaml:"mode"`       // challenge (default), append, auto
	MFA           string   `yaml:"mfa"`        // required (default), optional, off
	Factors       []string `yaml:"factors"`    // offered, in order; default [totp, hotp, sms, voice, recovery]
	Unenrolled    string   `yaml:"unenrolled"` // reject (default) or allow
	DenyGroups    []string `yaml:"deny_groups"`
	RequireGroups []string `yaml:"require_groups"`
	BypassGroups  []string `yaml:"bypass_groups"` // members skip the second factor
	Attempts      int      `yaml:"attempts"`      // wrong codes per challenge; default 3
	Remember      Duration `yaml:"remember"`      // default 0s (off)
	Smartcard     bool     `yaml:"smartcard"`     // accept EAP-TLS
	// PhoneMethods says who is offered sms and voice, whose numbers come
	// from the directory: always (default), or only_without_app: only
	// users who hold no code method of their own (totp, hotp), so that a
	// number written into the directory by someone with a stolen password
	// does not become a second factor for an app user.
	PhoneMethods    string      `yaml:"phone_methods"`
	ReplyAttributes []ReplyRule `yaml:"reply_attributes"`
}

// ReplyRule adds attributes to an Access-Accept for members of any of
// Groups (every user when Groups is empty).
type ReplyRule struct {
	Groups     []string          `yaml:"groups"`
	Attributes map[string]Values `yaml:"attributes"`
}

// Lockout caps guesses per user inside Window.
type Lockout struct {
	MaxFailures     int      `yaml:"max_failures"`      // wrong passwords; default 5
	MaxCodeFailures int      `yaml:"max_code_failures"` // wrong codes; default 5
	Window          Duration `yaml:"window"`            // default 15m
	Duration        Duration `yaml:"duration"`          // default 15m
	// KnownStationTTL is how long a Calling-Station-Id a user logged in
	// from stays known. While the user's password lockout is in force, a
	// known station is throttled (a growing delay, then refused after
	// three failures) rather than refused, so that a stranger's five
	// wrong guesses do not lock the user out of their own device.
	// Default 720h; 0s turns it off.
	KnownStationTTL Duration `yaml:"known_station_ttl"`
}

// Logging configures the operational log and the audit log.
type Logging struct {
	Level     string `yaml:"level"`      // debug, info (default), warn, error
	Format    string `yaml:"format"`     // json (default) or text
	AuditFile string `yaml:"audit_file"` // default "" (standard output)
}

// Duration is a time.Duration written with a unit ("30s", "5m").
type Duration = time.Duration

// Option values, spelled as in the file.
const (
	ModeChallenge = "challenge"
	ModeAppend    = "append"
	ModeAuto      = "auto"

	MFARequired = "required"
	MFAOptional = "optional"
	MFAOff      = "off"

	UnenrolledReject = "reject"
	UnenrolledAllow  = "allow"

	PhoneAlways         = "always"
	PhoneOnlyWithoutApp = "only_without_app"

	GroupsMemberOf = "member_of"
	GroupsSearch   = "search"
)

// Factor names as they appear in policies.
const (
	FactorTOTP  = "totp"
	FactorHOTP  = "hotp"
	FactorSMS   = "sms"
	FactorVoice = "voice"
	// FactorRecovery is single-use recovery codes: a user who holds none
	// is not offered them, so listing them changes nothing for others.
	FactorRecovery = "recovery"
)

// FactorNames lists every factor a policy may name, in the default order.
var FactorNames = []string{FactorTOTP, FactorHOTP, FactorSMS, FactorVoice, FactorRecovery}

// Portal is the self-service web portal, where staff sign in and enrol
// their own methods. Off unless listen is set.
type Portal struct {
	Listen    string    `yaml:"listen"`     // host:port; "" (default): no portal
	PublicURL string    `yaml:"public_url"` // the address users open; its host is the WebAuthn RP ID
	TLS       PortalTLS `yaml:"tls"`
	// InsecureHTTPLoopback serves plain HTTP, on a loopback listen
	// address only: for the demo and tests. Default false.
	InsecureHTTPLoopback bool `yaml:"insecure_http_loopback"`
	// SessionTimeout ends a session idle this long; default 15m. A
	// session never outlives 8h.
	SessionTimeout Duration `yaml:"session_timeout"`
	// FirstMethod says how a user who holds no method yet may enrol a
	// first one: invite (a one-time code from the helpdesk), directory_phone
	// (a text message or call to the directory's number, when the portal
	// policy offers them), trusted_network (a source address in
	// trusted_networks). Default [invite].
	FirstMethod     []string `yaml:"first_method"`
	TrustedNetworks []string `yaml:"trusted_networks"` // IPs or CIDRs
	// Policy names the policy whose factors sign users in; default
	// "portal" when such a policy exists, else "default". Its mode must
	// be challenge.
	Policy string `yaml:"policy"`

	// TrustedPrefixes is TrustedNetworks parsed; set by Parse.
	TrustedPrefixes []netip.Prefix `yaml:"-"`
}

// PortalTLS is the portal's certificate.
type PortalTLS struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// First-enrolment methods (portal.first_method).
const (
	FirstInvite         = "invite"
	FirstDirectoryPhone = "directory_phone"
	FirstTrustedNetwork = "trusted_network"
)
