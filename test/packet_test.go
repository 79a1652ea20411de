package test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"layeh.com/radius"
	"layeh.com/radius/rfc2865"

	mradius "github.com/mfabridge/mfabridge/radius"
	"github.com/mfabridge/mfabridge/test/harness"
)

// noAnswer is how long a test waits to be sure a packet was dropped.
const noAnswer = 1500 * time.Millisecond

// replyWait is how long a test waits for a reply it expects.
const replyWait = 5 * time.Second

func TestMessageAuthenticatorRules(t *testing.T) {
	b := startBridge(t, conf{})
	dropped := func(cause string) float64 {
		return b.metric(t, `mfabridge_radius_dropped_total{cause="`+cause+`"}`)
	}

	t.Run("client set to true drops unsigned", func(t *testing.T) {
		c := b.client(t, "127.0.0.2", secretOther)
		before := dropped("missing_message_authenticator")
		if _, _, err := c.Exchange(harness.Request(secretOther, bob.UID, bob.Password, false), noAnswer); err != harness.ErrNoReply {
			t.Fatalf("unsigned request from a true client: want no reply, got %v", err)
		}
		if resp, _, err := c.Exchange(harness.Request(secretOther, bob.UID, bob.Password, true), 5*time.Second); err != nil || resp.Code != radius.CodeAccessAccept {
			t.Fatalf("signed request from a true client: %v %v", resp, err)
		}
		if d := dropped("missing_message_authenticator") - before; d != 1 {
			t.Errorf("missing_message_authenticator drops = %v, want 1", d)
		}
	})

	t.Run("auto client that signed once must keep signing", func(t *testing.T) {
		c := b.client(t, "127.0.0.3", secretOther)
		// Before it has ever signed, an unsigned request is answered.
		if resp, _, err := c.Exchange(harness.Request(secretOther, bob.UID, bob.Password, false), 5*time.Second); err != nil || resp.Code != radius.CodeAccessAccept {
			t.Fatalf("first unsigned request: %v %v", resp, err)
		}
		if resp, _, err := c.Exchange(harness.Request(secretOther, bob.UID, bob.Password, true), 5*time.Second); err != nil || resp.Code != radius.CodeAccessAccept {
			t.Fatalf("signed request: %v %v", resp, err)
		}
		if _, _, err := c.Exchange(harness.Request(secretOther, bob.UID, bob.Password, false), noAnswer); err != harness.ErrNoReply {
			t.Fatalf("unsigned request after signing: want no reply, got %v", err)
		}
	})

	t.Run("auto client that never signs is answered and warned about", func(t *testing.T) {
		c := b.client(t, "127.0.0.4", secretOther)
		for i := 0; i < 2; i++ {
			resp, raw, err := c.Exchange(harness.Request(secretOther, bob.UID, bob.Password, false), 5*time.Second)
			if err != nil || resp.Code != radius.CodeAccessAccept {
				t.Fatalf("legacy request %d: %v %v", i, resp, err)
			}
			checkReplyMA(t, raw, secretOther, c)
		}
		if !b.WaitLog("does not sign", 2*time.Second) || !containsAll(b.Logs(), `"client":"legacy"`) {
			t.Errorf("no warning about the unsigned client in the log")
		}
		if got := b.metric(t, `mfabridge_radius_unsigned_requests_total{client="legacy"}`); got != 2 {
			t.Errorf("unsigned_requests_total{legacy} = %v, want 2", got)
		}
	})

	t.Run("wrong shared secret with a signature gets no answer", func(t *testing.T) {
		c := b.client(t, "127.0.0.1", "not-the-shared-secret")
		before := dropped("bad_message_authenticator")
		if _, _, err := c.Exchange(harness.Request("not-the-shared-secret", bob.UID, bob.Password, true), noAnswer); err != harness.ErrNoReply {
			t.Fatalf("want no reply, got %v", err)
		}
		if d := dropped("bad_message_authenticator") - before; d != 1 {
			t.Errorf("bad_message_authenticator drops = %v, want 1", d)
		}
	})

	t.Run("unknown client address gets no answer", func(t *testing.T) {
		c := b.client(t, "127.0.0.9", secretLocal)
		before := dropped("unknown_client")
		if _, _, err := c.Exchange(harness.Request(secretLocal, bob.UID, bob.Password, true), noAnswer); err != harness.ErrNoReply {
			t.Fatalf("want no reply, got %v", err)
		}
		if d := dropped("unknown_client") - before; d != 1 {
			t.Errorf("unknown_client drops = %v, want 1", d)
		}
	})

	t.Run("unsigned Proxy-State from a non-proxy is dropped", func(t *testing.T) {
		c := b.client(t, "127.0.0.7", secretOther) // require_message_authenticator: false
		withPS := func(p *radius.Packet) { rfc2865.ProxyState_Add(p, []byte("ps-1")) }
		before := dropped("unsigned_proxy_state")
		if _, _, err := c.Exchange(harness.Request(secretOther, bob.UID, bob.Password, false, withPS), noAnswer); err != harness.ErrNoReply {
			t.Fatalf("want no reply, got %v", err)
		}
		if d := dropped("unsigned_proxy_state") - before; d != 1 {
			t.Errorf("unsigned_proxy_state drops = %v, want 1", d)
		}
		// Signed, it is fine, and Proxy-State comes back.
		resp, _, err := c.Exchange(harness.Request(secretOther, bob.UID, bob.Password, true, withPS), 5*time.Second)
		if err != nil || resp.Code != radius.CodeAccessAccept || !bytes.Equal(rfc2865.ProxyState_Get(resp), []byte("ps-1")) {
			t.Fatalf("signed with Proxy-State: %v %v", resp, err)
		}
	})

	t.Run("a proxy may send unsigned Proxy-State; every Proxy-State is echoed in order", func(t *testing.T) {
		c := b.client(t, "127.0.0.6", secretOther)
		resp, raw, err := c.Exchange(harness.Request(secretOther, bob.UID, bob.Password, false, func(p *radius.Packet) {
			rfc2865.ProxyState_Add(p, []byte("first"))
			rfc2865.ProxyState_Add(p, []byte("second"))
		}), 5*time.Second)
		if err != nil || resp.Code != radius.CodeAccessAccept {
			t.Fatalf("%v %v", resp, err)
		}
		ps, _ := rfc2865.ProxyState_Gets(resp)
		if len(ps) != 2 || string(ps[0]) != "first" || string(ps[1]) != "second" {
			t.Errorf("Proxy-State = %q", ps)
		}
		checkReplyMA(t, raw, secretOther, c)
	})
}

