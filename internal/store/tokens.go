package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/mfabridge/mfabridge/factors"
)

// Hardware tokens an organisation bought are imported by serial before
// anyone holds them (mfabridge token import); a member of staff then
// claims one in the portal with its serial and a code it shows, which
// moves it, in one transaction, to that user's credentials. A token's
// seed is sealed like a user's, bound to its serial: the additional data
// names no user (a user name never holds a NUL).

// Token is a hardware token that is nobody's yet.
type Token struct {
	Serial string
	Digits int
	// Counter is the next counter the token will show a code for.
	Counter uint64
	Secret  []byte
}

func tokenOwner(serial string) string { return "\x00token " + serial }

func (t Token) credential() factors.Credential {
	return factors.Credential{Method: factors.HOTP, Secret: t.Secret, Algorithm: "SHA1", Digits: t.Digits, Counter: t.Counter, Active: true}
}

// AddTokens imports tokens in one transaction: all or none. A serial
// already in stock is ErrExists unless replace is set.
func (s *Store) AddTokens(ctx context.Context, tokens []Token, replace bool) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return s.writeError(err)
	}
	defer tx.Rollback()
	for _, t := range tokens {
		c := t.credential()
		sealed, err := s.sealCredential(tokenOwner(t.Serial), c)
		if err != nil {
			return err
		}
		if !replace {
			var n int
			if err := tx.QueryRowContext(ctx, s.q(`SELECT count(*) FROM tokens WHERE serial = ?`), t.Serial).Scan(&n); err != nil {
				return s.writeError(err)
			}
			if n > 0 {
				return fmt.Errorf("%w: token %s is in stock already", ErrExists, t.Serial)
			}
		}
		_, err = tx.ExecContext(ctx, s.q(`INSERT INTO tokens (serial, secret, digits, counter, created_at) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (serial) DO UPDATE SET secret = excluded.secret, digits = excluded.digits, counter = excluded.counter,
				created_at = excluded.created_at`), t.Serial, sealed, c.Digits, int64(c.Counter), s.now().Unix())
		if err != nil {
			return fmt.Errorf("%w (token %s)", s.writeError(err), t.Serial)
		}
	}
	return s.commit(tx)
}

// TokensInStock counts the tokens nobody has claimed.
func (s *Store) TokensInStock(ctx context.Context) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM tokens`).Scan(&n)
	return n, err
}

// ClaimToken gives the token with serial to user when check accepts it
// (a code it shows, see otp.Claim, which returns the next counter): the
// token leaves the stock and becomes the user's active HOTP credential
// in one transaction, so two users cannot claim one token. A serial not
// in stock, or a code check refuses, is ErrNotFound (the two are not
// told apart); a user who holds a token already is ErrExists.
func (s *Store) ClaimToken(ctx context.Context, user, serial string, check func(factors.Credential) (uint64, bool)) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return s.writeError(err)
	}
	defer tx.Rollback()
	var sealed []byte
	var digits int
	var counter int64
	err = tx.QueryRowContext(ctx, s.q(`SELECT secret, digits, counter FROM tokens WHERE serial = ?`+s.d.forUpdate), serial).Scan(&sealed, &digits, &counter)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	if err != nil {
		return s.writeError(err)
	}
	t := Token{Serial: serial, Digits: digits, Counter: uint64(counter)}
	c := t.credential()
	if c.Secret, err = s.openCredential(sealed, tokenOwner(serial), c); err != nil {
		return fmt.Errorf("store: the seed of token %s does not open under store.key (altered row)", serial)
	}
	next, ok := check(c)
	if !ok {
		return ErrNotFound
	}
	c.Counter = next
	if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM tokens WHERE serial = ?`), serial); err != nil {
		return s.writeError(err)
	}
	if err := s.put(ctx, tx, user, c, false); err != nil {
		return err
	}
	return s.commit(tx)
}
