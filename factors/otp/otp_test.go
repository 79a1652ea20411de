package otp_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mfabridge/mfabridge/factors"
	"github.com/mfabridge/mfabridge/factors/otp"
	"github.com/mfabridge/mfabridge/internal/state"
)

// The RFC secrets: "12345678901234567890" repeated to the hash's size.
var (
	seed20 = []byte("12345678901234567890")
	seed32 = []byte("12345678901234567890123456789012")
	seed64 = []byte("1234567890123456789012345678901234567890123456789012345678901234")
)

func user(name string, creds ...factors.Credential) *factors.User {
	return &factors.User{Name: name, Enrolment: &factors.Enrolment{Credentials: creds}}
}

func totpCred(secret []byte, alg string, digits int) factors.Credential {
	return factors.Credential{Method: factors.TOTP, Secret: secret, Algorithm: alg, Digits: digits, Period: 30, Active: true}
}

func hotpCred(secret []byte, counter uint64) factors.Credential {
	return factors.Credential{Method: factors.HOTP, Secret: secret, Algorithm: "SHA1", Digits: 6, Counter: counter, Active: true}
}

func fixed(t time.Time) func() time.Time { return func() time.Time { return t } }

func memGuard(t testing.TB) *state.Memory {
	t.Helper()
	m := state.NewMemory(state.MemoryOptions{Sweep: -1})
	t.Cleanup(func() { m.Close() })
	return m
}

// RFC 6238 Appendix B.
func TestTOTPRFC6238Vectors(t *testing.T) {
	vectors := []struct {
		t                    int64
		sha1, sha256, sha512 string
	}{
		{59, "94287082", "46119246", "90693936"},
		{1111111109, "07081804", "68084774", "25091201"},
		{1111111111, "14050471", "67062674", "99943326"},
		{1234567890, "89005924", "91819424", "93441116"},
		{2000000000, "69279037", "90698825", "38618901"},
		{20000000000, "65353130", "77737706", "47863826"},
	}
	for _, v := range vectors {
		for _, tc := range []struct {
			alg    string
			secret []byte
			want   string
		}{{"SHA1", seed20, v.sha1}, {"SHA256", seed32, v.sha256}, {"SHA512", seed64, v.sha512}} {
			t.Run(fmt.Sprintf("%s/T=%d", tc.alg, v.t), func(t *testing.T) {
				c := totpCred(tc.secret, tc.alg, 8)
				if got := otp.Generate(c, uint64(v.t/30)); got != tc.want {
					t.Errorf("Generate = %s, want %s", got, tc.want)
				}
				f := otp.NewTOTP(0, memGuard(t), fixed(time.Unix(v.t, 0)))
				if err := f.Check(context.Background(), user("rfc", c), tc.want); err != nil {
					t.Errorf("Check of the RFC code at T=%d: %v", v.t, err)
				}
			})
		}
	}
}

// RFC 4226 Appendix D.
func TestHOTPRFC4226Vectors(t *testing.T) {
	want := []string{"755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871", "520489"}
	for counter, code := range want {
		if got := otp.Generate(hotpCred(seed20, 0), uint64(counter)); got != code {
			t.Errorf("counter %d: %s, want %s", counter, got, code)
		}
	}
}

func TestAlgorithmNames(t *testing.T) {
	for name, want := range map[string]string{"SHA1": "SHA1", "SHA256": "SHA256", "SHA512": "SHA512", "": "SHA1", "MD5": "SHA1"} {
		if got := otp.Algorithm(name).String(); got != want {
			t.Errorf("Algorithm(%q) = %s, want %s", name, got, want)
		}
	}
}

