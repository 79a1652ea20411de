package test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base32"
	"errors"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"layeh.com/radius"
	_ "modernc.org/sqlite"

	"github.com/mfabridge/mfabridge/factors"
	"github.com/mfabridge/mfabridge/factors/otp"
	"github.com/mfabridge/mfabridge/internal/store"
	"github.com/mfabridge/mfabridge/test/harness"
)

// privateSLAPD starts a slapd of the test's own with users, stopped when
// the test ends, for tests that stop or pause it.
func privateSLAPD(t *testing.T, users ...harness.User) *harness.SLAPD {
	t.Helper()
	s, err := harness.StartSLAPD(t.TempDir(), users)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Resume() // harmless when it runs; a stopped slapd would not end on SIGTERM
		s.Stop()
	})
	return s
}

// loadUsers makes n users for a private slapd.
func loadUsers(prefix string, n int) []harness.User {
	us := make([]harness.User, n)
	for i := range us {
		us[i] = harness.User{UID: fmt.Sprintf("%s%d", prefix, i), Password: fmt.Sprintf("Load-pass-%d", i)}
	}
	return us
}

// attempt is one login of a load run.
type attempt struct {
	sent time.Time
	took time.Duration
	code radius.Code // 0: no reply
}

// loadRun sends logins for users (one goroutine each, one request at a
// time, each waiting at most wait for its reply) for d, calling the
// events at their offsets from the start, and returns every attempt in
// the order sent.
func (b *bridge) loadRun(t *testing.T, users []harness.User, d, wait time.Duration, events map[time.Duration]func()) []attempt {
	t.Helper()
	start := time.Now()
	stop := start.Add(d)
	var mu sync.Mutex
	var all []attempt
	var wg sync.WaitGroup
	for _, u := range users {
		c := b.client(t, "127.0.0.1", secretLocal)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				a := attempt{sent: time.Now()}
				resp, _, err := c.Exchange(harness.Request(secretLocal, u.UID, u.Password, true), wait)
				a.took = time.Since(a.sent)
				if err == nil {
					a.code = resp.Code
				} else if !errors.Is(err, harness.ErrNoReply) {
					t.Errorf("%s: %v", u.UID, err)
				}
				mu.Lock()
				all = append(all, a)
				mu.Unlock()
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	offsets := make([]time.Duration, 0, len(events))
	for at := range events {
		offsets = append(offsets, at)
	}
	sort.Slice(offsets, func(i, j int) bool { return offsets[i] < offsets[j] })
	for _, at := range offsets {
		time.Sleep(time.Until(start.Add(at)))
		events[at]()
	}
	wg.Wait()
	sort.Slice(all, func(i, j int) bool { return all[i].sent.Before(all[j].sent) })
	return all
}

// summary describes attempts in a window for the log.
func summary(as []attempt) string {
	codes := map[string]int{}
	var worst time.Duration
	for _, a := range as {
		name := "no reply"
		if a.code != 0 {
			name = a.code.String()
		}
		codes[name]++
		worst = max(worst, a.took)
	}
	return fmt.Sprintf("%d requests %v, slowest %s", len(as), codes, worst.Round(time.Millisecond))
}

func between(as []attempt, from, to time.Time) []attempt {
	var out []attempt
	for _, a := range as {
		if !a.sent.Before(from) && a.sent.Before(to) {
			out = append(out, a)
		}
	}
	return out
}

// settledGoroutines waits until the bridge's goroutine count is at most
// limit and returns the last count.
func (b *bridge) settledGoroutines(t *testing.T, limit float64) float64 {
	var g float64
	harness.Eventually(10*time.Second, func() bool { g = b.metric(t, "go_goroutines"); return g <= limit })
	return g
}

// TestFaultSlapdKilledUnderLoad: slapd is stopped 2 s into a 10 s load
// and started again at 5 s. Every request gets a reply within the LDAP
// timeout + 2 s (a reject while slapd is down), logins succeed again
// within 5 s of the restart, and no goroutine is left behind.
func TestFaultSlapdKilledUnderLoad(t *testing.T) {
	t.Parallel()
	const timeout = 2 * time.Second
	users := loadUsers("kill", 4)
	s := privateSLAPD(t, users...)
	b := startBridge(t, conf{URLs: `"` + s.URL + `"`, Timeout: "2s"})
	b.normalRequest(t, b.client(t, "127.0.0.1", secretLocal), users[0])
	g0 := b.metric(t, "go_goroutines")

	var stopped, restarting, restarted time.Time
	all := b.loadRun(t, users, 10*time.Second, timeout+4*time.Second, map[time.Duration]func(){
		2 * time.Second: func() { s.Stop(); stopped = time.Now() },
		5 * time.Second: func() {
			restarting = time.Now()
			if err := s.Start(); err != nil {
				t.Errorf("restart slapd: %v", err)
			}
			restarted = time.Now()
		},
	})
	end := time.Now()
	t.Logf("before the kill: %s", summary(between(all, time.Time{}, stopped)))
	t.Logf("slapd down (%s): %s", restarted.Sub(stopped).Round(time.Millisecond), summary(between(all, stopped, restarted)))
	t.Logf("after the restart: %s", summary(between(all, restarted, end)))

	for _, a := range all {
		if a.code == 0 {
			t.Errorf("a request sent %s after the start got no reply within %s", a.sent.Sub(all[0].sent).Round(time.Millisecond), timeout+4*time.Second)
		} else if a.took > timeout+2*time.Second {
			t.Errorf("a request sent %s after the start took %s, more than the LDAP timeout + 2s", a.sent.Sub(all[0].sent).Round(time.Millisecond), a.took.Round(time.Millisecond))
		}
	}
	// While slapd is down (a moment after the kill, so that requests
	// already answered by it do not count) every reply is a reject.
	for _, a := range between(all, stopped.Add(100*time.Millisecond), restarting) {
		if a.code == radius.CodeAccessAccept {
			t.Errorf("Access-Accept for a request sent %s after slapd was stopped", a.sent.Sub(stopped).Round(time.Millisecond))
		}
	}
	firstOK := time.Time{}
	for _, a := range between(all, restarted, end) {
		if a.code == radius.CodeAccessAccept {
			firstOK = a.sent.Add(a.took)
			break
		}
	}
	if firstOK.IsZero() || firstOK.Sub(restarted) > 5*time.Second {
		t.Errorf("no Access-Accept within 5s of the restart (first at %v)", firstOK.Sub(restarted))
	} else {
		t.Logf("first Access-Accept %s after the restart", firstOK.Sub(restarted).Round(time.Millisecond))
	}
	for _, a := range between(all, restarted.Add(5*time.Second), end) {
		if a.code != radius.CodeAccessAccept {
			t.Errorf("%v for a request sent %s after the restart", a.code, a.sent.Sub(restarted).Round(time.Millisecond))
		}
	}
	if rec := b.audit(t); !containsReason(rec, "directory_unavailable") {
		t.Errorf("no directory_unavailable in the audit log")
	}
	g := b.settledGoroutines(t, g0+20)
	t.Logf("bridge goroutines %.0f before the load, %.0f after", g0, g)
	if g > g0+20 {
		t.Errorf("bridge goroutines %.0f after the load, %.0f before: more than +20", g, g0)
	}
	b.normalRequest(t, b.client(t, "127.0.0.1", secretLocal), users[0])
}

func containsReason(recs []auditRecord, reason string) bool {
	for _, r := range recs {
		if r.Reason == reason {
			return true
		}
	}
	return false
}

// TestFaultSlapdPaused: slapd stops answering (SIGSTOP, its sockets
// open) for 3 s under load, with an LDAP timeout of 1 s. Replies
// (rejects) still come within about the timeout + 1 s, and logins work
// again after it resumes: the pools were not exhausted for good.
func TestFaultSlapdPaused(t *testing.T) {
	t.Parallel()
	const timeout = time.Second
	users := loadUsers("pause", 4)
	s := privateSLAPD(t, users...)
	b := startBridge(t, conf{URLs: `"` + s.URL + `"`, Timeout: "1s"})
	g0 := b.metric(t, "go_goroutines")

	var paused, resumed time.Time
	all := b.loadRun(t, users, 8*time.Second, 8*time.Second, map[time.Duration]func(){
		1 * time.Second: func() {
			if err := s.Pause(); err != nil {
				t.Errorf("pause slapd: %v", err)
			}
			paused = time.Now()
		},
		4 * time.Second: func() {
			if err := s.Resume(); err != nil {
				t.Errorf("resume slapd: %v", err)
			}
			resumed = time.Now()
		},
	})
	end := time.Now()
	// The requests in flight at some moment of the pause.
	var during []attempt
	for _, a := range all {
		if a.sent.Before(resumed) && a.sent.Add(a.took).After(paused) {
			during = append(during, a)
		}
	}
	t.Logf("slapd paused for %s; requests in flight during the pause: %s", resumed.Sub(paused).Round(time.Millisecond), summary(during))
	t.Logf("after resuming: %s", summary(between(all, resumed, end)))

	// A request caught by the pause is answered within about the
	// timeout + 1 s. (What it costs is two timeouts: the search on a
	// pooled connection times out, then its one retry on a fresh
	// connection, whose TCP handshake the stopped slapd's kernel still
	// completes, times out in the service bind.)
	for _, a := range during {
		const limit = timeout + time.Second + 500*time.Millisecond
		if a.took > limit {
			t.Errorf("a request sent %s after the pause began was answered (%v) after %s, more than the timeout + 1s",
				a.sent.Sub(paused).Round(time.Millisecond), a.code, a.took.Round(time.Millisecond))
		}
		if a.code == 0 {
			t.Errorf("a request sent %s after the pause began got no reply", a.sent.Sub(paused).Round(time.Millisecond))
		}
	}
	if len(during) < len(users) {
		t.Errorf("only %d requests in flight during the pause", len(during))
	}
	if !containsReason(b.audit(t), "directory_unavailable") {
		t.Errorf("no directory_unavailable in the audit log: the pause was never noticed")
	}
	recovered := false
	for _, a := range between(all, resumed, end) {
		if a.code == radius.CodeAccessAccept {
			recovered = true
			t.Logf("first Access-Accept %s after resuming", a.sent.Add(a.took).Sub(resumed).Round(time.Millisecond))
			break
		}
	}
	if !recovered {
		t.Fatalf("no login succeeded after slapd resumed")
	}
	// The last second of the run: every login works.
	for _, a := range between(all, end.Add(-time.Second), end) {
		if a.code != radius.CodeAccessAccept {
			t.Errorf("%v for a request sent %s after resuming", a.code, a.sent.Sub(resumed).Round(time.Millisecond))
		}
	}
	g := b.settledGoroutines(t, g0+20)
	t.Logf("bridge goroutines %.0f before, %.0f after", g0, g)
	b.normalRequest(t, b.client(t, "127.0.0.1", secretLocal), users[0])
}

// startBridgeIn is startBridge with the enrolment store in storeDir
// instead of the configuration's directory.
func startBridgeIn(t *testing.T, c conf, storeDir string) *bridge {
	t.Helper()
	rp, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	ap, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	c.Radius, c.Admin = "127.0.0.1:"+strconv.Itoa(rp), "127.0.0.1:"+strconv.Itoa(ap)
	def := func(s *string, d string) {
		if *s == "" {
			*s = d
		}
	}
	def(&c.Clients, defaultClients)
	def(&c.URLs, `"`+env.slapd.URL+`"`)
	def(&c.Timeout, "3s")
	def(&c.Policies, defaultPolicies)
	def(&c.CA, env.slapd.CA.CertFile)
	def(&c.ServiceDN, harness.ServiceDN)
	def(&c.PeopleDN, harness.PeopleDN)
	c.Dir = storeDir
	dir := t.TempDir()
	path := filepath.Join(dir, "mfabridge.yaml")
	var sb strings.Builder
	if err := baseConfig.Execute(&sb, c); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(sb.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := harness.StartBridge(env.bin, path, "LOCAL_SECRET="+secretLocal, "OTHER_SECRET="+secretOther,
		"LDAP_PASSWORD="+harness.ServicePass, "STORE_KEY="+storeKey)
	if err != nil {
		t.Fatal(err)
	}
	tb := &bridge{Bridge: b, Radius: c.Radius, Admin: c.Admin, dir: dir}
	t.Cleanup(func() {
		if !b.Exited() {
			if code, err := b.Stop(); err != nil || code != 0 {
				t.Errorf("mfabridge exit status %d after SIGTERM (%v)", code, err)
			}
		}
		if t.Failed() {
			t.Logf("mfabridge log:\n%s\naudit:\n%s", b.Logs(), b.Stdout())
		}
	})
	return tb
}

// run is a shell command for the disk faults; its output goes into the
// error.
func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// mounted reports whether dir is a mount point.
func mounted(dir string) bool {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == dir {
			return true
		}
	}
	return false
}

// unmount undoes a mount at dir, if it is still there; when the mount is
// busy (the bridge may have a file open there) it detaches it lazily.
func unmount(t *testing.T, dir string) {
	if !mounted(dir) {
		return
	}
	if err := run("umount", dir); err != nil {
		if err2 := run("umount", "-l", dir); err2 != nil {
			t.Errorf("cannot unmount %s: %v; %v", dir, err, err2)
		}
	}
}

// makeReadOnly makes the store read-only for every new opener, trying a
// read-only bind mount of its directory, then chattr +i on its files. It
// returns how, and undo, which the test may call early and which runs
// anyway when the test ends. It fails the test when neither works here.
// (The bridge keeps the files it opened before through the original
// mount: the fault hits whatever opens the store afterwards.)
func makeReadOnly(t *testing.T, storeDir string) (how string, undo func()) {
	t.Helper()
	var tried []string
	once := func(f func()) func() {
		var o sync.Once
		undo := func() { o.Do(f) }
		t.Cleanup(undo)
		return undo
	}
	if err := run("mount", "--bind", storeDir, storeDir); err != nil {
		tried = append(tried, err.Error())
	} else if err := run("mount", "-o", "remount,ro,bind", storeDir); err != nil {
		tried = append(tried, err.Error())
		unmount(t, storeDir)
	} else {
		return "read-only bind mount of " + storeDir, once(func() { unmount(t, storeDir) })
	}
	files, _ := filepath.Glob(filepath.Join(storeDir, "store.db*"))
	if err := run("chattr", append([]string{"+i"}, files...)...); err != nil {
		tried = append(tried, err.Error())
	} else {
		return "chattr +i on " + strings.Join(files, ", "), once(func() {
			if err := run("chattr", append([]string{"-i"}, files...)...); err != nil {
				t.Errorf("undo chattr +i: %v", err)
			}
		})
	}
	t.Fatalf("cannot make the store read-only on this machine (run the tests as root): %s", strings.Join(tried, "; "))
	return "", nil
}

// smallDisk mounts a tmpfs of size at dir, removed when the test ends
// (after the bridge using it has stopped, if it was started later).
func smallDisk(t *testing.T, dir, size string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := run("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0700", "tmpfs", dir); err != nil {
		t.Fatalf("cannot mount a small tmpfs to fill (run the tests as root): %v", err)
	}
	t.Cleanup(func() { unmount(t, dir) })
}

// fillDisk writes a dummy file in dir until the file system is full.
func fillDisk(t *testing.T, dir string) {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for i := 0; i < 1<<14; i++ { // at most 1 GB: a tmpfs of a few MB fills long before
		n, err := f.Write(chunk)
		if err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				// Fill the last partial chunk's room too.
				for j := 0; j < 1<<10; j++ {
					if _, err := f.Write(chunk[:512]); err != nil {
						return
					}
				}
				return
			}
			t.Fatal(err)
		}
		if n < len(chunk) {
			return
		}
	}
	t.Fatalf("%s did not fill up", dir)
}

