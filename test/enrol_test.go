package test

import (
	"bytes"
	"encoding/base32"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"layeh.com/radius"

	"github.com/mfabridge/mfabridge/test/harness"
)

// cliConfig writes a configuration for the admin commands alone (no
// server runs from it) with its store in a fresh directory.
func cliConfig(t *testing.T) (path, storePath string) {
	t.Helper()
	dir := t.TempDir()
	storePath = filepath.Join(dir, "store.db")
	path = filepath.Join(dir, "mfabridge.yaml")
	cfg := fmt.Sprintf(`clients:
  - {name: vpn, address: 192.0.2.7, secret: env:LOCAL_SECRET}
ldap:
  urls: ["ldap://127.0.0.1:1"]
  bind_dn: "cn=bridge,dc=example,dc=org"
  bind_password: env:LDAP_PASSWORD
  base_dn: "dc=example,dc=org"
store: {path: %q, key: env:STORE_KEY}
`, storePath)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, storePath
}

// offline adds --no-directory to an enrol or user command line: the
// configurations of cliConfig name a directory nobody answers at, and
// the names they enrol are in none.
func offline(args ...string) []string {
	if len(args) < 2 || args[0] != "enrol" && args[0] != "user" {
		return args
	}
	return append([]string{args[0], args[1], "--no-directory"}, args[2:]...)
}

// cliEnv is the environment the admin commands need.
var cliEnv = []string{"LOCAL_SECRET=" + secretLocal, "OTHER_SECRET=" + secretOther, "LDAP_PASSWORD=" + harness.ServicePass, "STORE_KEY=" + storeKey}

// otpauthURI finds the otpauth:// line in the output of enrol totp.
func otpauthURI(t *testing.T, out string) *url.URL {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if line = strings.TrimSpace(line); strings.HasPrefix(line, "otpauth://") {
			u, err := url.Parse(line)
			if err != nil {
				t.Fatalf("bad otpauth URI %q: %v", line, err)
			}
			return u
		}
	}
	t.Fatalf("no otpauth:// URI in:\n%s", out)
	return nil
}

func TestEnrolTOTPPendingUntilConfirmed(t *testing.T) {
	t.Parallel()
	b := startBridge(t, conf{Policies: mfaPolicy, Extra: `factors:
  totp: {issuer: "Example NHS Trust"}`})
	u := newUser(t)
	c := b.client(t, "127.0.0.1", secretLocal)

	// Standard input is /dev/null, not a terminal: no prompt, the
	// credential stays pending.
	out, stderr, code := mfabridge(t, b.env(), "enrol", "totp", "--config", b.ConfigFile, "--user", u.UID)
	if code != 0 {
		t.Fatalf("enrol totp: exit %d\n%s%s", code, out, stderr)
	}
	uri := otpauthURI(t, out)
	q := uri.Query()
	if uri.Scheme != "otpauth" || uri.Host != "totp" || q.Get("issuer") != "Example NHS Trust" || !strings.Contains(uri.Path, u.UID) {
		t.Errorf("otpauth URI %s: want otpauth://totp/Example NHS Trust:%s?issuer=Example NHS Trust", uri, u.UID)
	}
	if q.Get("digits") != "6" || q.Get("period") != "30" || q.Get("algorithm") != "SHA1" {
		t.Errorf("otpauth URI parameters %v", q)
	}
	secret, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.ToUpper(q.Get("secret")))
	if err != nil || len(secret) < 16 {
		t.Fatalf("secret %q in the URI: %d bytes, %v", q.Get("secret"), len(secret), err)
	}
	if !strings.Contains(out, "pending") || !strings.Contains(out, "enrol confirm") {
		t.Errorf("enrol totp does not say the credential is pending:\n%s", out)
	}
	tk := newToken(secret)

	resp, rec := b.send(t, c, u.UID, u.Password)
	want(t, "login with a pending credential", resp, rec, radius.CodeAccessReject, "not_enrolled")
	out, _, code = mfabridge(t, b.env(), "user", "show", "--config", b.ConfigFile, "--user", u.UID)
	if code != 0 || !strings.Contains(out, "pending confirmation") {
		t.Errorf("user show of a pending credential: %d\n%s", code, out)
	}

	out, stderr, code = mfabridge(t, b.env(), "enrol", "confirm", "--config", b.ConfigFile, "--user", u.UID, "--code", tk.wrong())
	if code != 1 || !strings.Contains(stderr, "does not match") {
		t.Errorf("confirm with a wrong code: exit %d, want 1\n%s%s", code, out, stderr)
	}
	out, _, _ = mfabridge(t, b.env(), "user", "show", "--config", b.ConfigFile, "--user", u.UID)
	if !strings.Contains(out, "pending confirmation") {
		t.Errorf("after a wrong confirmation code the credential is no longer pending:\n%s", out)
	}
	resp, rec = b.send(t, c, u.UID, u.Password)
	want(t, "login after a wrong confirmation", resp, rec, radius.CodeAccessReject, "not_enrolled")

	out, stderr, code = mfabridge(t, b.env(), "enrol", "confirm", "--config", b.ConfigFile, "--user", u.UID, "--code", tk.code(0))
	if code != 0 || !strings.Contains(out, "active") {
		t.Fatalf("confirm with the right code: exit %d\n%s%s", code, out, stderr)
	}
	// The running server sees it at the next login.
	st, _ := b.challenged(t, c, u.UID, u.Password)
	resp, rec = b.send(t, c, u.UID, tk.code(0), withState(st))
	want(t, "challenge after confirmation", resp, rec, radius.CodeAccessAccept, "mfa_passed")

	if _, stderr, code = mfabridge(t, b.env(), "enrol", "confirm", "--config", b.ConfigFile, "--user", u.UID, "--code", tk.code(0)); code != 1 {
		t.Errorf("confirm with nothing pending: exit %d, want 1\n%s", code, stderr)
	}
}