func TestTOTPCheck(t *testing.T) {
	ctx := context.Background()
	now := time.Unix(1_700_000_000, 0)
	step := uint64(now.Unix() / 30)
	c := totpCred(seed20, "SHA1", 6)
	codeAt := func(off int64) string { return otp.Generate(c, uint64(int64(step)+off)) }

	t.Run("skew window", func(t *testing.T) {
		for _, tc := range []struct {
			off  int64
			want error
		}{{-2, factors.ErrWrongCode}, {-1, nil}, {0, nil}, {1, nil}, {2, factors.ErrWrongCode}} {
			f := otp.NewTOTP(1, memGuard(t), fixed(now))
			if err := f.Check(ctx, user("alice", c), codeAt(tc.off)); !errors.Is(err, tc.want) && err != tc.want {
				t.Errorf("step %+d: %v, want %v", tc.off, err, tc.want)
			}
		}
		// skew 0: only the current step.
		f := otp.NewTOTP(0, memGuard(t), fixed(now))
		if err := f.Check(ctx, user("alice", c), codeAt(1)); !errors.Is(err, factors.ErrWrongCode) {
			t.Errorf("skew 0, next step: %v", err)
		}
	})

	t.Run("replay refused, per user and step", func(t *testing.T) {
		g := memGuard(t)
		f := otp.NewTOTP(1, g, fixed(now))
		if err := f.Check(ctx, user("alice", c), codeAt(0)); err != nil {
			t.Fatal(err)
		}
		if err := f.Check(ctx, user("alice", c), codeAt(0)); !errors.Is(err, factors.ErrReplayed) {
			t.Errorf("the same code again: %v, want ErrReplayed", err)
		}
		if err := f.Check(ctx, user("alice", c), " "+codeAt(0)[:3]+" "+codeAt(0)[3:]); !errors.Is(err, factors.ErrReplayed) {
			t.Errorf("the same code, spaced: %v, want ErrReplayed", err)
		}
		if err := f.Check(ctx, user("bob", c), codeAt(0)); err != nil {
			t.Errorf("another user, same secret and step: %v", err)
		}
		if err := f.Check(ctx, user("alice", c), codeAt(1)); err != nil {
			t.Errorf("the next step: %v", err)
		}
		// A second factor with the same guard (another bridge instance on
		// the same state) refuses it too.
		f2 := otp.NewTOTP(1, g, fixed(now.Add(30*time.Second)))
		if err := f2.Check(ctx, user("alice", c), codeAt(0)); !errors.Is(err, factors.ErrReplayed) {
			t.Errorf("replay 30s later: %v, want ErrReplayed", err)
		}
	})

	t.Run("concurrent replay: one passes", func(t *testing.T) {
		f := otp.NewTOTP(1, memGuard(t), fixed(now))
		var wg sync.WaitGroup
		var mu sync.Mutex
		passed := 0
		for range 30 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if f.Check(ctx, user("carol", c), codeAt(0)) == nil {
					mu.Lock()
					passed++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if passed != 1 {
			t.Errorf("%d concurrent checks of one code passed, want 1", passed)
		}
	})

	t.Run("form of the answer", func(t *testing.T) {
		code := codeAt(0)
		for _, tc := range []struct {
			name, answer string
			want         error
		}{
			{"right", code, nil},
			{"spaces inside", code[:3] + " " + code[3:], nil},
			{"spaces around", "  " + code + " ", nil},
			{"every digit spaced", strings.Join(strings.Split(code, ""), " "), nil},
			{"empty", "", factors.ErrWrongCode},
			{"too short", code[:5], factors.ErrWrongCode},
			{"too long", code + "0", factors.ErrWrongCode},
			{"letters", "12a456", factors.ErrWrongCode},
			{"sign", "+" + code[1:], factors.ErrWrongCode},
			{"full-width digits", "１２３４５６", factors.ErrWrongCode},
			{"tab inside", code[:3] + "\t" + code[3:], factors.ErrWrongCode},
			{"NUL inside", code[:3] + "\x00" + code[3:], factors.ErrWrongCode},
		} {
			t.Run(tc.name, func(t *testing.T) {
				f := otp.NewTOTP(1, memGuard(t), fixed(now))
				if err := f.Check(ctx, user("alice", c), tc.answer); !errors.Is(err, tc.want) && err != tc.want {
					t.Errorf("Check(%q) = %v, want %v", tc.answer, err, tc.want)
				}
			})
		}
	})

	t.Run("not enrolled", func(t *testing.T) {
		f := otp.NewTOTP(1, memGuard(t), fixed(now))
		pending := c
		pending.Active = false
		for name, u := range map[string]*factors.User{
			"no enrolment": {Name: "x"},
			"nothing":      user("x"),
			"pending":      user("x", pending),
			"only hotp":    user("x", hotpCred(seed20, 0)),
		} {
			if f.Enrolled(u) {
				t.Errorf("%s: Enrolled", name)
			}
			if err := f.Check(ctx, u, codeAt(0)); !errors.Is(err, factors.ErrNotEnrolled) {
				t.Errorf("%s: Check = %v, want ErrNotEnrolled", name, err)
			}
		}
		if !f.Enrolled(user("x", c)) || f.CodeLength(user("x", c)) != 6 || f.Method() != factors.TOTP || f.Label(user("x", c)) == "" {
			t.Errorf("TOTP factor description wrong")
		}
	})

	t.Run("guard failure is not a pass", func(t *testing.T) {
		f := otp.NewTOTP(1, failingGuard{}, fixed(now))
		err := f.Check(ctx, user("alice", c), codeAt(0))
		if err == nil || errors.Is(err, factors.ErrWrongCode) || errors.Is(err, factors.ErrReplayed) {
			t.Errorf("Check with a failing guard: %v, want an error of the factor", err)
		}
	})

	t.Run("8 digits and SHA256", func(t *testing.T) {
		c8 := totpCred(seed32, "SHA256", 8)
		f := otp.NewTOTP(1, memGuard(t), fixed(now))
		if f.CodeLength(user("x", c8)) != 8 {
			t.Errorf("CodeLength = %d", f.CodeLength(user("x", c8)))
		}
		if err := f.Check(ctx, user("x", c8), otp.Generate(c8, step)); err != nil {
			t.Errorf("8-digit SHA256 code: %v", err)
		}
		if err := f.Check(ctx, user("x", c8), otp.Generate(c8, step+1)[:6]); !errors.Is(err, factors.ErrWrongCode) {
			t.Errorf("6 digits for an 8-digit credential: %v", err)
		}
	})

	t.Run("near the epoch", func(t *testing.T) {
		f := otp.NewTOTP(3, memGuard(t), fixed(time.Unix(10, 0)))
		if err := f.Check(ctx, user("x", c), otp.Generate(c, 0)); err != nil {
			t.Errorf("step 0 with skew reaching below it: %v", err)
		}
	})
}

type failingGuard struct{}

func (failingGuard) SetNX(context.Context, string, []byte, time.Duration) (bool, error) {
	return false, errors.New("state store down")
}

// counters is a fake of the enrolment store's HOTP counters.
type counters struct {
	mu   sync.Mutex
	m    map[string]uint64
	fail error
}

func (c *counters) AdvanceCounter(_ context.Context, user string, from, to uint64) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail != nil {
		return false, c.fail
	}
	if c.m[user] != from {
		return false, nil
	}
	c.m[user] = to
	return true, nil
}

