package test

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// mfabridge runs the binary and returns its output and exit status.
func mfabridge(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(env0.bin(), args...)
	cmd.Env = append(os.Environ(), env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatal(err)
		}
	}
	return o.String(), e.String(), cmd.ProcessState.ExitCode()
}

type envAccess struct{}

func (envAccess) bin() string { return env.bin }

var env0 envAccess

var wantRE = regexp.MustCompile(`^# want: (\d+): (.*)$`)

// TestBadConfigs runs check-config and serve on every file in
// testdata/badconfig: each must fail with status 1, name the file and the
// line given in its first line, say what is wrong and give a hint, and
// serve must not start.
func TestBadConfigs(t *testing.T) {
	files, _ := filepath.Glob("testdata/badconfig/*.yaml")
	if len(files) < 10 {
		t.Fatalf("only %d bad configs found", len(files))
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".yaml"), func(t *testing.T) {
			first, _ := bufio.NewReader(mustOpen(t, f)).ReadString('\n')
			m := wantRE.FindStringSubmatch(strings.TrimSpace(first))
			if m == nil {
				t.Fatalf("%s: first line must be '# want: LINE: text'", f)
			}
			keyEnv := []string{"BADCONFIG_STORE_KEY=" + storeKey}
			_, stderr, code := mfabridge(t, keyEnv, "check-config", "--config", f)
			if code != 1 {
				t.Fatalf("check-config exit status %d, want 1\n%s", code, stderr)
			}
			place := f + ":" + m[1] + ":"
			if m[1] == "0" {
				place = f + ": "
			}
			if !strings.Contains(stderr, place) || !strings.Contains(stderr, m[2]) || !strings.Contains(stderr, "hint: ") {
				t.Errorf("check-config output lacks %q, %q or a hint:\n%s", place, m[2], stderr)
			}
			out, stderr, code := mfabridge(t, keyEnv, "serve", "--config", f)
			if code != 1 || strings.Contains(out+stderr, "mfabridge started") || !strings.Contains(stderr, m[2]) {
				t.Errorf("serve: exit status %d, want 1 without starting:\n%s", code, stderr)
			}
		})
	}
}

func mustOpen(t *testing.T, f string) *os.File {
	t.Helper()
	r, err := os.Open(f)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func TestCheckConfigRedactsSecrets(t *testing.T) {
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "ldap.secret")
	os.WriteFile(secretFile, []byte("ldap-secret-value-77\n"), 0o644)
	cfg := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfg, []byte(`clients:
  - {name: vpn, address: 192.0.2.0/24, secret: "literal-client-secret-99"}
  - {name: nas, address: 192.0.2.7, secret: "env:NAS_SECRET"}
ldap:
  urls: ["ldaps://dc1.example.org"]
  bind_dn: "cn=bridge,dc=example,dc=org"
  bind_password: "file:`+secretFile+`"
  base_dn: "dc=example,dc=org"
store: {key: "env:STORE_KEY"}
`), 0o600)
	out, stderr, code := mfabridge(t, []string{"NAS_SECRET=env-nas-secret-value-55", "STORE_KEY=" + storeKey}, "check-config", "--config", cfg)
	if code != 0 {
		t.Fatalf("exit status %d:\n%s", code, stderr)
	}
	for _, secret := range []string{"literal-client-secret-99", "env-nas-secret-value-55", "ldap-secret-value-77", storeKey} {
		if strings.Contains(out+stderr, secret) {
			t.Errorf("check-config printed the secret %q", secret)
		}
	}
	for _, want := range []string{"secret=literal", "secret=env:NAS_SECRET", "file:" + secretFile, "configuration OK"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	// The secret file is readable by others: a warning names it.
	if !strings.Contains(stderr, "readable by every user") || !strings.Contains(stderr, secretFile) {
		t.Errorf("no warning about the world-readable secret file:\n%s", stderr)
	}
}

func TestUsageAndVersion(t *testing.T) {
	out, _, code := mfabridge(t, nil, "version")
	if code != 0 || !strings.HasPrefix(out, "mfabridge ") {
		t.Errorf("version: %d %q", code, out)
	}
	for _, args := range [][]string{{}, {"nonsense"}, {"serve"}, {"check-config"}, {"test-auth", "--user", "x"}, {"serve", "--bogus"}} {
		if _, _, code := mfabridge(t, nil, args...); code != 2 {
			t.Errorf("%v: exit status %d, want 2", args, code)
		}
	}
}

