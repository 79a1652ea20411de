// Command soak runs mfabridge under steady load for a long time and
// watches it for leaks. It is not a test and not part of CI.
//
// It starts its own slapd with --users users and the bridge (built from
// this checkout, without the race detector) on loopback, measures the
// peak PAP throughput with --workers clients signing every request, then
// runs at --load (70%) of that peak for --duration, sampling the bridge's
// RSS and goroutines from /metrics every --every. The first --warmup of
// that run fills the bridge's bounded caches (the duplicate cache keeps
// every reply for duplicate_window, 30s), so RSS "before" is the sample
// at the end of the warm-up; goroutines are compared idle to idle, just
// before the run and 2s after it. It prints a
// table and a last line with the growth, and exits 1 on any error or
// timeout, or when goroutines grew by more than 20 or RSS by more than
// 50%.
//
//	go run ./test/soak --duration 2m
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/template"
	"time"

	"layeh.com/radius"

	"github.com/mfabridge/mfabridge/test/harness"
)

// maxDuration bounds --duration, so that a typo cannot run for ever.
const maxDuration = 24 * time.Hour

var configTmpl = template.Must(template.New("cfg").Parse(`server:
  radius_listen: ["{{.Radius}}"]
  admin_listen: "{{.Admin}}"
clients:
  - name: soak
    address: 127.0.0.1
    secret: "file:{{.Dir}}/radius.secret"
    require_message_authenticator: true
ldap:
  urls: ["{{.LDAP}}"]
  bind_dn: "{{.ServiceDN}}"
  bind_password: "file:{{.Dir}}/ldap.secret"
  base_dn: "{{.PeopleDN}}"
  pool_size: {{.Pool}}
policies:
  default: {mfa: off}
logging: {level: info, format: json, audit_file: "{{.Dir}}/audit.log"}
`))

func main() {
	os.Exit(run())
}

type options struct {
	users, workers, pool int
	peakFor, duration    time.Duration
	every, timeout       time.Duration
	warmup               time.Duration
	load                 float64
	keep                 bool
}

