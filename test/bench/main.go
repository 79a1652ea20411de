// Command bench measures mfabridge against the reference a user would
// pick instead, FreeRADIUS 3.2 with rlm_ldap, and against slapd's own
// ceilings, all on this machine and on loopback, and prints one Markdown
// table with every figure, the targets beside them and PASS or MISS.
//
//	go run ./test/bench                 # about 5 minutes
//	go run ./test/bench --quick         # small numbers, under 2 minutes (CI)
//
// It starts a throwaway slapd with --users users (loaded with slapadd),
// the bridge built from this checkout without the race detector, and
// FreeRADIUS (Debian packages freeradius and freeradius-ldap) checking
// PAP by an LDAP bind against the same slapd with a connection pool as
// large as the bridge's two pools together. One load generator drives
// both: W goroutines, each with its own UDP socket, one signed
// (Message-Authenticator) request in flight at a time, a 1 s timeout and
// no retransmission, for --duration at each --concurrency.
//
// Then the bridge alone: Status-Server/s, an open-loop run at half of its
// peak, full TOTP challenge flows and append-mode logins (with
// --code-users users enrolled in bulk: each user's TOTP time step is
// accepted once, so each is used at most once per 30 s step), and the
// memory per open challenge session (RSS and heap growth over --sessions
// unanswered challenges).
//
// These are benchmark figures, not tests: a MISS does not change the exit
// status. The exit status is 1 when something could not be measured (a
// server did not start, a sanity check failed, a step completed nothing)
// or the hard stop (--max-time) was reached, 2 for bad flags.
package main

import (
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mfabridge/mfabridge/internal/heapfloor"
	"github.com/mfabridge/mfabridge/test/harness"
)

type options struct {
	profile     string // directory for CPU profiles of the bridge; "" for none
	quick       bool
	duration    time.Duration
	warmup      time.Duration
	users       int
	codeUsers   int
	sessions    int
	concurrency []int
	flowW       int
	pool        int
	frThreads   int
	skipFR      bool
	skipShared  bool
	cache       bool
	maxTime     time.Duration
	keep        bool
}

func main() {
	// The load generator allocates per request too; the same floor as the
	// bridge's keeps its collections (and the jitter they add to every
	// server's latencies) rare.
	f := heapfloor.Start(64 << 20)
	code := run0()
	f.Stop()
	os.Exit(code)
}

