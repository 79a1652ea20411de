package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mfabridge/mfabridge/factors"
)

// An invite works once, for its own user, with its own code, until it
// expires; a new one replaces the old; concurrent redemptions of one
// code succeed once.
func TestInviteWorksOnce(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	if err := s.Invite(ctx, "carol", "K7QX-M2PA-9RTF", time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.InviteExpiry(ctx, "carol"); err != nil || !ok {
		t.Fatalf("expiry: %v %v", ok, err)
	}
	for _, try := range []struct{ user, code string }{
		{"dave", "K7QX-M2PA-9RTF"},  // another user
		{"carol", "K7QX-M2PA-9RTG"}, // another code
		{"carol", ""},
	} {
		if err := s.RedeemInvite(ctx, try.user, try.code); !errors.Is(err, ErrNotFound) {
			t.Errorf("redeem %q for %s: %v, want ErrNotFound", try.code, try.user, err)
		}
	}
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if s.RedeemInvite(ctx, "carol", "K7QX-M2PA-9RTF") == nil {
				wins.Add(1)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d redemptions of one invite succeeded, want 1", wins.Load())
	}
	if _, ok, _ := s.InviteExpiry(ctx, "carol"); ok {
		t.Error("a used invite is still listed")
	}

	// Replaced, then expired.
	s.Invite(ctx, "erin", "AAAA-BBBB-CCCC", time.Hour)
	s.Invite(ctx, "erin", "DDDD-EEEE-FFFF", time.Hour)
	if err := s.RedeemInvite(ctx, "erin", "AAAA-BBBB-CCCC"); !errors.Is(err, ErrNotFound) {
		t.Errorf("a replaced invite: %v", err)
	}
	s.now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	if err := s.RedeemInvite(ctx, "erin", "DDDD-EEEE-FFFF"); !errors.Is(err, ErrNotFound) {
		t.Errorf("an expired invite: %v", err)
	}
}

// A recovery code is spent once, however many logins race with it; the
// others stay; the set is never the default method.
func TestRecoveryCodesAreSpentOnce(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	s.Put(ctx, "fay", totpCred("fay-secret-0123456789"), false)
	hashes := make([]byte, 0, 3*32)
	for i := range 3 {
		h := make([]byte, 32)
		h[0] = byte(i + 1)
		hashes = append(hashes, h...)
	}
	if err := s.Put(ctx, "fay", factors.Credential{Method: factors.Recovery, Secret: hashes, Digits: 10, Active: true}, false); err != nil {
		t.Fatal(err)
	}
	if err := s.SetDefault(ctx, "fay", factors.Recovery); err == nil {
		t.Error("recovery codes became the default")
	}
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if ok, err := s.UseRecoveryCode(ctx, "fay", hashes[32:64]); err != nil {
				t.Error(err)
			} else if ok {
				wins.Add(1)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("one code spent %d times", wins.Load())
	}
	e, _ := s.Enrolment(ctx, "fay")
	c, _ := e.Credential(factors.Recovery)
	if len(c.Secret) != 64 || c.Secret[0] != 1 || c.Secret[32] != 3 || c.Default {
		t.Fatalf("left: %x (default %t)", c.Secret, c.Default)
	}
	if tc, _ := e.Credential(factors.TOTP); !tc.Default {
		t.Error("the app is no longer the default")
	}
	s.UseRecoveryCode(ctx, "fay", hashes[:32])
	s.UseRecoveryCode(ctx, "fay", hashes[64:])
	e, _ = s.Enrolment(ctx, "fay")
	if c, ok := e.Credential(factors.Recovery); !ok || len(c.Secret) != 0 {
		t.Fatalf("after the last: %v %x", ok, c.Secret)
	}
	if ok, err := s.UseRecoveryCode(ctx, "nobody", hashes[:32]); ok || err != nil {
		t.Errorf("a user with no codes: %v %v", ok, err)
	}
}

// A user's last 20 sign-ins are kept, newest first; a report blocks and
// starts a new lockout epoch; a reset lifts it.
func TestSignInsAndReports(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	base := time.Unix(1_800_000_000, 0)
	for i := range 25 {
		s.RecordSignIn("gus", factors.SignIn{Time: base.Add(time.Duration(i) * time.Minute), Client: "vpn", Station: "10.0.0.1",
			Outcome: "accept", Method: factors.TOTP, Reason: "mfa_passed"})
	}
	s.RecordSignIn("hal", factors.SignIn{Time: base, Client: "portal", Outcome: "reject", Reason: "bad_credentials"})
	got, err := s.SignIns(ctx, "gus")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 20 || !got[0].Time.Equal(base.Add(24*time.Minute)) || !got[19].Time.Equal(base.Add(5*time.Minute)) ||
		got[0].Method != factors.TOTP || got[0].Station != "10.0.0.1" {
		t.Fatalf("%d sign-ins: first %+v, last %+v", len(got), got[0], got[len(got)-1])
	}
	if hal, _ := s.SignIns(ctx, "hal"); len(hal) != 1 || hal[0].Reason != "bad_credentials" {
		t.Fatalf("hal: %+v", hal)
	}
	before, _ := s.Enrolment(ctx, "gus")
	if err := s.Report(ctx, "gus"); err != nil {
		t.Fatal(err)
	}
	after, _ := s.Enrolment(ctx, "gus")
	if after.Reported.IsZero() || after.LockoutEpoch != before.LockoutEpoch+1 {
		t.Fatalf("after the report: %+v (before %+v)", after, before)
	}
	s.ResetLockout(ctx, "gus")
	if e, _ := s.Enrolment(ctx, "gus"); !e.Reported.IsZero() {
		t.Fatal("the report outlived a reset")
	}
}

// A token in stock is claimed once, by the user whose code the check
// accepts, and leaves the stock as that user's HOTP credential.
func TestClaimToken(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	seed := []byte("12345678901234567890")
	if err := s.AddTokens(ctx, []Token{{Serial: "T-0001", Digits: 6, Counter: 3, Secret: seed}, {Serial: "T-0002", Digits: 8, Secret: seed}}, false); err != nil {
		t.Fatal(err)
	}
	if err := s.AddTokens(ctx, []Token{{Serial: "T-0009", Digits: 6, Secret: seed}, {Serial: "T-0001", Digits: 6, Secret: seed}}, false); !errors.Is(err, ErrExists) {
		t.Fatalf("a serial in stock again: %v", err)
	}
	if n, _ := s.TokensInStock(ctx); n != 2 {
		t.Fatalf("%d in stock after a refused import, want 2", n)
	}
	refuse := func(factors.Credential) (uint64, bool) { return 0, false }
	if err := s.ClaimToken(ctx, "ivy", "T-0001", refuse); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a refused code: %v", err)
	}
	if err := s.ClaimToken(ctx, "ivy", "T-9999", nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("no such serial: %v", err)
	}
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.ClaimToken(ctx, fmt.Sprintf("user%d", i), "T-0001", func(c factors.Credential) (uint64, bool) {
				return c.Counter + 2, string(c.Secret) == string(seed) && c.Counter == 3
			})
			if err == nil {
				wins.Add(1)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("one token claimed %d times", wins.Load())
	}
	if n, _ := s.TokensInStock(ctx); n != 1 {
		t.Fatalf("%d in stock, want 1", n)
	}
	names, _ := s.Names(ctx)
	var owner string
	for _, n := range names {
		if e, _ := s.Enrolment(ctx, n); e != nil {
			if c, ok := e.Credential(factors.HOTP); ok && c.Counter == 5 && string(c.Secret) == string(seed) {
				owner = n
			}
		}
	}
	if owner == "" {
		t.Fatalf("no user holds the token at counter 5: %v", names)
	}
}
