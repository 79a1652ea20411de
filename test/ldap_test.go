package test

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"layeh.com/radius"

	"github.com/mfabridge/mfabridge/test/harness"
)

// blackHole accepts TCP connections and never answers: a directory that
// hangs. It returns its address.
func blackHole(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return l.Addr().String()
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	p, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", p)
}

// timedAuth sends bob's credentials and returns the reply and how long it
// took.
func timedAuth(t *testing.T, b *bridge) (*radius.Packet, time.Duration) {
	t.Helper()
	c := b.client(t, "127.0.0.1", secretLocal)
	start := time.Now()
	resp, _, err := c.Exchange(harness.Request(secretLocal, bob.UID, bob.Password, true), 15*time.Second)
	took := time.Since(start)
	if err != nil {
		t.Fatalf("no reply after %s: %v", took, err)
	}
	return resp, took
}

func TestLDAPDownRejectsWithinTimeout(t *testing.T) {
	t.Run("connection refused", func(t *testing.T) {
		b := startBridge(t, conf{URLs: `"ldap://` + closedPort(t) + `"`, Timeout: "1s"})
		resp, took := timedAuth(t, b)
		if resp.Code != radius.CodeAccessReject || took > 2*time.Second {
			t.Fatalf("got %v after %s, want Access-Reject at once", resp.Code, took)
		}
		if rec := b.lastAudit(t, "bob"); rec.Reason != "directory_unavailable" {
			t.Errorf("audit reason %q", rec.Reason)
		}
	})
	t.Run("server that never answers", func(t *testing.T) {
		b := startBridge(t, conf{URLs: `"ldap://` + blackHole(t) + `"`, Timeout: "1s"})
		resp, took := timedAuth(t, b)
		if resp.Code != radius.CodeAccessReject || took > 4*time.Second {
			t.Fatalf("got %v after %s, want Access-Reject within the 1s timeout (plus margin)", resp.Code, took)
		}
		if rec := b.lastAudit(t, "bob"); rec.Reason != "directory_unavailable" {
			t.Errorf("audit reason %q", rec.Reason)
		}
	})
	t.Run("slapd stopped mid-service, then back", func(t *testing.T) {
		dir := t.TempDir()
		s, err := harness.StartSLAPD(dir, []harness.User{bob})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Stop()
		b := startBridge(t, conf{URLs: `"` + s.URL + `"`, Timeout: "1s"})
		if resp, _ := timedAuth(t, b); resp.Code != radius.CodeAccessAccept {
			t.Fatalf("before the outage: %v", resp.Code)
		}
		s.Stop()
		resp, took := timedAuth(t, b)
		if resp.Code != radius.CodeAccessReject || took > 3*time.Second {
			t.Fatalf("during the outage: %v after %s", resp.Code, took)
		}
		if err := s.Start(); err != nil {
			t.Fatal(err)
		}
		// The back-off is short; recovery must come within seconds.
		ok := harness.Eventually(15*time.Second, func() bool {
			resp, _ := timedAuth(t, b)
			return resp.Code == radius.CodeAccessAccept
		})
		if !ok {
			t.Fatal("no Access-Accept within 15s of slapd coming back")
		}
	})
}

func TestLDAPFailoverToSecondURL(t *testing.T) {
	for name, first := range map[string]func(*testing.T) string{"refused": closedPort, "hanging": blackHole} {
		t.Run(name, func(t *testing.T) {
			b := startBridge(t, conf{URLs: `"ldap://` + first(t) + `", "` + env.slapd.URL + `"`, Timeout: "1s"})
			resp, took := timedAuth(t, b)
			if resp.Code != radius.CodeAccessAccept {
				t.Fatalf("got %v, want Access-Accept through the second URL", resp.Code)
			}
			if took > 4*time.Second {
				t.Errorf("failover took %s", took)
			}
			if !b.WaitLog("directory server failed; trying the next", 2*time.Second) {
				t.Errorf("no failover in the log")
			}
			// The dead server is now backing off: the next login goes
			// straight to the second one.
			if resp, took := timedAuth(t, b); resp.Code != radius.CodeAccessAccept || took > 500*time.Millisecond {
				t.Errorf("second login: %v after %s", resp.Code, took)
			}
		})
	}
}

