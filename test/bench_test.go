package test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mfabridge/mfabridge/test/harness"
)

// TestBenchSmoke runs the benchmark (test/bench) with --quick: it must
// start slapd, the bridge and FreeRADIUS, measure every step, exit 0 and
// print the table with a row for each measurement. The figures and the
// targets are not checked: on a shared CI machine they mean nothing.
func TestBenchSmoke(t *testing.T) {
	if err := harness.NeedFreeRADIUS(); err != nil {
		t.Fatal(err)
	}
	root, err := harness.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	// Built and run directly rather than with go run, so that a hung run
	// is killed with everything it started (its servers die with it).
	bin := filepath.Join(t.TempDir(), "bench")
	build := exec.Command(harness.GoTool(), "build", "-o", bin, "./test/bench")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./test/bench: %v\n%s", err, out)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--quick")
	cmd.Dir = root
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 10 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err = cmd.Run()
	took := time.Since(start)
	out := stdout.String()
	if err != nil {
		t.Fatalf("bench --quick: %v after %s\nstderr:\n%s\nstdout:\n%s", err, took.Round(time.Second), stderr.String(), out)
	}
	t.Logf("bench --quick took %s\n%s", took.Round(time.Second), out)

	for _, want := range []string{"## mfabridge benchmark", "- machine: ", "- versions: ", "slapd 2.", "FreeRADIUS 3.",
		"| measurement | W | result | p50 | p99 | replies / notes | target | verdict |"} {
		if !strings.Contains(out, want) {
			t.Errorf("the output lacks %q", want)
		}
	}
	rows := map[string]int{} // measurement → rows of the main table
	cpu := map[string][]string{}
	table := ""
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "| measurement ") {
			table = line
			continue
		}
		if !strings.HasPrefix(line, "| ") {
			continue
		}
		cells := strings.Split(line, " | ")
		if strings.Contains(table, "cores busy") {
			// | measurement | W | RADIUS server | slapd | load generator | all | cores busy | stolen by the host |
			if len(cells) != 8 {
				t.Errorf("a CPU table row with %d cells: %q", len(cells), line)
				continue
			}
			cpu[strings.TrimPrefix(cells[0], "| ")+" W="+cells[1]] = cells
			continue
		}
		if len(cells) < 8 {
			t.Errorf("a table row with %d cells: %q", len(cells), line)
			continue
		}
		rows[strings.TrimPrefix(cells[0], "| ")]++
		// Only the entry cache may be skipped, when check-config does not
		// know ldap.cache_ttl; everything else must have been measured.
		if strings.Contains(line, "not measured") || (strings.Contains(line, "skipped") && !strings.Contains(line, "cache_ttl")) {
			t.Errorf("a row was not measured: %q", line)
		}
	}
	perW := []string{
		"slapd ceiling: simple binds (go-ldap, W connections)",
		"slapd ceiling: search as service account + bind as user (2W connections)",
		"FreeRADIUS 3.2 + rlm_ldap: PAP, LDAP search + bind",
		"mfabridge: PAP, LDAP search + bind",
		"mfabridge ÷ FreeRADIUS (throughput)",
		"mfabridge ÷ slapd search+bind ceiling",
		"mfabridge with ldap.cache_ttl: 30s: PAP",
		"mfabridge with cache_ttl ÷ slapd simple-bind ceiling",
	}
	once := []string{
		"mfabridge at half of its peak",
		"FreeRADIUS at the same offered load",
		"mfabridge Status-Server at the same offered load",
		"mfabridge: Status-Server",
		"mfabridge: PAP, LDAP search + bind, on the",
		"mfabridge: full TOTP challenge flow",
		"cost of a challenge flow ÷ cost of a PAP login",
		"mfabridge: append-mode login",
		"memory per open challenge session: RSS growth",
		"memory per open challenge session: go heap in use growth",
		"challenge flows, state on Redis",
		"challenge flows: Redis ÷ memory",
		"append-mode logins, store on PostgreSQL",
		"append-mode logins: PostgreSQL ÷ SQLite",
		"challenge flows, memory → Redis: p99 added per round trip",
		"append-mode logins, SQLite → PostgreSQL: p99 added per round trip",
	}
	count := func(prefix string) int {
		n := 0
		for name, c := range rows {
			if strings.HasPrefix(name, prefix) {
				n += c
			}
		}
		return n
	}
	for _, p := range perW {
		if n := rows[p]; n != 3 {
			t.Errorf("%d rows for %q, want 3 (W = 8, 32, 128)", n, p)
		}
	}
	for _, p := range once {
		if n := count(p); n < 1 {
			t.Errorf("no row for %q", p)
		}
	}
	// The CPU table: every RADIUS step names the server's time per
	// request, every step slapd's (Status-Server touches no directory).
	for _, w := range []string{"8", "32", "128"} {
		for _, name := range []string{"mfabridge: PAP", "FreeRADIUS: PAP", "slapd ceiling: search + bind"} {
			cells, ok := cpu[name+" W="+w]
			switch {
			case !ok:
				t.Errorf("no CPU row for %s at W=%s", name, w)
			case strings.HasPrefix(name, "slapd") && cells[2] != "-":
				t.Errorf("the ceiling has a RADIUS server's CPU time: %q", cells)
			case !strings.HasPrefix(name, "slapd") && !strings.HasSuffix(cells[2], " µs"):
				t.Errorf("no CPU time for the RADIUS server: %q", cells)
			case !strings.HasSuffix(cells[3], " µs") || cells[3] == "0 µs":
				t.Errorf("no CPU time for slapd: %q", cells)
			case !strings.HasSuffix(cells[7], "% |"):
				t.Errorf("no steal time: %q", cells)
			}
		}
	}
	if t.Failed() {
		t.Logf("stderr:\n%s", stderr.String())
	}
}
