package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"time"
)

// Invites are one-time codes the helpdesk hands a user, so that the
// user's first method can be enrolled in the portal without a second
// factor they do not yet hold. A user has at most one; a new one replaces
// it. Only a hash is kept: the codes are random (see cmd/mfabridge's user
// invite), so a hash that cannot be reversed is enough, and a reader of
// the store learns no code to present.

func inviteHash(user, code string) []byte {
	h := sha256.New()
	h.Write([]byte("mfabridge invite\x00" + user + "\x00" + code))
	return h.Sum(nil)
}

// Invite records code as user's invite, valid for ttl, replacing any
// earlier one.
func (s *Store) Invite(ctx context.Context, user, code string, ttl time.Duration) error {
	now := s.now()
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO invites (name, hash, created_at, expires_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET hash = excluded.hash, created_at = excluded.created_at, expires_at = excluded.expires_at`),
		user, inviteHash(user, code), now.Unix(), now.Add(ttl).Unix())
	if err != nil {
		return s.writeError(err)
	}
	return nil
}

// RedeemInvite uses user's invite if code is it and it has not expired;
// it works once (one statement deletes it as it matches). A wrong,
// expired or used code is ErrNotFound.
func (s *Store) RedeemInvite(ctx context.Context, user, code string) error {
	res, err := s.db.ExecContext(ctx, s.q(`DELETE FROM invites WHERE name = ? AND hash = ? AND expires_at > ?`),
		user, inviteHash(user, code), s.now().Unix())
	if err != nil {
		return s.writeError(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return ErrNotFound
	}
	return nil
}

// InviteExpiry returns when user's invite expires; ok is false when the
// user has none (expired ones included).
func (s *Store) InviteExpiry(ctx context.Context, user string) (t time.Time, ok bool, err error) {
	var exp int64
	err = s.db.QueryRowContext(ctx, s.q(`SELECT expires_at FROM invites WHERE name = ? AND expires_at > ?`), user, s.now().Unix()).Scan(&exp)
	switch {
	case err == nil:
		return time.Unix(exp, 0), true, nil
	case errors.Is(err, sql.ErrNoRows):
		return time.Time{}, false, nil
	}
	return time.Time{}, false, s.writeError(err)
}
