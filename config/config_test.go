package config_test

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/mfabridge/mfabridge/config"
)

// minimal is the smallest file Parse accepts: one client and a directory.
const minimal = `ldap:
  urls: ["ldaps://dc1.example.org"]
  base_dn: "dc=example,dc=org"
store: {key: env:MFA_TEST_STORE_KEY}
clients:
  - name: vpn
    address: 192.0.2.10
    secret: env:VPN_SECRET
`

// parse parses src and fails the test on any problem.
func parse(t *testing.T, src string) *config.Config {
	t.Helper()
	c, err := config.Parse("test.yaml", []byte(src))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return c
}

// parseError parses src and returns the *config.Error it must fail with.
func parseError(t *testing.T, src string) *config.Error {
	t.Helper()
	c, err := config.Parse("test.yaml", []byte(src))
	if err == nil {
		t.Fatalf("Parse succeeded (%d clients), want an error", len(c.Clients))
	}
	var ce *config.Error
	if !errors.As(err, &ce) {
		t.Fatalf("Parse error is %T (%v), want *config.Error", err, err)
	}
	if ce.File != "test.yaml" {
		t.Errorf("Error.File = %q, want test.yaml", ce.File)
	}
	if len(ce.Problems) == 0 {
		t.Fatalf("*config.Error without problems")
	}
	return ce
}

// ldapExtra adds lines to the ldap section of minimal.
func ldapExtra(lines string) string {
	return strings.Replace(minimal, "store:", lines+"store:", 1)
}

// writeFile writes a file with mode perm (whatever the umask) under dir.
func writeFile(t *testing.T, dir, name, data string, perm os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(data), perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, perm); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParseDefaults(t *testing.T) {
	c := parse(t, minimal)
	def := config.Default()

	if c.File != "test.yaml" {
		t.Errorf("File = %q", c.File)
	}
	for _, w := range c.Warnings {
		// The default policy offers sms and voice, which need Twilio.
		if !strings.Contains(w, "factors.twilio is not configured") {
			t.Errorf("unexpected warning %q", w)
		}
	}
	if !reflect.DeepEqual(c.Server, def.Server) {
		t.Errorf("Server = %+v, want the defaults %+v", c.Server, def.Server)
	}
	wantLDAP := def.LDAP
	wantLDAP.URLs = []string{"ldaps://dc1.example.org"}
	wantLDAP.BaseDN = "dc=example,dc=org"
	wantLDAP.Groups.BaseDN = "dc=example,dc=org" // groups.base_dn defaults to ldap.base_dn
	wantLDAP.Attributes.Username = "uid"         // the attribute user_filter compares {username} with
	if !reflect.DeepEqual(c.LDAP, wantLDAP) {
		t.Errorf("LDAP = %+v, want %+v", c.LDAP, wantLDAP)
	}
	for name, got := range map[string][2]any{
		"state":   {c.State, def.State},
		"factors": {c.Factors, def.Factors},
		"lockout": {c.Lockout, def.Lockout},
		"logging": {c.Logging, def.Logging},
	} {
		if !reflect.DeepEqual(got[0], got[1]) {
			t.Errorf("%s = %+v, want the defaults %+v", name, got[0], got[1])
		}
	}
	if c.Store.Path != def.Store.Path || c.Store.Key.Source() != "env:MFA_TEST_STORE_KEY" {
		t.Errorf("store = %+v", c.Store)
	}
	if want := map[string]config.Policy{"default": config.DefaultPolicy()}; !reflect.DeepEqual(c.Policies, want) {
		t.Errorf("Policies = %+v, want %+v", c.Policies, want)
	}

	if len(c.Clients) != 1 {
		t.Fatalf("Clients = %+v, want one", c.Clients)
	}
	cl := c.Clients[0]
	if cl.Policy != "default" {
		t.Errorf("client policy = %q, want default", cl.Policy)
	}
	if want := netip.MustParsePrefix("192.0.2.10/32"); cl.Prefix != want {
		t.Errorf("client prefix = %s, want %s", cl.Prefix, want)
	}
	if cl.RequireMessageAuthenticator != config.MAAuto {
		t.Errorf("require_message_authenticator = %s, want auto", cl.RequireMessageAuthenticator)
	}
	if cl.Secret.Source() != "env:VPN_SECRET" || cl.Secret.Value() != "" {
		t.Errorf("secret source %q value %q: Parse must not resolve", cl.Secret.Source(), cl.Secret.Value())
	}
}

