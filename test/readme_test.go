package test

import (
	"os"
	"regexp"
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