// TestFaultStoreDisk: the store's disk turns read-only, or fills up. An
// enrolment then fails with status 1 and an error naming the store; the
// credentials enrolled before are intact (user show lists them, the
// server accepts their codes) and the running server keeps answering.
func TestFaultStoreDisk(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Fatal("the store disk faults need root (mount, chattr): run the integration tests as root, as CI does")
	}
	for _, fault := range []string{"read-only", "full"} {
		t.Run(fault, func(t *testing.T) {
			storeDir := filepath.Join(t.TempDir(), "store")
			if fault == "full" {
				smallDisk(t, storeDir, "4m")
			} else if err := os.Mkdir(storeDir, 0o700); err != nil {
				t.Fatal(err)
			}
			b := startBridgeIn(t, conf{Policies: appendPolicy}, storeDir)
			c := b.client(t, "127.0.0.1", secretLocal)
			storePath := filepath.Join(storeDir, "store.db")
			// Three users enrolled before the fault: one logs in during it,
			// one after; the third is never used (user show only).
			var us []harness.User
			var tks []token
			for range 3 {
				u := newUser(t)
				us, tks = append(us, u), append(tks, b.enrolRandomTOTP(t, u.UID))
			}
			resp, rec := b.send(t, c, us[0].UID, us[0].Password+tks[0].code(0))
			want(t, "login before the fault", resp, rec, radius.CodeAccessAccept, "mfa_passed")

			var how string
			var undo func()
			if fault == "read-only" {
				how, undo = makeReadOnly(t, storeDir)
			} else {
				fillDisk(t, storeDir)
				how = "tmpfs of 4 MB at " + storeDir + " filled with a dummy file"
				undo = func() {
					if err := os.Remove(filepath.Join(storeDir, "filler")); err != nil {
						t.Fatal(err)
					}
				}
			}
			t.Logf("fault: %s", how)

			newcomer := newUser(t)
			secret := base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(randomBytes(20))
			out, stderr, code := mfabridge(t, b.env(), "enrol", "totp", "--config", b.ConfigFile, "--user", newcomer.UID, "--secret", secret)
			t.Logf("enrol totp on the %s store: exit %d: %s%s", fault, code, out, strings.TrimSpace(stderr))
			if code != 1 {
				t.Errorf("enrol totp on a %s store: exit %d, want 1", fault, code)
			}
			if !strings.Contains(stderr, storePath) {
				t.Errorf("the error does not name the store %s:\n%s", storePath, stderr)
			}

			// During the fault: the server keeps answering, and accepts the
			// codes of those enrolled before.
			resp, rec = b.send(t, c, us[1].UID, us[1].Password+tks[1].code(0))
			want(t, "login during the fault", resp, rec, radius.CodeAccessAccept, "mfa_passed")
			resp, rec = b.send(t, c, newcomer.UID, newcomer.Password)
			want(t, "login of the user whose enrolment failed", resp, rec, radius.CodeAccessReject, "not_enrolled")
			out, stderr, code = mfabridge(t, b.env(), "user", "show", "--config", b.ConfigFile, "--user", us[2].UID)
			t.Logf("user show during the fault: exit %d: %s%s", code, out, strings.TrimSpace(stderr))
			if code != 0 || !strings.Contains(out, "totp") {
				t.Errorf("user show on a %s store: exit %d, want 0 and the TOTP credential listed\n%s%s", fault, code, out, stderr)
			}

			// After the fault: everything enrolled before is intact.
			undo()
			for _, u := range us {
				out, stderr, code := mfabridge(t, b.env(), "user", "show", "--config", b.ConfigFile, "--user", u.UID)
				if code != 0 || !strings.Contains(out, "totp") {
					t.Errorf("user show %s after the fault: exit %d\n%s%s", u.UID, code, out, stderr)
				}
			}
			resp, rec = b.send(t, c, us[2].UID, us[2].Password+tks[2].code(0))
			want(t, "login after the fault", resp, rec, radius.CodeAccessAccept, "mfa_passed")
			if st := openStore(t, storePath); st != nil {
				e, err := st.Enrolment(context.Background(), newcomer.UID)
				if err != nil || len(e.Credentials) != 0 {
					t.Errorf("the failed enrolment left something in the store: %+v %v", e, err)
				}
				st.Close()
			}
			integrityCheck(t, storePath)
		})
	}
}