func parseFlags() (options, error) {
	var o options
	var conc string
	flag.BoolVar(&o.quick, "quick", false, "small numbers for CI: 100 users, 2s per step, 1,000 sessions, 2,000 code users")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "how long each measured step runs")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Second, "unmeasured load before each step")
	flag.IntVar(&o.users, "users", 1000, "users in the directory for the PAP comparison")
	flag.IntVar(&o.codeUsers, "code-users", 100_000, "TOTP-enrolled users for the code flows (each usable once per 30s step)")
	flag.IntVar(&o.sessions, "sessions", 100_000, "open challenge sessions for the memory measurement")
	flag.StringVar(&conc, "concurrency", "8,32,128", "concurrent clients (comma-separated)")
	flag.IntVar(&o.flowW, "flow-concurrency", 0, "concurrent clients for the code flows, Status-Server and the half-peak run (default: the highest --concurrency)")
	flag.IntVar(&o.pool, "pool-size", 32, "the bridge's ldap.pool_size (it has two pools; 32 each, so that 128 clients do not queue for 8 connections); FreeRADIUS gets twice as many connections and threads")
	flag.IntVar(&o.frThreads, "freeradius-threads", 0, "FreeRADIUS worker threads (default: twice --pool-size, one per LDAP connection)")
	flag.BoolVar(&o.skipFR, "skip-freeradius", false, "do not start FreeRADIUS (its rows say so)")
	flag.BoolVar(&o.skipShared, "skip-shared", false, "do not measure the backends of several instances (Redis, PostgreSQL)")
	flag.StringVar(&o.profile, "profile", "", "write CPU profiles of the bridge during the PAP steps and the code flows into this directory (turns on server.pprof)")
	flag.BoolVar(&o.cache, "cache", true, "also measure the bridge with ldap.cache_ttl: 30s (skipped with a note when check-config rejects the key)")
	flag.DurationVar(&o.maxTime, "max-time", 40*time.Minute, "hard stop for the whole run")
	flag.BoolVar(&o.keep, "keep", false, "keep the working directory")
	flag.Parse()
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if o.quick {
		quick := map[string]func(){
			"duration":   func() { o.duration = 2 * time.Second },
			"warmup":     func() { o.warmup = 500 * time.Millisecond },
			"users":      func() { o.users = 100 },
			"code-users": func() { o.codeUsers = 2000 },
			"sessions":   func() { o.sessions = 1000 },
			"max-time":   func() { o.maxTime = 4 * time.Minute },
		}
		for name, f := range quick {
			if !set[name] {
				f()
			}
		}
	}
	if flag.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", flag.Args())
	}
	for _, f := range strings.Split(conc, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 4096 {
			return o, fmt.Errorf("--concurrency: %q is not a number from 1 to 4096", f)
		}
		o.concurrency = append(o.concurrency, n)
	}
	if o.flowW == 0 {
		o.flowW = o.concurrency[len(o.concurrency)-1]
		for _, w := range o.concurrency {
			o.flowW = max(o.flowW, w)
		}
	}
	switch {
	case o.duration < 100*time.Millisecond || o.duration > 10*time.Minute:
		return o, fmt.Errorf("--duration from 100ms to 10m")
	case o.warmup < 0 || o.warmup > time.Minute:
		return o, fmt.Errorf("--warmup from 0 to 1m")
	case o.users < 1 || o.users > 1_000_000, o.codeUsers < 1 || o.codeUsers > 1_000_000:
		return o, fmt.Errorf("--users and --code-users from 1 to 1,000,000")
	case o.sessions < 1 || o.sessions > 1_000_000:
		return o, fmt.Errorf("--sessions from 1 to 1,000,000")
	case o.flowW < 1 || o.flowW > 4096:
		return o, fmt.Errorf("--flow-concurrency from 1 to 4096")
	case o.pool < 1 || o.pool > 256:
		return o, fmt.Errorf("--pool-size from 1 to 256")
	case o.frThreads < 0 || o.frThreads > 1024:
		return o, fmt.Errorf("--freeradius-threads up to 1024")
	case o.maxTime < 10*time.Second || o.maxTime > 24*time.Hour:
		return o, fmt.Errorf("--max-time from 10s to 24h")
	}
	if o.frThreads == 0 {
		o.frThreads = 2 * o.pool
	}
	if o.profile != "" {
		if err := os.MkdirAll(o.profile, 0o755); err != nil {
			return o, fmt.Errorf("--profile: %w", err)
		}
	}
	return o, nil
}

func run0() int {
	o, err := parseFlags()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 2
	}
	need := []string{"slapd", "slappasswd", "radclient"}
	if err := harness.Need(need...); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	if !o.skipFR {
		if err := harness.NeedFreeRADIUS(); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.maxTime)
	defer cancel()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The last resort: whatever hangs, the process ends; the servers it
	// started die with it (Pdeathsig).
	hammer := time.AfterFunc(o.maxTime+time.Minute, func() {
		fmt.Fprintln(os.Stderr, "bench: hard stop: still running a minute after --max-time")
		os.Exit(1)
	})
	defer hammer.Stop()

	dir, err := os.MkdirTemp("", "mfabridge-bench-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	if o.keep {
		fmt.Fprintln(os.Stderr, "bench: working directory", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	b := &bench{o: o, start: time.Now(), res: newResults(o)}
	code := b.run(ctx, dir)
	b.print(os.Stdout)
	if ctx.Err() != nil {
		fmt.Fprintf(os.Stderr, "bench: stopped early: %v\n", context.Cause(ctx))
		code = 1
	}
	if len(b.failures) > 0 {
		fmt.Fprintln(os.Stderr, "bench: not everything could be measured:")
		for _, f := range b.failures {
			fmt.Fprintln(os.Stderr, "  -", f)
		}
		code = 1
	}
	return code
}

// bench is one run.
type bench struct {
	o        options
	e        *env
	start    time.Time
	res      *results
	failures []string
	versions struct{ slapd, freeradius, bridge string }
	setupT   struct{ build, slapd, bulk, enrol time.Duration }
}

func (b *bench) progress(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "bench: [%4.0fs] %s\n", time.Since(b.start).Seconds(), fmt.Sprintf(format, a...))
}

