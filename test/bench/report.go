package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// results are every figure of a run; a nil *stats was not measured.
type results struct {
	bindCeil, sbCeil, bridge, fr, cache map[int]*stats
	frNote, cacheNote                   string
	halfRate                            float64
	half, status                        *stats
	papRef, challenge, appendM          *stats
	mem, memWarm                        *stats
	memBefore, memAfter                 memSample
	memDupWindow                        time.Duration
	frHalf, statusHalf                  *stats
	sbHalf                              *stats   // slapd search+bind at the half-peak rate
	frLog                               []string // FreeRADIUS's first distinct error and warning lines
	flowUsers                           int      // users the challenge flows may use per 30 s step
	drops                               []string // per bridge: packets dropped, from its /metrics
	shared                              shared   // several instances' backends
}

func newResults(o options) *results {
	return &results{bindCeil: map[int]*stats{}, sbCeil: map[int]*stats{}, bridge: map[int]*stats{}, fr: map[int]*stats{},
		cache: map[int]*stats{}}
}

type row struct{ what, w, result, p50, p99, replies, target, verdict string }

func ms(d time.Duration) string {
	f := float64(d) / float64(time.Millisecond)
	switch {
	case f < 10:
		return fmt.Sprintf("%.2f ms", f)
	case f < 100:
		return fmt.Sprintf("%.1f ms", f)
	}
	return fmt.Sprintf("%.0f ms", f)
}

func verdict(ok bool) string {
	if ok {
		return "**PASS**"
	}
	return "**MISS**"
}

// ldapCounts describes an LDAP ceiling step.
func ldapCounts(s *stats) string {
	out := fmt.Sprintf("ok %d, refused %d, errors %d", s.accept, s.reject, s.errors+s.timeouts)
	if s.late > 0 {
		out += fmt.Sprintf(", sent late %d", s.late)
	}
	if s.firstErr != "" {
		out += " (first: " + firstLine(s.firstErr) + ")"
	}
	return out
}

func radiusCounts(s *stats) string {
	out := s.counts()
	if s.firstErr != "" {
		out += " (first error: " + firstLine(s.firstErr) + ")"
	}
	return out
}

// measured is a row for one step; unit names what a success is.
func measured(what string, w int, s *stats, unit string, ldap bool) row {
	r := row{what: what, w: strconv.Itoa(w), target: "", verdict: ""}
	if s == nil {
		r.result, r.p50, r.p99, r.replies = "not measured", "-", "-", ""
		return r
	}
	r.result = fmt.Sprintf("%.0f %s", s.rate(), unit)
	r.p50, r.p99 = "-", "-"
	if len(s.lat) > 0 {
		r.p50, r.p99 = ms(s.pct(0.50)), ms(s.pct(0.99))
	}
	if ldap {
		r.replies = ldapCounts(s)
	} else {
		r.replies = radiusCounts(s)
	}
	return r
}

// tailRow is a reference row for an open-loop step: the rate and the
// ratio of p99 to p50.
func tailRow(what string, w int, s *stats, unit string, ldap bool) row {
	r := row{what: what, w: strconv.Itoa(w)}
	if s == nil || len(s.lat) == 0 {
		r.result, r.p50, r.p99 = "not measured", "-", "-"
		return r
	}
	m := measured("", w, s, unit, ldap)
	r.result = fmt.Sprintf("%s; p99/p50 = %.2f", m.result, tailRatio(s))
	r.p50, r.p99, r.replies = m.p50, m.p99, m.replies
	return r
}

// tailRatio is p99 over p50.
func tailRatio(s *stats) float64 { return float64(s.pct(0.99)) / float64(max(1, s.pct(0.50))) }

// ratioRow compares a over b against a minimum ratio; pct writes it as a
// percentage.
func ratioRow(what string, w int, a, b *stats, min float64, pct bool, missing string) row {
	r := row{what: what, w: strconv.Itoa(w), p50: "", p99: ""}
	if pct {
		r.target = fmt.Sprintf("≥ %.0f%%", min*100)
	} else {
		r.target = fmt.Sprintf("≥ %.2f×", min)
	}
	if a == nil || b == nil || b.rate() == 0 {
		r.result, r.verdict, r.replies = "-", "n/a", missing
		return r
	}
	v := a.rate() / b.rate()
	if pct {
		r.result = fmt.Sprintf("%.0f%%", v*100)
	} else {
		r.result = fmt.Sprintf("%.2f×", v)
	}
	r.replies = fmt.Sprintf("%.0f/s ÷ %.0f/s", a.rate(), b.rate())
	r.verdict = verdict(v >= min)
	return r
}