func TestEnrolWhileServerRuns(t *testing.T) {
	t.Parallel()
	b := startBridge(t, conf{Policies: mfaPolicy})
	u := newUser(t)
	c := b.client(t, "127.0.0.1", secretLocal)
	resp, rec := b.send(t, c, u.UID, u.Password)
	want(t, "before enrolment", resp, rec, radius.CodeAccessReject, "not_enrolled")
	tk := b.enrolRandomTOTP(t, u.UID)
	st, _ := b.challenged(t, c, u.UID, u.Password)
	resp, rec = b.send(t, c, u.UID, tk.code(0), withState(st))
	want(t, "after enrolment", resp, rec, radius.CodeAccessAccept, "mfa_passed")

	// Removing the credential takes effect at the next login too.
	if out, stderr, code := mfabridge(t, b.env(), "user", "remove", "--config", b.ConfigFile, "--user", u.UID); code != 0 {
		t.Fatalf("user remove: %d %s %s", code, out, stderr)
	}
	resp, rec = b.send(t, c, u.UID, u.Password)
	want(t, "after removal", resp, rec, radius.CodeAccessReject, "not_enrolled")
}

// Secrets for the CSV tests: base32 of 20 bytes and hex of 20 bytes.
const (
	csvTOTP1 = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
	csvTOTP2 = "gezd gnbv gy3t qojq gezd gnbv gy3t qojq" // lower case, grouped
	csvTOTP3 = "MFRGGZDFMZTWQ2LKNNWG23TPOBYXE43U"
	csvHOTP1 = "3132333435363738393031323334353637383930"
	csvHOTP2 = "a1b2c3d4e5f60718293a4b5c6d7e8f9001122334"
)

