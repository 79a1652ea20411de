package store

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
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
