package radius

import (
	"testing"

	"github.com/mfabridge/mfabridge/internal/deptest"
)

// TestDeps keeps the RADIUS front away from its backends: it reaches them
// through the interfaces it declares (see doc.go).
func TestDeps(t *testing.T) {
	why := "radius reaches backends only through the interfaces it declares"
	deptest.Forbid(t, ".", map[string]string{
		"github.com/mfabridge/mfabridge/ldapbind":       why,
		"github.com/mfabridge/mfabridge/factors/otp":    why,
		"github.com/mfabridge/mfabridge/internal/store": why,
		"github.com/mfabridge/mfabridge/internal/state": why,
	})
}
