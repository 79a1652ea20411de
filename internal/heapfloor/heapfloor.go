// Package heapfloor keeps the Go garbage collector's heap goal from falling
// below a floor.
//
// With GOGC=100 the collector runs each time the heap doubles its live
// size. A RADIUS server keeps little alive between requests (a few
// megabytes) yet allocates a lot per request (mostly the LDAP library's
// encoding), so under load it would collect many times a second, each time
// taking a core away from the requests. With a floor the goal is
// max(floor, live × (1 + GOGC/100)): a small server collects a few times a
// second at most, and a server holding more than the floor (a hundred
// thousand open challenge sessions) behaves exactly as with GOGC alone, so
// memory per session does not grow.
//
// After every collection the live heap is read and GOGC is set so that the
// next goal is the larger of the two. Memory that the floor lets pile up
// is garbage the collector frees when it runs; it is not a reservation.
package heapfloor

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// maxPercent bounds the GOGC the floor may set, so that a nearly empty
// heap never means an unbounded one.
const maxPercent = 10_000

// Floor tunes the collector until Stop.
type Floor struct {
	floor uint64
	base  int // the GOGC in force at Start

	mu      sync.Mutex
	stopped bool
	percent int
	sample  []metrics.Sample
}

// Start sets a floor of floor bytes under the heap goal, on top of the
// GOGC in force (read from the runtime, so GOGC in the environment is
// honoured). It returns nil, doing nothing, when the collector is off
// (GOGC=off) or floor is 0.
func Start(floor uint64) *Floor {
	base := debug.SetGCPercent(100)
	debug.SetGCPercent(base)
	if base < 0 || floor == 0 {
		return nil
	}
	f := &Floor{floor: floor, base: base, percent: base,
		sample: []metrics.Sample{{Name: "/gc/heap/live:bytes"}}}
	f.adjust()
	f.arm()
	return f
}

// sentinel is allocated on its own (not in a tiny block, whose finalizer
// could wait for its neighbours) and becomes garbage at once, so its
// finalizer runs after the next collection.
type sentinel struct{ _ *byte }

func (f *Floor) arm() {
	runtime.SetFinalizer(&sentinel{}, func(*sentinel) {
		f.mu.Lock()
		stopped := f.stopped
		f.mu.Unlock()
		if stopped {
			return
		}
		f.adjust()
		f.arm()
	})
}

// adjust sets GOGC from the live heap just measured.
func (f *Floor) adjust() {
	metrics.Read(f.sample)
	live := uint64(0)
	if f.sample[0].Value.Kind() == metrics.KindUint64 {
		live = f.sample[0].Value.Uint64()
	}
	p := Percent(f.floor, live, f.base)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped || p == f.percent {
		return
	}
	f.percent = p
	debug.SetGCPercent(p)
}

// Percent is the GOGC that puts the goal of a heap with live bytes alive
// at floor, never below base.
func Percent(floor, live uint64, base int) int {
	if live == 0 {
		live = 1
	}
	if live >= floor {
		return base
	}
	p := (floor - live) * 100 / live
	// Small changes are not worth a call: round to a tenth.
	switch {
	case p > maxPercent:
		p = maxPercent
	case p > 1000:
		p = p / 100 * 100
	case p > 100:
		p = p / 10 * 10
	}
	return max(base, int(p))
}

// Percent reports the GOGC in force.
func (f *Floor) Percent() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.percent
}

// Stop gives GOGC back its value at Start.
func (f *Floor) Stop() {
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped {
		return
	}
	f.stopped = true
	debug.SetGCPercent(f.base)
}
