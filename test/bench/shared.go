package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/mfabridge/mfabridge/test/harness"
)

// shared are the figures of several instances' backends, each beside
// its single-machine reference measured just before it: challenge flows
// with the state on Redis and in memory, append-mode logins (one PAP
// request that reads the enrolment store) with the store on PostgreSQL
// and on SQLite; at the peak, then in an open loop at half of the
// reference's peak for the latency each backend adds.
type shared struct {
	note                              string // why not measured
	memFlows, redisFlows              *stats
	sqliteAppend, pgAppend            *stats
	memFlowsHalf, redisFlowsHalf      *stats
	sqliteAppendHalf, pgAppendHalf    *stats
	flowsHalfRate, appendHalfRate     float64
	pgEnrol                           time.Duration
	quickRate                         float64 // --quick: every step paced at this rate
	redisVersion, postgresVersionNote string
}

// sharedPhase starts a redis-server and a PostgreSQL cluster of its own
// (no persistence for Redis, as a cache; PostgreSQL as installed, with
// synchronous commits) and measures the pairs.
func (b *bench) sharedPhase(ctx context.Context) {
	o, e, r := b.o, b.e, b.res
	if o.skipShared {
		r.shared.note = "skipped (--skip-shared)"
		return
	}
	b.progress("starting redis-server and PostgreSQL")
	rd, err := harness.StartRedis(filepath.Join(e.dir, "redis"), harness.RedisOptions{})
	if err != nil {
		b.fail("redis-server: %v", err)
		r.shared.note = "not measured: " + firstLine(err.Error())
		return
	}
	defer rd.Stop()
	if v, err := rd.CLI("INFO", "server"); err == nil {
		r.shared.redisVersion = between(v, "redis_version:", "\r")
	}
	pg, err := harness.StartPostgres()
	if err != nil {
		b.fail("PostgreSQL: %v", err)
		r.shared.note = "not measured: " + firstLine(err.Error())
		return
	}
	defer pg.Remove()
	r.shared.postgresVersionNote = pg.Version()
	db, err := pg.NewDatabase("bench")
	if err != nil {
		b.fail("PostgreSQL: %v", err)
		return
	}
	dsnFile := filepath.Join(e.dir, "pg.dsn")
	if err := os.WriteFile(dsnFile, []byte(pg.DSN(db)+"\n"), 0o600); err != nil {
		b.fail("%v", err)
		return
	}
	base := bridgeConf{Pool: o.pool, MaxInFlight: maxInFlight(o), Store: true}
	mc, rc, pc := base, base, base
	mc.Name, rc.Name, pc.Name = "shared-memory", "shared-redis", "shared-postgres"
	rc.StateYAML = fmt.Sprintf("state:\n  backend: redis\n  redis: {addresses: [%q]}", rd.Addr)
	pc.StoreYAML = fmt.Sprintf(`{driver: postgres, dsn: "file:%s", key: "file:%s/store.key"}`, dsnFile, e.dir)
	pcPath, err := e.writeBridgeConfig(pc)
	if err != nil {
		b.fail("%v", err)
		return
	}
	b.progress("enrolling %d users for TOTP into PostgreSQL with mfabridge enrol import --csv", o.codeUsers)
	t := time.Now()
	if err := e.enrol(ctx, pcPath, e.codeUsers); err != nil {
		b.fail("%v", err)
		return
	}
	r.shared.pgEnrol = time.Since(t)
	var bridges [3]*runningBridge
	for i, c := range []bridgeConf{mc, rc, pc} {
		if bridges[i], err = e.startBridge(ctx, c, e.codeUsers); err != nil {
			b.fail("mfabridge (%s): %v", c.Name, err)
			for _, x := range bridges[:i] {
				x.stop()
			}
			return
		}
		defer bridges[i].stop()
	}
	mem, red, pgb := bridges[0], bridges[1], bridges[2]
	secret := []byte(e.secret)
	w := o.flowW
	// Each bridge has its own replay guard (memory, or its own Redis), so
	// each gets its own allocator: a user's time step is used once per
	// guard. With --quick's few users a closed loop would use a step's
	// users up in a fraction of a second, so every step there is an open
	// loop at a modest rate (its figures say nothing of a peak).
	users := shuffled(e.codeUsers)
	allocs := map[*runningBridge]*allocator{mem: newAllocator(len(users)), red: newAllocator(len(users)), pgb: newAllocator(len(users))}
	peakRate := 0.0
	if o.quick {
		peakRate = float64(len(users)) / 30 / 4
	}
	r.shared.quickRate = peakRate
	flows := func(rb *runningBridge, rate float64) *stats {
		return b.measure(ctx, runOpts{local: "127.0.0.2", server: rb.Radius, secret: secret, workers: w, dur: o.duration, rate: rate,
			op: challengeOp(users, allocs[rb])}, rb.PID())
	}
	appends := func(rb *runningBridge, rate float64) *stats {
		return b.measure(ctx, runOpts{local: "127.0.0.3", server: rb.Radius, secret: secret, workers: w, dur: o.duration, rate: rate,
			op: appendOp(users, allocs[rb])}, rb.PID())
	}
	// Warm every bridge up: pools, and the store's pages.
	if !o.quick {
		for _, rb := range bridges {
			wctx, cancel := context.WithTimeout(ctx, o.warmup)
			run(wctx, runOpts{local: "127.0.0.3", server: rb.Radius, secret: secret, workers: w, dur: o.warmup, op: appendOp(users, allocs[rb])})
			cancel()
		}
	}
	s := &r.shared
	b.progress("W=%d: challenge flows, state in memory (reference)", w)
	s.memFlows = flows(mem, peakRate)
	b.progress("W=%d: challenge flows, state on Redis", w)
	s.redisFlows = flows(red, peakRate)
	b.progress("W=%d: append-mode logins, store on SQLite (reference)", w)
	s.sqliteAppend = appends(mem, peakRate)
	b.progress("W=%d: append-mode logins, store on PostgreSQL", w)
	s.pgAppend = appends(pgb, peakRate)
	if s.memFlows != nil && s.memFlows.rate() >= 2 {
		s.flowsHalfRate = s.memFlows.rate() / 2
		b.progress("W=%d: challenge flows at %.0f/s (half of the memory peak), memory then Redis", w, s.flowsHalfRate)
		s.memFlowsHalf = flows(mem, s.flowsHalfRate)
		s.redisFlowsHalf = flows(red, s.flowsHalfRate)
	}
	if s.sqliteAppend != nil && s.sqliteAppend.rate() >= 2 {
		s.appendHalfRate = s.sqliteAppend.rate() / 2
		b.progress("W=%d: append-mode logins at %.0f/s (half of the SQLite peak), SQLite then PostgreSQL", w, s.appendHalfRate)
		s.sqliteAppendHalf = appends(mem, s.appendHalfRate)
		s.pgAppendHalf = appends(pgb, s.appendHalfRate)
	}
	for i, rb := range bridges {
		if rb.Exited() {
			b.fail("mfabridge (%s) exited during the run:\n%s", []string{"shared-memory", "shared-redis", "shared-postgres"}[i], rb.Logs())
		}
	}
	b.drops("shared-redis", red.Admin)
	b.drops("shared-postgres", pgb.Admin)
}