func TestEnrolImportAndUserCommands(t *testing.T) {
	t.Parallel()
	cfg, _ := cliConfig(t)
	dir := filepath.Dir(cfg)
	run := func(args ...string) (string, string, int) {
		t.Helper()
		return mfabridge(t, cliEnv, offline(args...)...)
	}

	bad := filepath.Join(dir, "bad.csv")
	os.WriteFile(bad, []byte(strings.Join([]string{
		"user,type,secret,counter",        // 1: header
		"# migrated from the old server",  // 2
		"ann,totp," + csvTOTP1,            // 3
		"ben,hotp," + csvHOTP1 + ",7",     // 4
		"cat,sms,+447700900003",           // 5: bad type
		"dan,totp,SHORT",                  // 6: too short
		"eve,hotp," + csvHOTP2 + ",seven", // 7: bad counter
		"ann,totp," + csvTOTP3,            // 8: duplicate
		"fay,totp",                        // 9: too few fields
		"gus,totp," + csvTOTP1 + ",3",     // 10: counter on totp
		"hal,totp,\"" + csvTOTP3 + "\"x",  // 11: CSV syntax
		"ivy,totp," + csvTOTP3,            // 12
	}, "\n")+"\n"), 0o600)
	out, stderr, code := run("enrol", "import", "--config", cfg, "--csv", bad)
	if code != 1 {
		t.Errorf("import with bad lines: exit %d, want 1\n%s%s", code, out, stderr)
	}
	for _, line := range []int{5, 6, 7, 8, 9, 10, 11} {
		if !strings.Contains(stderr, fmt.Sprintf("%s:%d:", bad, line)) {
			t.Errorf("stderr does not name %s:%d:\n%s", bad, line, stderr)
		}
	}
	for _, line := range []int{1, 2, 3, 4, 12} {
		if strings.Contains(stderr, fmt.Sprintf("%s:%d:", bad, line)) {
			t.Errorf("stderr names the good line %d:\n%s", line, stderr)
		}
	}
	for _, user := range []string{"ann", "ben", "ivy"} {
		out, stderr, code := run("user", "show", "--config", cfg, "--user", user)
		if code != 1 || !strings.Contains(stderr, "nothing enrolled") {
			t.Errorf("user show %s after a refused import: exit %d, want 1\n%s%s", user, code, out, stderr)
		}
	}

	good := filepath.Join(dir, "good.csv")
	os.WriteFile(good, []byte("user,type,secret,counter\n"+
		"ann,totp,"+csvTOTP1+"\n"+
		"ben,hotp,"+csvHOTP1+",7\n"+
		"cat,totp,\""+csvTOTP2+"\"\n"+
		"cat,hotp,hex:"+csvHOTP2+"\n"), 0o600)
	out, stderr, code = run("enrol", "import", "--config", cfg, "--csv", good)
	if code != 0 || !strings.Contains(out, "imported 4") {
		t.Fatalf("good import: exit %d\n%s%s", code, out, stderr)
	}
	secrets := []string{csvTOTP1, csvTOTP2, strings.ToUpper(strings.ReplaceAll(csvTOTP2, " ", "")), csvHOTP1, csvHOTP2, "1234567890"}
	show := func(user string, wants ...string) string {
		t.Helper()
		out, stderr, code := run("user", "show", "--config", cfg, "--user", user)
		if code != 0 {
			t.Errorf("user show %s: exit %d\n%s%s", user, code, out, stderr)
		}
		for _, w := range wants {
			if !strings.Contains(out, w) {
				t.Errorf("user show %s lacks %q:\n%s", user, w, out)
			}
		}
		for _, s := range secrets {
			if strings.Contains(out+stderr, s) {
				t.Errorf("user show %s printed a secret %q:\n%s", user, s, out)
			}
		}
		return out
	}
	show("ann", "totp", "active (default)")
	show("ben", "hotp", "counter 7")
	out = show("cat", "totp", "hotp")
	if !strings.Contains(out, "totp  active (default)") {
		t.Errorf("cat's first credential (totp) should be the default:\n%s", out)
	}

	// The same file again is refused as a whole: they hold those methods.
	if out, stderr, code = run("enrol", "import", "--config", cfg, "--csv", good); code != 1 || !strings.Contains(stderr, "--replace") {
		t.Errorf("import over existing credentials: exit %d, want 1 with a --replace hint\n%s%s", code, out, stderr)
	}
	if out, stderr, code = run("enrol", "import", "--config", cfg, "--csv", good, "--replace"); code != 0 {
		t.Errorf("import --replace: exit %d\n%s%s", code, out, stderr)
	}

	// user default and user remove.
	if out, stderr, code = run("user", "default", "--config", cfg, "--user", "cat", "hotp"); code != 0 {
		t.Errorf("user default: exit %d\n%s%s", code, out, stderr)
	}
	out = show("cat")
	if !strings.Contains(out, "hotp  active (default)") || strings.Contains(out, "totp  active (default)") {
		t.Errorf("after user default hotp:\n%s", out)
	}
	if out, stderr, code = run("user", "default", "--config", cfg, "--user", "ann", "hotp"); code != 1 {
		t.Errorf("user default to a method not held: exit %d, want 1\n%s%s", code, out, stderr)
	}
	if out, stderr, code = run("user", "remove", "--config", cfg, "--user", "cat", "hotp"); code != 0 {
		t.Errorf("user remove hotp: exit %d\n%s%s", code, out, stderr)
	}
	out = show("cat", "totp  active (default)")
	if strings.Contains(out, "hotp") {
		t.Errorf("hotp still listed after removal:\n%s", out)
	}
	if out, stderr, code = run("user", "remove", "--config", cfg, "--user", "cat", "hotp"); code != 1 {
		t.Errorf("user remove of a method not held: exit %d, want 1\n%s%s", code, out, stderr)
	}
	if out, stderr, code = run("user", "remove", "--config", cfg, "--user", "cat"); code != 0 {
		t.Errorf("user remove (all): exit %d\n%s%s", code, out, stderr)
	}
	if _, _, code = run("user", "show", "--config", cfg, "--user", "cat"); code != 1 {
		t.Errorf("user show after removing everything: exit %d, want 1", code)
	}
	if out, stderr, code = run("user", "reset", "--config", cfg, "--user", "ann"); code != 0 {
		t.Errorf("user reset: exit %d\n%s%s", code, out, stderr)
	}

	// Failed checks exit 1.
	for _, args := range [][]string{
		{"enrol", "hotp", "--config", cfg, "--user", "dan", "--secret", "0011223344"},     // 5 bytes
		{"enrol", "totp", "--config", cfg, "--user", "dan", "--secret", "not base32 !!"},  // not base32
		{"enrol", "totp", "--config", cfg, "--user", "ann", "--secret", csvTOTP3},         // exists, no --replace
		{"enrol", "confirm", "--config", cfg, "--user", "ann", "--code", "123456"},        // nothing pending
		{"enrol", "import", "--config", cfg, "--csv", filepath.Join(dir, "missing.csv")},  // no such file
		{"enrol", "cert", "--config", cfg, "--user", "ann", "--file", "x.pem"},            // not in this version
		{"user", "show", "--config", cfg, "--user", "nobody"},                             // nothing enrolled
		{"user", "show", "--config", filepath.Join(dir, "missing.yaml"), "--user", "ann"}, // no config
	} {
		out, stderr, code := run(args...)
		if code != 1 {
			t.Errorf("%v: exit %d, want 1\n%s%s", args, code, out, stderr)
		}
		if strings.Contains(out+stderr, csvTOTP3) {
			t.Errorf("%v printed the secret", args)
		}
	}
	// Bad usage exits 2.
	for _, args := range [][]string{
		{"enrol"},
		{"enrol", "fido"},
		{"enrol", "totp", "--config", cfg},
		{"enrol", "totp", "--config", cfg, "--user", "x", "extra"},
		{"enrol", "hotp", "--config", cfg, "--user", "x"},
		{"enrol", "hotp", "--config", cfg, "--user", "x", "--secret", csvHOTP1, "--digits", "7"},
		{"enrol", "confirm", "--config", cfg, "--user", "x"},
		{"enrol", "import", "--config", cfg},
		{"enrol", "totp", "--bogus"},
		{"user"},
		{"user", "frob", "--config", cfg, "--user", "ann"},
		{"user", "show", "--config", cfg},
		{"user", "show", "--config", cfg, "--user", "ann", "totp"},
		{"user", "default", "--config", cfg, "--user", "ann"},
		{"user", "remove", "--config", cfg, "--user", "ann", "sms"},
		{"user", "show", "--bogus"},
	} {
		if out, stderr, code := run(args...); code != 2 {
			t.Errorf("%v: exit %d, want 2\n%s%s", args, code, out, stderr)
		}
	}
}