func TestParsePolicyDefaults(t *testing.T) {
	tests := []struct {
		name   string
		policy string // the YAML value of policies.p
		want   func(p *config.Policy)
	}{
		{"only mfa", `{mfa: "off"}`, func(p *config.Policy) { p.MFA = config.MFAOff }},
		{"only factors", `{factors: [totp]}`, func(p *config.Policy) { p.Factors = []string{"totp"} }},
		{"attempts and remember", `{attempts: 5, remember: 8h}`, func(p *config.Policy) {
			p.Attempts, p.Remember = 5, 8*time.Hour
		}},
		{"groups only", `{deny_groups: [contractors], bypass_groups: [robots]}`, func(p *config.Policy) {
			p.DenyGroups, p.BypassGroups = []string{"contractors"}, []string{"robots"}
		}},
		{"empty mapping", `{}`, func(*config.Policy) {}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := strings.Replace(minimal, "    secret:", "    policy: p\n    secret:", 1) +
				"policies:\n  p: " + tt.policy + "\n"
			src = strings.Replace(src, `  base_dn: "dc=example,dc=org"`, `  base_dn: "dc=example,dc=org"
  groups: {base_dn: "ou=groups,dc=example,dc=org"}`, 1)
			c := parse(t, src)
			want := config.DefaultPolicy()
			tt.want(&want)
			if got := c.Policies["p"]; !reflect.DeepEqual(got, want) {
				t.Errorf("policy = %+v, want %+v", got, want)
			}
			if _, ok := c.Policies["default"]; ok {
				t.Errorf("a file with policies still got the default policy: %v", c.Policies)
			}
		})
	}
}

func TestParseGroupsBaseDN(t *testing.T) {
	c := parse(t, ldapExtra("  groups: {mode: search, base_dn: \"ou=groups,dc=example,dc=org\"}\n"))
	if c.LDAP.Groups.BaseDN != "ou=groups,dc=example,dc=org" {
		t.Errorf("groups.base_dn = %q, want the one written", c.LDAP.Groups.BaseDN)
	}
}