// check records as failures the steps that completed nothing.
func (b *bench) check() {
	r := b.res
	for _, w := range b.o.concurrency {
		for name, m := range map[string]map[int]*stats{"slapd simple binds": r.bindCeil, "slapd search+bind": r.sbCeil,
			"mfabridge PAP": r.bridge, "FreeRADIUS PAP": r.fr, "mfabridge PAP with cache_ttl": r.cache} {
			if s := m[w]; s != nil && s.ok == 0 {
				b.fail("%s at W=%d completed nothing (%s)", name, w, radiusCounts(s))
			}
		}
	}
	for name, s := range map[string]*stats{"half-peak run": r.half, "Status-Server": r.status, "PAP reference": r.papRef,
		"challenge flows": r.challenge, "append-mode logins": r.appendM, "open sessions": r.mem} {
		if s != nil && s.ok == 0 {
			b.fail("%s completed nothing (%s)", name, radiusCounts(s))
		}
	}
}

func (b *bench) print(out io.Writer) {
	b.check()
	o, r := b.o, b.res
	cpus, model, kernel := machine()
	var sb strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&sb, format+"\n", a...) }
	p("")
	p("## mfabridge benchmark")
	p("")
	p("- machine: %d CPUs (nproc), %s, %s RAM, Linux %s; everything (slapd, both RADIUS servers, the load generator) on this machine, over loopback", cpus, model, memTotal(), kernel)
	p("- versions: mfabridge %s (built without -race), %s, %s, %s %s/%s", b.versions.bridge, b.versions.slapd, b.versions.freeradius, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	p("- load: W clients, each a goroutine with its own UDP socket and one request in flight; every request signed with Message-Authenticator; 1 s timeout, no retransmission (a timeout is counted, never retried); each step %s after an unmeasured warm-up of %s; rates count successes only", o.duration, o.warmup)
	p("- directory: %d users for PAP (slapd %s, mdb, dbnosync, no per-operation logging); %d TOTP users added with slapadd (%s) and enrolled with `mfabridge enrol import --csv` (%s) for the code flows", o.users, b.setupT.slapd.Round(time.Millisecond), o.codeUsers, b.setupT.bulk.Round(time.Millisecond), b.setupT.enrol.Round(time.Millisecond))
	p("- mfabridge: ldap.pool_size %d (%d search + %d bind connections), max_in_flight_per_client %d, audit log to a file, logging info, mfa off for PAP; user_filter %s", o.pool, o.pool, o.pool, maxInFlight(o), userFilter)
	p("- FreeRADIUS: pap + ldap modules, authorize { ldap; Auth-Type := ldap if ok/updated }, authenticate { Auth-Type ldap { ldap } }; rlm_ldap pool start = min = max = %d connections (the bridge's two pools together), %d worker threads, client require_message_authenticator = yes, no detail/linelog, no auth logging", 2*o.pool, o.frThreads)
	p("")
	p("| measurement | W | result | p50 | p99 | replies / notes | target | verdict |")
	p("|---|---:|---:|---:|---:|---|---|---|")
	rows := []row{}
	for _, w := range o.concurrency {
		rows = append(rows, measured("slapd ceiling: simple binds (go-ldap, W connections)", w, r.bindCeil[w], "binds/s", true))
	}
	for _, w := range o.concurrency {
		rows = append(rows, measured("slapd ceiling: search as service account + bind as user (2W connections)", w, r.sbCeil[w], "logins/s", true))
	}
	for _, w := range o.concurrency {
		x := measured("FreeRADIUS 3.2 + rlm_ldap: PAP, LDAP search + bind", w, r.fr[w], "req/s", false)
		if r.fr[w] == nil && r.frNote != "" {
			x.replies = r.frNote
			if strings.HasPrefix(r.frNote, "skipped") {
				x.result = "skipped"
			}
		}
		rows = append(rows, x)
	}
	for _, w := range o.concurrency {
		rows = append(rows, measured("mfabridge: PAP, LDAP search + bind", w, r.bridge[w], "req/s", false))
	}
	for _, w := range o.concurrency {
		rows = append(rows, ratioRow("mfabridge ÷ FreeRADIUS (throughput)", w, r.bridge[w], r.fr[w], 1.2, false, r.frNote))
	}
	for _, w := range o.concurrency {
		rows = append(rows, ratioRow("mfabridge ÷ slapd search+bind ceiling", w, r.bridge[w], r.sbCeil[w], 0.9, true, ""))
	}
	for _, w := range o.concurrency {
		x := measured("mfabridge with ldap.cache_ttl: 30s: PAP", w, r.cache[w], "req/s", false)
		if r.cache[w] == nil && r.cacheNote != "" {
			x.result, x.replies = "skipped", r.cacheNote
		}
		rows = append(rows, x)
	}
	for _, w := range o.concurrency {
		rows = append(rows, ratioRow("mfabridge with cache_ttl ÷ slapd simple-bind ceiling", w, r.cache[w], r.bindCeil[w], 0.6, true, r.cacheNote))
	}
	// Half of peak.
	{
		x := tailRow(fmt.Sprintf("mfabridge at half of its peak: open loop at %.0f req/s offered (latency from the due time)", r.halfRate),
			o.flowW, r.half, "req/s", false)
		x.target, x.verdict = "p99 ≤ 3 × p50", "n/a"
		if r.half != nil && len(r.half.lat) > 0 {
			x.verdict = verdict(tailRatio(r.half) <= 3)
		}
		y := tailRow("FreeRADIUS at the same offered load (reference for the row above)", o.flowW, r.frHalf, "req/s", false)
		if r.frHalf == nil || len(r.frHalf.lat) == 0 {
			y.replies = r.frNote
			if strings.HasPrefix(r.frNote, "skipped") {
				y.result = "skipped"
			}
		}
		rows = append(rows, x, y)
		rows = append(rows,
			tailRow("mfabridge Status-Server at the same offered load (the floor of this setup: no directory)", o.flowW, r.statusHalf, "req/s", false),
			tailRow(fmt.Sprintf("slapd search+bind at the same offered load, paced like the rows above, on %d connection pairs (the bridge's pools; the directory's own tail)", o.pool),
				o.pool, r.sbHalf, "logins/s", true))
	}
	rows = append(rows, measured("mfabridge: Status-Server", o.flowW, r.status, "req/s", false))
	rows = append(rows, measured(fmt.Sprintf("mfabridge: PAP, LDAP search + bind, on the %d TOTP users with the enrolment store (reference for the flows)", o.codeUsers), o.flowW, r.papRef, "req/s", false))
	rows = append(rows, measured("mfabridge: full TOTP challenge flow (password → Access-Challenge → code → Access-Accept)", o.flowW, r.challenge, "flows/s", false))
	{
		x := row{what: "cost of a challenge flow ÷ cost of a PAP login (PAP logins/s ÷ flows/s, same bridge and users)", w: strconv.Itoa(o.flowW), target: "≤ 1.30×"}
		if r.papRef == nil || r.challenge == nil || r.challenge.rate() == 0 {
			x.result, x.verdict = "-", "n/a"
		} else {
			v := r.papRef.rate() / r.challenge.rate()
			x.result = fmt.Sprintf("%.2f×", v)
			x.replies = fmt.Sprintf("%.0f/s ÷ %.0f/s", r.papRef.rate(), r.challenge.rate())
			x.verdict = verdict(v <= 1.3)
			if r.challenge.waits > 0 {
				x.replies += fmt.Sprintf("; limited by %d users per 30 s step (the replay guard): not a measure of the bridge", r.flowUsers)
			}
		}
		rows = append(rows, x)
	}
	rows = append(rows, measured("mfabridge: append-mode login (password followed by the code, one round trip)", o.flowW, r.appendM, "logins/s", false))
	// Memory.
	{
		rss := row{what: "memory per open challenge session: RSS growth ÷ sessions", w: strconv.Itoa(o.flowW), target: "≤ 2048 B", p50: "-", p99: "-"}
		heap := row{what: "memory per open challenge session: go heap in use growth ÷ sessions", w: strconv.Itoa(o.flowW), p50: "-", p99: "-"}
		if r.mem == nil || r.mem.ok == 0 {
			rss.result, rss.verdict, heap.result = "not measured", "n/a", "not measured"
		} else {
			n := float64(r.mem.ok)
			dr, dh := r.memAfter.rss-r.memBefore.rss, r.memAfter.heapInuse-r.memBefore.heapInuse
			rss.result = fmt.Sprintf("%.0f B", dr/n)
			heap.result = fmt.Sprintf("%.0f B", dh/n)
			rss.replies = fmt.Sprintf("%d sessions opened at %.0f/s (%s); RSS %.1f → %.1f MB, read %s after the last (duplicate_window %s, so the reply cache is empty); %d sessions opened before as a warm-up",
				r.mem.ok, r.mem.rate(), radiusCounts(r.mem), r.memBefore.rss/1e6, r.memAfter.rss/1e6, r.memDupWindow+time.Second, r.memDupWindow, r.memWarm.ok)
			heap.replies = fmt.Sprintf("heap in use %.1f → %.1f MB; no GC is forced, so garbage not yet collected counts", r.memBefore.heapInuse/1e6, r.memAfter.heapInuse/1e6)
			rss.verdict = verdict(dr/n <= 2048)
			heap.target, heap.verdict = "(information)", ""
		}
		rows = append(rows, rss, heap)
	}
	rows = append(rows, sharedRows(o, &r.shared)...)
	for _, x := range rows {
		p("| %s | %s | %s | %s | %s | %s | %s | %s |", x.what, x.w, x.result, x.p50, x.p99, x.replies, x.target, x.verdict)
	}
	p("")
	p("CPU time per successful operation while each step was measured (user + system, from /proc/PID/stat and getrusage; the load generator is this program: RADIUS clients, or go-ldap for the ceilings), how busy that kept the %d cores, and the share of the cores' time the host gave to something else (steal, from /proc/stat; a step with more than a few percent is noisy, though a host's other guests also slow caches and memory without showing here):", cpus)
	p("")
	p("| measurement | W | RADIUS server | slapd | load generator | all | cores busy | stolen by the host |")
	p("|---|---:|---:|---:|---:|---:|---:|---:|")
	cpuRows := []string{}
	add := func(what string, w int, s *stats) {
		if x := cpuRow(what, w, s, cpus); x != "" {
			cpuRows = append(cpuRows, x)
		}
	}
	for _, w := range o.concurrency {
		add("slapd ceiling: simple binds", w, r.bindCeil[w])
		add("slapd ceiling: search + bind", w, r.sbCeil[w])
		add("FreeRADIUS: PAP", w, r.fr[w])
		add("mfabridge: PAP", w, r.bridge[w])
		add("mfabridge with cache_ttl: PAP", w, r.cache[w])
	}
	add("mfabridge at half of its peak", o.flowW, r.half)
	add("FreeRADIUS at the same offered load", o.flowW, r.frHalf)
	add("mfabridge Status-Server at the same offered load", o.flowW, r.statusHalf)
	add("slapd search+bind at the same offered load", o.pool, r.sbHalf)
	add("mfabridge: Status-Server", o.flowW, r.status)
	add("mfabridge: PAP on the TOTP users with the store", o.flowW, r.papRef)
	add("mfabridge: full TOTP challenge flow", o.flowW, r.challenge)
	add("mfabridge: append-mode login", o.flowW, r.appendM)
	sharedCPU(o, &r.shared, add)
	for _, x := range cpuRows {
		p("%s", x)
	}
	p("")
	p("A: Access-Accept, R: Access-Reject, C: Access-Challenge. Benchmark figures from one run, not timed tests; PASS/MISS compares them with the targets of the benchmark issue.")
	if r.cacheNote != "" {
		p("ldap.cache_ttl: %s", r.cacheNote)
	} else {
		p("ldap.cache_ttl: 30s keeps the entries of users who logged in, so a repeated login costs one bind instead of a search and a bind; the password is still checked by a bind every time. It trades freshness: a change in the directory (group membership, a mobile number, a renamed entry, an account disabled in a way that still lets it bind) is seen up to 30 s late. It is off by default.")
	}
	if r.shared.note == "" {
		p("Several instances' backends: Redis %s (no persistence) and %s (synchronous commits), each on this machine over loopback like the rest; %d TOTP users enrolled into PostgreSQL with `enrol import` in %s. Redis's and PostgreSQL's own CPU time is not in the CPU table's columns (only in cores busy).",
			orDash(r.shared.redisVersion), orDash(r.shared.postgresVersionNote), o.codeUsers, r.shared.pgEnrol.Round(time.Millisecond))
	}
	if len(r.frLog) > 0 {
		p("FreeRADIUS logged: %s", strings.Join(r.frLog, " | "))
	}
	if len(r.drops) > 0 {
		p("Packets each bridge dropped without a reply (mfabridge_radius_dropped_total): %s.", strings.Join(r.drops, "; "))
	}
	if len(b.failures) > 0 {
		p("")
		p("Not measured or failed:")
		for _, f := range b.failures {
			p("- %s", firstLine(f))
		}
	}
	p("")
	p("total time %s", time.Since(b.start).Round(time.Second))
	io.WriteString(out, sb.String())
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func memTotal() string {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "MemTotal:") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				kb, _ := strconv.ParseFloat(f[1], 64)
				return fmt.Sprintf("%.1f GiB", kb/(1<<20))
			}
		}
	}
	return "unknown"
}
