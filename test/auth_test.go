package test

import (
	"testing"
	"time"

	"layeh.com/radius"
	"layeh.com/radius/rfc2865"

	"github.com/mfabridge/mfabridge/test/harness"
)

func TestAcceptWithReplyAttributes(t *testing.T) {
	b := startBridge(t, conf{})
	r := b.radclient(t, "auth", secretLocal, pap(alice.UID, alice.Password)+`, Calling-Station-Id = "10.9.8.7"`)
	if r.Code != "Access-Accept" {
		t.Fatalf("alice: got %q, want Access-Accept\n%s", r.Code, r.Out)
	}
	// radclient checked the Message-Authenticator of the reply: it asked
	// for one, and it drops replies whose MA does not verify.
	if got := r.Attrs["Class"]; len(got) != 1 || got[0] != "0x61646d696e73" && got[0] != "admins" {
		t.Errorf("Class = %v, want admins (vpn-admins rule)", got)
	}
	if got := r.Attrs["Filter-Id"]; len(got) != 1 || got[0] != "admin-acl" {
		t.Errorf("Filter-Id = %v, want admin-acl", got)
	}
	if got := r.Attrs["Session-Timeout"]; len(got) != 1 || got[0] != "3600" {
		t.Errorf("Session-Timeout = %v, want 3600 (rule for everyone)", got)
	}
	rec := b.lastAudit(t, "alice")
	if rec.Outcome != "accept" || rec.Reason != "mfa_off" || rec.Client != "local" || rec.CallingStation != "10.9.8.7" {
		t.Errorf("audit record = %+v", rec)
	}

	// bob is not in vpn-admins: only the rule for everyone applies.
	r = b.radclient(t, "auth", secretLocal, pap(bob.UID, bob.Password))
	if r.Code != "Access-Accept" || len(r.Attrs["Class"]) != 0 || len(r.Attrs["Session-Timeout"]) != 1 {
		t.Fatalf("bob: %s %v", r.Code, r.Attrs)
	}
}

func TestWrongPasswordAndUnknownUserLookAlike(t *testing.T) {
	b := startBridge(t, conf{})
	wrong := b.radclient(t, "auth", secretLocal, pap(bob.UID, "not-the-password"))
	unknown := b.radclient(t, "auth", secretLocal, pap("nobody-here", "whatever-pass"))
	for name, r := range map[string]harness.RadReply{"wrong password": wrong, "unknown user": unknown} {
		if r.Code != "Access-Reject" {
			t.Fatalf("%s: got %q, want Access-Reject", name, r.Code)
		}
	}
	if w, u := wrong.Attrs["Reply-Message"], unknown.Attrs["Reply-Message"]; len(w) != 1 || len(u) != 1 || w[0] != u[0] {
		t.Errorf("Reply-Message differs: wrong password %v, unknown user %v", w, u)
	}
	if len(wrong.Attrs) != len(unknown.Attrs) {
		t.Errorf("attributes differ: %v vs %v", wrong.Attrs, unknown.Attrs)
	}
	for _, u := range []string{"bob", "nobody-here"} {
		if rec := b.lastAudit(t, u); rec.Reason != "bad_credentials" {
			t.Errorf("audit reason for %s = %q, want bad_credentials", u, rec.Reason)
		}
	}
}

func TestEmptyPasswordNeverReachesLDAP(t *testing.T) {
	b := startBridge(t, conf{})
	u := newUser(t)
	// Warm the pools so that the service account's own bind is not counted.
	if r := b.radclient(t, "auth", secretLocal, pap(bob.UID, bob.Password)); r.Code != "Access-Accept" {
		t.Fatalf("warm-up: %s", r.Out)
	}
	before := env.slapd.AllBinds()
	c := b.client(t, "127.0.0.1", secretLocal)
	for _, pw := range []string{"", "\x00", "\x00abc"} {
		resp, _, err := c.Exchange(harness.Request(secretLocal, u.UID, pw, true), 5*time.Second)
		if err != nil {
			t.Fatalf("password %q: %v", pw, err)
		}
		if resp.Code != radius.CodeAccessReject {
			t.Fatalf("password %q: got %v, want Access-Reject", pw, resp.Code)
		}
	}
	if n := env.slapd.BindCount(u.DN()); n != 0 {
		t.Errorf("slapd saw %d binds for %s, want 0", n, u.DN())
	}
	if after := env.slapd.AllBinds(); after != before {
		t.Errorf("slapd saw %d binds in all during empty-password requests, want 0", after-before)
	}
	rec := b.lastAudit(t, u.UID)
	if rec.Reason != "empty_password" && rec.Reason != "bad_request" {
		t.Errorf("audit reason = %q, want empty_password or bad_request", rec.Reason)
	}
}