// TestParseErrors checks that each mistake is reported on its line with a
// hint. Every source is minimal with one change; want is the line and a
// piece of the message.
func TestParseErrors(t *testing.T) {
	client := func(extra string) string { return minimal + extra }
	tests := []struct {
		name     string
		src      string
		line     int
		message  string
		hintPart string // "" for any non-empty hint
	}{
		{"unknown key", client("    secrt: x\n"), 9, `unknown key "secrt"`, `did you mean "secret"`},
		{"unknown top-level key", "serverr: {}\n" + minimal, 1, `unknown key "serverr"`, `did you mean "server"`},
		{"duration without unit", "server:\n  duplicate_window: 30\n" + minimal, 2, "it has no unit", "add a unit"},
		{"duration text", "server:\n  duplicate_window: soon\n" + minimal, 2, "is not a duration", ""},
		{"bool", client("    proxy: sometimes\n"), 9, "is not true or false", "write true or false"},
		{"listen address not an IP", "server:\n  radius_listen: [\"localhost:1812\"]\n" + minimal, 2, "is not an IP address", ""},
		{"listen address without port", "server:\n  radius_listen: [\"192.0.2.1\"]\n" + minimal, 2, "is not host:port", ""},
		{"listen port", "server:\n  radius_listen: [\"127.0.0.1:70000\"]\n" + minimal, 2, "is not a port from 1 to 65535", ""},
		{"admin listen", "server:\n  admin_listen: nowhere\n" + minimal, 2, "is not host:port", ""},
		{"bad CIDR", strings.Replace(minimal, "192.0.2.10", "192.0.2.0/33", 1), 7, "is not a CIDR range", ""},
		{"bad address", strings.Replace(minimal, "192.0.2.10", "vpn.example.org", 1), 7, "is not an IP address or CIDR range", ""},
		{"host bits", strings.Replace(minimal, "192.0.2.10", "192.0.2.10/24", 1), 7, "has host bits set; did you mean 192.0.2.0/24?", ""},
		{"overlap", strings.Replace(minimal, "192.0.2.10", "192.0.2.0/24", 1) +
			"  - {name: vpn2, address: 192.0.2.0/24, secret: x}\n", 9, "overlaps clients[0] (vpn)", "merge"},
		{"overlap written differently", minimal + "  - {name: vpn2, address: \"::ffff:192.0.2.10\", secret: x}\n",
			9, "overlaps clients[0]", ""},
		{"unknown policy", client("    policy: mail\n"), 9, `no policy named "mail"`, "policies defined: default"},
		{"unknown factor", minimal + "policies:\n  default: {factors: [totp, smss]}\n", 10, `unknown factor "smss"`, `did you mean "sms"?`},
		{"duplicate factor", minimal + "policies:\n  default: {factors: [totp, totp]}\n", 10, `"totp" is listed twice`, ""},
		{"missing secret", strings.Replace(minimal, "    secret: env:VPN_SECRET\n", "", 1), 6, "missing shared secret", "env:NAME"},
		{"secret not text", client("") + "  - {name: b, address: 192.0.2.11, secret: [a]}\n", 9, "a secret must be a string", ""},
		{"duplicate client name", minimal + "  - {name: vpn, address: 192.0.2.11, secret: x}\n", 9,
			`client name "vpn" is already used by clients[0]`, ""},
		{"second document", minimal + "---\nserver: {}\n", 9, "a second YAML document", ""},
		{"auto mode without voice approve", minimal + "policies:\n  default: {mode: auto}\n", 10,
			"auto mode needs the voice factor", "factors.voice.mode: approve"},
		{"unknown reply attribute", minimal + "policies:\n  default:\n    reply_attributes:\n      - attributes: {Filter-ID: x}\n",
			12, `unknown reply attribute "Filter-ID"`, `did you mean "Filter-Id"?`},
		{"non-integer Session-Timeout", minimal + "policies:\n  default:\n    reply_attributes:\n      - attributes: {Session-Timeout: 1h}\n",
			12, `"1h" is not a whole number`, ""},
		{"negative Session-Timeout", minimal + "policies:\n  default:\n    reply_attributes:\n      - attributes: {Session-Timeout: \"-1\"}\n",
			12, "is not a whole number", ""},
		{"require_message_authenticator", client("    require_message_authenticator: maybe\n"), 9, `"maybe" is not auto, true or false`, ""},
		{"no clients", "clients: []\nldap: {urls: [\"ldaps://dc1\"], base_dn: \"dc=x\"}\n", 1, "no RADIUS clients", ""},
		{"user filter", ldapExtra("  user_filter: \"(uid=alice)\"\n"), 4, "does not contain {username}", ""},
		// yaml.v3 reports the line before the broken collection starts:
		// the key that holds it.
		{"syntax", "clients:\n  - name: vpn\n   address: 192.0.2.10\n", 1, "YAML syntax", "indentation"},
		{"top level not a mapping", "- a\n- b\n", 1, "the top level must be a mapping", ""},
		{"redis without addresses", minimal + "state: {backend: redis}\n", 9, "missing", "Redis server's address"},
		{"redis addresses without sentinel", minimal + "state:\n  backend: redis\n  redis: {addresses: [\"10.0.0.1:6379\", \"10.0.0.2:6379\"]}\n",
			11, "2 addresses without sentinel_master", "Sentinels"},
		{"redis address", minimal + "state:\n  backend: redis\n  redis: {addresses: [redis.example.org]}\n", 11, "is not host:port", ""},
		{"redis prefix", minimal + "state:\n  backend: redis\n  redis:\n    addresses: [\"127.0.0.1:6379\"]\n    prefix: \"bridge:\"\n",
			13, `does not start with "mfabridge:"`, "mfabridge:london:"},
		{"redis timeout", minimal + "state:\n  backend: redis\n  redis:\n    addresses: [\"127.0.0.1:6379\"]\n    timeout: 1m\n",
			13, "is not from 50ms to 10s", ""},
		{"redis without store key", strings.Replace(minimal, "store: {key: env:MFA_TEST_STORE_KEY}\n", "", 1) +
			"policies:\n  default: {mfa: off}\nstate:\n  backend: redis\n  redis: {addresses: [\"127.0.0.1:6379\"]}\n",
			11, "seals what it stores under store.key", "openssl rand -hex 32"},
		{"unknown store driver", strings.Replace(minimal, "store: {key: env:MFA_TEST_STORE_KEY}", "store: {key: env:MFA_TEST_STORE_KEY, driver: mysql}", 1),
			4, `"mysql" is not sqlite or postgres`, ""},
		{"empty file", "", 0, "the file is empty", ""},
		{"only blanks", " \n\t\n", 0, "the file is empty", ""},
		{"only a comment", "# nothing here\n", 0, "the file is empty", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := parseError(t, tt.src)
			var found *config.Problem
			for i, p := range e.Problems {
				if strings.Contains(p.Message, tt.message) {
					found = &e.Problems[i]
					break
				}
			}
			if found == nil {
				t.Fatalf("no problem says %q; got:\n%v", tt.message, e)
			}
			if found.Line != tt.line {
				t.Errorf("line %d, want %d: %+v", found.Line, tt.line, *found)
			}
			if found.Hint == "" || !strings.Contains(found.Hint, tt.hintPart) {
				t.Errorf("hint %q, want a non-empty one containing %q", found.Hint, tt.hintPart)
			}
			if !strings.Contains(e.Error(), "test.yaml") {
				t.Errorf("Error() does not name the file: %s", e.Error())
			}
		})
	}
}