func TestLDAPS(t *testing.T) {
	t.Run("verified with the right CA", func(t *testing.T) {
		b := startBridge(t, conf{URLs: `"` + env.slapd.LDAPSURL + `"`})
		if resp, _ := timedAuth(t, b); resp.Code != radius.CodeAccessAccept {
			t.Fatalf("got %v", resp.Code)
		}
	})
	t.Run("StartTLS with the right CA", func(t *testing.T) {
		b := startBridge(t, conf{LDAPExtra: "  start_tls: true"})
		if resp, _ := timedAuth(t, b); resp.Code != radius.CodeAccessAccept {
			t.Fatalf("got %v", resp.Code)
		}
	})
	for name, extra := range map[string]string{"LDAPS": "", "StartTLS": "  start_tls: true"} {
		t.Run(name+" refused with the wrong CA", func(t *testing.T) {
			other, err := harness.NewCA(t.TempDir(), "other")
			if err != nil {
				t.Fatal(err)
			}
			url := env.slapd.LDAPSURL
			if extra != "" {
				url = env.slapd.URL
			}
			b := startBridge(t, conf{URLs: `"` + url + `"`, CA: other.CertFile, LDAPExtra: extra, Timeout: "2s"})
			if resp, _ := timedAuth(t, b); resp.Code != radius.CodeAccessReject {
				t.Fatalf("got %v, want Access-Reject", resp.Code)
			}
			if !b.WaitLog("certificate signed by unknown authority", 2*time.Second) {
				t.Errorf("the log does not say why TLS failed")
			}
			if rec := b.lastAudit(t, "bob"); rec.Reason != "directory_unavailable" {
				t.Errorf("audit reason %q", rec.Reason)
			}
		})
	}
}

func TestGroupSearchMode(t *testing.T) {
	b := startBridge(t, conf{
		LDAPExtra: `  groups: {mode: search, base_dn: "` + harness.GroupsDN + `", filter: "(&(objectClass=groupOfNames)(member={dn}))"}`,
		Policies: `  default:
    mfa: off
    require_groups: [vpn-users]`,
	})
	c := b.client(t, "127.0.0.1", secretLocal)
	for _, tc := range []struct {
		user harness.User
		want radius.Code
	}{{alice, radius.CodeAccessAccept}, {bob, radius.CodeAccessAccept}, {dave, radius.CodeAccessReject}} {
		user, want := tc.user, tc.want
		resp, _, err := c.Exchange(harness.Request(secretLocal, user.UID, user.Password, true), 5*time.Second)
		if err != nil || resp.Code != want {
			t.Errorf("%s: got %v %v, want %v", user.UID, resp, err, want)
		}
	}
}

// TestUserEntryCache: with ldap.cache_ttl a repeated login costs one bind
// and no search; a wrong password still costs exactly one bind.
func TestUserEntryCache(t *testing.T) {
	b := startBridge(t, conf{LDAPExtra: "  cache_ttl: 30s"})
	u := newUser(t)
	c := b.client(t, "127.0.0.1", secretLocal)
	searches := func() int {
		n := 0
		for _, l := range strings.Split(env.slapd.Log(), "\n") {
			if strings.Contains(l, "SRCH base=") && strings.Contains(l, "(uid="+u.UID+")") {
				n++
			}
		}
		return n
	}
	login := func(pw string, want radius.Code) {
		t.Helper()
		resp, _, err := c.Exchange(harness.Request(secretLocal, u.UID, pw, true), 5*time.Second)
		if err != nil || resp.Code != want {
			t.Fatalf("login: %v %v, want %v", resp, err, want)
		}
	}
	login(u.Password, radius.CodeAccessAccept)
	login(u.Password, radius.CodeAccessAccept)
	login(u.Password, radius.CodeAccessAccept)
	if n := env.slapd.BindCount(u.DN()); n != 3 {
		t.Errorf("binds = %d, want 3", n)
	}
	if n := searches(); n != 1 {
		t.Errorf("searches = %d, want 1 (the later logins use the cached entry)", n)
	}
	login("wrong-password", radius.CodeAccessReject)
	if n := env.slapd.BindCount(u.DN()); n != 4 {
		t.Errorf("binds after a wrong password = %d, want 4: one bind per attempt", n)
	}
	// The wrong password dropped the entry: the next login searches again.
	login(u.Password, radius.CodeAccessAccept)
	if n := searches(); n != 2 {
		t.Errorf("searches = %d, want 2", n)
	}
}
