package radius

import (
	"runtime"
	"sync"
	"testing"
	"time"
)

func TestWorkersReuseAndEnd(t *testing.T) {
	base := runtime.NumGoroutine()
	w := newWorkers(200 * time.Millisecond)

	// Ten jobs at once run at once: each waits for all ten to start.
	var started, wg sync.WaitGroup
	started.Add(10)
	release := make(chan struct{})
	for range 10 {
		wg.Add(1)
		w.run(func() { defer wg.Done(); started.Done(); <-release })
	}
	all := make(chan struct{})
	go func() { started.Wait(); close(all) }()
	select {
	case <-all:
	case <-time.After(5 * time.Second):
		t.Fatal("ten jobs handed over at once did not all start")
	}
	close(release)
	wg.Wait()

	// Jobs one after another are taken by the idle goroutines: no new one.
	time.Sleep(100 * time.Millisecond) // let the goroutines reach their wait
	idle := runtime.NumGoroutine()
	for range 100 {
		done := make(chan struct{})
		w.run(func() { close(done) })
		<-done
	}
	if n := runtime.NumGoroutine(); n > idle {
		t.Errorf("%d goroutines after 100 jobs in turn, %d idle before: a job started a goroutine", n, idle)
	}

	// Idle goroutines end.
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines 5 s after the last job, %d before", runtime.NumGoroutine(), base)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