func TestParseAllowsNestedRanges(t *testing.T) {
	c := parse(t, minimal+
		"  - {name: site, address: 198.51.100.0/24, secret: x}\n"+
		"  - {name: one, address: 198.51.100.7/32, secret: y}\n"+
		"  - {name: host, address: 198.51.100.8, secret: z}\n"+
		"  - {name: v6, address: \"2001:db8::/32\", secret: w}\n")
	if len(c.Clients) != 5 {
		t.Fatalf("got %d clients", len(c.Clients))
	}
	if got := c.Clients[2].Prefix; got != netip.MustParsePrefix("198.51.100.7/32") {
		t.Errorf("prefix = %s", got)
	}
}

// TestParseReportsEveryProblem also covers a fixed bug: an unknown key in
// a one-line mapping (line 5) hid every other problem on that line, such
// as the bad CIDR, because it was taken for a type error.
func TestParseReportsEveryProblem(t *testing.T) {
	src := `server:
  radius_listen: ["nowhere"]
  duplicate_window: 30
clients:
  - {name: vpn, address: 192.0.2.0/33, secret: x, polcy: mail}
  - {name: vpn, address: 192.0.2.11}
ldap:
  urls: ["ldaps://dc1.example.org"]
  base_dn: "dc=example,dc=org"
policies:
  default: {factors: [smss], attempts: 0}
`
	e := parseError(t, src)
	want := []struct {
		line    int
		message string
	}{
		{2, "is not host:port"},
		{3, "it has no unit"},
		{5, "is not a CIDR range"},
		{5, `unknown key "polcy"`},
		{6, "already used by clients[0]"},
		{6, "missing shared secret"},
		{11, `unknown factor "smss"`},
		{11, "is not from 1 to 10"},
	}
	for _, w := range want {
		ok := false
		for _, p := range e.Problems {
			if p.Line == w.line && strings.Contains(p.Message, w.message) {
				ok = true
				if p.Hint == "" {
					t.Errorf("line %d %q has no hint", p.Line, p.Message)
				}
			}
		}
		if !ok {
			t.Errorf("no problem on line %d saying %q", w.line, w.message)
		}
	}
	for i := 1; i < len(e.Problems); i++ {
		if e.Problems[i].Line < e.Problems[i-1].Line {
			t.Errorf("problems are not in line order:\n%v", e)
			break
		}
	}
	if t.Failed() {
		t.Logf("all problems:\n%v", e)
	}
}

