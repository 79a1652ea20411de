package factors

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mfabridge/mfabridge/internal/state"
)

// clock is a settable time shared by the store and the code under test.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 4, 10, 0, 7, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func memKV(t *testing.T, c *clock) *state.Memory {
	t.Helper()
	o := state.MemoryOptions{Sweep: -1}
	if c != nil {
		o.Now = c.Now
	}
	m := state.NewMemory(o)
	t.Cleanup(func() { m.Close() })
	return m
}

func sentCodes(t *testing.T, c *clock, length int) *SentCodes {
	return &SentCodes{KV: memKV(t, c), Length: length, TTL: 5 * time.Minute, Now: c.Now}
}

var bg = context.Background()

func TestSentCodesLengthAndDigits(t *testing.T) {
	for _, n := range []int{4, 6, 8, 10} {
		s := sentCodes(t, newClock(), n)
		for range 50 {
			code, err := s.Issue(bg, SMS, "alice")
			if err != nil {
				t.Fatal(err)
			}
			if len(code) != n || strings.Trim(code, "0123456789") != "" {
				t.Fatalf("Length %d: code %q", n, code)
			}
		}
	}
}

func TestSentCodesDistribution(t *testing.T) {
	s := sentCodes(t, newClock(), 10)
	var counts [10]int
	seen := map[string]bool{}
	const codes = 300
	for range codes {
		code, err := s.Issue(bg, SMS, "alice")
		if err != nil {
			t.Fatal(err)
		}
		seen[code] = true
		for _, d := range code {
			counts[d-'0']++
		}
	}
	if len(seen) < codes-1 {
		t.Errorf("%d distinct codes out of %d", len(seen), codes)
	}
	// 3000 digits, 300 expected each; the standard deviation is about 16,
	// so [200, 400] fails only for a broken generator.
	for d, n := range counts {
		if n < 200 || n > 400 {
			t.Errorf("digit %d appeared %d times in %d digits: %v", d, n, codes*10, counts)
		}
	}
}

func TestSentCodesUseRand(t *testing.T) {
	s := sentCodes(t, newClock(), 6)
	s.Rand = bytes.NewReader(make([]byte, 64))
	code, err := s.Issue(bg, SMS, "alice")
	if err != nil || code != "000000" {
		t.Fatalf("Issue with an all-zero Rand = %q, %v; want 000000", code, err)
	}
	s.Rand = bytes.NewReader(nil)
	if _, err := s.Issue(bg, SMS, "alice"); err == nil {
		t.Fatal("Issue with an exhausted Rand succeeded")
	}
}

func TestSentCodesSingleUse(t *testing.T) {
	s := sentCodes(t, newClock(), 6)
	code, _ := s.Issue(bg, SMS, "alice")
	if err := s.Check(bg, SMS, "alice", code); err != nil {
		t.Fatalf("first use: %v", err)
	}
	if err := s.Check(bg, SMS, "alice", code); !errors.Is(err, ErrExpired) {
		t.Fatalf("second use: %v, want ErrExpired", err)
	}
}

func TestSentCodesCheckTrimsSpaces(t *testing.T) {
	s := sentCodes(t, newClock(), 6)
	code, _ := s.Issue(bg, SMS, "alice")
	if err := s.Check(bg, SMS, "alice", " "+code[:3]+" "+code[3:]+"\t"); err != nil {
		t.Fatalf("spaced code: %v", err)
	}
}

func TestSentCodesNothingPending(t *testing.T) {
	s := sentCodes(t, newClock(), 6)
	if err := s.Check(bg, SMS, "alice", "123456"); !errors.Is(err, ErrExpired) {
		t.Fatalf("no code issued: %v, want ErrExpired", err)
	}
}

func TestSentCodesKeptApart(t *testing.T) {
	s := sentCodes(t, newClock(), 6)
	smsCode, _ := s.Issue(bg, SMS, "alice")
	voiceCode, _ := s.Issue(bg, Voice, "alice")
	bobCode, _ := s.Issue(bg, SMS, "bob")
	if smsCode != voiceCode {
		if err := s.Check(bg, Voice, "alice", smsCode); !errors.Is(err, ErrWrongCode) {
			t.Errorf("sms code as the voice code: %v", err)
		}
	}
	if smsCode != bobCode {
		if err := s.Check(bg, SMS, "bob", smsCode); !errors.Is(err, ErrWrongCode) {
			t.Errorf("alice's code for bob: %v", err)
		}
	}
	for _, c := range []struct {
		m    Method
		user string
		code string
	}{{SMS, "alice", smsCode}, {Voice, "alice", voiceCode}, {SMS, "bob", bobCode}} {
		if err := s.Check(bg, c.m, c.user, c.code); err != nil {
			t.Errorf("%s %s: %v", c.m, c.user, err)
		}
	}
}