// checkReplyMA asserts that the reply's first attribute is a valid
// Message-Authenticator.
func checkReplyMA(t *testing.T, raw []byte, secret string, c *harness.Client) {
	t.Helper()
	if len(raw) < 22 || raw[20] != 80 || raw[21] != 18 {
		t.Fatalf("first attribute of the reply is not Message-Authenticator: % x", raw[:min(len(raw), 24)])
	}
}

func TestEveryReplyCarriesMessageAuthenticatorFirst(t *testing.T) {
	b := startBridge(t, conf{})
	c := b.client(t, "127.0.0.1", secretLocal)
	for _, tc := range []struct {
		user, pw string
		code     radius.Code
	}{{bob.UID, bob.Password, radius.CodeAccessAccept}, {bob.UID, "wrong", radius.CodeAccessReject}} {
		req := harness.Request(secretLocal, tc.user, tc.pw, true, func(p *radius.Packet) {
			rfc2865.ProxyState_Add(p, []byte("x"))
		})
		resp, raw, err := c.Exchange(req, 5*time.Second)
		if err != nil || resp.Code != tc.code {
			t.Fatalf("%v %v", resp, err)
		}
		checkReplyMA(t, raw, secretLocal, c)
		present, err := mradius.VerifyResponse(raw, req.Authenticator, []byte(secretLocal))
		if !present || err != nil {
			t.Errorf("%v: Message-Authenticator present=%v err=%v", tc.code, present, err)
		}
	}
}