func TestLoadSecrets(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("MFA_TEST_STORE_KEY", strings.Repeat("0f", 32))
	t.Setenv("MFA_TEST_SECRET", "secret-from-the-environment")
	private := writeFile(t, dir, "private.secret", "secret-from-a-private-file\n", 0o600)
	public := writeFile(t, dir, "public.secret", "secret-from-a-public-file\r\n", 0o644)
	empty := writeFile(t, dir, "empty.secret", "\n", 0o600)

	tests := []struct {
		name    string
		ref     string
		want    string // the resolved value; "" when Load must fail
		problem string // a piece of the problem's message
		warning string // a piece of a warning, "" for none
	}{
		{"env", "env:MFA_TEST_SECRET", "secret-from-the-environment", "", ""},
		{"file", "file:" + private, "secret-from-a-private-file", "", ""},
		{"world-readable file", "file:" + public, "secret-from-a-public-file", "", "readable by every user"},
		{"literal", "a-literal-secret-of-some-length", "a-literal-secret-of-some-length", "", ""},
		{"short literal", "shrt-pw", "shrt-pw", "", "shorter than 16 characters"},
		{"unset env", "env:MFA_TEST_SECRET_UNSET", "", "MFA_TEST_SECRET_UNSET is not set", ""},
		{"env without name", "env:", "", "names no variable", ""},
		{"missing file", "file:" + filepath.Join(dir, "nope"), "", "no such file", ""},
		{"empty file", "file:" + empty, "", "is empty", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := strings.Replace(minimal, "env:VPN_SECRET", fmt.Sprintf("%q", tt.ref), 1)
			path := writeFile(t, t.TempDir(), "mfabridge.yaml", src, 0o600)
			c, err := config.Load(path)
			if tt.want == "" {
				var ce *config.Error
				if !errors.As(err, &ce) {
					t.Fatalf("Load error = %v, want a *config.Error", err)
				}
				if len(ce.Problems) != 1 || !strings.Contains(ce.Problems[0].Message, tt.problem) ||
					ce.Problems[0].Line != 8 || ce.Problems[0].Hint == "" {
					t.Errorf("problems = %+v, want one on line 8 saying %q with a hint", ce.Problems, tt.problem)
				}
				return
			}
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if got := c.Clients[0].Secret.Value(); got != tt.want {
				t.Errorf("secret = %q, want %q", got, tt.want)
			}
			var mine []string // warnings about this secret
			for _, w := range c.Warnings {
				if strings.Contains(w, "clients[0].secret") {
					mine = append(mine, w)
				}
				if strings.Contains(w, tt.want) {
					t.Errorf("a warning shows the secret: %s", w)
				}
			}
			warnings := strings.Join(mine, "\n")
			if tt.warning == "" && warnings != "" {
				t.Errorf("unexpected warnings: %s", warnings)
			}
			if tt.warning != "" && (!strings.Contains(warnings, tt.warning) || !strings.Contains(warnings, path+":8")) {
				t.Errorf("warnings %q, want one at %s:8 saying %q", warnings, path, tt.warning)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := config.Load(filepath.Join(t.TempDir(), "absent.yaml"))
	var ce *config.Error
	if !errors.As(err, &ce) || len(ce.Problems) != 1 || ce.Problems[0].Hint == "" {
		t.Fatalf("Load = %v, want one problem with a hint", err)
	}
}

// secretConfig is a file in which every secret is a literal from secrets.
func secretConfig(t *testing.T) (*config.Config, []string) {
	t.Helper()
	secrets := []string{
		"client-secret-one-9d1c",
		"client-secret-two-77ab",
		"bind-password-a51f",
		strings.Repeat("ab", 32), // store key, hex
		"twilio-sid-3f0e",
		"twilio-token-c2d4",
		"redis-password-8b8b",
	}
	src := fmt.Sprintf(`clients:
  - {name: vpn, address: 192.0.2.10, secret: %q}
  - {name: wifi, address: 192.0.2.0/24, secret: %q, policy: staff}
ldap:
  urls: ["ldaps://dc1.example.org"]
  base_dn: "dc=example,dc=org"
  bind_dn: "cn=svc,dc=example,dc=org"
  bind_password: %q
  groups: {base_dn: "ou=groups,dc=example,dc=org"}
store:
  key: %q
factors:
  twilio: {account_sid: %q, auth_token: %q, from: "+441234567890"}
state:
  redis: {password: %q}
policies:
  default: {}
  staff:
    mfa: optional
    reply_attributes:
      - {groups: [admins], attributes: {Class: admins, Session-Timeout: "3600"}}
`, secrets[0], secrets[1], secrets[2], secrets[3], secrets[4], secrets[5], secrets[6])
	c, err := config.Load(writeFile(t, t.TempDir(), "mfabridge.yaml", src, 0o600))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if got := c.LDAP.BindPassword.Value(); got != secrets[2] {
		t.Fatalf("bind password not resolved: %q", got)
	}
	return c, secrets
}

func TestSecretNeverPrinted(t *testing.T) {
	c, secrets := secretConfig(t)
	noSecret := func(t *testing.T, what, s string) {
		t.Helper()
		for _, v := range secrets {
			if strings.Contains(s, v) {
				t.Errorf("%s shows secret %q:\n%s", what, v, s)
			}
		}
	}
	s := c.Clients[0].Secret
	for _, tt := range []struct {
		name string
		v    any
	}{
		{"secret", s},
		{"pointer to secret", &s},
		{"client", c.Clients[0]},
		{"config", c},
		{"unresolved", config.NewSecret(secrets[0])},
	} {
		t.Run(tt.name, func(t *testing.T) {
			noSecret(t, "fmt", fmt.Sprintf("%v %+v %#v %s", tt.v, tt.v, tt.v, tt.v))
			y, err := yaml.Marshal(tt.v)
			if err != nil {
				t.Fatalf("yaml.Marshal: %v", err)
			}
			noSecret(t, "yaml", string(y))
			j, err := json.Marshal(tt.v)
			if err != nil {
				t.Fatalf("json.Marshal: %v", err)
			}
			noSecret(t, "json", string(j))
		})
	}
	if got, want := s.String(), "(secret from literal)"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if got := (config.Secret{}).String(); got != "(unset)" {
		t.Errorf("zero String() = %q", got)
	}
}

func TestSummaryHidesSecrets(t *testing.T) {
	c, secrets := secretConfig(t)
	sum := c.Summary()
	for _, v := range secrets {
		if strings.Contains(sum, v) {
			t.Errorf("Summary shows secret %q:\n%s", v, sum)
		}
	}
	for _, want := range []string{"vpn", "wifi", "staff", "secret=literal", "password from literal", "key from literal"} {
		if !strings.Contains(sum, want) {
			t.Errorf("Summary lacks %q:\n%s", want, sum)
		}
	}
}

func TestDecodeKey(t *testing.T) {
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i * 7)
	}
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"hex", hex.EncodeToString(key), true},
		{"upper-case hex", strings.ToUpper(hex.EncodeToString(key)), true},
		{"hex with newline", hex.EncodeToString(key) + "\n", true},
		{"base64", base64.StdEncoding.EncodeToString(key), true},
		{"empty", "", false},
		{"short hex", hex.EncodeToString(key[:31]), false},
		{"long hex", hex.EncodeToString(append(key, 0)), false},
		{"odd hex", hex.EncodeToString(key)[:63], false},
		{"short base64", base64.StdEncoding.EncodeToString(key[:31]), false},
		{"long base64", base64.StdEncoding.EncodeToString(append(key, 0)), false},
		{"unpadded base64", base64.RawStdEncoding.EncodeToString(key), false},
		{"text", strings.Repeat("x", 64), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := config.DecodeKey(tt.in)
			if !tt.ok {
				if err == nil {
					t.Errorf("DecodeKey(%q) = %x, want an error", tt.in, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("DecodeKey(%q): %v", tt.in, err)
			}
			if string(got) != string(key) {
				t.Errorf("DecodeKey(%q) = %x, want %x", tt.in, got, key)
			}
		})
	}
}