func TestSentCodesExpire(t *testing.T) {
	for _, tc := range []struct {
		name  string
		after time.Duration
		want  error
	}{
		{"just before", 5*time.Minute - time.Second, nil},
		{"at the TTL", 5 * time.Minute, ErrExpired},
		{"long after", time.Hour, ErrExpired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newClock()
			s := sentCodes(t, c, 6)
			code, _ := s.Issue(bg, SMS, "alice")
			c.Advance(tc.after)
			if err := s.Check(bg, SMS, "alice", code); !errors.Is(err, tc.want) && !(tc.want == nil && err == nil) {
				t.Fatalf("after %s: %v, want %v", tc.after, err, tc.want)
			}
		})
	}
	// The code's own expiry counts even when the store keeps it longer.
	t.Run("store keeps it", func(t *testing.T) {
		c := newClock()
		s := &SentCodes{KV: memKV(t, nil), Length: 6, TTL: 5 * time.Minute, Now: c.Now}
		code, _ := s.Issue(bg, SMS, "alice")
		c.Advance(6 * time.Minute)
		if err := s.Check(bg, SMS, "alice", code); !errors.Is(err, ErrExpired) {
			t.Fatalf("%v, want ErrExpired", err)
		}
	})
}

func TestSentCodesMaxTries(t *testing.T) {
	for _, tc := range []struct {
		name     string
		maxTries int
		wrong    int
		want     error
	}{
		{"default 3: two wrong, then right", 0, 2, nil},
		{"default 3: three wrong drop the code", 0, 3, ErrExpired},
		{"1: one wrong drops the code", 1, 1, ErrExpired},
		{"5: four wrong, then right", 5, 4, nil},
		{"5: five wrong drop the code", 5, 5, ErrExpired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := sentCodes(t, newClock(), 6)
			s.MaxTries = tc.maxTries
			code, _ := s.Issue(bg, SMS, "alice")
			for i := range tc.wrong {
				if err := s.Check(bg, SMS, "alice", wrongCode(code, i)); !errors.Is(err, ErrWrongCode) {
					t.Fatalf("wrong answer %d: %v, want ErrWrongCode", i+1, err)
				}
			}
			err := s.Check(bg, SMS, "alice", code)
			if !errors.Is(err, tc.want) && !(tc.want == nil && err == nil) {
				t.Fatalf("right code after %d wrong: %v, want %v", tc.wrong, err, tc.want)
			}
		})
	}
}

// wrongCode returns a code of the same length that differs from code.
func wrongCode(code string, i int) string {
	b := []byte(code)
	b[i%len(b)] = '0' + (b[i%len(b)]-'0'+1)%10
	return string(b)
}

func TestSentCodesNewIssueReplacesAndResetsTries(t *testing.T) {
	s := sentCodes(t, newClock(), 6)
	old, _ := s.Issue(bg, SMS, "alice")
	for i := range 2 {
		s.Check(bg, SMS, "alice", wrongCode(old, i))
	}
	code, _ := s.Issue(bg, SMS, "alice")
	if code == old {
		t.Skip("the two codes happen to be equal")
	}
	// Two more wrong answers: with the old count they would drop the code.
	if err := s.Check(bg, SMS, "alice", old); !errors.Is(err, ErrWrongCode) {
		t.Fatalf("the replaced code: %v, want ErrWrongCode", err)
	}
	if err := s.Check(bg, SMS, "alice", wrongCode(code, 3)); !errors.Is(err, ErrWrongCode) {
		t.Fatalf("wrong answer: %v", err)
	}
	if err := s.Check(bg, SMS, "alice", code); err != nil {
		t.Fatalf("the new code after two wrong answers: %v (tries were not reset)", err)
	}
}

func TestSentCodesConcurrentRightAnswersPassOnce(t *testing.T) {
	for round := range 20 {
		s := sentCodes(t, newClock(), 6)
		code, _ := s.Issue(bg, SMS, "alice")
		const n = 16
		errs := make([]error, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				errs[i] = s.Check(bg, SMS, "alice", code)
			}()
		}
		close(start)
		wg.Wait()
		passed := 0
		for _, err := range errs {
			switch {
			case err == nil:
				passed++
			case errors.Is(err, ErrReplayed), errors.Is(err, ErrExpired):
			default:
				t.Fatalf("round %d: unexpected %v", round, err)
			}
		}
		if passed != 1 {
			t.Fatalf("round %d: %d of %d concurrent checks of one code passed, want exactly 1", round, passed, n)
		}
	}
}

