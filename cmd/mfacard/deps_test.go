package main

import (
	"testing"

	"github.com/mfabridge/mfabridge/internal/deptest"
)

// TestDeps keeps test code out of the tool; its tests may use the virtual
// card.
func TestDeps(t *testing.T) {
	deptest.Forbid(t, ".", map[string]string{
		"testing":                             "the tool must not link the testing package",
		"github.com/mfabridge/mfabridge/test": "the virtual card and the harness are for tests only",
		"github.com/mfabridge/mfabridge/internal/deptest": "test helper",
	})
}
