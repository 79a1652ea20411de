package radius

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mfabridge/mfabridge/factors"
	"github.com/mfabridge/mfabridge/internal/state"
)

// countingPhone sends after a delay, as a text-message service would,
// and counts what it sent; it fails while failing is set.
type countingPhone struct {
	phoneFactor
	sent    atomic.Int32
	failing atomic.Bool
}

func (p *countingPhone) Start(context.Context, *factors.User) (factors.Prompt, error) {
	time.Sleep(80 * time.Millisecond)
	if p.failing.Load() {
		return factors.Prompt{}, errors.New("service down")
	}
	n := p.sent.Add(1)
	return factors.Prompt{Text: fmt.Sprintf("text %d sent", n), Ref: fmt.Sprintf("ref-%d", n)}, nil
}

// twoInstances returns two conversations on one state store, with a
// one-minute send window and phone as their text messages.
func twoInstances(t *testing.T, phone *countingPhone) []*convFixture {
	shared := state.NewMemory(state.MemoryOptions{Sweep: -1})
	t.Cleanup(func() { shared.Close() })
	var inst []*convFixture
	for range 2 {
		f := newConvFixture(t, fixtureOptions{state: func(State) State { return shared }})
		f.conv.sendWindow = time.Minute
		f.conv.factors[factors.SMS] = phone
		inst = append(inst, f)
	}
	return inst
}

// Two instances on one state, the same login reaching both at once (a
// NAS failing over, with a new RADIUS Identifier): one text message, and
// every copy of the login answers with what it said.
func TestSendOnceAcrossInstances(t *testing.T) {
	phone := &countingPhone{}
	inst := twoInstances(t, phone)
	u := &factors.User{Name: "alice", Mobile: "+447700900001"}
	login := func(station string) []string {
		var mu sync.Mutex
		var leads []string
		var wg sync.WaitGroup
		for i := range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				f := inst[i%2]
				lead, ref, ok := f.conv.startOnce(context.Background(), f.client, u, factors.SMS, station)
				if !ok {
					t.Errorf("copy %d: not sent: %s", i, lead)
				}
				mu.Lock()
				leads = append(leads, lead+"/"+ref)
				mu.Unlock()
			}()
		}
		wg.Wait()
		return leads
	}
	leads := login("203.0.113.7")
	if n := phone.sent.Load(); n != 1 {
		t.Fatalf("%d text messages for one login at two instances, want 1", n)
	}
	for _, l := range leads {
		if l != "text 1 sent/ref-1" {
			t.Fatalf("a copy answered %q, want the first send's lead and ref", l)
		}
	}
	// Another station is another login.
	login("198.51.100.9")
	if n := phone.sent.Load(); n != 2 {
		t.Fatalf("%d text messages after a login from another station, want 2", n)
	}
	// A failed send gives the claim back: the next copy sends.
	phone.failing.Store(true)
	f := inst[0]
	if _, _, ok := f.conv.startOnce(context.Background(), f.client, u, factors.SMS, "192.0.2.55"); ok {
		t.Fatal("a failed send reported sent")
	}
	phone.failing.Store(false)
	if lead, _, ok := inst[1].conv.startOnce(context.Background(), inst[1].client, u, factors.SMS, "192.0.2.55"); !ok || lead != "text 3 sent" {
		t.Fatalf("after a failed send, the retry got %q %v, want a new send", lead, ok)
	}
}

// A decided login gives its claim back: the user's next login within
// the window sends anew, at either instance.
func TestSendOnceReleasedWhenDecided(t *testing.T) {
	phone := &countingPhone{}
	inst := twoInstances(t, phone)
	u := &factors.User{Name: "bob", Mobile: "+447700900002"}
	const station = "203.0.113.20"
	ctx := context.Background()
	if _, _, ok := inst[0].conv.startOnce(ctx, inst[0].client, u, factors.SMS, station); !ok {
		t.Fatal("first send failed")
	}
	if lead, _, _ := inst[1].conv.startOnce(ctx, inst[1].client, u, factors.SMS, station); lead != "text 1 sent" {
		t.Fatalf("a copy of the login in progress got %q, want the first send's lead", lead)
	}
	inst[1].conv.releaseSend(ctx, inst[1].client, u, factors.SMS, station)
	if lead, _, ok := inst[0].conv.startOnce(ctx, inst[0].client, u, factors.SMS, station); !ok || lead != "text 2 sent" {
		t.Fatalf("the next login after a decided one got %q %v, want a new send", lead, ok)
	}
	if n := phone.sent.Load(); n != 2 {
		t.Fatalf("%d text messages, want 2", n)
	}
}
