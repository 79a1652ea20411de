package ldapbind

import (
	"testing"

	"github.com/mfabridge/mfabridge/internal/deptest"
)

// TestDeps keeps the directory independent of the RADIUS front and of the
// other backends.
func TestDeps(t *testing.T) {
	deptest.Forbid(t, ".", map[string]string{
		"github.com/mfabridge/mfabridge/radius":         "backends never import the front",
		"github.com/mfabridge/mfabridge/factors/otp":    "backends never import each other",
		"github.com/mfabridge/mfabridge/internal/store": "backends never import each other",
		"github.com/mfabridge/mfabridge/internal/state": "backends never import each other",
	})
}