// storeFiles returns the bytes of the store and of its write-ahead log.
func storeFiles(t *testing.T, path string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, p := range []string{path, path + "-wal"} {
		b, err := os.ReadFile(p)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(p)] = b
	}
	return out
}

func TestWrongStoreKeyChangesNothing(t *testing.T) {
	t.Parallel()
	b := startBridge(t, conf{Policies: mfaPolicy})
	u := newUser(t)
	b.enrolRandomTOTP(t, u.UID)
	if status, err := b.Stop(); err != nil || status != 0 {
		t.Fatalf("stop: %d %v", status, err)
	}
	storePath := filepath.Join(b.dir, "store.db")
	before := storeFiles(t, storePath)
	if len(before[filepath.Base(storePath)]) == 0 {
		t.Fatalf("no store at %s", storePath)
	}
	const wrongKey = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100"
	const msg = "store.key does not open this store"

	wrongEnv := []string{"LOCAL_SECRET=" + secretLocal, "OTHER_SECRET=" + secretOther, "LDAP_PASSWORD=" + harness.ServicePass, "STORE_KEY=" + wrongKey}
	start := time.Now()
	nb, err := harness.StartBridge(env.bin, b.ConfigFile, wrongEnv...)
	if err == nil {
		nb.Stop()
		t.Fatalf("serve started with the wrong store key")
	}
	if !strings.Contains(err.Error(), "status 1") || !strings.Contains(err.Error(), msg) {
		t.Errorf("serve with the wrong key: want exit status 1 and %q in the log, got:\n%v", msg, err)
	}
	t.Logf("serve refused the wrong key in %s", time.Since(start).Round(time.Millisecond))

	out, stderr, code := mfabridge(t, wrongEnv, "user", "show", "--config", b.ConfigFile, "--user", u.UID)
	if code != 1 || !strings.Contains(stderr, msg) {
		t.Errorf("user show with the wrong key: exit %d, want 1 and %q\n%s%s", code, msg, out, stderr)
	}
	out, stderr, code = mfabridge(t, wrongEnv, "enrol", "totp", "--no-directory", "--config", b.ConfigFile, "--user", "someone-else", "--secret", csvTOTP1)
	if code != 1 || !strings.Contains(stderr, msg) {
		t.Errorf("enrol with the wrong key: exit %d, want 1 and %q\n%s%s", code, msg, out, stderr)
	}

	after := storeFiles(t, storePath)
	if len(after) != len(before) {
		t.Errorf("store files before %v, after %v", keysOf(before), keysOf(after))
	}
	for name, b := range before {
		if !bytes.Equal(b, after[name]) {
			t.Errorf("%s changed after opening with the wrong key", name)
		}
	}
	// The right key still opens it, with the credential in place.
	if out, stderr, code = mfabridge(t, b.env(), "user", "show", "--config", b.ConfigFile, "--user", u.UID); code != 0 || !strings.Contains(out, "totp") {
		t.Errorf("user show with the right key afterwards: exit %d\n%s%s", code, out, stderr)
	}
}

func keysOf(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// A CSV line that opens with a malformed quoted field is a bad line like
// any other: reported with its file and line, exit status 1, never a
// crash.
func TestEnrolImportMalformedQuote(t *testing.T) {
	t.Parallel()
	cfg, _ := cliConfig(t)
	csv := filepath.Join(filepath.Dir(cfg), "quote.csv")
	os.WriteFile(csv, []byte("ann,totp,"+csvTOTP1+"\n\"ben\"x,totp,"+csvTOTP3+"\n"), 0o600)
	out, stderr, code := mfabridge(t, cliEnv, offline("enrol", "import", "--config", cfg, "--csv", csv)...)
	if code != 1 || strings.Contains(stderr, "panic") || !strings.Contains(stderr, csv+":2:") {
		t.Errorf("import with a bad quote on line 2: exit %d, want 1 and %s:2: on stderr\n%s%s", code, csv, out, firstLines(stderr, 4))
	}
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "\n")
}
