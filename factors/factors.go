package factors

import (
	"errors"
	"fmt"
	"strings"

	"github.com/mfabridge/mfabridge/internal/audit"
)

// User is a directory entry after a successful primary authentication or
// lookup.
type User struct {
	// Name is the user's one identity: the entry's naming attribute
	// (ldap.attributes.username) as stored, in the normalised form of
	// internal/username. Enrolments, lockout counters, send limits, the
	// replay guard, remembered logins and audit records are keyed on it,
	// never on what was typed.
	Name string
	// Login is the name the entry was found by, as normalised from what
	// the user typed ("ALICE@example.org" found "alice"); "" when it is
	// Name.
	Login  string
	DN     string   // the entry's distinguished name
	Groups []string // the groups policies name that the user is in, as the policies write them
	Mobile string   // for text messages, as stored; "" when absent
	Voice  string   // for calls, as stored; "" when absent
	UPN    string   // smartcard identity attribute
	// SID is Active Directory's objectSid as S-1-5-21-…, read by smartcard
	// lookups; "" when the entry has none.
	SID string
	// Certificates are DER certificates from the certificate attribute.
	Certificates [][]byte
	// Enrolment is filled by the conversation from the enrolment store.
	Enrolment *Enrolment `json:"-"`
}

// InGroup reports whether the user is a member of group, named either by
// its name or by its DN; case does not matter, as in LDAP.
func (u *User) InGroup(group string) bool {
	for _, g := range u.Groups {
		if strings.EqualFold(g, group) {
			return true
		}
	}
	return false
}

// InAny reports whether the user is a member of any of groups.
func (u *User) InAny(groups []string) bool {
	for _, g := range groups {
		if u.InGroup(g) {
			return true
		}
	}
	return false
}

// ErrBadCredentials is a wrong password or an unknown user; the two must
// look the same from outside.
var ErrBadCredentials = errors.New("bad credentials")

// ErrNoSuchUser is a name no directory entry answers to (or more than
// one does). It is told apart from ErrBadCredentials inside the bridge
// only, so that no per-user state is kept for names nobody holds; from
// outside it must look like a wrong password.
var ErrNoSuchUser = fmt.Errorf("no such user: %w", ErrBadCredentials)

// ErrUnavailable wraps failures to reach a backend (every directory server
// down, a timeout): the user may be fine, the bridge cannot tell.
var ErrUnavailable = errors.New("backend unavailable")

// AccountError is a directory refusal for a reason other than the
// password: Active Directory reports these only when the password was
// right, so they must never be shown to someone who might not know it.
type AccountError struct {
	Reason audit.Reason // a stable reason code
	// User is the canonical name of the account refused, when the refusal
	// comes from a lookup (a smartcard login); "" otherwise.
	User string
}

func (e *AccountError) Error() string { return "account refused: " + string(e.Reason) }

// IsPasswordExpiry reports whether err says the password must be changed,
// which report_password_expiry may tell the user.
func IsPasswordExpiry(err error) bool {
	var ae *AccountError
	return errors.As(err, &ae) && (ae.Reason == audit.ReasonPasswordExpired || ae.Reason == audit.ReasonPasswordMustChange)
}

// Unavailable wraps err as ErrUnavailable with context.
func Unavailable(what string, err error) error {
	return fmt.Errorf("%s: %w: %w", what, ErrUnavailable, err)
}
