package store

import (
	"bytes"
	"context"

	"github.com/mfabridge/mfabridge/factors"
)

// UseRecoveryCode spends one of user's recovery codes: hash (see
// factors/recovery) is removed from the set in one transaction, so of
// two logins racing with one code, one wins. It reports whether the code
// was there.
func (s *Store) UseRecoveryCode(ctx context.Context, user string, hash []byte) (bool, error) {
	return s.changeIf(ctx, user, factors.Recovery, func(c *factors.Credential) bool {
		for i := 0; i+len(hash) <= len(c.Secret); i += len(hash) {
			if bytes.Equal(c.Secret[i:i+len(hash)], hash) {
				c.Secret = append(c.Secret[:i:i], c.Secret[i+len(hash):]...)
				return true
			}
		}
		return false
	})
}
