package test

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"layeh.com/radius"
	"layeh.com/radius/rfc2865"

	mradius "github.com/mfabridge/mfabridge/radius"
	"github.com/mfabridge/mfabridge/test/harness"
)

// badInput is one row of the bad-input catalogue: a datagram sent from
// 127.0.0.1 (client "local", require_message_authenticator: auto, which
// has signed before the first row) and what the bridge must do with it.
type badInput struct {
	name string
	// packet builds the datagram; the user it names is u.
	packet func(u harness.User) []byte
	// drop is the mfabridge_radius_dropped_total cause expected to go up
	// by one, with no reply; "" when a reply is expected.
	drop string
	// code and reason are the expected reply and audit reason; reason ""
	// means no audit record (Status-Server is answered before the
	// conversation).
	code   radius.Code
	reason string
}

// outcome renders the expectation for the catalogue table.
func (bi badInput) outcome() string {
	if bi.drop != "" {
		return "no reply; dropped_total{cause=\"" + bi.drop + "\"} +1"
	}
	if bi.reason == "" {
		return bi.code.String() + " (no audit record)"
	}
	return bi.code.String() + ", audit reason `" + bi.reason + "`"
}

// signedRequest builds an Access-Request for u, lets mod change its
// attributes, then signs it with Message-Authenticator and encodes it.
func signedRequest(u harness.User, mod func(p *radius.Packet)) []byte {
	p := harness.Request(secretLocal, u.UID, u.Password, false)
	if mod != nil {
		mod(p)
	}
	if err := mradius.Sign(p); err != nil {
		panic(err)
	}
	b, err := p.Encode()
	if err != nil {
		panic(err)
	}
	return b
}

// marshal encodes p as is (any Code, no authenticator computed).
func marshal(p *radius.Packet) []byte {
	b, err := p.MarshalBinary()
	if err != nil {
		panic(err)
	}
	return b
}

// setLength rewrites the RADIUS Length field.
func setLength(b []byte, n int) []byte {
	binary.BigEndian.PutUint16(b[2:4], uint16(n))
	return b
}