func (b *bench) fail(format string, a ...any) {
	msg := fmt.Sprintf(format, a...)
	b.failures = append(b.failures, msg)
	b.progress("FAILED: %s", msg)
}

// step runs a warm-up (unmeasured) then a measured step, sampling the
// CPU time of server (a process id) and slapd while it is measured.
func (b *bench) step(ctx context.Context, o runOpts, server int) *stats {
	if b.o.warmup > 0 {
		w := o
		w.dur = b.o.warmup
		run(ctx, w)
	}
	return b.measure(ctx, o, server)
}

// measure runs o once, sampling the CPU time of server and slapd.
func (b *bench) measure(ctx context.Context, o runOpts, server int) *stats {
	return b.sampled(server, func() *stats { return run(ctx, o) })
}

// ceiling is ldapCeiling with slapd's CPU time sampled.
func (b *bench) ceiling(ctx context.Context, workers int, search bool, rate float64) *stats {
	return b.sampled(0, func() *stats {
		return ldapCeiling(ctx, b.e.slapd.URL, b.e.users, workers, b.o.duration, search, rate)
	})
}

// sampled runs f, sampling the CPU time of server (0 for none) and slapd.
func (b *bench) sampled(server int, f func() *stats) *stats {
	m := startCPU(server, b.e.slapd.PID())
	s := f()
	m.stop(s)
	return s
}

func (b *bench) run(ctx context.Context, dir string) int {
	o := b.o
	b.versions.slapd = harness.SlapdVersion()
	b.versions.freeradius = harness.FreeRADIUSVersion()
	b.versions.bridge = gitDescribe()

	secret := randomHex(16)
	b.e = &env{dir: dir, secret: secret}
	e := b.e
	for name, v := range map[string]string{"radius.secret": secret, "ldap.secret": harness.ServicePass, "store.key": randomHex(32)} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v+"\n"), 0o600); err != nil {
			b.fail("%v", err)
			return 1
		}
	}
	e.users = makeUsers("u", o.users, false)
	e.codeUsers = makeUsers("c", o.codeUsers, true)

	b.progress("building mfabridge (without -race) and starting slapd with %d users", o.users)
	built := make(chan error, 1)
	go func() {
		t := time.Now()
		var err error
		e.bin, err = harness.BuildBridgePlain(dir)
		b.setupT.build = time.Since(t)
		built <- err
	}()
	t := time.Now()
	sdir := filepath.Join(dir, "slapd")
	os.MkdirAll(sdir, 0o700)
	s, err := harness.StartSLAPDQuiet(sdir, directoryUsers(e.users))
	b.setupT.slapd = time.Since(t)
	if err := <-built; err != nil {
		if s != nil {
			s.Stop()
		}
		b.fail("build: %v", err)
		return 1
	}
	if err != nil {
		b.fail("slapd: %v", err)
		return 1
	}
	e.slapd = s
	defer s.Stop()

	b.papPhase(ctx)
	if ctx.Err() != nil {
		return 1
	}
	b.codePhase(ctx)
	if ctx.Err() != nil {
		return 1
	}
	b.sharedPhase(ctx)
	return 0
}

