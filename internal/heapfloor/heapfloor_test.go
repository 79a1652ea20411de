package heapfloor

import (
	"os"
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

func TestPercent(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		floor, live uint64
		base, want  int
	}{
		{64 * mib, 4 * mib, 100, 1500}, // goal 4 × 16 = 64 MiB
		{64 * mib, 32 * mib, 100, 100}, // the floor is the goal GOGC gives anyway
		{64 * mib, 40 * mib, 100, 100}, // above the floor GOGC alone
		{64 * mib, 200 * mib, 50, 50},  // whatever GOGC is
		{64 * mib, 0, 100, maxPercent}, // never unbounded
		{64 * mib, 1000, 100, maxPercent},
		{64 * mib, 10 * mib, 400, 540}, // rounded to a tenth
		{64 * mib, 20 * mib, 400, 400}, // never below GOGC
	} {
		if got := Percent(c.floor, c.live, c.base); got != c.want {
			t.Errorf("Percent(%d MiB, %d B, %d) = %d, want %d", c.floor/mib, c.live, c.base, got, c.want)
		}
	}
}

// TestFloorFollowsCollections: with a floor far above the live heap, GOGC
// is raised after the first collection, and Stop puts it back.
func TestFloorFollowsCollections(t *testing.T) {
	if os.Getenv("GOGC") != "" {
		t.Fatalf("run without GOGC in the environment (it is %q)", os.Getenv("GOGC"))
	}
	before := debug.SetGCPercent(100)
	debug.SetGCPercent(before)
	f := Start(256 << 20)
	if f == nil {
		t.Fatal("Start returned nil with GOGC on")
	}
	deadline := time.Now().Add(5 * time.Second)
	for f.Percent() <= 100 && time.Now().Before(deadline) {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if p := f.Percent(); p <= 100 {
		t.Fatalf("GOGC still %d after collections with a 256 MiB floor", p)
	}
	cur := debug.SetGCPercent(-1)
	debug.SetGCPercent(cur)
	if cur != f.Percent() {
		t.Errorf("runtime GOGC %d, Floor says %d", cur, f.Percent())
	}
	f.Stop()
	runtime.GC()
	time.Sleep(20 * time.Millisecond)
	if got := debug.SetGCPercent(before); got != before {
		t.Errorf("after Stop GOGC is %d, want %d", got, before)
	}
}

func TestOffWhenCollectorOff(t *testing.T) {
	old := debug.SetGCPercent(-1)
	defer debug.SetGCPercent(old)
	if f := Start(64 << 20); f != nil {
		f.Stop()
		t.Fatal("Start with GOGC=off returned a Floor")
	}
}
