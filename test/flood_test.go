package test

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
	"time"

	"layeh.com/radius"

	"github.com/mfabridge/mfabridge/test/harness"
)

// Floods must not open a way in or shut the door on everyone: the state
// store and the reply cache are bounded, and what fills them must not be
// what keeps the lockout counting and the challenges working.

func TestUnknownUserFloodKeepsLockoutAndChallenges(t *testing.T) {
	t.Parallel()
	const maxEntries, flood = 400, 1200
	b := startBridge(t, conf{Policies: mfaPolicy,
		Extra: fmt.Sprintf("state: {backend: memory, max_entries: %d}\nlockout: {max_failures: 3, max_code_failures: 3, window: 5m, duration: 5m}", maxEntries)})
	victim, other := newUser(t), newUser(t)
	b.enrolRandomTOTP(t, victim.UID)
	b.enrolRandomTOTP(t, other.UID)

	// Three times more unknown names than the store holds entries, each
	// with a password, from eight senders at once.
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := harness.NewClient("127.0.0.1", b.Radius, secretLocal)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			for i := w; i < flood; i += 8 {
				if _, _, err := c.Exchange(harness.Request(secretLocal, fmt.Sprintf("nobody-%d", i), "guess", true), replyWait); err != nil {
					errs <- fmt.Errorf("flood request %d: %w", i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	c := b.client(t, "127.0.0.1", secretLocal)
	// The victim's wrong passwords still count...
	for i := range 3 {
		resp, rec := b.send(t, c, victim.UID, fmt.Sprintf("wrong-%d", i))
		want(t, fmt.Sprintf("wrong password %d", i+1), resp, rec, radius.CodeAccessReject, "bad_credentials")
	}
	resp, rec := b.send(t, c, victim.UID, victim.Password)
	want(t, "right password after three wrong ones", resp, rec, radius.CodeAccessReject, "locked_out_password")
	// ...and a new challenge still opens.
	b.challenged(t, c, other.UID, other.Password)
	if got := b.metric(t, `mfabridge_unknown_user_failures_total{client="local"}`); got < flood {
		t.Errorf("unknown user failures counted for the client: %v, want at least %d", got, flood)
	}
}

func TestReplyCacheFloodNeverHandlesARetransmitTwice(t *testing.T) {
	t.Parallel()
	const room = 200
	b := startBridge(t, conf{ServerExtra: fmt.Sprintf("  duplicate_cache_entries: %d", room)})
	c := b.client(t, "127.0.0.1", secretLocal)

	// Fill the client's share of the cache: every request is answered
	// and kept for the window.
	type sent struct {
		user  string
		raw   []byte
		reply []byte
	}
	var reqs []sent
	for i := range room {
		user := fmt.Sprintf("cached-%d", i)
		raw, err := harness.Request(secretLocal, user, "guess", true).Encode()
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Send(raw); err != nil {
			t.Fatal(err)
		}
		_, reply, err := c.ReplyTo(raw, replyWait)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		reqs = append(reqs, sent{user, raw, reply})
	}
	// More new requests than it has room for.
	for i := range 10 {
		raw, _ := harness.Request(secretLocal, fmt.Sprintf("overflow-%d", i), "guess", true).Encode()
		if err := c.Send(raw); err != nil {
			t.Fatal(err)
		}
		c.ReplyTo(raw, 300*time.Millisecond)
	}
	// Every early request sent again gets the reply it had, byte for
	// byte, or nothing: never a second run of the conversation.
	for _, r := range reqs[:20] {
		if err := c.Send(r.raw); err != nil {
			t.Fatal(err)
		}
		_, reply, err := c.ReplyTo(r.raw, time.Second)
		if err == nil && !bytes.Equal(reply, r.reply) {
			t.Errorf("retransmission of %s answered with a new reply", r.user)
		}
	}
	time.Sleep(500 * time.Millisecond)
	counts := map[string]int{}
	for _, rec := range b.audit(t) {
		counts[rec.User]++
	}
	for _, r := range reqs {
		if counts[r.user] != 1 {
			t.Errorf("%s handled %d times, want once", r.user, counts[r.user])
		}
	}
	if got := b.metric(t, `mfabridge_radius_dropped_total{cause="duplicate_cache_full"}`); got < 10 {
		t.Errorf("requests dropped for a full reply cache: %v, want the 10 that found no room", got)
	}
}