// papPhase: slapd's ceilings, the bridge and FreeRADIUS at each
// concurrency, interleaved so that drift hits all alike; then the bridge
// alone (Status-Server, half of peak) and with the entry cache.
func (b *bench) papPhase(ctx context.Context) {
	o, e, r := b.o, b.e, b.res
	bridge, err := e.startBridge(ctx, bridgeConf{Name: "pap", Pool: o.pool, MaxInFlight: maxInFlight(o), Pprof: o.profile != ""}, e.users)
	if err != nil {
		b.fail("mfabridge (PAP): %v", err)
		return
	}
	defer bridge.stop()

	var fr *harness.FreeRADIUS
	if !o.skipFR {
		frDir := filepath.Join(e.dir, "freeradius")
		os.MkdirAll(frDir, 0o700)
		fr, err = harness.StartFreeRADIUS(harness.FreeRADIUSConfig{
			Dir: frDir, Secret: e.secret, LDAPHost: "127.0.0.1", LDAPPort: e.slapd.Port(),
			BindDN: harness.ServiceDN, BindPassword: harness.ServicePass, BaseDN: harness.PeopleDN,
			Filter:  strings.ReplaceAll(userFilter, "{username}", "%{User-Name}"),
			PoolMax: 2 * o.pool, Threads: o.frThreads, Timeout: 5,
		})
		if err == nil {
			defer fr.Stop()
			if err = radclientCheck(ctx, "FreeRADIUS", fr.Addr, e.secret, e.users[0]); err != nil {
				fr.Stop()
				fr = nil
			}
		}
		if err != nil {
			fr = nil
			b.fail("FreeRADIUS: %v", err)
			r.frNote = "not measured: " + firstLine(err.Error())
		}
	} else {
		r.frNote = "skipped (--skip-freeradius)"
	}

	for _, w := range o.concurrency {
		if ctx.Err() != nil {
			return
		}
		b.progress("W=%d: slapd simple binds", w)
		r.bindCeil[w] = b.ceiling(ctx, w, false, 0)
		b.progress("W=%d: slapd search+bind", w)
		r.sbCeil[w] = b.ceiling(ctx, w, true, 0)
		b.progress("W=%d: mfabridge PAP+LDAP", w)
		stopProfile := b.cpuProfile(bridge.Admin, fmt.Sprintf("pap-w%d", w), o.warmup+o.duration)
		r.bridge[w] = b.step(ctx, runOpts{local: "127.0.0.1", server: bridge.Radius, secret: []byte(e.secret), workers: w, dur: o.duration, op: papOp(e.users)}, bridge.PID())
		stopProfile()
		if fr != nil {
			b.progress("W=%d: FreeRADIUS PAP+LDAP", w)
			r.fr[w] = b.step(ctx, runOpts{local: "127.0.0.1", server: fr.Addr, secret: []byte(e.secret), workers: w, dur: o.duration, op: papOp(e.users)}, fr.PID())
		}
		b.progress("W=%d: slapd %.0f binds/s, %.0f search+bind/s; mfabridge %.0f/s; FreeRADIUS %s", w,
			r.bindCeil[w].rate(), r.sbCeil[w].rate(), r.bridge[w].rate(), rateOrDash(r.fr[w]))
	}
	// Peak at the flow concurrency, then an open loop at half of it, and
	// FreeRADIUS at the same offered load for reference (the load
	// generator's own jitter shows there too).
	if ctx.Err() != nil {
		return
	}
	peak := r.bridge[o.flowW]
	if peak == nil {
		b.progress("W=%d: mfabridge PAP+LDAP peak", o.flowW)
		peak = b.step(ctx, runOpts{local: "127.0.0.1", server: bridge.Radius, secret: []byte(e.secret), workers: o.flowW, dur: o.duration, op: papOp(e.users)}, bridge.PID())
		r.bridge[o.flowW] = peak
	}
	r.halfRate = peak.rate() / 2
	if r.halfRate >= 1 {
		b.progress("W=%d: mfabridge open loop at %.0f requests/s (half of the peak)", o.flowW, r.halfRate)
		stopProfile := b.cpuProfile(bridge.Admin, "half-peak", o.duration)
		r.half = b.measure(ctx, runOpts{local: "127.0.0.1", server: bridge.Radius, secret: []byte(e.secret), workers: o.flowW, dur: o.duration, rate: r.halfRate, op: papOp(e.users)}, bridge.PID())
		stopProfile()
		if fr != nil {
			b.progress("W=%d: FreeRADIUS open loop at %.0f requests/s", o.flowW, r.halfRate)
			r.frHalf = b.measure(ctx, runOpts{local: "127.0.0.1", server: fr.Addr, secret: []byte(e.secret), workers: o.flowW, dur: o.duration, rate: r.halfRate, op: papOp(e.users)}, fr.PID())
		}
		// The floor of the setup: the same pacing with Status-Server,
		// which touches no directory.
		b.progress("W=%d: mfabridge Status-Server open loop at %.0f requests/s", o.flowW, r.halfRate)
		r.statusHalf = b.measure(ctx, runOpts{local: "127.0.0.1", server: bridge.Radius, secret: []byte(e.secret), workers: o.flowW, dur: o.duration, rate: r.halfRate, op: statusOp()}, bridge.PID())
		b.progress("slapd search+bind open loop at %.0f logins/s on %d connection pairs", r.halfRate, o.pool)
		r.sbHalf = b.ceiling(ctx, o.pool, true, r.halfRate)
	}
	if fr != nil {
		if fr.Exited() {
			b.fail("FreeRADIUS exited during the run:\n%s", fr.Log())
		}
		r.frLog = errorLines(fr.Log(), 3)
		fr.Stop()
	}
	b.progress("W=%d: mfabridge Status-Server", o.flowW)
	r.status = b.step(ctx, runOpts{local: "127.0.0.1", server: bridge.Radius, secret: []byte(e.secret), workers: o.flowW, dur: o.duration, op: statusOp()}, bridge.PID())
	if bridge.Exited() {
		b.fail("mfabridge (PAP) exited during the run:\n%s", bridge.Logs())
	}
	b.drops("pap", bridge.Admin)
	bridge.stop()

	if !o.cache {
		r.cacheNote = "skipped (--cache=false)"
		return
	}
	cc := bridgeConf{Name: "cache", Pool: o.pool, MaxInFlight: maxInFlight(o), CacheTTL: "30s"}
	ok, out, err := e.checkConfigAccepts(cc)
	switch {
	case err != nil:
		b.fail("check-config: %v", err)
		return
	case !ok:
		r.cacheNote = "skipped: check-config rejects ldap.cache_ttl: " + firstLine(out)
		b.progress("%s", r.cacheNote)
		return
	}
	cb, err := e.startBridge(ctx, cc, e.users)
	if err != nil {
		b.fail("mfabridge (cache_ttl 30s): %v", err)
		return
	}
	defer cb.stop()
	for _, w := range o.concurrency {
		if ctx.Err() != nil {
			return
		}
		b.progress("W=%d: mfabridge PAP+LDAP with cache_ttl 30s", w)
		r.cache[w] = b.step(ctx, runOpts{local: "127.0.0.1", server: cb.Radius, secret: []byte(e.secret), workers: w, dur: o.duration, op: papOp(e.users)}, cb.PID())
	}
	if cb.Exited() {
		b.fail("mfabridge (cache_ttl 30s) exited during the run:\n%s", cb.Logs())
	}
	b.drops("cache", cb.Admin)
}