// aliasBomb builds a file whose anchors expand to n³ nodes: n policies,
// each with n reply rules, each with n groups.
func aliasBomb(n int) string {
	groups := "x" + strings.Repeat(", x", n-1)
	rules := "*r" + strings.Repeat(", *r", n-1)
	var b strings.Builder
	b.WriteString("z: &r {groups: [" + groups + "], attributes: {Class: a}}\n" + minimal)
	b.WriteString("policies:\n  p: &p {reply_attributes: [" + rules + "]}\n")
	for i := range n {
		fmt.Fprintf(&b, "  p%d: *p\n", i)
	}
	return b.String()
}

// TestParseHostileYAML holds the crashers FuzzParse found and their
// relatives: each must fail with a problem, quickly, without a panic or a
// stack overflow.
func TestParseHostileYAML(t *testing.T) {
	tests := []struct {
		name    string
		src     string
		message string
	}{
		// walk followed the merge key into its own anchor for ever, a
		// fatal stack overflow: the decoder now runs first and refuses it.
		{"anchor containing itself by merge", "server: &s {<<: *s}\n" + minimal, "contains itself"},
		// walk expanded aliases without yaml.v3's limits: cubic work.
		{"alias bomb", aliasBomb(200), "excessive aliasing"},
		// yaml.v3 panics with "hash of unhashable type" (found by FuzzParse).
		{"mapping as key beside merge key", "d: &d {secret: 1}\n" + minimal + "  - {<<, *d, 0}\n", "cannot be decoded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			e := parseError(t, tt.src)
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("Parse took %s", took)
			}
			if len(e.Problems) != 1 || !strings.Contains(e.Problems[0].Message, tt.message) || e.Problems[0].Hint == "" {
				t.Errorf("problems %+v, want one saying %q with a hint", e.Problems, tt.message)
			}
		})
	}
}

func TestFilterAttribute(t *testing.T) {
	for filter, want := range map[string]string{
		"(&(objectClass=inetOrgPerson)(uid={username}))":                    "uid",
		"(&(objectClass=user)(sAMAccountName={username}))":                  "sAMAccountName",
		"(|(uid={username})(mail={username}))":                              "",
		"(|(uid={username})(UID={username}))":                               "uid",
		"(userPrincipalName={username}@example.org)":                        "",
		"(&(objectClass=person)(cn=*{username}*))":                          "",
		"(&(objectClass=person)(uid={username})(description=*{username}*))": "",
	} {
		if got := config.FilterAttribute(filter); got != want {
			t.Errorf("FilterAttribute(%q) = %q, want %q", filter, got, want)
		}
	}
}

