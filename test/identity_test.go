package test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"layeh.com/radius"
	"layeh.com/radius/rfc2865"

	"github.com/mfabridge/mfabridge/test/harness"
)

// One person is one identity: every spelling of a name that the
// directory folds to an entry is that entry's user, with its enrolment,
// its lockout counters and its audit name.

// fullwidth maps ASCII letters and digits to their fullwidth forms
// (U+FF01…), which NFKC maps back and OpenLDAP's matching rules fold.
func fullwidth(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r > 0x20 && r < 0x7f {
			r += 0xfee0
		}
		b.WriteRune(r)
	}
	return b.String()
}

// spellings of name that are the same user to the directory.
func spellings(name string) map[string]string {
	first, size := utf8.DecodeRuneInString(name)
	return map[string]string{
		"fullwidth first letter": fullwidth(string(first)) + name[size:],
		"all fullwidth":          fullwidth(name),
		"upper case":             strings.ToUpper(name),
		"fullwidth upper case":   fullwidth(strings.ToUpper(name)),
		"title case":             strings.ToUpper(string(first)) + name[size:],
	}
}

// identityPolicies: a VPN policy that would let an unenrolled user in,
// and one where the second factor is optional. Either turns a missed
// enrolment into a way past the second factor.
const identityPolicies = `  allow:
    mfa: required
    unenrolled: allow
    factors: [totp]
  optional:
    mfa: optional
    factors: [totp]`

const identityClients = `  - {name: vpn, address: 127.0.0.1, secret: env:LOCAL_SECRET, policy: allow}
  - {name: mail, address: 127.0.0.5, secret: env:OTHER_SECRET, policy: optional}`

func TestIdentitySpellingsNeverSkipTheSecondFactor(t *testing.T) {
	t.Parallel()
	b := startBridge(t, conf{Clients: identityClients, Policies: identityPolicies,
		Extra: `lockout: {max_failures: 3, max_code_failures: 3, window: 5m, duration: 5m}`})
	u := newUser(t)
	b.enrolRandomTOTP(t, u.UID)
	vpn := b.client(t, "127.0.0.1", secretLocal)
	mail := b.client(t, "127.0.0.5", secretOther)

	for what, name := range spellings(u.UID) {
		for _, c := range []*harness.Client{vpn, mail} {
			n := len(filterAudit(b.audit(t), u.UID))
			resp, _, err := c.Exchange(harness.Request(string(c.Secret), name, u.Password, true), replyWait)
			if err != nil {
				t.Fatalf("%s %q: %v", what, name, err)
			}
			rec := b.waitRecord(t, u.UID, n)
			if resp.Code != radius.CodeAccessChallenge || rec.Reason != "challenge_sent" {
				t.Errorf("%s %q with the right password: %v (audit %+v); want the TOTP challenge of %s",
					what, name, resp.Code, rec, u.UID)
			}
		}
	}
}

func TestIdentitySpellingsShareOneLockout(t *testing.T) {
	t.Parallel()
	b := startBridge(t, conf{Policies: mfaPolicy,
		Extra: `lockout: {max_failures: 3, max_code_failures: 3, window: 5m, duration: 5m}`})
	u := newUser(t)
	b.enrolRandomTOTP(t, u.UID)
	c := b.client(t, "127.0.0.1", secretLocal)

	// Three wrong passwords, each under another spelling.
	var names []string
	for _, name := range spellings(u.UID) {
		names = append(names, name)
	}
	for i, name := range names[:3] {
		n := len(filterAudit(b.audit(t), u.UID))
		resp, _, err := c.Exchange(harness.Request(secretLocal, name, "wrong-"+u.Password, true), replyWait)
		if err != nil {
			t.Fatal(err)
		}
		rec := b.waitRecord(t, u.UID, n)
		if resp.Code != radius.CodeAccessReject || rec.Reason != "bad_credentials" {
			t.Fatalf("wrong password %d as %q: %v, audit %+v; want a reject counted for %s", i+1, name, resp.Code, rec, u.UID)
		}
	}
	// The user is locked out under every spelling, the plain one too,
	// and the right password costs no bind.
	binds := env.slapd.BindCount(u.DN())
	for _, name := range append([]string{u.UID}, names...) {
		n := len(filterAudit(b.audit(t), u.UID))
		resp, _, err := c.Exchange(harness.Request(secretLocal, name, u.Password, true), replyWait)
		if err != nil {
			t.Fatal(err)
		}
		rec := b.waitRecord(t, u.UID, n)
		if resp.Code != radius.CodeAccessReject || rec.Reason != "locked_out_password" {
			t.Errorf("right password as %q after three wrong ones: %v, audit %+v; want locked_out_password", name, resp.Code, rec)
		}
	}
	if got := env.slapd.BindCount(u.DN()); got != binds {
		t.Errorf("%d binds for a locked-out user; want none", got-binds)
	}
}

