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

// TestREADMEExamples loads every YAML example in the README: the
// documentation must not show a configuration that does not load.
func TestREADMEExamples(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllSubmatch(b, -1)
	if len(blocks) == 0 {
		t.Fatal("no YAML example in the README")
	}
	for i, m := range blocks {
		if _, err := config.Parse("README.md example", m[1]); err != nil {
			t.Errorf("example %d does not load:\n%v", i+1, err)
		}
	}
}

// TestREADMEReasons holds the README's table of audit reasons against the
// code: every reason code the code can write is in the table. The codes
// are the string constants named Reason… in radius and factors, and the
// cert_… codes of factors/smartcard.
func TestREADMEReasons(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	start := bytes.Index(readme, []byte("| reason | outcome | meaning |"))
	if start < 0 {
		t.Fatal("no reason table in the README")
	}
	table := readme[start:]
	if end := bytes.Index(table, []byte("\n\n")); end > 0 {
		table = table[:end]
	}
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile("`([a-z_]+)`").FindAllSubmatch(table, -1) {
		documented[string(m[1])] = true
	}
	codes := map[string]string{} // code → where
	for _, dir := range []string{"../radius", "../factors"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range regexp.MustCompile(`(?m)^\s*Reason\w*\s*=\s*"([a-z_]+)"`).FindAllSubmatch(src, -1) {
				codes[string(m[1])] = f
			}
		}
	}
	src, err := os.ReadFile("../factors/smartcard/smartcard.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`"(cert_[a-z_]+)"`).FindAllSubmatch(src, -1) {
		codes[string(m[1])] = "factors/smartcard"
	}
	if len(codes) < 50 {
		t.Fatalf("found only %d reason codes in the code: the pattern no longer matches", len(codes))
	}
	for code, where := range codes {
		if code == "eap_continue" {
			continue // counted, never audited
		}
		if !documented[code] {
			t.Errorf("reason %q (%s) is not in the README's reason table", code, where)
		}
	}
}