func TestFilterInjection(t *testing.T) {
	b := startBridge(t, conf{})
	c := b.client(t, "127.0.0.1", secretLocal)
	// With alice's password: if any of these names reached the filter
	// unescaped, "al*" and "*" would find alice and the bind would pass.
	for _, name := range []string{"*", "al*", "a*e", ")(uid=*", "alice)(uid=*", "*)(|(uid=*", "alice\x00", "alice\x00)(uid=*", `\2a`, "(uid=alice)"} {
		resp, _, err := c.Exchange(harness.Request(secretLocal, name, alice.Password, true), 5*time.Second)
		if err != nil {
			t.Fatalf("%q: %v", name, err)
		}
		if resp.Code != radius.CodeAccessReject {
			t.Errorf("username %q with alice's password: got %v, want Access-Reject", name, resp.Code)
		}
	}
	if !harness.Eventually(2*time.Second, func() bool { return containsAll(env.slapd.Log(), `(uid=al\2A)`) }) {
		t.Errorf(`slapd never saw the escaped filter (uid=al\2A)`)
	}
}

func TestDenyRequireBypassAndMFARequired(t *testing.T) {
	b := startBridge(t, conf{Policies: `  default:
    mfa: required
    deny_groups: [blocked]
    require_groups: [vpn-users, blocked]
    bypass_groups: [vpn-admins]`})
	cases := []struct {
		user   harness.User
		code   string
		reason string
	}{
		{carol, "Access-Reject", "deny_group"},           // deny wins over require
		{dave, "Access-Reject", "not_in_required_group"}, // in no group
		{alice, "Access-Accept", "bypass_group"},         // vpn-admins bypass MFA
		{bob, "Access-Reject", "not_enrolled"},           // needs a second factor, holds none
	}
	for _, tc := range cases {
		r := b.radclient(t, "auth", secretLocal, pap(tc.user.UID, tc.user.Password))
		if r.Code != tc.code {
			t.Errorf("%s: got %q, want %s", tc.user.UID, r.Code, tc.code)
		}
		if rec := b.lastAudit(t, tc.user.UID); rec.Reason != tc.reason {
			t.Errorf("%s: audit reason %q, want %q", tc.user.UID, rec.Reason, tc.reason)
		}
		if tc.code == "Access-Reject" && len(r.Attrs["Reply-Message"]) != 1 {
			t.Errorf("%s: reject without Reply-Message", tc.user.UID)
		}
	}
	r := b.radclient(t, "auth", secretLocal, pap(bob.UID, bob.Password))
	if msg := r.Attrs["Reply-Message"]; len(msg) != 1 || !containsAll(msg[0], "second factor") {
		t.Errorf("mfa required Reply-Message = %v", msg)
	}
}

func TestCHAPAndMSCHAPAreRefusedClearly(t *testing.T) {
	b := startBridge(t, conf{})
	r := b.radclient(t, "auth", secretLocal, `User-Name = "bob", CHAP-Password = "Bob-pass-2", Message-Authenticator = 0x00`)
	if r.Code != "Access-Reject" || len(r.Attrs["Reply-Message"]) != 1 || !containsAll(r.Attrs["Reply-Message"][0], "PAP") {
		t.Fatalf("CHAP: %s %v", r.Code, r.Attrs)
	}
	r = b.radclient(t, "auth", secretLocal, `User-Name = "bob", MS-CHAP-Challenge = 0x00112233445566778899aabbccddeeff, MS-CHAP2-Response = 0x000100112233445566778899aabbccddeeff0000000000000000000000000000000000000000000000000000000000000000, Message-Authenticator = 0x00`)
	if r.Code != "Access-Reject" || len(r.Attrs["Reply-Message"]) != 1 || !containsAll(r.Attrs["Reply-Message"][0], "MS-CHAP") {
		t.Fatalf("MS-CHAPv2: %s %v", r.Code, r.Attrs)
	}
	if rec := b.lastAudit(t, "bob"); rec.Reason != "unsupported_auth" {
		t.Errorf("audit reason %q", rec.Reason)
	}
}

func TestUsernameNormalisation(t *testing.T) {
	b := startBridge(t, conf{ServerExtra: `  username: {strip_realm: true, strip_domain: true, lowercase: true}`})
	c := b.client(t, "127.0.0.1", secretLocal)
	for _, name := range []string{"ALICE", "alice@example.org", `EXAMPLE\alice`, "  alice  "} {
		resp, _, err := c.Exchange(harness.Request(secretLocal, name, alice.Password, true), 5*time.Second)
		if err != nil || resp.Code != radius.CodeAccessAccept {
			t.Errorf("%q: %v %v", name, resp, err)
		}
	}
	for _, name := range []string{"ali\tce", "alice\x7f", string([]byte{0xff, 0xfe}), string(make([]byte, 300))} {
		resp, _, err := c.Exchange(harness.Request(secretLocal, name, alice.Password, true), 5*time.Second)
		if err != nil || resp.Code != radius.CodeAccessReject {
			t.Errorf("%q: want Access-Reject, got %v %v", name, resp, err)
		}
	}
	// A second User-Password is malformed, not a second chance.
	resp, _, err := c.Exchange(harness.Request(secretLocal, "alice", alice.Password, true, func(p *radius.Packet) {
		a, _ := radius.NewUserPassword([]byte("other"), p.Secret, p.Authenticator[:])
		p.Add(rfc2865.UserPassword_Type, a)
	}), 5*time.Second)
	if err != nil || resp.Code != radius.CodeAccessReject {
		t.Errorf("two User-Password: want Access-Reject, got %v %v", resp, err)
	}
}