func TestTestAuthCommand(t *testing.T) {
	b := startBridge(t, conf{})
	out, stderr, code := mfabridge(t, []string{"S=" + secretLocal}, "test-auth", "--server", b.Radius, "--secret", "env:S",
		"--user", alice.UID, "--password", alice.Password)
	if code != 0 || !strings.Contains(out, "Access-Accept") || !strings.Contains(out, `Class = "admins"`) {
		t.Errorf("accept: status %d\n%s%s", code, out, stderr)
	}
	out, _, code = mfabridge(t, nil, "test-auth", "--server", b.Radius, "--secret", secretLocal, "--user", alice.UID, "--password", "wrong")
	if code != 1 || !strings.Contains(out, "Access-Reject") || !strings.Contains(out, `Reply-Message = "Authentication failed."`) {
		t.Errorf("reject: status %d\n%s", code, out)
	}
	// The password can come on standard input instead of the command line.
	cmd := exec.Command(env.bin, "test-auth", "--server", b.Radius, "--secret", secretLocal, "--user", bob.UID)
	cmd.Stdin = strings.NewReader(bob.Password + "\n")
	if o, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(o), "Access-Accept") {
		t.Errorf("password on stdin: %v\n%s", err, o)
	}
	_, stderr, code = mfabridge(t, nil, "test-auth", "--server", b.Radius, "--secret", "wrong-secret", "--user", bob.UID,
		"--password", bob.Password, "--timeout", "1s", "--retry", "0")
	if code != 1 || !strings.Contains(stderr, "no reply") {
		t.Errorf("wrong secret: status %d\n%s", code, stderr)
	}
}

func TestSIGTERMExitsCleanly(t *testing.T) {
	b := startBridge(t, conf{})
	if r := b.radclient(t, "auth", secretLocal, pap(bob.UID, bob.Password)); r.Code != "Access-Accept" {
		t.Fatal(r.Out)
	}
	start := time.Now()
	code, err := b.Stop()
	if err != nil || code != 0 {
		t.Fatalf("exit status %d (%v)", code, err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("shutdown took %s", took)
	}
	if !strings.Contains(b.Logs(), "mfabridge stopped") {
		t.Errorf("no stop message")
	}
}

func TestSIGHUPReload(t *testing.T) {
	b := startBridge(t, conf{Policies: `  default: {mfa: off}`})
	if r := b.radclient(t, "auth", secretLocal, pap(carol.UID, carol.Password)); r.Code != "Access-Accept" {
		t.Fatalf("before reload: %s", r.Code)
	}
	cfg, _ := os.ReadFile(b.ConfigFile)
	good := strings.Replace(string(cfg), "  default: {mfa: off}", "  default: {mfa: off, deny_groups: [blocked]}", 1)
	os.WriteFile(b.ConfigFile, []byte(good), 0o600)
	b.Signal(syscall.SIGHUP)
	if !b.WaitLog("configuration reloaded", 5*time.Second) {
		t.Fatalf("no reload:\n%s", b.Logs())
	}
	if r := b.radclient(t, "auth", secretLocal, pap(carol.UID, carol.Password)); r.Code != "Access-Reject" {
		t.Fatalf("after reload: %s, want the new deny group to apply", r.Code)
	}
	// A bad file is refused and the running configuration stays.
	os.WriteFile(b.ConfigFile, []byte(good+"\nbogus_section: 1\n"), 0o600)
	b.Signal(syscall.SIGHUP)
	if !b.WaitLog("reload refused", 5*time.Second) {
		t.Fatalf("bad file not refused:\n%s", b.Logs())
	}
	if r := b.radclient(t, "auth", secretLocal, pap(bob.UID, bob.Password)); r.Code != "Access-Accept" {
		t.Fatalf("after a refused reload: %s", r.Code)
	}
	if r := b.radclient(t, "auth", secretLocal, pap(carol.UID, carol.Password)); r.Code != "Access-Reject" {
		t.Fatalf("after a refused reload the old configuration must stay: %s", r.Code)
	}
	_ = fmt.Sprint()
}
