package config_test

import (
	"testing"

	"github.com/mfabridge/mfabridge/internal/deptest"
)

// TestDeps keeps config a leaf (see doc.go): the standard library and
// gopkg.in/yaml.v3, nothing of the module.
func TestDeps(t *testing.T) {
	for _, p := range deptest.List(t, ".") {
		switch {
		case p.Standard || p.ImportPath == "github.com/mfabridge/mfabridge/config":
		case p.Module != nil && p.Module.Path == "gopkg.in/yaml.v3":
		default:
			t.Errorf("config depends on %s", p.ImportPath)
		}
	}
}