// The keys of the identity and revocation rules: each mistake is named
// with its key and a hint.
func TestIdentityAndRevocationKeys(t *testing.T) {
	withPolicy := func(policy string) string {
		return strings.Replace(minimal, "    secret:", "    policy: p\n    secret:", 1) + "policies:\n  p: " + policy + "\n"
	}
	for _, tc := range []struct {
		name, src, path, msg string
	}{
		{"a filter on two attributes names no user attribute",
			ldapExtra("  user_filter: \"(|(uid={username})(mail={username}))\"\n"), "ldap.attributes.username", "exactly one attribute"},
		{"a group by cn without groups.base_dn",
			withPolicy("{deny_groups: [leavers]}"), "policies.p.deny_groups[0]", "ldap.groups.base_dn is not set"},
		{"a reply rule's group by cn without groups.base_dn",
			withPolicy("{reply_attributes: [{groups: [admins], attributes: {Class: a}}]}"), "policies.p.reply_attributes[0].groups[0]", "without its DN"},
		{"nas on a client that is no proxy",
			strings.Replace(minimal, "    secret: env:VPN_SECRET", "    secret: env:VPN_SECRET\n    nas: [{identifier: asa-1, policy: default}]", 1),
			"clients[0].nas[0]", "for proxies"},
		{"nas naming no policy",
			strings.Replace(minimal, "    secret: env:VPN_SECRET", "    secret: env:VPN_SECRET\n    proxy: true\n    nas: [{identifier: asa-1, policy: nope}]", 1),
			"clients[0].nas[0].policy", `no policy named "nope"`},
		{"a revocation rule that does not exist", minimal + "factors:\n  smartcard: {revocation: sometimes}\n", "factors.smartcard.revocation", "not crl"},
		{"a CA's rule that does not exist", minimal + "factors:\n  smartcard: {ca_files: [{file: /ca.pem, revocation: maybe}]}\n", "factors.smartcard.ca_files[0].revocation", "not crl"},
		{"a CA with an unknown key", minimal + "factors:\n  smartcard: {ca_files: [{file: /ca.pem, crl: /x}]}\n", "", `unknown key "crl"`},
		{"ocsp rule without ocsp", minimal + "factors:\n  smartcard: {revocation: ocsp}\n", "factors.smartcard.ocsp", "needs ocsp: true"},
		{"a realm with @", minimal + "factors:\n  smartcard: {allowed_realms: [\"@example.org\"]}\n", "factors.smartcard.allowed_realms[0]", "not a realm"},
		{"phone_methods", withPolicy("{phone_methods: sometimes}"), "policies.p.phone_methods", "always or only_without_app"},
		{"known_station_ttl", minimal + "lockout: {known_station_ttl: -1s}\n", "lockout.known_station_ttl", "not from 0s"},
		{"state.max_entries", minimal + "state: {max_entries: 10}\n", "state.max_entries", "not from 100"},
		{"duplicate_cache_entries", minimal + "server: {duplicate_cache_entries: 1}\n", "server.duplicate_cache_entries", "not from 64"},
		{"webhook_listen on the admin address", minimal + "server: {webhook_listen: \"127.0.0.1:9812\"}\n", "server.webhook_listen", "same address"},
		{"cards looked up in an empty attribute", ldapExtra("  attributes: {upn: \"\"}\n") +
			"factors:\n  smartcard: {ca_files: [{file: /ca.pem, revocation: none}]}\npolicies:\n  default: {smartcard: true}\n",
			"ldap.attributes.upn", "no card would find its user"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ce := parseError(t, tc.src)
			for _, p := range ce.Problems {
				if (tc.path == "" || p.Path == tc.path) && strings.Contains(p.Message, tc.msg) {
					if p.Hint == "" {
						t.Errorf("%s: no hint", p.Path)
					}
					return
				}
			}
			t.Errorf("no problem at %q saying %q in:\n%v", tc.path, tc.msg, ce)
		})
	}
	// Accepted: a CA as a path and as a mapping, the rule derived from
	// what is configured, groups by DN without groups.base_dn.
	c := parse(t, withPolicy(`{deny_groups: ["cn=leavers,ou=groups,dc=example,dc=org"]}`)+
		"factors:\n  smartcard: {ocsp: true, ca_files: [/a.pem, {file: /b.pem, revocation: none}]}\n")
	sc := c.Factors.Smartcard
	if sc.Revocation != config.RevocationOCSP || len(sc.CAFiles) != 2 || sc.CAFiles[0].File != "/a.pem" || sc.CAFiles[1].Revocation != config.RevocationNone {
		t.Errorf("smartcard %+v", sc)
	}
	if c.LDAP.Attributes.Username != "uid" {
		t.Errorf("attributes.username %q, want uid from the default filter", c.LDAP.Attributes.Username)
	}
	c = parse(t, minimal+"factors:\n  smartcard: {ocsp: true, crl_files: [/c.pem]}\n")
	if c.Factors.Smartcard.Revocation != config.RevocationCRLAndOCSP {
		t.Errorf("revocation %q with ocsp and CRLs, want crl_and_ocsp", c.Factors.Smartcard.Revocation)
	}
}