// codePhase: the code users join the directory and the enrolment store;
// then a PAP reference on the same bridge and users, challenge flows,
// append-mode logins, and the memory of open sessions.
func (b *bench) codePhase(ctx context.Context) {
	o, e, r := b.o, b.e, b.res
	b.progress("adding %d code users to slapd with slapadd", o.codeUsers)
	t := time.Now()
	if err := e.slapd.BulkAdd(directoryUsers(e.codeUsers)); err != nil {
		b.fail("slapadd: %v", err)
		return
	}
	b.setupT.bulk = time.Since(t)
	fc := bridgeConf{Name: "flows", Pool: o.pool, MaxInFlight: maxInFlight(o), Store: true, Pprof: o.profile != ""}
	cfgPath, err := e.writeBridgeConfig(fc)
	if err != nil {
		b.fail("%v", err)
		return
	}
	b.progress("enrolling %d users for TOTP with mfabridge enrol import --csv", o.codeUsers)
	t = time.Now()
	if err := e.enrol(ctx, cfgPath, e.codeUsers); err != nil {
		b.fail("%v", err)
		return
	}
	b.setupT.enrol = time.Since(t)

	fb, err := e.startBridge(ctx, fc, e.codeUsers)
	if err != nil {
		b.fail("mfabridge (flows): %v", err)
		return
	}
	defer fb.stop()
	secret := []byte(e.secret)
	w := o.flowW
	b.progress("W=%d: mfabridge PAP+LDAP on the code users (reference for the flows)", w)
	stopProfile := b.cpuProfile(fb.Admin, "pap-ref", o.warmup+o.duration)
	r.papRef = b.step(ctx, runOpts{local: "127.0.0.1", server: fb.Radius, secret: secret, workers: w, dur: o.duration, op: papOp(e.codeUsers)}, fb.PID())
	stopProfile()
	// One allocator for both: a user's time step is used once in all.
	// With few users (--quick) each flow gets its own half instead, so
	// that the second does not find the step's users used up.
	// The allocator hands users out in order; a shuffled order makes the
	// directory see random users, as the PAP reference's random picks do.
	order := shuffled(e.codeUsers)
	chUsers, apUsers := order, order
	chAlloc := newAllocator(len(order))
	apAlloc := chAlloc
	if o.quick && len(order) >= 2 {
		h := len(order) / 2
		chUsers, apUsers = order[:h], order[h:]
		chAlloc, apAlloc = newAllocator(len(chUsers)), newAllocator(len(apUsers))
	}
	r.flowUsers = len(chUsers)
	b.progress("W=%d: mfabridge TOTP challenge flows", w)
	stopProfile = b.cpuProfile(fb.Admin, "challenge", o.duration)
	r.challenge = b.measure(ctx, runOpts{local: "127.0.0.2", server: fb.Radius, secret: secret, workers: w, dur: o.duration, op: challengeOp(chUsers, chAlloc)}, fb.PID())
	stopProfile()
	b.progress("W=%d: mfabridge append-mode logins", w)
	stopProfile = b.cpuProfile(fb.Admin, "append", o.duration)
	r.appendM = b.measure(ctx, runOpts{local: "127.0.0.3", server: fb.Radius, secret: secret, workers: w, dur: o.duration, op: appendOp(apUsers, apAlloc)}, fb.PID())
	stopProfile()
	if fb.Exited() {
		b.fail("mfabridge (flows) exited during the run:\n%s", fb.Logs())
	}
	b.drops("flows", fb.Admin)
	fb.stop()
	if ctx.Err() != nil {
		return
	}
	b.memoryPhase(ctx)
}

