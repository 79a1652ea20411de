package test

import (
	"io"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"layeh.com/radius"
	"layeh.com/radius/rfc2865"

	"github.com/mfabridge/mfabridge/test/harness"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestHealthReadinessAndMetrics(t *testing.T) {
	s, err := harness.StartSLAPD(t.TempDir(), []harness.User{bob})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	b := startBridge(t, conf{URLs: `"` + s.URL + `"`, Timeout: "1s"})
	if code, _ := get(t, "http://"+b.Admin+"/healthz"); code != 200 {
		t.Errorf("/healthz %d", code)
	}
	code, body := get(t, "http://"+b.Admin+"/readyz")
	if code != 200 || !containsAll(body, "listeners: ok", "ldap: ok", "store: ok") {
		t.Errorf("/readyz %d %q", code, body)
	}
	if r := b.radclient(t, "auth", secretLocal, pap(bob.UID, bob.Password)); r.Code != "Access-Accept" {
		t.Fatal(r.Out)
	}
	b.radclient(t, "auth", secretLocal, pap(bob.UID, "wrong"))
	_, m := get(t, "http://"+b.Admin+"/metrics")
	for _, want := range []string{
		`mfabridge_radius_requests_total{client="local",code="Access-Request"} 2`,
		`mfabridge_radius_responses_total{client="local",code="Access-Accept"} 1`,
		`mfabridge_radius_responses_total{client="local",code="Access-Reject"} 1`,
		`mfabridge_decisions_total{outcome="accept",reason="mfa_off"} 1`,
		`mfabridge_decisions_total{outcome="reject",reason="bad_credentials"} 1`,
		`mfabridge_request_duration_seconds_count{stage="ldap"} 2`,
		`mfabridge_request_duration_seconds_count{stage="total"} 2`,
		`mfabridge_ldap_connections{pool="search",state="idle"} 1`,
		`mfabridge_ldap_dials_total{pool="bind"}`,
		`go_goroutines `, `process_resident_memory_bytes `,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if strings.Contains(m, `user="`) || strings.Contains(m, bob.UID) {
		t.Errorf("/metrics names a user")
	}
	// The profiler is served only when server.pprof asks for it.
	if code, _ := get(t, "http://"+b.Admin+"/debug/pprof/"); code != http.StatusNotFound {
		t.Errorf("/debug/pprof/ without server.pprof: %d, want 404", code)
	}
	s.Stop()
	code, body = get(t, "http://"+b.Admin+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "ldap: not ready") {
		t.Errorf("/readyz with slapd down: %d %q", code, body)
	}
	// Whoever reaches the listener learns no server, port or account.
	for _, detail := range []string{"127.0.0.1", "ldap://", "ldaps://", harness.ServiceDN, "cn=", "dial"} {
		if strings.Contains(body, detail) {
			t.Errorf("/readyz body %q shows %q", body, detail)
		}
	}
	if !b.WaitLog(`"msg":"not ready","component":"admin","check":"ldap"`, 5*time.Second) {
		t.Errorf("why /readyz failed is not in the log:\n%s", b.Logs())
	}
}

// TestReloadKeepsChallengeInProgress: a challenge issued before a SIGHUP
// is answered after it.
func TestReloadKeepsChallengeInProgress(t *testing.T) {
	b := startBridge(t, conf{Policies: mfaPolicy})
	u := newUser(t)
	tk := b.enrolTOTP(t, u.UID)
	c := b.client(t, "127.0.0.1", secretLocal)
	resp, _, err := c.Exchange(harness.Request(secretLocal, u.UID, u.Password, true), 5*time.Second)
	if err != nil || resp.Code != radius.CodeAccessChallenge {
		t.Fatalf("%v %v", resp, err)
	}
	st := rfc2865.State_Get(resp)
	cfg, _ := os.ReadFile(b.ConfigFile)
	os.WriteFile(b.ConfigFile, []byte(strings.Replace(string(cfg), "factors: [totp, hotp]", "factors: [totp, hotp]\n    attempts: 2", 1)), 0o600)
	b.Signal(syscall.SIGHUP)
	if !b.WaitLog("configuration reloaded", 5*time.Second) {
		t.Fatalf("no reload:\n%s", b.Logs())
	}
	resp, _, err = c.Exchange(harness.Request(secretLocal, u.UID, tk.code(0), true, func(p *radius.Packet) { rfc2865.State_Set(p, st) }), 5*time.Second)
	if err != nil || resp.Code != radius.CodeAccessAccept {
		t.Fatalf("answer after the reload: %v %v", resp, err)
	}
}

// TestSIGTERMFinishesRequestsInFlight: a request waiting on a slow
// directory when SIGTERM arrives is still answered, and the audit record
// written, before the bridge exits 0.
func TestSIGTERMFinishesRequestsInFlight(t *testing.T) {
	s, err := harness.StartSLAPD(t.TempDir(), []harness.User{bob})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	b := startBridge(t, conf{URLs: `"` + s.URL + `"`, Timeout: "2s"})
	c := b.client(t, "127.0.0.1", secretLocal)
	if resp, _, err := c.Exchange(harness.Request(secretLocal, bob.UID, bob.Password, true), 5*time.Second); err != nil || resp.Code != radius.CodeAccessAccept {
		t.Fatalf("warm-up: %v %v", resp, err)
	}
	s.Pause()
	defer s.Resume()
	req := harness.Request(secretLocal, bob.UID, bob.Password, true)
	raw, _ := req.Encode()
	if err := c.Send(raw); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // the request is now waiting on slapd
	done := make(chan int)
	go func() {
		code, _ := b.Stop()
		done <- code
	}()
	resp, _, err := c.ReplyTo(raw, 8*time.Second)
	if err != nil || resp.Code != radius.CodeAccessReject {
		t.Fatalf("the request in flight at SIGTERM: %v %v, want an answer (Access-Reject: directory unavailable)", resp, err)
	}
	if code := <-done; code != 0 {
		t.Errorf("exit status %d", code)
	}
	if n := len(filterAudit(b.audit(t), bob.UID)); n != 2 {
		t.Errorf("%d audit records, want 2 (the one in flight included)", n)
	}
}
