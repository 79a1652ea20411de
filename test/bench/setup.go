package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/mfabridge/mfabridge/factors"
	"github.com/mfabridge/mfabridge/test/harness"
)

// bridgeConf is one bridge configuration of the benchmark.
type bridgeConf struct {
	Name             string // file names in the working directory
	Dir              string
	Radius, Admin    string
	LDAP             string
	Pool             int
	MaxInFlight      int
	Pprof            bool
	CacheTTL         string // "" leaves ldap.cache_ttl out
	Store            bool   // an enrolment store, and the MFA policies
	ChallengeTimeout string
	DuplicateWindow  string
	ServiceDN        string
	PeopleDN         string
	StoreYAML        string // the store section as a flow mapping; "" the SQLite file
	StateYAML        string // a state section; "" memory
}

// The policies: client "pap" (127.0.0.1 by default) logs in on the
// password alone; with a store, "challenge" (127.0.0.2) and "append"
// (127.0.0.3) require TOTP. The bridge picks the client, and so the
// policy, by source address.
var bridgeTmpl = template.Must(template.New("cfg").Parse(`# Written by the mfabridge benchmark.
server:
  radius_listen: ["{{.Radius}}"]
  admin_listen: "{{.Admin}}"
  max_in_flight_per_client: {{.MaxInFlight}}
  # One client sends more in duplicate_window than the default share of
  # the reply cache holds; a production NAS sends far less.
  duplicate_cache_entries: 1048576
  pprof: {{.Pprof}}
{{- if .ChallengeTimeout}}
  challenge_timeout: {{.ChallengeTimeout}}
{{- end}}
{{- if .DuplicateWindow}}
  duplicate_window: {{.DuplicateWindow}}
{{- end}}
clients:
  - name: pap
    address: 127.0.0.1
    secret: "file:{{.Dir}}/radius.secret"
    require_message_authenticator: true
    policy: pap
{{- if .Store}}
  - name: challenge
    address: 127.0.0.2
    secret: "file:{{.Dir}}/radius.secret"
    require_message_authenticator: true
    policy: challenge
  - name: append
    address: 127.0.0.3
    secret: "file:{{.Dir}}/radius.secret"
    require_message_authenticator: true
    policy: append
{{- end}}
ldap:
  urls: ["{{.LDAP}}"]
  bind_dn: "{{.ServiceDN}}"
  bind_password: "file:{{.Dir}}/ldap.secret"
  base_dn: "{{.PeopleDN}}"
  pool_size: {{.Pool}}
{{- if .CacheTTL}}
  cache_ttl: {{.CacheTTL}}
{{- end}}
{{- if .Store}}
store: {{if .StoreYAML}}{{.StoreYAML}}{{else}}{path: "{{.Dir}}/store.db", key: "file:{{.Dir}}/store.key"}{{end}}
{{- end}}
{{- if .StateYAML}}
{{.StateYAML}}
{{- end}}
policies:
  pap: {mfa: off}
{{- if .Store}}
  challenge: {mode: challenge, mfa: required, factors: [totp]}
  append: {mode: append, mfa: required, factors: [totp]}
{{- end}}
logging: {level: info, format: json, audit_file: "{{.Dir}}/audit-{{.Name}}.log"}
`))

// env is what every phase shares.
type env struct {
	dir       string
	bin       string
	secret    string
	slapd     *harness.SLAPD
	users     []benchUser // PAP users
	codeUsers []benchUser // TOTP users, in the directory from the code phases on
}

// writeBridgeConfig writes c and returns its path.
func (e *env) writeBridgeConfig(c bridgeConf) (string, error) {
	c.Dir, c.LDAP, c.ServiceDN, c.PeopleDN = e.dir, e.slapd.URL, harness.ServiceDN, harness.PeopleDN
	if c.Radius == "" {
		rp, err := harness.FreePort()
		if err != nil {
			return "", err
		}
		ap, err := harness.FreePort()
		if err != nil {
			return "", err
		}
		c.Radius, c.Admin = fmt.Sprintf("127.0.0.1:%d", rp), fmt.Sprintf("127.0.0.1:%d", ap)
	}
	var b strings.Builder
	if err := bridgeTmpl.Execute(&b, c); err != nil {
		return "", err
	}
	path := filepath.Join(e.dir, "mfabridge-"+c.Name+".yaml")
	return path, os.WriteFile(path, []byte(b.String()), 0o600)
}

// runningBridge is a started bridge and where it listens.
type runningBridge struct {
	*harness.Bridge
	Radius, Admin string
	log           *os.File
}

// startBridge writes c, starts the bridge and checks with radclient that
// it accepts the right password of users[0] and rejects a wrong one.
func (e *env) startBridge(ctx context.Context, c bridgeConf, check []benchUser) (*runningBridge, error) {
	rp, err := harness.FreePort()
	if err != nil {
		return nil, err
	}
	ap, err := harness.FreePort()
	if err != nil {
		return nil, err
	}
	c.Radius, c.Admin = fmt.Sprintf("127.0.0.1:%d", rp), fmt.Sprintf("127.0.0.1:%d", ap)
	path, err := e.writeBridgeConfig(c)
	if err != nil {
		return nil, err
	}
	// Its operational log (and the runtime's, with GODEBUG=gctrace=1 in
	// the environment) is kept beside its configuration: see --keep.
	logf, err := os.Create(filepath.Join(e.dir, "mfabridge-"+c.Name+".log"))
	if err != nil {
		return nil, err
	}
	b, err := harness.StartBridgeTee(e.bin, path, logf)
	if err != nil {
		logf.Close()
		return nil, err
	}
	rb := &runningBridge{Bridge: b, Radius: c.Radius, Admin: c.Admin, log: logf}
	if len(check) > 0 {
		if err := radclientCheck(ctx, "mfabridge", rb.Radius, e.secret, check[0]); err != nil {
			rb.stop()
			return nil, err
		}
	}
	return rb, nil
}