func run() int {
	var o options
	flag.IntVar(&o.users, "users", 200, "users in the directory")
	flag.IntVar(&o.workers, "workers", 16, "concurrent RADIUS clients")
	flag.IntVar(&o.pool, "pool-size", 8, "ldap.pool_size of the bridge")
	flag.DurationVar(&o.peakFor, "peak-for", 10*time.Second, "how long to measure the peak throughput")
	flag.DurationVar(&o.duration, "duration", 10*time.Minute, "how long to run at --load of the peak (at most 24h)")
	flag.DurationVar(&o.every, "every", 10*time.Second, "sampling interval")
	flag.DurationVar(&o.warmup, "warmup", 40*time.Second, "time at the load before the baseline sample (at least server.duplicate_window)")
	flag.DurationVar(&o.timeout, "timeout", 5*time.Second, "how long a request may wait for its reply")
	flag.Float64Var(&o.load, "load", 0.7, "fraction of the peak throughput to run at")
	flag.BoolVar(&o.keep, "keep", false, "keep the working directory")
	flag.Parse()
	if o.duration < o.every || o.duration > maxDuration || o.users < 1 || o.workers < 1 || o.load <= 0 || o.load > 1 ||
		o.every <= 0 || o.warmup < 0 || o.warmup > time.Hour {
		fmt.Fprintln(os.Stderr, "soak: bad flags: --duration from --every to 24h, --warmup up to 1h, --users and --workers at least 1, --load in (0, 1]")
		return 2
	}
	if err := harness.Need("slapd"); err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	dir, err := os.MkdirTemp("", "mfabridge-soak-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		return 1
	}
	if o.keep {
		fmt.Println("working directory:", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	s, b, radiusAddr, secret, users, admin, err := start(dir, o)
	if s != nil {
		defer s.Stop()
	}
	if b != nil {
		defer b.Stop()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		return 1
	}
	ld := &loader{server: radiusAddr, secret: secret, users: users, timeout: o.timeout}

	fmt.Printf("soak: %d users, %d workers signing every request, ldap.pool_size %d, bridge built without -race\n", o.users, o.workers, o.pool)
	peak, err := ld.closedLoop(ctx, o.workers, o.peakFor)
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		return 1
	}
	fmt.Printf("peak: %d requests in %s = %.0f Access-Accept/s (%d errors, %d timeouts, p50 %s p99 %s)\n",
		peak.ok+peak.errors+peak.timeouts, o.peakFor, float64(peak.ok)/o.peakFor.Seconds(), peak.errors, peak.timeouts,
		peak.pct(0.5), peak.pct(0.99))
	rate := o.load * float64(peak.ok) / o.peakFor.Seconds()
	if rate < 1 {
		fmt.Fprintln(os.Stderr, "soak: the peak throughput is too low to run at a fraction of it")
		return 1
	}
	time.Sleep(2 * time.Second) // let the peak's requests drain
	rssCold, gorCold, err := sample(admin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		return 1
	}
	fmt.Printf("running at %.0f%% of the peak = %.0f requests/s for %s after a warm-up of %s, sampling every %s\n\n",
		o.load*100, rate, o.duration, o.warmup, o.every)
	fmt.Printf("%8s %9s %8s %7s %8s %8s %8s %8s %10s\n", "elapsed", "requests", "rate/s", "errors", "timeouts", "p50", "p99", "RSS MB", "goroutines")
	fmt.Printf("%8s %9s %8s %7s %8s %8s %8s %8.1f %10.0f\n", "0s", "-", "-", "-", "-", "-", "-", rssCold/1e6, gorCold)

	rss0, gor0 := math.NaN(), gorCold
	totals := ld.openLoop(ctx, o.workers, rate, o.warmup+o.duration, o.every, func(elapsed time.Duration, w *window) {
		rss, gor, err := sample(admin)
		if err != nil {
			fmt.Fprintln(os.Stderr, "soak: sampling:", err)
			rss, gor = math.NaN(), math.NaN()
		}
		note := ""
		switch {
		case elapsed < o.warmup:
			note = "  (warm-up)"
		case math.IsNaN(rss0):
			rss0, note = rss, "  <- RSS before"
		}
		fmt.Printf("%8s %9d %8.0f %7d %8d %8s %8s %8.1f %10.0f%s\n", elapsed.Round(time.Second), w.ok+w.errors+w.timeouts,
			float64(w.ok+w.errors+w.timeouts)/o.every.Seconds(), w.errors, w.timeouts, w.pct(0.5), w.pct(0.99), rss/1e6, gor, note)
	})
	if math.IsNaN(rss0) {
		fmt.Fprintln(os.Stderr, "soak: no sample after the warm-up")
		return 1
	}
	time.Sleep(2 * time.Second) // let the last requests finish before the final sample
	rss1, gor1, err := sample(admin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		return 1
	}
	if b.Exited() {
		fmt.Fprintf(os.Stderr, "soak: mfabridge exited:\n%s", b.Logs())
		return 1
	}
	if fi, err := os.Stat(filepath.Join(dir, "audit.log")); err == nil {
		fmt.Printf("\naudit log: %.1f MB\n", float64(fi.Size())/1e6)
	}
	fmt.Printf("total: %d requests, %d Access-Accept, %d errors, %d timeouts, p50 %s p99 %s\n",
		totals.ok+totals.errors+totals.timeouts, totals.ok, totals.errors, totals.timeouts, totals.pct(0.5), totals.pct(0.99))
	var bad []string
	if totals.errors+totals.timeouts > 0 {
		bad = append(bad, fmt.Sprintf("%d errors and %d timeouts (first: %s)", totals.errors, totals.timeouts, totals.first))
	}
	if gor1-gor0 > 20 {
		bad = append(bad, fmt.Sprintf("goroutines grew by %.0f (more than 20)", gor1-gor0))
	}
	if rss1 > 1.5*rss0 {
		bad = append(bad, fmt.Sprintf("RSS grew by %.0f%% (more than 50%%)", 100*(rss1/rss0-1)))
	}
	if ctx.Err() != nil {
		bad = append(bad, "interrupted")
	}
	verdict := "OK"
	if len(bad) > 0 {
		verdict = "FAIL: " + strings.Join(bad, "; ")
	}
	fmt.Printf("RSS %.1f MB -> %.1f MB (%+.1f%%) from the end of the warm-up to the end (%.1f MB before the warm-up); goroutines when idle %.0f -> %.0f (%+.0f): %s\n",
		rss0/1e6, rss1/1e6, 100*(rss1/rss0-1), rssCold/1e6, gor0, gor1, gor1-gor0, verdict)
	if len(bad) > 0 {
		return 1
	}
	return 0
}

// start runs slapd with the users and the bridge in front of it.
func start(dir string, o options) (s *harness.SLAPD, b *harness.Bridge, radiusAddr, secret string, users []harness.User, admin string, err error) {
	users = make([]harness.User, o.users)
	for i := range users {
		pw := make([]byte, 8)
		rand.Read(pw)
		users[i] = harness.User{UID: fmt.Sprintf("soak%05d", i), Password: "Pw-" + hex.EncodeToString(pw)}
	}
	sdir := filepath.Join(dir, "slapd")
	if err = os.MkdirAll(sdir, 0o700); err != nil {
		return
	}
	fmt.Printf("starting slapd with %d users and building mfabridge…\n", o.users)
	if s, err = harness.StartSLAPD(sdir, users); err != nil {
		return
	}
	bin, err := harness.BuildBridge(dir)
	if err != nil {
		return
	}
	rp, err := harness.FreePort()
	if err != nil {
		return
	}
	ap, err := harness.FreePort()
	if err != nil {
		return
	}
	sb := make([]byte, 16)
	rand.Read(sb)
	secret = hex.EncodeToString(sb)
	if err = os.WriteFile(filepath.Join(dir, "radius.secret"), []byte(secret+"\n"), 0o600); err != nil {
		return
	}
	if err = os.WriteFile(filepath.Join(dir, "ldap.secret"), []byte(harness.ServicePass+"\n"), 0o600); err != nil {
		return
	}
	admin = fmt.Sprintf("127.0.0.1:%d", ap)
	radiusAddr = fmt.Sprintf("127.0.0.1:%d", rp)
	cfgPath := filepath.Join(dir, "mfabridge.yaml")
	var cfg strings.Builder
	err = configTmpl.Execute(&cfg, map[string]any{
		"Radius": radiusAddr, "Admin": admin, "Dir": dir, "LDAP": s.URL,
		"ServiceDN": harness.ServiceDN, "PeopleDN": harness.PeopleDN, "Pool": o.pool,
	})
	if err != nil {
		return
	}
	if err = os.WriteFile(cfgPath, []byte(cfg.String()), 0o600); err != nil {
		return
	}
	b, err = harness.StartBridge(bin, cfgPath)
	return
}

// sample reads the bridge's RSS and goroutine count from /metrics.
func sample(admin string) (rss, goroutines float64, err error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + admin + "/metrics")
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	found := 0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		switch name {
		case "process_resident_memory_bytes":
			rss, err = strconv.ParseFloat(value, 64)
			found++
		case "go_goroutines":
			goroutines, err = strconv.ParseFloat(value, 64)
			found++
		}
		if err != nil {
			return 0, 0, err
		}
	}
	if found != 2 {
		return 0, 0, errors.New("/metrics lacks process_resident_memory_bytes or go_goroutines")
	}
	return rss, goroutines, sc.Err()
}