func (c *counters) get(user string) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[user]
}

func TestHOTPCheck(t *testing.T) {
	ctx := context.Background()
	// login reads the counter as the conversation does: from the store.
	login := func(h *otp.HOTP, cs *counters, name, code string) error {
		return h.Check(ctx, user(name, hotpCred(seed20, cs.get(name))), code)
	}
	code := func(n uint64) string { return otp.Generate(hotpCred(seed20, 0), n) }

	t.Run("look-ahead and resync", func(t *testing.T) {
		cs := &counters{m: map[string]uint64{"alice": 5}}
		h := otp.NewHOTP(3, cs)
		// Behind the counter means used (or skipped by a resync): never
		// accepted, and audited as a replay.
		if err := login(h, cs, "alice", code(4)); !errors.Is(err, factors.ErrReplayed) {
			t.Errorf("behind the counter: %v", err)
		}
		if err := login(h, cs, "alice", code(9)); !errors.Is(err, factors.ErrWrongCode) {
			t.Errorf("past the look-ahead (5+3): %v", err)
		}
		if err := login(h, cs, "alice", code(8)); err != nil {
			t.Fatalf("at the edge of the look-ahead: %v", err)
		}
		if n := cs.get("alice"); n != 9 {
			t.Errorf("counter after a match at 8 = %d, want 9", n)
		}
		if err := login(h, cs, "alice", code(8)); err == nil {
			t.Errorf("the same code again passed")
		}
		if err := login(h, cs, "alice", code(9)); err != nil {
			t.Errorf("the next code: %v", err)
		}
		if err := login(h, cs, "alice", code(12)); err != nil {
			t.Errorf("resync within the window: %v", err)
		}
		if n := cs.get("alice"); n != 13 {
			t.Errorf("counter = %d, want 13", n)
		}
		if err := login(h, cs, "alice", code(10)); !errors.Is(err, factors.ErrReplayed) {
			t.Errorf("a skipped code after resync: %v", err)
		}
	})

	t.Run("lost race is ErrReplayed", func(t *testing.T) {
		cs := &counters{m: map[string]uint64{"bob": 0}}
		h := otp.NewHOTP(20, cs)
		stale := user("bob", hotpCred(seed20, 0)) // read before the other login won
		if err := h.Check(ctx, user("bob", hotpCred(seed20, 0)), code(0)); err != nil {
			t.Fatal(err)
		}
		if err := h.Check(ctx, stale, code(0)); !errors.Is(err, factors.ErrReplayed) {
			t.Errorf("the loser of a race: %v, want ErrReplayed", err)
		}
	})

	t.Run("concurrent: one passes", func(t *testing.T) {
		cs := &counters{m: map[string]uint64{"carol": 0}}
		h := otp.NewHOTP(20, cs)
		var wg sync.WaitGroup
		var mu sync.Mutex
		passed := 0
		for range 30 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if h.Check(ctx, user("carol", hotpCred(seed20, 0)), code(2)) == nil {
					mu.Lock()
					passed++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if passed != 1 || cs.get("carol") != 3 {
			t.Errorf("%d passed, counter %d; want 1 and 3", passed, cs.get("carol"))
		}
	})

	t.Run("store failure is not a pass", func(t *testing.T) {
		cs := &counters{m: map[string]uint64{}, fail: errors.New("disk full")}
		err := otp.NewHOTP(20, cs).Check(ctx, user("dan", hotpCred(seed20, 0)), code(0))
		if err == nil || errors.Is(err, factors.ErrWrongCode) || errors.Is(err, factors.ErrReplayed) {
			t.Errorf("Check with a failing store: %v", err)
		}
	})

	t.Run("form and enrolment", func(t *testing.T) {
		cs := &counters{m: map[string]uint64{"eve": 0}}
		h := otp.NewHOTP(0, cs)
		for _, bad := range []string{"", "12345", "1234567", "abcdef", code(1)} {
			if err := login(h, cs, "eve", bad); !errors.Is(err, factors.ErrWrongCode) {
				t.Errorf("Check(%q) with look-ahead 0: %v", bad, err)
			}
		}
		if err := login(h, cs, "eve", code(0)[:2]+" "+code(0)[2:]); err != nil {
			t.Errorf("spaced code: %v", err)
		}
		if err := h.Check(ctx, user("eve", totpCred(seed20, "SHA1", 6)), code(0)); !errors.Is(err, factors.ErrNotEnrolled) {
			t.Errorf("only TOTP enrolled: %v", err)
		}
		if h.Enrolled(user("eve")) || !h.Enrolled(user("eve", hotpCred(seed20, 0))) || h.Method() != factors.HOTP {
			t.Errorf("HOTP factor description wrong")
		}
	})
}

// fuzzNow, fuzzSecret: the fixed clock and key FuzzTOTPCheck checks
// against. At fuzzNow the codes for steps -1, 0, +1 are 276857, 921300
// and 732303.
var (
	fuzzNow    = time.Unix(1_700_000_000, 0)
	fuzzSecret = seed20
)

// FuzzTOTPCheck: whatever the answer, Check never panics and passes only
// the code for an accepted step, however it is spaced.
func FuzzTOTPCheck(f *testing.F) {
	c := totpCred(fuzzSecret, "SHA1", 6)
	step := uint64(fuzzNow.Unix() / 30)
	valid := map[string]bool{}
	for d := -1; d <= 1; d++ {
		valid[otp.Generate(c, uint64(int64(step)+int64(d)))] = true
	}
	for code := range valid {
		f.Add(code)
		f.Add(" " + code[:3] + " " + code[3:] + " ")
	}
	for _, s := range []string{"", "000000", "99999999", "12 34 5", "\x00\x00\x00\x00\x00\x00", "１２３４５６", "-12345", "9213000", "921300\t"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, answer string) {
		tf := otp.NewTOTP(1, alwaysFirst{}, fixed(fuzzNow))
		err := tf.Check(context.Background(), user("fuzz", c), answer)
		if err == nil {
			norm := strings.ReplaceAll(strings.TrimSpace(answer), " ", "")
			if !valid[norm] {
				t.Fatalf("Check(%q) passed; it is not one of the right codes", answer)
			}
			return
		}
		if !errors.Is(err, factors.ErrWrongCode) {
			t.Fatalf("Check(%q) = %v, want nil or ErrWrongCode", answer, err)
		}
	})
}

// alwaysFirst is a replay guard that has never seen anything.
type alwaysFirst struct{}

func (alwaysFirst) SetNX(context.Context, string, []byte, time.Duration) (bool, error) {
	return true, nil
}