func TestIdentityControlCharactersAreRefusedNotTrimmed(t *testing.T) {
	t.Parallel()
	b := startBridge(t, conf{Policies: mfaPolicy})
	u := newUser(t)
	b.enrolRandomTOTP(t, u.UID)
	c := b.client(t, "127.0.0.1", secretLocal)
	binds := env.slapd.BindCount(u.DN())
	for _, name := range []string{u.UID + "\r", u.UID + "\n", u.UID + "\r\n", "\t" + u.UID, u.UID + "\x00", u.UID + "\u200b", u.UID + "\u0085"} {
		resp, _, err := c.Exchange(harness.Request(secretLocal, name, u.Password, true), replyWait)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Code != radius.CodeAccessReject {
			t.Errorf("%q: %v, want Access-Reject", name, resp.Code)
		}
	}
	if got := env.slapd.BindCount(u.DN()); got != binds {
		t.Errorf("%d binds for names with control characters; want none", got-binds)
	}
	for _, rec := range b.audit(t) {
		if rec.Reason != "bad_username" {
			t.Errorf("audit %+v, want bad_username", rec)
		}
	}
}

// A user_filter that finds a user by uid or by mail: both names are one
// user, keyed by the naming attribute.
func TestIdentityFilterOnTwoAttributes(t *testing.T) {
	t.Parallel()
	b := startBridge(t, conf{Policies: identityPolicies, Clients: identityClients,
		LDAPExtra: `  user_filter: "(&(objectClass=inetOrgPerson)(|(uid={username})(mail={username})))"
  attributes: {username: uid}`,
		Extra: `lockout: {max_failures: 2, max_code_failures: 3, window: 5m, duration: 5m}`})
	u := newUser(t)
	mailAddr := u.UID + "@mail.example.org"
	if err := env.slapd.SetMail(u, mailAddr); err != nil {
		t.Fatal(err)
	}
	tk := b.enrolRandomTOTP(t, u.UID)
	vpn := b.client(t, "127.0.0.1", secretLocal)

	// The audit names the user, and the name typed beside it.
	exchange := func(name, password string, more ...func(*radius.Packet)) (*radius.Packet, auditRecord) {
		t.Helper()
		n := len(filterAudit(b.audit(t), u.UID))
		resp, _, err := vpn.Exchange(harness.Request(secretLocal, name, password, true, more...), replyWait)
		if err != nil {
			t.Fatal(err)
		}
		return resp, b.waitRecord(t, u.UID, n)
	}
	resp, rec := exchange(mailAddr, u.Password)
	want(t, "login by mail address", resp, rec, radius.CodeAccessChallenge, "challenge_sent")
	resp, rec = exchange(mailAddr, tk.code(0), withState(rfc2865.State_Get(resp)))
	if resp.Code != radius.CodeAccessAccept || rec.Reason != "mfa_passed" {
		t.Fatalf("answer by mail address: %v %+v; want mfa_passed for %s", resp.Code, rec, u.UID)
	}
	if got := rfc2865.UserName_GetString(resp); got != u.UID {
		t.Errorf("Access-Accept User-Name %q, want the canonical %q", got, u.UID)
	}
	// A wrong password under each name: one counter.
	for _, name := range []string{mailAddr, strings.ToUpper(u.UID)} {
		exchange(name, "nope-"+u.Password)
	}
	resp, rec = b.send(t, vpn, u.UID, u.Password)
	want(t, fmt.Sprintf("right password after wrong ones as %s and %s", mailAddr, u.UID), resp, rec,
		radius.CodeAccessReject, "locked_out_password")
}