// A shared state with a local store, or the reverse, loads with a warning
// that says what several instances would get wrong.
func TestHalfSharedWarns(t *testing.T) {
	for name, tc := range map[string]struct{ extra, want string }{
		"redis with sqlite":  {"state:\n  backend: redis\n  redis: {addresses: [\"127.0.0.1:6379\"]}\n", "store.driver"},
		"postgres in memory": {"", "state.backend"},
	} {
		t.Run(name, func(t *testing.T) {
			src := minimal + tc.extra
			if tc.want == "state.backend" {
				src = strings.Replace(minimal, "store: {key: env:MFA_TEST_STORE_KEY}", "store: {key: env:MFA_TEST_STORE_KEY, driver: postgres, dsn: env:PG_DSN}", 1)
			}
			c := parse(t, src)
			found := false
			for _, w := range c.Warnings {
				found = found || strings.Contains(w, tc.want) && strings.Contains(w, "instance")
			}
			if !found {
				t.Errorf("no warning on %s: %q", tc.want, c.Warnings)
			}
		})
	}
}

func TestPortalKeys(t *testing.T) {
	portal := func(lines string) string { return minimal + "portal:\n" + lines }
	c := parse(t, portal("  listen: \"127.0.0.1:8080\"\n  public_url: \"http://localhost:8080\"\n  insecure_http_loopback: true\n"))
	if p := c.Portal; p.Policy != "default" || p.SessionTimeout != 15*time.Minute || !reflect.DeepEqual(p.FirstMethod, []string{"invite"}) {
		t.Errorf("defaults: %+v", p)
	}
	c = parse(t, portal("  listen: \"0.0.0.0:8443\"\n  public_url: \"https://mfa.example.org\"\n  tls: {cert_file: a.crt, key_file: a.key}\n"+
		"  first_method: [invite, trusted_network]\n  trusted_networks: [10.1.0.0/16]\n")+"policies:\n  default: {}\n  portal: {factors: [totp]}\n")
	if p := c.Portal; p.Policy != "portal" || len(p.TrustedPrefixes) != 1 || p.TrustedPrefixes[0] != netip.MustParsePrefix("10.1.0.0/16") {
		t.Errorf("a policy named portal, and the networks: %+v", p)
	}
	for name, tc := range map[string]struct{ src, msg string }{
		"plain http elsewhere": {portal("  listen: \"0.0.0.0:8080\"\n  public_url: \"http://mfa.example.org\"\n  insecure_http_loopback: true\n"),
			"not a loopback address"},
		"http without the flag": {portal("  listen: \"127.0.0.1:8080\"\n  public_url: \"http://localhost:8080\"\n  tls: {cert_file: a, key_file: b}\n"),
			"plain http is for the demo"},
		"no tls":          {portal("  listen: \"0.0.0.0:8443\"\n  public_url: \"https://mfa.example.org\"\n"), "needs cert_file and key_file"},
		"no public_url":   {portal("  listen: \"127.0.0.1:8080\"\n  insecure_http_loopback: true\n"), "missing"},
		"an IP":           {portal("  listen: \"127.0.0.1:8080\"\n  public_url: \"http://127.0.0.1:8080\"\n  insecure_http_loopback: true\n"), "need a host name"},
		"first method":    {portal("  listen: \"127.0.0.1:8080\"\n  public_url: \"http://localhost\"\n  insecure_http_loopback: true\n  first_method: [email]\n"), "is not invite"},
		"trusted, no net": {portal("  listen: \"127.0.0.1:8080\"\n  public_url: \"http://localhost\"\n  insecure_http_loopback: true\n  first_method: [trusted_network]\n"), "no network listed"},
		"client portal": {strings.Replace(portal("  listen: \"127.0.0.1:8080\"\n  public_url: \"http://localhost\"\n  insecure_http_loopback: true\n"),
			"name: vpn", "name: portal", 1), "names the portal's sign-ins"},
		"append policy": {portal("  listen: \"127.0.0.1:8080\"\n  public_url: \"http://localhost\"\n  insecure_http_loopback: true\n  policy: mail\n") +
			"policies:\n  default: {}\n  mail: {mode: append}\n", "the portal asks for the second factor as a challenge"},
		"mfa off": {portal("  listen: \"127.0.0.1:8080\"\n  public_url: \"http://localhost\"\n  insecure_http_loopback: true\n") +
			"policies:\n  default: {mfa: off}\n", "a second factor they hold"},
	} {
		e := parseError(t, tc.src)
		if !strings.Contains(e.Error(), tc.msg) {
			t.Errorf("%s: %v, want %q", name, e, tc.msg)
		}
	}
}
