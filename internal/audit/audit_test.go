package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"
)

// sink records what each write call carried, line by line.
type sink struct {
	mu    sync.Mutex
	calls int
	users map[string]int
	err   error
	delay time.Duration
	bad   []string
}

func (s *sink) Write(p []byte) (int, error) {
	time.Sleep(s.delay)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if len(p) == 0 || p[len(p)-1] != '\n' {
		s.bad = append(s.bad, fmt.Sprintf("a write that does not end a line: %q", p))
	}
	for _, line := range bytes.Split(bytes.TrimSuffix(p, []byte("\n")), []byte("\n")) {
		var r Record
		if err := json.Unmarshal(line, &r); err != nil {
			s.bad = append(s.bad, fmt.Sprintf("not a record: %q", line))
			continue
		}
		s.users[r.User]++
	}
	return len(p), s.err
}

func (s *sink) seen(user string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.users[user]
}

// Every record is written once, whole, before its Write returns; records
// arriving during a slow write go out together in the next.
func TestWriteGathersRecords(t *testing.T) {
	s := &sink{users: map[string]int{}, delay: 200 * time.Microsecond}
	l := New(s)
	const writers, each = 32, 100
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				user := fmt.Sprintf("u%02d-%03d", w, i)
				l.Write(Record{Time: time.Now(), Client: "vpn", User: user, Outcome: Accept, Reason: "mfa_passed"})
				if n := s.seen(user); n != 1 {
					errs <- fmt.Errorf("%s: written %d times when Write returned", user, n)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, b := range s.bad {
		t.Error(b)
	}
	if len(s.users) != writers*each {
		t.Errorf("%d records written, want %d", len(s.users), writers*each)
	}
	if s.calls >= writers*each {
		t.Errorf("%d write calls for %d records: nothing was gathered", s.calls, writers*each)
	}
	t.Logf("%d records in %d write calls", writers*each, s.calls)
	if err := l.Err(); err != nil {
		t.Errorf("Err: %v", err)
	}
}

func TestWriteErrorIsKept(t *testing.T) {
	s := &sink{users: map[string]int{}, err: errors.New("disk full")}
	l := New(s)
	l.Write(Record{User: "a"})
	s.err = nil
	l.Write(Record{User: "b"})
	if err := l.Err(); err == nil || err.Error() != "disk full" {
		t.Errorf("Err = %v, want the first error", err)
	}
	if s.seen("b") != 1 {
		t.Error("a write after a failed one was not attempted")
	}
	var nilLog *Log
	nilLog.Write(Record{User: "c"}) // no log configured: nothing happens
}

func BenchmarkWrite(b *testing.B) {
	l := New(discard{})
	r := Record{Time: time.Now(), Client: "vpn", ClientAddress: "192.0.2.10", User: "alice", Outcome: Accept, Reason: "mfa_passed", Policy: "default", LatencyMS: 1.2}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			l.Write(r)
		}
	})
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// reference is what encoding/json writes for r.
func reference(t testing.TB, r Record) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestAppendJSONIsEncodingJSON(t *testing.T) {
	at := time.Date(2026, 11, 27, 2, 39, 45, 980_000_000, time.UTC)
	strs := []string{"", "alice", `quote " and \ backslash`, "<html> & co", "tab\tnew\nline\rcr\bbs\fff",
		"\x00\x01\x1f\x7f", "é ü 漢字 🙂", "bad \xff\xfe utf-8 \xc3", "line\u2028sep\u2029para", "CN=Alice,O=NHS/emailAddress=a@b"}
	floats := []float64{0, 1.2, 0.0004, 1e-7, 123456.789, 1e21, 2.5e-9, -3}
	for i, s := range strs {
		r := Record{Time: at.Add(time.Duration(i) * time.Millisecond), Client: s, ClientAddress: "192.0.2.10", User: s,
			CallingStation: s, Outcome: Reject, Reason: "bad_credentials", Policy: s, Factor: s, LatencyMS: floats[i%len(floats)]}
		if i%2 == 0 {
			r.Cert = &Cert{Subject: s, Serial: "01:02", Issuer: s, SHA256: "ab"}
		}
		if got, want := string(r.appendJSON(nil)), reference(t, r); got != want {
			t.Errorf("record %d:\n got %s\nwant %s", i, got, want)
		}
	}
	for _, f := range floats {
		r := Record{Time: at, LatencyMS: f}
		if got, want := string(r.appendJSON(nil)), reference(t, r); got != want {
			t.Errorf("latency %g:\n got %s\nwant %s", f, got, want)
		}
	}
}

func FuzzAppendJSON(f *testing.F) {
	f.Add("alice", "vpn", "10.0.0.1", 1.25, int64(0))
	f.Add("bad \xff", "\u2028", "\x00", 1e-9, int64(1700000000123456789))
	f.Fuzz(func(t *testing.T, user, client, station string, latency float64, nanos int64) {
		if math.IsNaN(latency) || math.IsInf(latency, 0) {
			return // encoding/json refuses them
		}
		at := time.Unix(0, nanos).UTC()
		if at.Year() < 0 || at.Year() > 9999 {
			return // likewise
		}
		r := Record{Time: at, Client: client, User: user, CallingStation: station, Outcome: Accept, Reason: Reason(user), LatencyMS: latency}
		if got, want := string(r.appendJSON(nil)), reference(t, r); got != want {
			t.Errorf("\n got %s\nwant %s", got, want)
		}
	})
}
