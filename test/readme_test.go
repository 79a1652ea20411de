package test

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/mfabridge/mfabridge/config"
)

// docs returns the README and every file under docs/, by name.
func docs(t *testing.T) map[string][]byte {
	t.Helper()
	files, _ := filepath.Glob("../docs/*.md")
	out := map[string][]byte{}
	for _, f := range append(files, "../README.md") {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[strings.TrimPrefix(f, "../")] = b
	}
	if len(out) < 5 {
		t.Fatalf("only %d documents", len(out))
	}
	return out
}

// TestREADMEExamples loads every YAML example in the README and the docs:
// the documentation must not show a configuration that does not load.
func TestREADMEExamples(t *testing.T) {
	n := 0
	for name, b := range docs(t) {
		for i, m := range regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllSubmatch(b, -1) {
			n++
			if _, err := config.Parse(name+" example", m[1]); err != nil {
				t.Errorf("%s example %d does not load:\n%v", name, i+1, err)
			}
		}
	}
	if n < 4 {
		t.Fatalf("only %d YAML examples in the documentation", n)
	}
}

// table returns the backticked names in the first column of the
// Markdown table that follows header in doc.
func table(t *testing.T, doc []byte, header string) map[string]bool {
	t.Helper()
	start := bytes.Index(doc, []byte(header))
	if start < 0 {
		t.Fatalf("no table %q", header)
	}
	tbl := doc[start:]
	if end := bytes.Index(tbl, []byte("\n\n")); end > 0 {
		tbl = tbl[:end]
	}
	out := map[string]bool{}
	for _, row := range strings.Split(string(tbl), "\n")[2:] {
		cells := strings.Split(row, "|")
		if len(cells) < 3 {
			continue
		}
		for _, m := range regexp.MustCompile("`([a-z_0-9]+)`").FindAllStringSubmatch(cells[1], -1) {
			out[m[1]] = true
		}
	}
	return out
}

// codeStrings finds every first submatch of re in the Go files (tests
// left out) of dirs.
func codeStrings(t *testing.T, re *regexp.Regexp, dirs ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, dir := range dirs {
		files, _ := filepath.Glob(filepath.Join("..", dir, "*.go"))
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range re.FindAllSubmatch(src, -1) {
				out[string(m[1])] = strings.TrimPrefix(f, "../")
			}
		}
	}
	return out
}

// TestREADMEReasons holds the table of audit reasons in
// docs/operations.md against the code, both ways: every reason code has a
// row, and every row names a code. The codes have one home, the Reason
// constants of internal/audit.
func TestREADMEReasons(t *testing.T) {
	documented := table(t, docs(t)["docs/operations.md"], "| reason | outcome | meaning |")
	codes := codeStrings(t, regexp.MustCompile(`(?m)^\s*Reason\w*\s+Reason\s*=\s*"([a-z_]+)"`), "internal/audit")
	delete(codes, "eap_continue") // counted, never audited
	if len(codes) < 50 {
		t.Fatalf("found only %d reason codes in the code: the pattern no longer matches", len(codes))
	}
	for code, where := range codes {
		if !documented[code] {
			t.Errorf("reason %q (%s) has no row in the reason table of docs/operations.md", code, where)
		}
	}
	for code := range documented {
		if _, ok := codes[code]; !ok {
			t.Errorf("the reason table of docs/operations.md lists %q, which no code writes", code)
		}
	}
}

// TestREADMEMetrics holds the metrics table of docs/operations.md against
// the metric names the code registers, both ways.
func TestREADMEMetrics(t *testing.T) {
	documented := table(t, docs(t)["docs/operations.md"], "| metric | labels | meaning |")
	names := codeStrings(t, regexp.MustCompile(`"(mfabridge_[a-z_]+)"`), "radius", "ldapbind", "internal/state", "internal/store",
		"factors", "factors/otp", "factors/sms", "factors/voice", "factors/smartcard", "cmd/mfabridge", "portal")
	if len(names) < 10 {
		t.Fatalf("found only %d metric names in the code", len(names))
	}
	for n, where := range names {
		if !documented[n] {
			t.Errorf("metric %s (%s) has no row in the metrics table of docs/operations.md", n, where)
		}
	}
	for n := range documented {
		if _, ok := names[n]; !ok {
			t.Errorf("the metrics table of docs/operations.md lists %s, which no code registers", n)
		}
	}
}