func TestSendLimitsPerUserPerHour(t *testing.T) {
	c := newClock()
	l := &SendLimits{KV: memKV(t, c), PerUserHour: 2, GlobalMinute: 1000, Now: c.Now}
	for i := range 2 {
		if err := l.Allow(bg, SMS, "alice"); err != nil {
			t.Fatalf("send %d: %v", i+1, err)
		}
	}
	if err := l.Allow(bg, SMS, "alice"); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("third send in the hour: %v, want ErrRateLimited", err)
	}
	// Other users and other methods have their own counts.
	if err := l.Allow(bg, SMS, "bob"); err != nil {
		t.Errorf("bob: %v", err)
	}
	if err := l.Allow(bg, Voice, "alice"); err != nil {
		t.Errorf("alice by voice: %v", err)
	}
	c.Advance(59 * time.Minute)
	if err := l.Allow(bg, SMS, "alice"); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("59 minutes later: %v, want ErrRateLimited", err)
	}
	c.Advance(time.Minute + time.Second)
	if err := l.Allow(bg, SMS, "alice"); err != nil {
		t.Fatalf("an hour later: %v", err)
	}
}

func TestSendLimitsGlobalPerMinute(t *testing.T) {
	c := newClock() // 10:00:07
	l := &SendLimits{KV: memKV(t, c), PerUserHour: 100, GlobalMinute: 3, Now: c.Now}
	for _, u := range []string{"a", "b", "c"} {
		if err := l.Allow(bg, SMS, u); err != nil {
			t.Fatalf("%s: %v", u, err)
		}
	}
	if err := l.Allow(bg, Voice, "d"); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("fourth send in the minute (another user, another method): %v, want ErrRateLimited", err)
	}
	c.Advance(time.Minute)
	if err := l.Allow(bg, SMS, "d"); err != nil {
		t.Fatalf("the next minute: %v", err)
	}
}

// A send refused by one user's hourly limit sends nothing, so it must not
// use up the ceiling all users share: otherwise one user retrying past
// their own limit stops text messages and calls for everybody.
func TestSendLimitsRefusedSendsDoNotUseTheGlobalCeiling(t *testing.T) {
	c := newClock()
	l := &SendLimits{KV: memKV(t, c), PerUserHour: 1, GlobalMinute: 3, Now: c.Now}
	if err := l.Allow(bg, SMS, "mallory"); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if err := l.Allow(bg, SMS, "mallory"); !errors.Is(err, ErrRateLimited) {
			t.Fatalf("past the hourly limit: %v", err)
		}
	}
	// One message really went out this minute; the ceiling is 3.
	if err := l.Allow(bg, SMS, "alice"); err != nil {
		t.Fatalf("alice, after one real send this minute: %v", err)
	}
}

// What the state store holds for a pending code is a keyed hash: the code
// cannot be read off it, nor found by trying every code without the key,
// and the value of one user's code is worth nothing for another's.
func TestSentCodesStoredAsKeyedHashes(t *testing.T) {
	kv := memKV(t, nil)
	key := bytes.Repeat([]byte{7}, 32)
	s := &SentCodes{KV: kv, Length: 6, TTL: 5 * time.Minute, Key: key}
	code, err := s.Issue(bg, SMS, "alice")
	if err != nil {
		t.Fatal(err)
	}
	v, ok, _ := kv.Get(bg, codeKey(SMS, "alice"))
	if !ok {
		t.Fatal("no pending code stored")
	}
	if bytes.Contains(v, []byte(code)) {
		t.Fatalf("the stored value %q holds the code %s", v, code)
	}
	// Another process with another key cannot use the value.
	other := &SentCodes{KV: kv, Length: 6, TTL: 5 * time.Minute, Key: bytes.Repeat([]byte{8}, 32)}
	if err := other.Check(bg, SMS, "alice", code); !errors.Is(err, ErrWrongCode) {
		t.Fatalf("checked under another key: %v, want ErrWrongCode", err)
	}
	// Bob's pending value moved under Alice's key does not take Bob's code.
	bobCode, _ := s.Issue(bg, SMS, "bob")
	s.Issue(bg, SMS, "alice")
	bob, _, _ := kv.Get(bg, codeKey(SMS, "bob"))
	kv.Set(bg, codeKey(SMS, "alice"), bob, time.Minute)
	if err := s.Check(bg, SMS, "alice", bobCode); !errors.Is(err, ErrWrongCode) {
		t.Fatalf("bob's code at alice's key: %v, want ErrWrongCode", err)
	}
	// The same key in another instance checks it.
	peer := &SentCodes{KV: kv, Length: 6, TTL: 5 * time.Minute, Key: key}
	if err := peer.Check(bg, SMS, "bob", bobCode); err != nil {
		t.Fatalf("bob's code at an instance with the same key: %v", err)
	}
}