// memoryPhase opens sessions on a fresh bridge and reads its memory.
func (b *bench) memoryPhase(ctx context.Context) {
	o, e, r := b.o, b.e, b.res
	dupWindow := 5 * time.Second
	if o.quick {
		dupWindow = 2 * time.Second
	}
	r.memDupWindow = dupWindow
	mc := bridgeConf{Name: "sessions", Pool: o.pool, MaxInFlight: maxInFlight(o), Store: true,
		ChallengeTimeout: "1h", DuplicateWindow: dupWindow.String()}
	mb, err := e.startBridge(ctx, mc, nil)
	if err != nil {
		b.fail("mfabridge (sessions): %v", err)
		return
	}
	defer mb.stop()
	secret := []byte(e.secret)
	users := shuffled(e.codeUsers)
	open := func(n int, from []benchUser) *stats {
		sctx, cancel := context.WithCancel(ctx)
		defer cancel()
		return run(sctx, runOpts{local: "127.0.0.2", server: mb.Radius, secret: secret, workers: o.flowW, dur: 30 * time.Minute,
			op: openSessionOp(from, n, cancel)})
	}
	// Warm up: pools, buffers and the state map's first growth are not
	// session memory.
	warm := min(1000, max(1, o.sessions/10))
	b.progress("opening %d sessions to warm up", warm)
	ws := open(warm, users)
	time.Sleep(dupWindow + time.Second)
	before, err := readMem(mb.Admin)
	if err != nil {
		b.fail("metrics: %v", err)
		return
	}
	// The measured sessions start with the users after the warm-up's.
	k := warm % len(users)
	rotated := append(append(make([]benchUser, 0, len(users)), users[k:]...), users[:k]...)
	b.progress("W=%d: opening %d challenge sessions, never answered", o.flowW, o.sessions)
	ms := open(o.sessions, rotated)
	// Let the duplicate cache drop the replies: its entries are not
	// sessions.
	time.Sleep(dupWindow + time.Second)
	after, err := readMem(mb.Admin)
	if err != nil {
		b.fail("metrics: %v", err)
		return
	}
	r.mem, r.memWarm, r.memBefore, r.memAfter = ms, ws, before, after
	if mb.Exited() {
		b.fail("mfabridge (sessions) exited during the run:\n%s", mb.Logs())
	}
	b.drops("sessions", mb.Admin)
}