// mfabridgeIn runs the binary with stdin.
func mfabridgeIn(t *testing.T, env []string, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(env0.bin(), args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var o, e strings.Builder
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return o.String(), e.String(), cmd.ProcessState.ExitCode()
}

// The admin commands name users as logins do: by the entry --user finds.
// Secrets need not be typed where ps shows them.
func TestCLIKeysOnTheDirectorysName(t *testing.T) {
	t.Parallel()
	b := startBridge(t, conf{Policies: mfaPolicy,
		LDAPExtra: `  user_filter: "(&(objectClass=inetOrgPerson)(|(uid={username})(mail={username})))"
  attributes: {username: uid}`})
	u := newUser(t)
	tk := newToken([]byte(u.UID + "-secret-0123456789"))
	seedFile := filepath.Join(t.TempDir(), "seed")
	if err := os.WriteFile(seedFile, []byte(tk.base32()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, secret := range []struct {
		how, flag, env, stdin string
	}{
		{"env", "env:TOTP_SEED", "TOTP_SEED=" + tk.base32(), ""},
		{"file", "file:" + seedFile, "", ""},
		{"asked", "-", "", tk.base32() + "\n"},
	} {
		env := append(b.env(), secret.env)
		out, stderr, code := mfabridgeIn(t, env, secret.stdin, "enrol", "totp", "--config", b.ConfigFile, "--user", strings.ToUpper(u.Mail),
			"--secret", secret.flag, "--replace")
		if code != 0 || !strings.Contains(out, "for "+u.UID) {
			t.Fatalf("enrol totp --secret %s by mail address: exit %d\n%s%s", secret.how, code, out, stderr)
		}
	}
	// The login by mail address finds the enrolment.
	c := b.client(t, "127.0.0.1", secretLocal)
	n := len(filterAudit(b.audit(t), u.UID))
	resp, _, err := c.Exchange(harness.Request(secretLocal, u.Mail, u.Password, true), replyWait)
	if err != nil {
		t.Fatal(err)
	}
	if rec := b.waitRecord(t, u.UID, n); resp.Code != radius.CodeAccessChallenge || rec.Reason != "challenge_sent" {
		t.Fatalf("login by mail after enrolling by mail: %v %+v", resp.Code, rec)
	}
	if out, stderr, code := mfabridge(t, b.env(), "user", "show", "--config", b.ConfigFile, "--user", u.UID); code != 0 || !strings.Contains(out, "user "+u.UID) {
		t.Errorf("user show by uid: exit %d\n%s%s", code, out, stderr)
	}
	if _, stderr, code := mfabridge(t, b.env(), "user", "show", "--config", b.ConfigFile, "--user", "nobody-by-this-name"); code != 1 ||
		!strings.Contains(stderr, "no single directory entry") || !strings.Contains(stderr, "--no-directory") {
		t.Errorf("user show for a name nobody holds: exit %d\n%s", code, stderr)
	}

	// A store written before: an enrolment under the mail address.
	v := newUser(t)
	if out, stderr, code := mfabridge(t, b.env(), "enrol", "totp", "--no-directory", "--config", b.ConfigFile, "--user", v.Mail,
		"--secret", tk.base32()); code != 0 {
		t.Fatalf("enrol by mail address, as given: exit %d\n%s%s", code, out, stderr)
	}
	out, stderr, code := mfabridge(t, b.env(), "user", "migrate", "--config", b.ConfigFile, "--dry-run")
	if code != 0 || !strings.Contains(out, v.Mail+" -> "+v.UID+" (dry run)") {
		t.Fatalf("user migrate --dry-run: exit %d\n%s%s", code, out, stderr)
	}
	out, stderr, code = mfabridge(t, b.env(), "user", "migrate", "--config", b.ConfigFile)
	if code != 0 || !strings.Contains(out, v.Mail+" -> "+v.UID+"\n") || !strings.Contains(out, "1 renamed") {
		t.Fatalf("user migrate: exit %d\n%s%s", code, out, stderr)
	}
	n = len(filterAudit(b.audit(t), v.UID))
	resp, _, err = c.Exchange(harness.Request(secretLocal, v.UID, v.Password, true), replyWait)
	if err != nil {
		t.Fatal(err)
	}
	if rec := b.waitRecord(t, v.UID, n); resp.Code != radius.CodeAccessChallenge {
		t.Errorf("login after the migration: %v %+v, want the challenge of the enrolment", resp.Code, rec)
	}
}