func TestRetransmissionGetsCachedReply(t *testing.T) {
	b := startBridge(t, conf{})
	u := newUser(t)
	c := b.client(t, "127.0.0.1", secretLocal)
	req := harness.Request(secretLocal, u.UID, u.Password, true)
	raw, err := req.Encode()
	if err != nil {
		t.Fatal(err)
	}
	_, first, err := c.Exchange(req, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := c.Send(raw); err != nil {
			t.Fatal(err)
		}
		_, again, err := c.ReplyTo(raw, 5*time.Second)
		if err != nil {
			t.Fatalf("retransmission %d: %v", i, err)
		}
		if !bytes.Equal(first, again) {
			t.Fatalf("retransmission %d: reply differs:\n% x\n% x", i, first, again)
		}
	}
	if n := env.slapd.BindCount(u.DN()); n != 1 {
		t.Errorf("slapd saw %d binds for %s, want 1", n, u.UID)
	}
	if n := len(filterAudit(b.audit(t), u.UID)); n != 1 {
		t.Errorf("%d audit records for one request sent four times, want 1", n)
	}
	if got := b.metric(t, `mfabridge_radius_retransmissions_total{client="local"}`); got != 3 {
		t.Errorf("retransmissions_total = %v, want 3", got)
	}

	// The same Identifier with a new Request Authenticator is a new request.
	req2 := harness.Request(secretLocal, u.UID, "wrong-password", true, func(p *radius.Packet) { p.Identifier = req.Identifier })
	if resp, _, err := c.Exchange(req2, 5*time.Second); err != nil || resp.Code != radius.CodeAccessReject {
		t.Fatalf("new request with a reused Identifier: %v %v", resp, err)
	}
}

func filterAudit(recs []auditRecord, user string) []auditRecord {
	var out []auditRecord
	for _, r := range recs {
		if r.User == user {
			out = append(out, r)
		}
	}
	return out
}

func TestStatusServer(t *testing.T) {
	b := startBridge(t, conf{})
	r := b.radclient(t, "status", secretLocal, `Message-Authenticator = 0x00`)
	if r.Code != "Access-Accept" {
		t.Fatalf("Status-Server: got %q\n%s", r.Code, r.Out)
	}
	// RFC 5997 §3: Status-Server without Message-Authenticator is dropped.
	c := b.client(t, "127.0.0.4", secretOther)
	p := radius.New(radius.CodeStatusServer, []byte(secretOther))
	if _, _, err := c.Exchange(p, noAnswer); err != harness.ErrNoReply {
		t.Fatalf("unsigned Status-Server: want no reply, got %v", err)
	}
}

func TestMalformedPacketsAreDroppedAndCounted(t *testing.T) {
	b := startBridge(t, conf{})
	c := b.client(t, "127.0.0.1", secretLocal)
	good, _ := harness.Request(secretLocal, bob.UID, bob.Password, true).Encode()
	cases := map[string][]byte{
		"short":                   good[:19],
		"length beyond datagram":  append([]byte{1, 1, 0x10, 0}, good[4:]...),
		"attribute length 0":      append(append([]byte{}, good...), 30, 0),
		"attribute length 1":      append(append([]byte{}, good...), 30, 1),
		"attribute past the end":  append(append([]byte{}, good...), 30, 40, 1, 2),
		"oversized datagram":      append(append([]byte{}, good...), make([]byte, 5000)...),
		"accounting on auth port": append([]byte{4}, good[1:]...),
	}
	for name, raw := range cases {
		if name != "oversized datagram" && name != "short" && name != "accounting on auth port" && name != "length beyond datagram" {
			// Keep the RADIUS Length field in step with the bytes sent.
			raw[2], raw[3] = byte(len(raw)>>8), byte(len(raw))
		}
		if err := c.Send(raw); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Receive(300 * time.Millisecond); err != harness.ErrNoReply {
			t.Errorf("%s: want no reply, got %v", name, err)
		}
	}
	if resp, _, err := c.Exchange(harness.Request(secretLocal, bob.UID, bob.Password, true), 5*time.Second); err != nil || resp.Code != radius.CodeAccessAccept {
		t.Fatalf("the server does not answer normally after bad input: %v %v", resp, err)
	}
	for cause, want := range map[string]float64{"malformed": 5, "too_large": 1, "unsupported_code": 1} {
		if got := b.metric(t, `mfabridge_radius_dropped_total{cause="`+cause+`"}`); got < want {
			t.Errorf("dropped{%s} = %v, want at least %v", cause, got, want)
		}
	}
}