// appendRaw appends raw attribute bytes and keeps the Length field equal
// to the datagram's size.
func appendRaw(b []byte, raw ...byte) []byte {
	b = append(append([]byte{}, b...), raw...)
	return setLength(b, len(b))
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func withUserNames(names ...[]byte) func(*radius.Packet) {
	return func(p *radius.Packet) {
		p.Attributes.Del(rfc2865.UserName_Type)
		for _, n := range names {
			p.Attributes.Add(rfc2865.UserName_Type, n)
		}
	}
}

func withRawPassword(n int) func(*radius.Packet) {
	return func(p *radius.Packet) {
		p.Attributes.Del(rfc2865.UserPassword_Type)
		p.Attributes.Add(rfc2865.UserPassword_Type, randomBytes(n))
	}
}

func vsa(vendor uint32, typ byte, value []byte) radius.Attribute {
	a, err := radius.NewVendorSpecific(vendor, append([]byte{typ, byte(2 + len(value))}, value...))
	if err != nil {
		panic(err)
	}
	return a
}

// badInputs is the catalogue. Rows that need the conversation are
// signed: the client has signed before, so under auto an unsigned
// Access-Request would only show the missing-signature rule.
var badInputs = []badInput{
	{name: "datagram of 4097 bytes (a signed request padded)", drop: "too_large", packet: func(u harness.User) []byte {
		b := signedRequest(u, nil)
		return append(b, make([]byte, 4097-len(b))...)
	}},
	{name: "datagram of 65000 bytes", drop: "too_large", packet: func(u harness.User) []byte {
		b := signedRequest(u, nil)
		return append(b, make([]byte, 65000-len(b))...)
	}},
	{name: "datagram of 19 bytes", drop: "malformed", packet: func(u harness.User) []byte { return signedRequest(u, nil)[:19] }},
	{name: "empty datagram (0 bytes)", drop: "malformed", packet: func(harness.User) []byte { return []byte{} }},
	{name: "Length field 10 more than the datagram", drop: "malformed", packet: func(u harness.User) []byte {
		b := signedRequest(u, nil)
		return setLength(b, len(b)+10)
	}},
	{name: "Length field below 20", drop: "malformed", packet: func(u harness.User) []byte {
		return setLength(signedRequest(u, nil), 12)
	}},
	{name: "Length field 3 less than the datagram, cutting the last attribute", drop: "malformed", packet: func(u harness.User) []byte {
		b := signedRequest(u, nil)
		return setLength(b, len(b)-3)
	}},
	{name: "Length field less than the datagram: 10 bytes of trailing padding (RFC 2865 §3: ignored)",
		code: radius.CodeAccessAccept, reason: "mfa_off", packet: func(u harness.User) []byte {
			return append(signedRequest(u, nil), make([]byte, 10)...)
		}},
	{name: "truncated attribute (length 40, 2 bytes left)", drop: "malformed", packet: func(u harness.User) []byte {
		return appendRaw(signedRequest(u, nil), 30, 40, 1, 2)
	}},
	{name: "attribute length 0", drop: "malformed", packet: func(u harness.User) []byte {
		return appendRaw(signedRequest(u, nil), 30, 0)
	}},
	{name: "attribute length 1", drop: "malformed", packet: func(u harness.User) []byte {
		return appendRaw(signedRequest(u, nil), 30, 1)
	}},
	{name: "two User-Password attributes", code: radius.CodeAccessReject, reason: "bad_request", packet: func(u harness.User) []byte {
		return signedRequest(u, func(p *radius.Packet) {
			pw, _ := radius.NewUserPassword([]byte(u.Password), p.Secret, p.Authenticator[:])
			p.Attributes.Add(rfc2865.UserPassword_Type, pw)
		})
	}},
	{name: "User-Password of 15 bytes", code: radius.CodeAccessReject, reason: "bad_request", packet: func(u harness.User) []byte {
		return signedRequest(u, withRawPassword(15))
	}},
	{name: "User-Password of 17 bytes", code: radius.CodeAccessReject, reason: "bad_request", packet: func(u harness.User) []byte {
		return signedRequest(u, withRawPassword(17))
	}},
	{name: "User-Password of 144 bytes", code: radius.CodeAccessReject, reason: "bad_request", packet: func(u harness.User) []byte {
		return signedRequest(u, withRawPassword(144))
	}},
	{name: "User-Name with a NUL", code: radius.CodeAccessReject, reason: "bad_username", packet: func(u harness.User) []byte {
		return signedRequest(u, withUserNames([]byte(u.UID[:3]+"\x00"+u.UID[3:])))
	}},
	{name: "User-Name of invalid UTF-8", code: radius.CodeAccessReject, reason: "bad_username", packet: func(u harness.User) []byte {
		return signedRequest(u, withUserNames([]byte(u.UID+"\xff\xfe")))
	}},
	{name: "User-Name of 3999 bytes over 16 User-Name attributes (a 4096-byte packet)", code: radius.CodeAccessReject, reason: "bad_request",
		packet: func(u harness.User) []byte {
			var parts [][]byte
			for i := 0; i < 15; i++ {
				parts = append(parts, bytes.Repeat([]byte{'a' + byte(i)}, 253))
			}
			b := signedRequest(u, func(p *radius.Packet) {
				withUserNames(parts...)(p)
				// Fill the packet to exactly 4096 bytes with a last part.
				n, _ := radius.AttributesEncodedLen(p.Attributes)
				p.Attributes.Add(rfc2865.UserName_Type, bytes.Repeat([]byte{'z'}, 4096-20-18-n-2))
			})
			if len(b) != 4096 {
				panic(fmt.Sprintf("4 KB User-Name packet is %d bytes", len(b)))
			}
			return b
		}},
	{name: "User-Name of 253 bytes in one attribute (valid, unknown user)", code: radius.CodeAccessReject, reason: "bad_credentials",
		packet: func(u harness.User) []byte {
			return signedRequest(u, withUserNames(bytes.Repeat([]byte{'n'}, 253)))
		}},
	{name: "empty User-Name", code: radius.CodeAccessReject, reason: "bad_username", packet: func(u harness.User) []byte {
		return signedRequest(u, withUserNames([]byte{}))
	}},
	{name: "CHAP-Password (with CHAP-Challenge)", code: radius.CodeAccessReject, reason: "unsupported_auth", packet: func(u harness.User) []byte {
		return signedRequest(u, func(p *radius.Packet) {
			p.Attributes.Del(rfc2865.UserPassword_Type)
			p.Attributes.Add(rfc2865.CHAPPassword_Type, randomBytes(17))
			p.Attributes.Add(rfc2865.CHAPChallenge_Type, randomBytes(16))
		})
	}},
	{name: "MS-CHAPv2 (vendor 311 MS-CHAP-Challenge + MS-CHAP2-Response)", code: radius.CodeAccessReject, reason: "unsupported_auth",
		packet: func(u harness.User) []byte {
			return signedRequest(u, func(p *radius.Packet) {
				p.Attributes.Del(rfc2865.UserPassword_Type)
				p.Attributes.Add(rfc2865.VendorSpecific_Type, vsa(311, 11, randomBytes(16)))
				p.Attributes.Add(rfc2865.VendorSpecific_Type, vsa(311, 25, randomBytes(50)))
			})
		}},
	{name: "unknown attributes 192..255 and an unknown vendor's VSA on a good request", code: radius.CodeAccessAccept, reason: "mfa_off",
		packet: func(u harness.User) []byte {
			return signedRequest(u, func(p *radius.Packet) {
				for typ := 192; typ <= 255; typ++ {
					p.Attributes.Add(radius.Type(typ), []byte{byte(typ), 1, 2, 3})
				}
				p.Attributes.Add(rfc2865.VendorSpecific_Type, vsa(99999, 1, []byte("vendor-data")))
			})
		}},
	{name: "Accounting-Request on the auth port", drop: "unsupported_code", packet: func(u harness.User) []byte {
		p := radius.New(radius.CodeAccountingRequest, []byte(secretLocal))
		rfc2865.UserName_SetString(p, u.UID)
		b, err := p.Encode()
		if err != nil {
			panic(err)
		}
		return b
	}},
	{name: "Access-Accept sent as a request", drop: "unsupported_code", packet: func(u harness.User) []byte {
		return codeAs(u, radius.CodeAccessAccept)
	}},
	{name: "Access-Reject sent as a request", drop: "unsupported_code", packet: func(u harness.User) []byte {
		return codeAs(u, radius.CodeAccessReject)
	}},
	{name: "Access-Challenge sent as a request", drop: "unsupported_code", packet: func(u harness.User) []byte {
		return codeAs(u, radius.CodeAccessChallenge)
	}},
	{name: "unknown packet code 99", drop: "unsupported_code", packet: func(u harness.User) []byte {
		return codeAs(u, radius.Code(99))
	}},
	{name: "Status-Server without Message-Authenticator", drop: "missing_message_authenticator", packet: func(harness.User) []byte {
		return marshal(radius.New(radius.CodeStatusServer, []byte(secretLocal)))
	}},
	{name: "Status-Server signed", code: radius.CodeAccessAccept, packet: func(harness.User) []byte {
		p := radius.New(radius.CodeStatusServer, []byte(secretLocal))
		if err := mradius.Sign(p); err != nil {
			panic(err)
		}
		return marshal(p)
	}},
	{name: "Message-Authenticator of 10 bytes", drop: "bad_message_authenticator", packet: func(u harness.User) []byte {
		p := harness.Request(secretLocal, u.UID, u.Password, false)
		p.Attributes.Add(80, randomBytes(10))
		return marshal(p)
	}},
	{name: "Message-Authenticator twice (the valid one, repeated)", drop: "bad_message_authenticator", packet: func(u harness.User) []byte {
		p := harness.Request(secretLocal, u.UID, u.Password, true)
		p.Attributes.Add(80, append([]byte{}, p.Attributes.Get(80)...))
		return marshal(p)
	}},
	{name: "Message-Authenticator of 16 zero bytes", drop: "bad_message_authenticator", packet: func(u harness.User) []byte {
		p := harness.Request(secretLocal, u.UID, u.Password, false)
		p.Attributes = append(radius.Attributes{{Type: 80, Attribute: make([]byte, 16)}}, p.Attributes...)
		return marshal(p)
	}},
}

// codeAs is a well-formed, signed packet for u with another Code.
func codeAs(u harness.User, code radius.Code) []byte {
	p := harness.Request(secretLocal, u.UID, u.Password, false)
	p.Code = code
	if err := mradius.Sign(p); err != nil {
		panic(err)
	}
	return marshal(p)
}

// TestBadInputCatalogue sends each bad input to one bridge, checks what
// it did (a counted drop without a reply, or a reply and its audit
// reason), then checks that a normal signed request is still accepted.
// The State flood and the flood of wrong passwords are separate tests
// below.
func TestBadInputCatalogue(t *testing.T) {
	// server.pprof, so that the State flood can force a collection and
	// read what stays alive (see bogusStates).
	b := startBridge(t, conf{ServerExtra: "  pprof: true"})
	u := newUser(t)
	c := b.client(t, "127.0.0.1", secretLocal)
	dropped := func(cause string) float64 {
		return b.metric(t, `mfabridge_radius_dropped_total{cause="`+cause+`"}`)
	}
	// The client signs once, so that auto requires it from here on.
	b.normalRequest(t, c, u)

	for _, row := range badInputs {
		t.Run(row.name, func(t *testing.T) {
			raw := row.packet(u)
			if row.drop != "" {
				before := dropped(row.drop)
				if err := c.Send(raw); err != nil {
					t.Fatal(err)
				}
				if !harness.Eventually(3*time.Second, func() bool { return dropped(row.drop) > before }) {
					t.Fatalf("dropped_total{cause=%q} did not go up within 3s", row.drop)
				}
				b.normalRequest(t, c, u) // fails on any reply to the bad input
				if d := dropped(row.drop) - before; d != 1 {
					t.Errorf("dropped_total{cause=%q} went up by %v, want 1", row.drop, d)
				}
				return
			}
			n := len(b.audit(t))
			if err := c.Send(raw); err != nil {
				t.Fatal(err)
			}
			resp, rb, err := c.ReplyTo(raw, 5*time.Second)
			if err != nil {
				t.Fatalf("want %v, got %v", row.code, err)
			}
			if resp.Code != row.code {
				t.Fatalf("got %v (Reply-Message %q), want %v", resp.Code, rfc2865.ReplyMessage_GetString(resp), row.code)
			}
			checkReplyMA(t, rb, secretLocal, c)
			if row.reason != "" {
				var recs []auditRecord
				harness.Eventually(5*time.Second, func() bool { recs = b.audit(t); return len(recs) > n })
				if len(recs) != n+1 {
					t.Fatalf("%d audit records for one request, want 1", len(recs)-n)
				}
				if got := recs[n]; got.Reason != row.reason || got.Outcome != strings.ToLower(strings.TrimPrefix(row.code.String(), "Access-")) {
					t.Errorf("audit record %+v, want outcome for %v and reason %q", got, row.code, row.reason)
				}
			} else if recs := b.audit(t); len(recs) != n {
				t.Errorf("%d audit records for a Status-Server, want none", len(recs)-n)
			}
			b.normalRequest(t, c, u)
		})
	}

	t.Run("10000 distinct bogus States from one client", func(t *testing.T) {
		b.bogusStates(t, u, 10000)
		b.normalRequest(t, c, u)
	})

	var table strings.Builder
	table.WriteString("| input | outcome |\n|---|---|\n")
	for _, row := range badInputs {
		fmt.Fprintf(&table, "| %s | %s |\n", row.name, row.outcome())
	}
	table.WriteString("| 10,000 distinct bogus 16-byte States from one client | Access-Reject each, audit reason `unknown_state`; RSS +<20 MB, goroutines back to start |\n")
	t.Logf("bad-input catalogue:\n%s", table.String())
}

// normalRequest sends a fresh signed request for u from c and wants
// Access-Accept. Any other datagram that arrives first is a reply to
// something that should have been dropped: the test fails.
func (b *bridge) normalRequest(t *testing.T, c *harness.Client, u harness.User) {
	t.Helper()
	accepted := func() int {
		n := 0
		for _, r := range filterAudit(b.audit(t), u.UID) {
			if r.Reason == "mfa_off" {
				n++
			}
		}
		return n
	}
	before := accepted()
	req := harness.Request(string(c.Secret), u.UID, u.Password, true)
	raw, err := req.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Send(raw); err != nil {
		t.Fatal(err)
	}
	rb, err := c.Receive(5 * time.Second)
	if err != nil {
		t.Fatalf("normal request after bad input: %v", err)
	}
	if len(rb) < 20 || rb[1] != raw[1] || !radius.IsAuthenticResponse(rb, raw, c.Secret) {
		t.Fatalf("a datagram that is not the reply to the normal request (a reply to the bad input?): % x", rb[:min(len(rb), 32)])
	}
	resp, err := radius.Parse(rb, c.Secret)
	if err != nil || resp.Code != radius.CodeAccessAccept {
		t.Fatalf("normal request after bad input: %v %v", resp, err)
	}
	// Its audit record is written before the reply but read through a
	// pipe: wait for it, so that the next row counts only its own.
	if !harness.Eventually(5*time.Second, func() bool { return accepted() > before }) {
		t.Fatalf("no audit record for the normal request")
	}
}

// bogusStates sends n signed answers with distinct random States from
// 127.0.0.1, several at a time, and wants each rejected as unknown_state;
// then the bridge's memory and goroutines must be back near where they
// were.
func (b *bridge) bogusStates(t *testing.T, u harness.User, n int) {
	t.Helper()
	const workers = 8
	decisions := func() float64 {
		return b.metric(t, `mfabridge_decisions_total{outcome="reject",reason="unknown_state"}`)
	}
	// The heap after a forced collection: what the bridge keeps, not the
	// garbage it may let pile up below its heap floor (64 MiB) between
	// collections. /debug/pprof/heap?gc=1 collects before it answers.
	liveHeap := func() float64 {
		code, _ := get(t, "http://"+b.Admin+"/debug/pprof/heap?gc=1")
		if code != http.StatusOK {
			t.Fatalf("/debug/pprof/heap?gc=1: %d (server.pprof is needed)", code)
		}
		return b.metric(t, "go_memstats_heap_inuse_bytes")
	}
	rss0, gor0, dec0 := b.metric(t, "process_resident_memory_bytes"), b.metric(t, "go_goroutines"), decisions()
	heap0 := liveHeap()
	start := time.Now()
	var next, rejected, failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		c, err := harness.NewClient("127.0.0.1", b.Radius, secretLocal)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			for next.Add(1) <= int64(n) {
				st := randomBytes(16)
				// As a NAS would: the same request again when an answer
				// does not come (UDP may lose one on a loaded machine).
				raw, err := harness.Request(secretLocal, u.UID, "123456", true, withState(st)).Encode()
				if err != nil {
					t.Error(err)
					return
				}
				var resp *radius.Packet
				for try := 0; try < 3; try++ {
					if err = c.Send(raw); err != nil {
						break
					}
					if resp, _, err = c.ReplyTo(raw, 2*time.Second); err != harness.ErrNoReply {
						break
					}
				}
				switch {
				case err != nil:
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				case resp.Code != radius.CodeAccessReject:
					failed.Add(1)
					firstErr.CompareAndSwap(nil, "got "+resp.Code.String())
				default:
					rejected.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	if f := failed.Load(); f > 0 {
		t.Errorf("%d of %d bogus States not answered with Access-Reject; first: %v", f, n, firstErr.Load())
	}
	if d := decisions() - dec0; d != float64(n) {
		t.Errorf("decisions{reject,unknown_state} went up by %v, want %d", d, n)
	}
	var gor float64
	harness.Eventually(5*time.Second, func() bool { gor = b.metric(t, "go_goroutines"); return gor <= gor0+5 })
	rss, heap := b.metric(t, "process_resident_memory_bytes"), liveHeap()
	t.Logf("%d bogus States in %s (%.0f/s): %d rejected; RSS %.1f MB -> %.1f MB (%+.1f MB); Go heap in use after a collection %.1f MB -> %.1f MB (%+.1f MB); goroutines %.0f -> %.0f",
		n, took.Round(time.Millisecond), float64(n)/took.Seconds(), rejected.Load(), rss0/1e6, rss/1e6, (rss-rss0)/1e6,
		heap0/1e6, heap/1e6, (heap-heap0)/1e6, gor0, gor)
	// The replies stay in the duplicate cache for duplicate_window (30s),
	// so some growth is expected; it must stay small. RSS also holds the
	// garbage the heap floor lets pile up between collections (and, in a
	// -race build, the race detector's shadow memory), so the bound is on
	// the heap alive after a collection; RSS is bounded by the floor.
	if grew := heap - heap0; grew >= 20e6 {
		t.Errorf("the Go heap alive after a collection grew by %.1f MB for %d bogus States, want < 20 MB", grew/1e6, n)
	}
	if !harness.RaceEnabled && rss-rss0 >= 100e6 {
		t.Errorf("RSS grew by %.1f MB for %d bogus States, want < 100 MB (64 MiB of heap floor and 20 MB kept)", (rss-rss0)/1e6, n)
	}
	if gor > gor0+5 {
		t.Errorf("goroutines %v after the States, %v before: not back near the start", gor, gor0)
	}
}

// TestFloodFairness: one client (127.0.0.1) floods wrong passwords for
// unknown users from several sockets as fast as it can for about 5 s,
// while another client (127.0.0.2) sends one good request every 100 ms.
// The second client's requests must all be answered within 2 s: the
// per-client in-flight bound (server.max_in_flight_per_client) is meant
// to stop one noisy NAS from starving the others, though both share the
// LDAP pools (8 connections each) and the bridge's UDP socket.
func TestFloodFairness(t *testing.T) {
	b := startBridge(t, conf{})
	u := newUser(t)
	good := b.client(t, "127.0.0.2", secretOther)
	if resp, _, err := good.Exchange(harness.Request(secretOther, u.UID, u.Password, true), 5*time.Second); err != nil || resp.Code != radius.CodeAccessAccept {
		t.Fatalf("before the flood: %v %v", resp, err)
	}
	overload0 := b.metric(t, `mfabridge_radius_dropped_total{cause="overload"}`)
	kdrops0 := udpDrops(t, b.Radius)
	const floodFor, sockets = 5 * time.Second, 4
	stop := time.Now().Add(floodFor)

	var sent, replies atomic.Int64
	var fw sync.WaitGroup
	for s := 0; s < sockets; s++ {
		c, err := harness.NewClient("127.0.0.1", b.Radius, secretLocal)
		if err != nil {
			t.Fatal(err)
		}
		fw.Add(2)
		go func() { // reader: counts replies until the socket closes
			defer fw.Done()
			for {
				if _, err := c.Receive(time.Until(stop) + 3*time.Second); err != nil {
					return
				}
				replies.Add(1)
			}
		}()
		go func(s int) { // writer: distinct Identifiers and authenticators
			defer fw.Done()
			for i := 0; time.Now().Before(stop); i++ {
				raw, err := harness.Request(secretLocal, fmt.Sprintf("flood-%d-%d", s, i%5000), "wrong-password", true).Encode()
				if err != nil {
					continue
				}
				if err := c.Send(raw); err == nil {
					sent.Add(1)
				}
			}
			time.Sleep(time.Until(stop) + 3*time.Second)
			c.Close()
		}(s)
	}

	type result struct {
		took    time.Duration
		code    radius.Code
		err     error
		resends int
	}
	var results []result
	var mu sync.Mutex
	var gw sync.WaitGroup
	tick := time.NewTicker(100 * time.Millisecond)
	for time.Now().Before(stop) {
		<-tick.C
		gw.Add(1)
		go func() {
			defer gw.Done()
			c, err := harness.NewClient("127.0.0.2", b.Radius, secretOther)
			if err != nil {
				mu.Lock()
				results = append(results, result{err: err})
				mu.Unlock()
				return
			}
			defer c.Close()
			// Like a NAS: send, and send the same request again after a
			// second without an answer, three sends in all. UDP loses
			// packets; retransmission is how RADIUS copes, and the
			// duplicate cache makes a resend cheap.
			raw, err := harness.Request(secretOther, u.UID, u.Password, true).Encode()
			if err != nil {
				t.Error(err)
				return
			}
			start := time.Now()
			var resp *radius.Packet
			sends := 0
			for ; sends < 3; sends++ {
				if err = c.Send(raw); err != nil {
					break
				}
				if resp, _, err = c.ReplyTo(raw, time.Second); err != harness.ErrNoReply {
					break
				}
			}
			r := result{took: time.Since(start), err: err, resends: sends}
			if err == nil {
				r.code = resp.Code
			}
			mu.Lock()
			results = append(results, r)
			mu.Unlock()
		}()
	}
	tick.Stop()
	gw.Wait()
	fw.Wait()

	var lat []time.Duration
	accepted, late, lost, resent := 0, 0, 0, 0
	codes := map[string]int{}
	for _, r := range results {
		if r.resends > 0 {
			resent++
		}
		if r.err != nil {
			lost++
			continue
		}
		lat = append(lat, r.took)
		codes[r.code.String()]++
		if r.code == radius.CodeAccessAccept {
			accepted++
		}
		if r.took > 3*time.Second {
			late++
		}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(p*float64(len(lat))))]
	}
	overload := b.metric(t, `mfabridge_radius_dropped_total{cause="overload"}`) - overload0
	kdrops := udpDrops(t, b.Radius) - kdrops0
	t.Logf("flood from 127.0.0.1: %d requests sent in %s (%.0f/s) from %d sockets, %d replies, %.0f dropped by the bridge as overload, %d lost in the kernel (the bridge's socket receive buffer was full)",
		sent.Load(), floodFor, float64(sent.Load())/floodFor.Seconds(), sockets, replies.Load(), overload, kdrops)
	t.Logf("good client 127.0.0.2: %d logins, %d answered (%v), %d Access-Accept, %d unanswered after 3 sends, %d needed a resend; latency p50 %s p99 %s max %s; %d over 3s",
		len(results), len(lat), codes, accepted, lost, resent, pct(0.50).Round(time.Millisecond), pct(0.99).Round(time.Millisecond),
		pct(1).Round(time.Millisecond), late)
	if lost > 0 || late > 0 {
		t.Errorf("fairness: %d of the good client's %d logins unanswered after three sends and %d answered after more than 3s", lost, len(results), late)
	}
	if accepted != len(results) {
		t.Logf("note: %d of the good client's requests were answered with something other than Access-Accept: %v", len(results)-accepted, codes)
	}
	if resp, _, err := good.Exchange(harness.Request(secretOther, u.UID, u.Password, true), 10*time.Second); err != nil || resp.Code != radius.CodeAccessAccept {
		t.Fatalf("after the flood: %v %v", resp, err)
	}
}

// udpDrops returns the kernel's count of datagrams dropped on the UDP
// socket bound to addr (the drops column of /proc/net/udp): datagrams
// that arrived while its receive buffer was full.
func udpDrops(t *testing.T, addr string) int {
	t.Helper()
	_, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	data, err := os.ReadFile("/proc/net/udp")
	if err != nil {
		t.Logf("cannot read kernel UDP drops: %v", err)
		return 0
	}
	suffix := fmt.Sprintf(":%04X", p)
	total := 0
	for _, line := range strings.Split(string(data), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 13 || !strings.HasSuffix(f[1], suffix) {
			continue
		}
		n, _ := strconv.Atoi(f[len(f)-1])
		total += n
	}
	return total
}