func between(s, from, to string) string {
	i := strings.Index(s, from)
	if i < 0 {
		return ""
	}
	s = s[i+len(from):]
	if j := strings.Index(s, to); j >= 0 {
		s = s[:j]
	}
	return s
}

// sharedRows are the rows of the main table for the shared backends.
func sharedRows(o options, s *shared) []row {
	if s.note != "" {
		return []row{{what: "several instances' backends (Redis, PostgreSQL)", w: "-", result: "skipped", p50: "-", p99: "-", replies: s.note}}
	}
	w := o.flowW
	var rows []row
	if s.quickRate > 0 {
		rows = append(rows, row{what: "several instances' backends with --quick", w: "-", result: "-", p50: "-", p99: "-",
			replies: fmt.Sprintf("too few users for a peak: every step below is paced at %.0f/s", s.quickRate)})
	}
	rows = append(rows, []row{
		measured("challenge flows, state in memory, store on SQLite (reference for the next two rows)", w, s.memFlows, "flows/s", false),
		measured("challenge flows, state on Redis (state.backend: redis), store on SQLite", w, s.redisFlows, "flows/s", false),
		ratioRow("challenge flows: Redis ÷ memory", w, s.redisFlows, s.memFlows, 0.7, false, ""),
		measured("append-mode logins (one PAP request that reads the store), store on SQLite, state in memory (reference for the next two rows)", w, s.sqliteAppend, "logins/s", false),
		measured("append-mode logins, store on PostgreSQL (store.driver: postgres), state in memory", w, s.pgAppend, "logins/s", false),
		ratioRow("append-mode logins: PostgreSQL ÷ SQLite", w, s.pgAppend, s.sqliteAppend, 0.8, false, ""),
	}...)
	added := func(what string, a, ref *stats, rate float64, trips int) []row {
		x := tailRow(fmt.Sprintf("%s, reference, open loop at %.0f/s offered", what, rate), w, ref, "/s", false)
		y := tailRow(fmt.Sprintf("%s, shared backend, same offered load", what), w, a, "/s", false)
		z := row{what: fmt.Sprintf("%s: p99 added per round trip (p99 difference ÷ %d round trips)", what, trips), w: strconv.Itoa(w), target: "≤ 2 ms"}
		if a == nil || ref == nil || len(a.lat) == 0 || len(ref.lat) == 0 {
			z.result, z.verdict = "-", "n/a"
			return []row{x, y, z}
		}
		d := (a.pct(0.99) - ref.pct(0.99)) / time.Duration(trips)
		z.result = ms(d)
		if d < 0 {
			z.result = "0 ms (" + ms(d) + ")"
		}
		z.replies = fmt.Sprintf("p99 %s vs %s; p50 added per round trip %s", ms(a.pct(0.99)), ms(ref.pct(0.99)), ms((a.pct(0.5)-ref.pct(0.5))/time.Duration(trips)))
		z.verdict = verdict(d <= 2*time.Millisecond)
		return []row{x, y, z}
	}
	rows = append(rows, added("challenge flows, memory → Redis", s.redisFlowsHalf, s.memFlowsHalf, s.flowsHalfRate, 2)...)
	rows = append(rows, added("append-mode logins, SQLite → PostgreSQL", s.pgAppendHalf, s.sqliteAppendHalf, s.appendHalfRate, 1)...)
	if s.quickRate > 0 {
		for i := range rows {
			if rows[i].verdict != "" {
				rows[i].verdict = "n/a (--quick)"
			}
		}
	}
	return rows
}

// sharedCPU adds the CPU rows of the shared backends (Redis's and
// PostgreSQL's own processes are not sampled: "all" leaves them out).
func sharedCPU(o options, s *shared, add func(string, int, *stats)) {
	add("challenge flows, state in memory", o.flowW, s.memFlows)
	add("challenge flows, state on Redis", o.flowW, s.redisFlows)
	add("append-mode logins, store on SQLite", o.flowW, s.sqliteAppend)
	add("append-mode logins, store on PostgreSQL", o.flowW, s.pgAppend)
}