// maxInFlight lets every load-generator socket have its request in hand:
// the bridge's per-client bound (default 32) would otherwise drop the
// excess of one client at W=128 as overload, and FreeRADIUS has no such
// bound. It is twice the concurrency because the bridge frees a slot only
// after the reply has left, so a client's next request can arrive while
// its previous one still holds its slot.
func maxInFlight(o options) int {
	m := o.flowW
	for _, w := range o.concurrency {
		m = max(m, w)
	}
	return max(32, 2*m)
}

// drops records the packets a bridge dropped, from its /metrics.
func (b *bench) drops(name, admin string) {
	d, err := readDrops(admin)
	if err != nil {
		b.res.drops = append(b.res.drops, fmt.Sprintf("%s: /metrics: %v", name, err))
		return
	}
	b.res.drops = append(b.res.drops, name+": "+d)
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return fmt.Sprintf("%x", b)
}

func gitDescribe() string {
	root, err := harness.ModuleRoot()
	if err != nil {
		return "unknown"
	}
	cmd := exec.Command("git", "describe", "--always", "--dirty")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return s
}

func rateOrDash(s *stats) string {
	if s == nil {
		return "-"
	}
	return fmt.Sprintf("%.0f/s", s.rate())
}

func nprocs() int { return runtime.NumCPU() }

// errorLines returns up to n distinct error lines of a FreeRADIUS log,
// without their time stamps.
func errorLines(log string, n int) []string {
	var out []string
	seen := map[string]bool{}
	for _, line := range strings.Split(log, "\n") {
		i := strings.Index(line, " : ")
		if i < 0 {
			continue
		}
		msg := line[i+3:]
		if !strings.HasPrefix(msg, "Error") && !strings.HasPrefix(msg, "ERROR") && !strings.HasPrefix(msg, "Warn") {
			continue
		}
		if !seen[msg] && len(out) < n {
			seen[msg] = true
			out = append(out, msg)
		}
	}
	return out
}

// shuffled returns a copy of users in random order.
func shuffled(users []benchUser) []benchUser {
	out := append([]benchUser(nil), users...)
	mrand.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// cpuProfile starts fetching a CPU profile of the bridge for d into
// --profile, and the contended locks over the same time (NAME-mutex); the
// returned function waits for both.
func (b *bench) cpuProfile(admin, name string, d time.Duration) func() {
	if b.o.profile == "" {
		return func() {}
	}
	secs := int(d.Round(time.Second).Seconds())
	var wg sync.WaitGroup
	for kind, file := range map[string]string{"profile": name, "mutex": name + "-mutex"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/%s?seconds=%d", admin, kind, secs))
			if err != nil {
				b.progress("profile %s: %v", file, err)
				return
			}
			defer resp.Body.Close()
			f, err := os.Create(filepath.Join(b.o.profile, file+".pprof"))
			if err != nil {
				b.progress("profile %s: %v", file, err)
				return
			}
			defer f.Close()
			io.Copy(f, resp.Body)
		}()
	}
	return wg.Wait
}
