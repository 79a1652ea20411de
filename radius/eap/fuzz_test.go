package eap

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the seed corpus in testdata/fuzz")

// A FuzzHandle input is a sequence of rounds, each
//
//	selector (1 byte) | length (2 bytes, big endian) | EAP packet
//
// where the selector picks the State sent with the packet: 0 none (a new
// conversation), 1 a State the server never gave, n ≥ 2 the
// ((n-2) mod k)th of the k States the server has given so far.
const (
	selNone    = 0
	selUnknown = 1
	selLast    = 2 // with one session: its State
)

func appendRound(b []byte, sel byte, msg []byte) []byte {
	b = append(b, sel, byte(len(msg)>>8), byte(len(msg)))
	return append(b, msg...)
}

// fuzzConfig is the server of FuzzHandle: small fragments and limits, so
// that short inputs reach them.
func fuzzConfig(c *Config) {
	c.FragmentSize = 100
	c.MaxRounds = 64
	c.MaxBytes = 16 << 10
	c.MaxSessions = 4
}

// recordExchange runs a real peer against a fuzz server and returns its
// responses as a FuzzHandle input.
func recordExchange(t testing.TB, peerFrag int, tweak ...func(*tls.Config)) []byte {
	t.Helper()
	s, _ := newTestServer(t, fuzzConfig)
	p := newTestPeer(t, peerFrag, tweak...)
	in := identity(1, "alice@example.org")
	b := appendRound(nil, selNone, in)
	r := s.Handle(testOwner, nil, in)
	state := r.State
	for r.Status == Continue {
		resp, err := p.respond(r.EAP)
		if err != nil {
			t.Fatal(err)
		}
		b = appendRound(b, selLast, resp)
		r = s.Handle(testOwner, state, resp)
	}
	if r.Status != Done {
		t.Fatalf("recorded exchange: %v %v", r.Status, r.Err)
	}
	return b
}

// fuzzSeeds are real conversations, whole and cut short, and a few
// malformed ones.
func fuzzSeeds(t testing.TB) map[string][]byte {
	t.Helper()
	id := identity(1, "alice")
	start := appendRound(nil, selNone, id)
	seeds := map[string][]byte{
		"identity":           start,
		"nak":                appendRound(start, selLast, []byte{CodeResponse, 2, 0, 6, TypeNak, 25}),
		"unknown-state":      appendRound(start, selUnknown, tlsResponse(2, 0, 0, nil)),
		"wrong-id":           appendRound(start, selLast, tlsResponse(9, 0, 0, []byte{22, 3, 1, 0, 1, 1})),
		"huge-length":        appendRound(start, selLast, tlsResponse(2, flagLength|flagMore, 1<<31, []byte{22})),
		"short-length":       appendRound(start, selLast, []byte{CodeResponse, 2, 0, 8, TypeTLS, flagLength, 0, 0}),
		"empty-fragments":    appendRound(appendRound(start, selLast, tlsResponse(2, flagMore, 0, nil)), selLast, tlsResponse(3, flagMore, 0, nil)),
		"two-sessions":       appendRound(appendRound(start, selNone, identity(5, "bob")), 3, tlsResponse(6, 0, 0, []byte{21, 3, 3, 0, 2, 2, 40})),
		"too-many":           bytes.Repeat(start, 6),
		"first-not-identity": appendRound(nil, selNone, tlsResponse(1, 0, 0, []byte{22, 3, 1})),
		"request-code":       appendRound(nil, selNone, []byte{CodeRequest, 1, 0, 5, TypeIdentity}),
		"length-overrun":     appendRound(nil, selNone, []byte{CodeResponse, 1, 0, 99, TypeIdentity, 'a'}),
		"tls12-frag-100":     recordExchange(t, 100, maxTLS12),
		"tls13-frag-100":     recordExchange(t, 100, onlyTLS13),
		"tls13-whole":        recordExchange(t, 0, onlyTLS13),
	}
	// Cut short: the ClientHello alone, and the ClientHello's first
	// fragment followed by garbage.
	tls13 := seeds["tls13-whole"]
	first := 3 + int(binary.BigEndian.Uint16(tls13[1:3]))
	second := first + 3 + int(binary.BigEndian.Uint16(tls13[first+1:first+3]))
	seeds["clienthello-only"] = tls13[:second]
	seeds["clienthello-then-garbage"] = appendRound(tls13[:second], selLast, tlsResponse(3, 0, 0, bytes.Repeat([]byte{0x16}, 50)))
	return seeds
}

// TestWriteFuzzCorpus rewrites testdata/fuzz/FuzzHandle from fuzzSeeds
// when run with -update.
func TestWriteFuzzCorpus(t *testing.T) {
	if !*update {
		t.Skip("run with -update to rewrite the seed corpus")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzHandle")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range fuzzSeeds(t) {
		data := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(b)))
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// FuzzHandle feeds sequences of EAP packets and States to a Server.
// Properties: no panic; never Done, since no input can complete a TLS
// handshake with the server's random; every reply is well formed (an
// EAP-TLS request of at most FragmentSize bytes with a 16-byte State, or
// an EAP-Failure with a reason); no round times out; no more sessions
// than MaxSessions.
func FuzzHandle(f *testing.F) {
	for _, b := range fuzzSeeds(f) {
		f.Add(b)
	}
	unknown := bytes.Repeat([]byte{0x5a}, 16)
	f.Fuzz(func(t *testing.T, data []byte) {
		pki := newTestPKI(t)
		cfg := Config{TLS: &tls.Config{Certificates: []tls.Certificate{pki.server}},
			Verify: func([]*x509.Certificate) error { return nil }}
		fuzzConfig(&cfg)
		s, err := NewServer(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		var states [][]byte
		for rounds := 0; len(data) >= 3 && rounds < 200; rounds++ {
			sel := data[0]
			n := min(int(binary.BigEndian.Uint16(data[1:3])), len(data)-3)
			msg := data[3 : 3+n]
			data = data[3+n:]
			var state []byte
			switch {
			case sel == selNone:
			case sel == selUnknown:
				state = unknown
			case len(states) > 0:
				state = states[int(sel-selLast)%len(states)]
			}
			r := s.Handle(testOwner, state, msg)
			p, perr := Parse(r.EAP)
			switch r.Status {
			case Continue:
				if perr != nil || p.Code != CodeRequest || p.Type != TypeTLS || len(r.State) != 16 {
					t.Fatalf("Continue with EAP %x (%v) State %x", r.EAP, perr, r.State)
				}
				data := p.Data[1:]
				if p.Data[0]&flagLength != 0 {
					data = data[4:]
				}
				if len(data) > cfg.FragmentSize {
					t.Fatalf("a request carries %d TLS bytes; FragmentSize %d", len(data), cfg.FragmentSize)
				}
				if state == nil {
					states = append(states, r.State)
				}
			case Failed:
				if perr != nil || p.Code != CodeFailure || r.Err == nil {
					t.Fatalf("Failed with EAP %x (%v), err %v", r.EAP, perr, r.Err)
				}
				if errors.Is(r.Err, ErrStepTimeout) {
					t.Fatalf("a round timed out: %v", r.Err)
				}
			case Done:
				t.Fatalf("Done without a TLS handshake: %+v", r)
			default:
				t.Fatalf("status %v", r.Status)
			}
			if r.MSK != nil {
				t.Fatal("MSK outside Done")
			}
			if s.Open() > cfg.MaxSessions {
				t.Fatalf("%d sessions open, MaxSessions %d", s.Open(), cfg.MaxSessions)
			}
		}
	})
}