// window counts the outcomes of requests over a period.
type window struct {
	ok, errors, timeouts int
	lat                  []time.Duration
	first                string // the first error
}

func (w *window) add(took time.Duration, err error) {
	switch {
	case err == nil:
		w.ok++
		w.lat = append(w.lat, took)
	case errors.Is(err, harness.ErrNoReply):
		w.timeouts++
	default:
		w.errors++
	}
	if err != nil && w.first == "" {
		w.first = err.Error()
	}
}

func (w *window) merge(o *window) {
	w.ok, w.errors, w.timeouts = w.ok+o.ok, w.errors+o.errors, w.timeouts+o.timeouts
	w.lat = append(w.lat, o.lat...)
	if w.first == "" {
		w.first = o.first
	}
}

func (w *window) pct(p float64) string {
	if len(w.lat) == 0 {
		return "-"
	}
	sort.Slice(w.lat, func(i, j int) bool { return w.lat[i] < w.lat[j] })
	d := w.lat[min(len(w.lat)-1, int(p*float64(len(w.lat))))]
	if d < 10*time.Millisecond {
		return d.Round(10 * time.Microsecond).String()
	}
	return d.Round(time.Millisecond).String()
}

// loader sends signed PAP requests for random users and wants
// Access-Accept.
type loader struct {
	server, secret string
	users          []harness.User
	timeout        time.Duration
}

func (l *loader) once(c *harness.Client, n uint64) (time.Duration, error) {
	u := l.users[n%uint64(len(l.users))]
	start := time.Now()
	resp, _, err := c.Exchange(harness.Request(l.secret, u.UID, u.Password, true), l.timeout)
	took := time.Since(start)
	if err == nil && resp.Code != radius.CodeAccessAccept {
		err = fmt.Errorf("%s for %s", resp.Code, u.UID)
	}
	return took, err
}

// closedLoop runs workers sending back to back for d.
func (l *loader) closedLoop(ctx context.Context, workers int, d time.Duration) (*window, error) {
	return l.openLoop(ctx, workers, 0, d, d+time.Hour, nil), nil
}

// openLoop runs workers for d, each sending at rate/workers per second
// (back to back when rate is 0), and calls report with the outcomes of
// each period of every.
func (l *loader) openLoop(ctx context.Context, workers int, rate float64, d, every time.Duration, report func(time.Duration, *window)) *window {
	start := time.Now()
	stop := start.Add(d)
	var mu sync.Mutex
	cur, total := &window{}, &window{}
	var seq atomic.Uint64
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		c, err := harness.NewClient("127.0.0.1", l.server, l.secret)
		if err != nil {
			mu.Lock()
			cur.add(0, err)
			mu.Unlock()
			continue
		}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			defer c.Close()
			var interval time.Duration
			if rate > 0 {
				interval = time.Duration(float64(time.Second) * float64(workers) / rate)
			}
			// Spread the workers' first requests over one interval.
			next := start.Add(interval * time.Duration(i) / time.Duration(workers))
			for ctx.Err() == nil {
				if interval > 0 {
					time.Sleep(time.Until(next))
					next = next.Add(interval)
				}
				if !time.Now().Before(stop) {
					return
				}
				took, err := l.once(c, seq.Add(1))
				mu.Lock()
				cur.add(took, err)
				mu.Unlock()
			}
		}(i)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-done:
			// The requests since the last report (a partial period) count
			// in the total only.
			mu.Lock()
			total.merge(cur)
			mu.Unlock()
			return total
		case <-tick.C:
			mu.Lock()
			w := cur
			cur = &window{}
			mu.Unlock()
			if report != nil {
				report(time.Since(start), w)
			}
			total.merge(w)
		}
	}
}
