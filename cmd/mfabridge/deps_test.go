package main

import (
	"testing"

	"github.com/mfabridge/mfabridge/internal/deptest"
)

// TestDeps keeps the server binary pure Go and free of test code.
func TestDeps(t *testing.T) {
	deptest.Forbid(t, ".", map[string]string{
		"testing":                                         "the server binary must not link the testing package",
		"github.com/ebfe/scard":                           "cgo smartcard code lives in cmd/mfacard only",
		"github.com/mfabridge/mfabridge/test":             "test harness code does not belong in the binary",
		"github.com/mfabridge/mfabridge/internal/deptest": "test helper",
	})
}
