package otp_test

import (
	"testing"

	"github.com/mfabridge/mfabridge/internal/deptest"
)

func TestDeps(t *testing.T) {
	deptest.Forbid(t, ".", map[string]string{
		"github.com/mfabridge/mfabridge/radius":         "factors never import the front",
		"github.com/mfabridge/mfabridge/ldapbind":       "factors never import other backends",
		"github.com/mfabridge/mfabridge/internal/store": "factors reach the store through Counters",
		"github.com/mfabridge/mfabridge/internal/state": "factors reach the state through Guard",
	})
}
