// Package test holds the integration tests: a real slapd, the real
// mfabridge binary, and real RADIUS clients (radclient, and a Go client
// for exact bytes and chosen source addresses), all on loopback.
package test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"text/template"
	"time"

	"github.com/mfabridge/mfabridge/test/harness"
)

// env is shared by every test in the package: one slapd and one build.
var env struct {
	bin   string
	slapd *harness.SLAPD
	dir   string
}

// Fixture users in the shared directory.
var (
	alice = harness.User{UID: "alice", Password: "Alice-pass-1", Mobile: "+447700900001", Mail: "alice@example.org", Groups: []string{"vpn-users", "vpn-admins"}}
	bob   = harness.User{UID: "bob", Password: "Bob-pass-2", Groups: []string{"vpn-users"}}
	carol = harness.User{UID: "carol", Password: "Carol-pass-3", Groups: []string{"blocked"}}
	dave  = harness.User{UID: "dave", Password: "Dave-pass-4"}
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	if err := harness.Need("slapd", "radclient"); err != nil {
		fmt.Fprintln(os.Stderr, "integration tests:", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "mfabridge-it-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	env.dir = dir
	if env.bin, err = harness.BuildBridge(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	sdir := filepath.Join(dir, "slapd")
	os.MkdirAll(sdir, 0o700)
	if env.slapd, err = harness.StartSLAPD(sdir, []harness.User{alice, bob, carol, dave}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer env.slapd.Stop()
	defer func() {
		if pgShared.p != nil {
			pgShared.p.Remove()
		}
	}()
	return m.Run()
}

var userSeq atomic.Int64

// newUser adds a user that only the calling test uses, so that bind
// counts are its own.
func newUser(t *testing.T, groups ...string) harness.User {
	t.Helper()
	n := userSeq.Add(1)
	u := harness.User{UID: fmt.Sprintf("u%d-%s", n, strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-"))),
		Password: fmt.Sprintf("Pw-%d-secret", n), Groups: groups}
	if len(u.UID) > 60 {
		u.UID = u.UID[:60]
	}
	// The address a card's UPN names the user by (ldap.attributes.upn).
	u.Mail = u.UID + "@example.org"
	if err := env.slapd.AddUsers(u); err != nil {
		t.Fatal(err)
	}
	secrets.add(u.Password)
	return u
}

// secrets are every password, shared secret and key the tests hand to a
// bridge; none may reach its log or audit output, whatever the test did.
var secrets = &secretList{list: []string{alice.Password, bob.Password, carol.Password, dave.Password,
	secretLocal, secretOther, harness.ServicePass, storeKey}}

type secretList struct {
	mu   sync.Mutex
	list []string
}

func (s *secretList) add(v string) {
	s.mu.Lock()
	s.list = append(s.list, v)
	s.mu.Unlock()
}

// leaked returns the secrets found in out.
func (s *secretList) leaked(out string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var found []string
	for _, v := range s.list {
		if strings.Contains(out, v) {
			found = append(found, v)
		}
	}
	return found
}

// storeKey opens every test bridge's enrolment store.
const storeKey = "0f1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778899aabbccddeeff0"

// Shared secrets of the test clients.
const (
	secretLocal = "local-shared-secret-0001"
	secretOther = "other-shared-secret-0002"
)

// conf is what a test configuration is made from; zero fields take the
// defaults in baseConfig.
type conf struct {
	Radius, Admin string
	Radius6       string // with IPv6: set to "[::1]" and startBridge adds the port
	ServerExtra   string // more keys under server:, indented by two spaces
	Clients       string // YAML list items under clients:
	URLs          string // YAML flow list items under ldap.urls
	LDAPExtra     string // more keys under ldap:, indented by two spaces
	Timeout       string
	Policies      string // YAML under policies:
	Extra         string // more top-level sections
	CA            string
	ServiceDN     string
	PeopleDN      string
	Groups        string // set by startBridge: where groups live, unless LDAPExtra says
	Store         string // the store section as a flow mapping; default: a SQLite file in Dir
	Dir           string // set by startBridge
}

const defaultClients = `  - name: local
    address: 127.0.0.1
    secret: env:LOCAL_SECRET
  - name: strict
    address: 127.0.0.2
    secret: env:OTHER_SECRET
    require_message_authenticator: true
  - name: auto-signer
    address: 127.0.0.3
    secret: env:OTHER_SECRET
  - name: legacy
    address: 127.0.0.4
    secret: env:OTHER_SECRET
  - name: proxy
    address: 127.0.0.6
    secret: env:OTHER_SECRET
    proxy: true
  - name: legacy-false
    address: 127.0.0.7
    secret: env:OTHER_SECRET
    require_message_authenticator: false`

const defaultPolicies = `  default:
    mfa: off
    deny_groups: [blocked]
    reply_attributes:
      - groups: [vpn-admins]
        attributes: {Class: "admins", Filter-Id: "admin-acl"}
      - attributes: {Session-Timeout: "3600"}`

var baseConfig = template.Must(template.New("cfg").Parse(`server:
  radius_listen: ["{{.Radius}}"{{if .Radius6}}, "{{.Radius6}}"{{end}}]
  admin_listen: "{{.Admin}}"
{{.ServerExtra}}
clients:
{{.Clients}}
ldap:
  urls: [{{.URLs}}]
  tls: {ca_file: "{{.CA}}"}
  bind_dn: "{{.ServiceDN}}"
  bind_password: env:LDAP_PASSWORD
  base_dn: "{{.PeopleDN}}"
  timeout: {{.Timeout}}
{{.Groups}}
{{.LDAPExtra}}
store: {{if .Store}}{{.Store}}{{else}}{path: "{{.Dir}}/store.db", key: env:STORE_KEY}{{end}}
policies:
{{.Policies}}
logging: {level: debug, format: json}
{{.Extra}}
`))

// bridge is a running mfabridge for one test.
type bridge struct {
	*harness.Bridge
	Radius, Admin string
	Radius6       string // with IPv6: set to "[::1]" and startBridge adds the port
	dir           string
}

// startBridge writes the configuration and starts mfabridge; it is
// stopped when the test ends, and its logs are shown if the test failed.
func startBridge(t *testing.T, c conf) *bridge {
	t.Helper()
	rp, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	ap, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	c.Radius = "127.0.0.1:" + strconv.Itoa(rp)
	if c.Radius6 != "" {
		c.Radius6 += ":" + strconv.Itoa(rp)
	}
	c.Admin = "127.0.0.1:" + strconv.Itoa(ap)
	def := func(s *string, d string) {
		if *s == "" {
			*s = d
		}
	}
	def(&c.Clients, defaultClients)
	def(&c.URLs, `"`+env.slapd.URL+`"`)
	def(&c.Timeout, "3s")
	def(&c.Policies, defaultPolicies)
	def(&c.CA, env.slapd.CA.CertFile)
	def(&c.ServiceDN, harness.ServiceDN)
	def(&c.PeopleDN, harness.PeopleDN)
	if !strings.Contains(c.LDAPExtra, "groups:") {
		c.Groups = `  groups: {base_dn: "` + harness.GroupsDN + `"}`
	}
	dir := t.TempDir()
	c.Dir = dir
	path := filepath.Join(dir, "mfabridge.yaml")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := baseConfig.Execute(f, c); err != nil {
		t.Fatal(err)
	}
	f.Close()
	b, err := harness.StartBridge(env.bin, path, "LOCAL_SECRET="+secretLocal, "OTHER_SECRET="+secretOther,
		"LDAP_PASSWORD="+harness.ServicePass, "STORE_KEY="+storeKey)
	if err != nil {
		t.Fatal(err)
	}
	tb := &bridge{Bridge: b, Radius: c.Radius, Radius6: c.Radius6, Admin: c.Admin, dir: dir}
	t.Cleanup(func() {
		if !b.Exited() {
			if code, err := b.Stop(); err != nil || code != 0 {
				t.Errorf("mfabridge exit status %d after SIGTERM (%v)", code, err)
			}
		}
		if leaked := secrets.leaked(b.Logs() + b.Stdout()); len(leaked) > 0 {
			t.Errorf("secrets reached the log or the audit output: %q", leaked)
		}
		if t.Failed() {
			t.Logf("mfabridge log:\n%s\naudit:\n%s", b.Logs(), b.Stdout())
		}
	})
	return tb
}

// metric returns the value of the sample named exactly by series, such
// as `mfabridge_radius_dropped_total{cause="unknown_client"}`, or 0.
func (b *bridge) metric(t *testing.T, series string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + b.Admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, series+" ") {
			v, _ := strconv.ParseFloat(strings.TrimPrefix(line, series+" "), 64)
			return v
		}
	}
	return 0
}

// auditRecord is the part of an audit line the tests read.
type auditRecord struct {
	Client, User, Outcome, Reason, Policy string
	CallingStation                        string  `json:"calling_station"`
	ClientAddress                         string  `json:"client_addr"`
	Factor                                string  `json:"factor"`
	LatencyMS                             float64 `json:"latency_ms"`
}

// audit returns the audit records so far.
func (b *bridge) audit(t *testing.T) []auditRecord {
	t.Helper()
	var out []auditRecord
	for _, line := range strings.Split(b.Stdout(), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		var r auditRecord
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("audit line is not JSON: %q: %v", line, err)
		}
		out = append(out, r)
	}
	return out
}

// lastAudit waits for an audit record for user and returns the last one.
func (b *bridge) lastAudit(t *testing.T, user string) auditRecord {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		recs := b.audit(t)
		for i := len(recs) - 1; i >= 0; i-- {
			if recs[i].User == user {
				return recs[i]
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no audit record for %q in:\n%s", user, b.Stdout())
	return auditRecord{}
}

// radclient sends one request with radclient from 127.0.0.1.
func (b *bridge) radclient(t *testing.T, kind, secret, attrs string) harness.RadReply {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r, err := harness.Radclient(ctx, b.Radius, secret, kind, attrs)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// client returns a Go RADIUS client bound to localIP.
func (b *bridge) client(t *testing.T, localIP, secret string) *harness.Client {
	t.Helper()
	c, err := harness.NewClient(localIP, b.Radius, secret)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// pap builds radclient input for a PAP request signed with
// Message-Authenticator.
func pap(user, password string) string {
	return fmt.Sprintf(`User-Name = "%s", User-Password = "%s", Message-Authenticator = 0x00`, user, password)
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
