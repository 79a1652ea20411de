package test

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mfabridge/mfabridge/test/harness"
)

// TestPAMRadiusLegacyClient drives pam_radius_auth (Debian
// libpam-radius-auth) through pamtester against a client set to auto:
// the Blast-RADIUS rules must keep a legacy client that never signs
// working, warn about it once and count it.
func TestPAMRadiusLegacyClient(t *testing.T) {
	t.Parallel()
	if err := harness.Need("pamtester"); err != nil {
		t.Fatal(err)
	}
	module, err := harness.PAMRadiusModule()
	if err != nil {
		t.Fatal(err)
	}
	pamtester, err := exec.LookPath("pamtester")
	if err != nil {
		t.Fatal(err)
	}
	b := startBridge(t, conf{
		Clients: `  - name: pam
    address: 127.0.0.1
    secret: env:LOCAL_SECRET
    require_message_authenticator: auto`,
		Policies: `  default: {mfa: off}`,
	})
	u := newUser(t)

	// pam_radius_auth's server file: server[:port] secret timeout.
	radConf := filepath.Join(t.TempDir(), "pam_radius.conf")
	if err := os.WriteFile(radConf, []byte(fmt.Sprintf("%s %s 3\n", b.Radius, secretLocal)), 0o600); err != nil {
		t.Fatal(err)
	}
	// pamtester takes its services from /etc/pam.d only (it has no
	// option for another directory), so the service gets a random name
	// there and is removed when the test ends.
	rnd := make([]byte, 6)
	rand.Read(rnd)
	service := "mfabridge-test-" + hex.EncodeToString(rnd)
	servicePath := filepath.Join("/etc/pam.d", service)
	svc := fmt.Sprintf("auth required %s conf=%s\naccount required pam_permit.so\n", module, radConf)
	if err := os.WriteFile(servicePath, []byte(svc), 0o644); err != nil {
		t.Fatalf("cannot write the PAM service %s (pamtester reads /etc/pam.d only; run the tests as root): %v", servicePath, err)
	}
	t.Cleanup(func() { os.Remove(servicePath) })

	login := func(password string) (int, string) {
		t.Helper()
		cmd := exec.Command(pamtester, "-v", service, u.UID, "authenticate")
		cmd.Stdin = strings.NewReader(password + "\n")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		return cmd.ProcessState.ExitCode(), out.String()
	}

	for i := 1; i <= 2; i++ {
		if code, out := login(u.Password); code != 0 || !strings.Contains(out, "successfully authenticated") {
			t.Fatalf("login %d with the right password: pamtester exit %d\n%s", i, code, out)
		}
		if rec := b.waitRecord(t, u.UID, i-1); rec.Outcome != "accept" || rec.Reason != "mfa_off" || rec.Client != "pam" {
			t.Errorf("audit record of login %d: %+v", i, rec)
		}
	}
	if code, out := login("not-" + u.Password); code == 0 {
		t.Fatalf("login with a wrong password: pamtester exit 0\n%s", out)
	}
	if rec := b.waitRecord(t, u.UID, 2); rec.Outcome != "reject" || rec.Reason != "bad_credentials" {
		t.Errorf("audit record of the wrong password: %+v", rec)
	}

	requests := b.metric(t, `mfabridge_radius_requests_total{client="pam",code="Access-Request"}`)
	unsigned := b.metric(t, `mfabridge_radius_unsigned_requests_total{client="pam"}`)
	warnings := 0
	for _, line := range strings.Split(b.Logs(), "\n") {
		if strings.Contains(line, "does not sign its requests") && strings.Contains(line, `"client":"pam"`) {
			warnings++
		}
	}
	t.Logf("pam_radius_auth: %v Access-Requests, %v without Message-Authenticator; %d warnings in the log", requests, unsigned, warnings)
	switch {
	case requests < 3:
		t.Errorf("the bridge counted %v Access-Requests from pam_radius_auth, want at least 3", requests)
	case unsigned == requests:
		// The expected case for pam_radius_auth 2.0: it never signs.
		if warnings != 1 {
			t.Errorf("%d warnings that the client does not sign, want exactly 1:\n%s", warnings, b.Logs())
		}
	case unsigned == 0:
		// A pam_radius_auth with Message-Authenticator support (3.0+).
		t.Logf("this pam_radius_auth signs its requests with Message-Authenticator")
		if warnings != 0 {
			t.Errorf("%d warnings about an unsigned client, but every request was signed", warnings)
		}
	default:
		t.Errorf("%v of %v requests unsigned: pam_radius_auth signs some requests and not others?", unsigned, requests)
	}
}