// openStore opens the enrolment store directly, as the server does.
func openStore(t *testing.T, path string) *store.Store {
	t.Helper()
	key := make([]byte, 32)
	for i := range key {
		v, _ := strconv.ParseUint(storeKey[2*i:2*i+2], 16, 8)
		key[i] = byte(v)
	}
	st, err := store.Open(path, key)
	if err != nil {
		t.Errorf("store.Open %s: %v", path, err)
		return nil
	}
	return st
}

// integrityCheck runs PRAGMA integrity_check on the store, opened
// read-only.
func integrityCheck(t *testing.T, path string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var res string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&res); err != nil || res != "ok" {
		t.Errorf("PRAGMA integrity_check on %s: %q %v", path, res, err)
	}
}

// countPrefix counts the credentials of users whose names start with
// prefix, reading the store read-only.
func countPrefix(t *testing.T, path, prefix string) int {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM credentials WHERE user LIKE ? || '%'", prefix).Scan(&n); err != nil {
		t.Fatalf("count credentials: %v", err)
	}
	return n
}

// TestFaultKillDuringImport kills `enrol import` of a 20,000-line CSV
// with SIGKILL at random moments; after each kill the import is there in
// full or not at all, and the database passes PRAGMA integrity_check.
// The CLI here is built without the race detector, under which
// modernc.org/sqlite takes some 40 s for such an import instead of 2 s.
func TestFaultKillDuringImport(t *testing.T) {
	t.Parallel()
	const lines, kills = 20000, 5
	cfg, storePath := cliConfig(t)
	dir := filepath.Dir(cfg)
	bin, err := harness.BuildBridgePlain(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cli := func(args ...string) (stdout, stderr string, code int) {
		t.Helper()
		cmd := exec.Command(bin, offline(args...)...)
		cmd.Env = append(os.Environ(), cliEnv...)
		var o, e strings.Builder
		cmd.Stdout, cmd.Stderr = &o, &e
		if err := cmd.Run(); err != nil {
			var ee *exec.ExitError
			if !errors.As(err, &ee) {
				t.Fatal(err)
			}
		}
		return o.String(), e.String(), cmd.ProcessState.ExitCode()
	}
	csv := func(prefix string) string {
		var sb strings.Builder
		sb.WriteString("user,type,secret\n")
		enc := base32.StdEncoding.WithPadding(base32.NoPadding)
		for i := 1; i <= lines; i++ {
			fmt.Fprintf(&sb, "%s%05d,totp,%s\n", prefix, i, enc.EncodeToString(randomBytes(20)))
		}
		p := filepath.Join(dir, prefix+"csv")
		if err := os.WriteFile(p, []byte(sb.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// check asserts all-or-nothing for prefix and returns how many
	// credentials it has.
	check := func(prefix string) int {
		t.Helper()
		n := countPrefix(t, storePath, prefix)
		if n != 0 && n != lines {
			t.Errorf("%s: %d of %d credentials in the store: a partial import", prefix, n, lines)
		}
		first, last := fmt.Sprintf("%s%05d", prefix, 1), fmt.Sprintf("%s%05d", prefix, lines)
		for _, user := range []string{first, last} {
			_, _, code := cli("user", "show", "--config", cfg, "--user", user)
			if (code == 0) != (n == lines) {
				t.Errorf("user show %s: exit %d, but the store holds %d credentials of %s", user, code, n, prefix)
			}
		}
		if st := openStore(t, storePath); st != nil {
			for _, user := range []string{first, last} {
				e, err := st.Enrolment(context.Background(), user)
				if err != nil {
					t.Errorf("store.Enrolment %s: %v", user, err)
				} else if _, ok := e.Credential(factors.TOTP); ok != (n == lines) {
					t.Errorf("store.Enrolment %s: TOTP held %v, but the store holds %d credentials of %s", user, ok, n, prefix)
				}
			}
			st.Close()
		}
		integrityCheck(t, storePath)
		return n
	}

	// A whole import, to know how long one takes.
	start := time.Now()
	if out, stderr, code := cli("enrol", "import", "--config", cfg, "--csv", csv("base")); code != 0 {
		t.Fatalf("enrol import: exit %d\n%s%s", code, out, stderr)
	}
	whole := time.Since(start)
	if n := check("base"); n != lines {
		t.Fatalf("a whole import left %d credentials", n)
	}
	t.Logf("a whole import of %d lines takes %s", lines, whole.Round(time.Millisecond))

	outcomes := map[string]int{}
	for i := 0; i < kills; i++ {
		prefix := fmt.Sprintf("k%d-", i)
		path := csv(prefix)
		// From a quarter of the way in (the CSV is read and checked
		// first) to a quarter past the end.
		r, _ := rand.Int(rand.Reader, big.NewInt(int64(whole)))
		after := whole/4 + time.Duration(r.Int64())
		cmd := exec.Command(bin, offline("enrol", "import", "--config", cfg, "--csv", path)...)
		cmd.Env = append(os.Environ(), cliEnv...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-time.After(after):
			cmd.Process.Signal(syscall.SIGKILL)
			<-done
		case <-done: // finished before the kill
		}
		n := check(prefix)
		what := "nothing"
		if n == lines {
			what = "all"
		}
		outcomes[what]++
		t.Logf("kill %d after %s: %s imported (exit %d)", i+1, after.Round(time.Millisecond), what, cmd.ProcessState.ExitCode())
	}
	t.Logf("after %d kills: %v", kills, outcomes)
	if n := countPrefix(t, storePath, "base"); n != lines {
		t.Errorf("the first import's %d credentials became %d", lines, n)
	}
}

// TestFaultClockSkew: a phone whose clock is 30 s off still works, 60 s
// off does not (TOTP skew 1), through the real server.
func TestFaultClockSkew(t *testing.T) {
	t.Parallel()
	b := startBridge(t, conf{Policies: appendPolicy})
	c := b.client(t, "127.0.0.1", secretLocal)
	for _, tc := range []struct {
		skew time.Duration
		ok   bool
	}{{-60 * time.Second, false}, {-30 * time.Second, true}, {0, true}, {30 * time.Second, true}, {60 * time.Second, false}} {
		t.Run(fmt.Sprintf("phone %+ds", int(tc.skew.Seconds())), func(t *testing.T) {
			u := newUser(t)
			tk := b.enrolRandomTOTP(t, u.UID)
			// Keep away from the end of a time step, where the server's
			// step could differ from the one the code was made for.
			if left := 30 - time.Now().Unix()%30; left < 3 {
				time.Sleep(time.Duration(left)*time.Second + 200*time.Millisecond)
			}
			phone := otp.Generate(tk.cred, uint64(time.Now().Add(tc.skew).Unix()/30))
			resp, rec := b.send(t, c, u.UID, u.Password+phone)
			if tc.ok {
				want(t, "code from the skewed phone", resp, rec, radius.CodeAccessAccept, "mfa_passed")
			} else {
				want(t, "code from the skewed phone", resp, rec, radius.CodeAccessReject, "wrong_code")
			}
		})
	}
}