func (b *runningBridge) stop() {
	if b == nil {
		return
	}
	if !b.Exited() {
		if code, err := b.Stop(); err != nil || code != 0 {
			warn("mfabridge exit status %d after SIGTERM (%v)", code, err)
		}
	}
	b.log.Close()
}

// radclientCheck has radclient (which signs with Message-Authenticator
// and checks the one in the reply) log in as u with the right password,
// which must be accepted, and a wrong one, which must be rejected.
func radclientCheck(ctx context.Context, what, server, secret string, u benchUser) error {
	for _, c := range []struct{ pw, want string }{{u.Password, "Access-Accept"}, {u.Password + "-wrong", "Access-Reject"}} {
		attrs := fmt.Sprintf(`User-Name = "%s", User-Password = "%s", Message-Authenticator = 0x00`, u.UID, c.pw)
		r, err := harness.Radclient(ctx, server, secret, "auth", attrs)
		if err != nil {
			return fmt.Errorf("%s: radclient: %w", what, err)
		}
		if r.Code != c.want {
			return fmt.Errorf("%s answered %q instead of %s for %s with a %s password:\n%s", what, r.Code, c.want, u.UID,
				map[bool]string{true: "right", false: "wrong"}[c.want == "Access-Accept"], r.Out)
		}
	}
	return nil
}

// checkConfigAccepts runs mfabridge check-config on c and reports whether
// the configuration loads, with the output when it does not.
func (e *env) checkConfigAccepts(c bridgeConf) (bool, string, error) {
	path, err := e.writeBridgeConfig(c)
	if err != nil {
		return false, "", err
	}
	out, err := exec.Command(e.bin, "check-config", "--config", path).CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return false, strings.TrimSpace(string(out)), nil
	}
	if err != nil {
		return false, "", err
	}
	return true, "", nil
}

// makeUsers returns n users named prefix000000…, with random passwords,
// and with TOTP secrets when totp is set.
func makeUsers(prefix string, n int, totp bool) []benchUser {
	users := make([]benchUser, n)
	buf := make([]byte, 8)
	for i := range users {
		rand.Read(buf)
		users[i] = benchUser{UID: fmt.Sprintf("%s%06d", prefix, i), Password: "Pw-" + hex.EncodeToString(buf)}
		if totp {
			secret := make([]byte, 20)
			rand.Read(secret)
			users[i].Cred = factors.Credential{Method: factors.TOTP, Secret: secret, Algorithm: "SHA1", Digits: 6,
				Period: totpPeriod, Active: true}
		}
	}
	return users
}

func directoryUsers(users []benchUser) []harness.User {
	out := make([]harness.User, len(users))
	for i, u := range users {
		out[i] = harness.User{UID: u.UID, Password: u.Password}
	}
	return out
}

// enrol imports the code users' TOTP secrets with `mfabridge enrol import
// --csv`, the bulk path an administrator migrating users takes.
func (e *env) enrol(ctx context.Context, cfgPath string, users []benchUser) error {
	csvPath := filepath.Join(e.dir, "totp.csv")
	f, err := os.Create(csvPath)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	w.WriteString("user,type,secret\n")
	enc := base32.StdEncoding.WithPadding(base32.NoPadding)
	for _, u := range users {
		fmt.Fprintf(w, "%s,totp,%s\n", u.UID, enc.EncodeToString(u.Cred.Secret))
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, e.bin, "enrol", "import", "--config", cfgPath, "--csv", csvPath).CombinedOutput()
	if err != nil {
		return fmt.Errorf("mfabridge enrol import: %v\n%s", err, out)
	}
	return nil
}

// memSample is what /metrics says about the bridge's memory.
type memSample struct{ rss, heapInuse float64 }

func readMem(admin string) (memSample, error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + admin + "/metrics")
	if err != nil {
		return memSample{}, err
	}
	defer resp.Body.Close()
	var m memSample
	found := 0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		var dst *float64
		switch name {
		case "process_resident_memory_bytes":
			dst = &m.rss
		case "go_memstats_heap_inuse_bytes":
			dst = &m.heapInuse
		default:
			continue
		}
		if *dst, err = strconv.ParseFloat(value, 64); err != nil {
			return m, err
		}
		found++
	}
	if found != 2 {
		return m, errors.New("/metrics lacks process_resident_memory_bytes or go_memstats_heap_inuse_bytes")
	}
	return m, sc.Err()
}

// machine describes where the benchmark ran.
func machine() (cpus int, model, kernel string) {
	model = "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = strings.TrimSpace(string(b))
	}
	return nprocs(), model, kernel
}

// readDrops sums mfabridge_radius_dropped_total by cause.
func readDrops(admin string) (string, error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + admin + "/metrics")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var parts []string
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "mfabridge_radius_dropped_total{") {
			continue
		}
		series, value, _ := strings.Cut(line, " ")
		if value == "0" {
			continue
		}
		cause := series
		if i := strings.Index(series, `cause="`); i >= 0 {
			cause = series[i+7:]
			cause = cause[:strings.IndexByte(cause, '"')]
		}
		parts = append(parts, cause+" "+value)
	}
	if len(parts) == 0 {
		return "none", sc.Err()
	}
	return strings.Join(parts, ", "), sc.Err()
}
