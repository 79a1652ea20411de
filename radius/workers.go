package radius

import "time"

// workers runs each request on a goroutine that is kept for the next one
// instead of starting a fresh goroutine per packet. A login goes deep (the
// middleware chain, then go-ldap's encoder), so a fresh goroutine grows
// and copies its stack several times on every request; a kept one has
// grown already. At most one goroutine per request in hand exists, as
// before: a goroutine idle for idleFor ends.
type workers struct {
	jobs    chan func() // unbuffered: a send succeeds only when a worker waits
	idleFor time.Duration
}

func newWorkers(idleFor time.Duration) *workers {
	return &workers{jobs: make(chan func()), idleFor: idleFor}
}

// run hands f to a waiting goroutine, or starts one.
func (w *workers) run(f func()) {
	select {
	case w.jobs <- f:
	default:
		go w.loop(f)
	}
}

func (w *workers) loop(f func()) {
	idle := time.NewTimer(w.idleFor)
	defer idle.Stop()
	for {
		f()
		f = nil // let the request's memory go while waiting
		idle.Reset(w.idleFor)
		select {
		case f = <-w.jobs:
		case <-idle.C:
			return
		}
	}
}