func TestIPv4AndIPv6Listeners(t *testing.T) {
	b := startBridge(t, conf{Radius6: "[::1]", Clients: defaultClients + `
  - name: v6
    address: "::1"
    secret: env:OTHER_SECRET`})
	c4 := b.client(t, "127.0.0.1", secretLocal)
	if resp, _, err := c4.Exchange(harness.Request(secretLocal, bob.UID, bob.Password, true), 5*time.Second); err != nil || resp.Code != radius.CodeAccessAccept {
		t.Fatalf("IPv4: %v %v", resp, err)
	}
	c6, err := harness.NewClient("::1", b.Radius6, secretOther)
	if err != nil {
		t.Fatal(err)
	}
	defer c6.Close()
	if resp, _, err := c6.Exchange(harness.Request(secretOther, bob.UID, bob.Password, true), 5*time.Second); err != nil || resp.Code != radius.CodeAccessAccept {
		t.Fatalf("IPv6: %v %v", resp, err)
	}
	// The second record: the audit output reaches the test through a
	// pipe, which may still hold it when the reply is in.
	if rec := b.waitRecord(t, "bob", 1); rec.Client != "v6" || rec.ClientAddress != "::1" {
		t.Errorf("audit for the IPv6 request: %+v", rec)
	}
}

// A NAS with the wrong shared secret shows at the default log level: one
// warning per source a minute, with the count, however many it sends.
func TestWrongSecretIsLoggedOncePerSource(t *testing.T) {
	t.Parallel()
	b := startBridge(t, conf{})
	c := b.client(t, "127.0.0.1", "not-the-shared-secret")
	for range 5 {
		if _, _, err := c.Exchange(harness.Request("not-the-shared-secret", bob.UID, bob.Password, true), noAnswer/3); err != harness.ErrNoReply {
			t.Fatalf("a request signed with the wrong secret: %v, want no reply", err)
		}
	}
	const line = "Message-Authenticator is invalid: the shared secret is probably wrong"
	if !b.WaitLog(line, 5*time.Second) {
		t.Fatalf("no warning about the shared secret:\n%s", b.Logs())
	}
	time.Sleep(200 * time.Millisecond)
	if n := strings.Count(b.Logs(), line); n != 1 {
		t.Errorf("%d warnings for 5 drops from one source in a minute, want 1", n)
	}
	if !strings.Contains(b.Logs(), `"level":"WARN","msg":"`+line) || !strings.Contains(b.Logs(), `"client":"local"`) {
		t.Errorf("the warning is not at WARN with the client:\n%s", b.Logs())
	}
	// An address that is no client: its own warning.
	u := b.client(t, "127.0.0.99", secretLocal)
	u.Exchange(harness.Request(secretLocal, bob.UID, bob.Password, true), noAnswer/3)
	if !b.WaitLog("RADIUS request from an address that is no configured client", 5*time.Second) {
		t.Errorf("no warning about the unknown client:\n%s", b.Logs())
	}
}
