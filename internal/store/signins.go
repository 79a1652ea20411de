package store

import (
	"context"
	"database/sql"
	"time"

	"github.com/mfabridge/mfabridge/factors"
)

// Each user's last sign-ins are kept for the portal, where the user can
// say one was not theirs. A login does not wait for them: they are
// written with the last-use times, in the same transaction, every
// usedFlush; only the last keepSignIns per user stay.

const (
	keepSignIns = 20
	// maxPendingUsers bounds what waits for a write: past it, the
	// sign-ins of other users are not recorded until the next flush (a
	// disk that stopped accepting writes must not grow the heap).
	maxPendingUsers = 50_000
)

// RecordSignIn keeps a decision about user for the user's history. Only
// the last keepSignIns of a user wait for the write: a busy user's
// history costs no more to write than anyone's.
func (s *Store) RecordSignIn(user string, si factors.SignIn) {
	s.usedMu.Lock()
	defer s.usedMu.Unlock()
	if s.signins == nil {
		s.signins = map[string][]factors.SignIn{}
	}
	p, ok := s.signins[user]
	if !ok && len(s.signins) >= maxPendingUsers {
		return
	}
	if len(p) == keepSignIns {
		p = append(p[:0], p[1:]...)
	}
	s.signins[user] = append(p, si)
}

// writeSignIns inserts the batch and trims each user's history.
func (s *Store) writeSignIns(ctx context.Context, tx *sql.Tx, batch map[string][]factors.SignIn) (int64, error) {
	if len(batch) == 0 {
		return 0, nil
	}
	insert, err := tx.PrepareContext(ctx, s.q(`INSERT INTO signins (name, at, client, station, outcome, method, reason) VALUES (?, ?, ?, ?, ?, ?, ?)`))
	if err != nil {
		return 0, err
	}
	defer insert.Close()
	n := int64(0)
	for user, list := range batch {
		for _, si := range list {
			if _, err := insert.ExecContext(ctx, user, si.Time.Unix(), si.Client, si.Station, si.Outcome, string(si.Method), si.Reason); err != nil {
				return 0, err
			}
			n++
		}
	}
	trim, err := tx.PrepareContext(ctx, s.q(`DELETE FROM signins WHERE name = ?1 AND id NOT IN
		(SELECT id FROM signins WHERE name = ?1 ORDER BY id DESC LIMIT ?2)`))
	if err != nil {
		return 0, err
	}
	defer trim.Close()
	for user := range batch {
		if _, err := trim.ExecContext(ctx, user, keepSignIns); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// SignIns returns user's last sign-ins, newest first, with those still
// waiting for a write.
func (s *Store) SignIns(ctx context.Context, user string) ([]factors.SignIn, error) {
	s.flushUsed()
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT at, client, station, outcome, method, reason FROM signins WHERE name = ?
		ORDER BY id DESC LIMIT ?`), user, keepSignIns)
	if err != nil {
		return nil, s.writeError(err)
	}
	defer rows.Close()
	var out []factors.SignIn
	for rows.Next() {
		var at int64
		var si factors.SignIn
		var m string
		if err := rows.Scan(&at, &si.Client, &si.Station, &si.Outcome, &m, &si.Reason); err != nil {
			return nil, s.writeError(err)
		}
		si.Time, si.Method = time.Unix(at, 0), factors.Method(m)
		out = append(out, si)
	}
	return out, rows.Err()
}

// Report blocks user's logins at the user's own word ("This wasn't me"):
// every login is refused until ResetLockout, and a new lockout epoch ends
// remembered logins and known stations at once.
func (s *Store) Report(ctx context.Context, user string) error {
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO users (name, lockout_epoch, reported_at) VALUES (?1, 1, ?2)
		ON CONFLICT (name) DO UPDATE SET lockout_epoch = users.lockout_epoch + 1, reported_at = ?2`), user, s.now().Unix())
	if err != nil {
		return s.writeError(err)
	}
	return nil
}
