package factors

import (
	"errors"
	"fmt"
	"strings"
)

// User is a directory entry after a successful primary authentication or
// lookup.
type User struct {
	Name   string   // the login name as normalised for the directory
	DN     string   // the entry's distinguished name
	Groups []string // group names (name_attribute) and DNs, for matching
	Mobile string   // for text messages, as stored; "" when absent
	Voice  string   // for calls, as stored; "" when absent
	UPN    string   // smartcard identity attribute
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

// ErrUnavailable wraps failures to reach a backend (every directory server
// down, a timeout): the user may be fine, the bridge cannot tell.
var ErrUnavailable = errors.New("backend unavailable")

// AccountError is a directory refusal for a reason other than the
// password: Active Directory reports these only when the password was
// right, so they must never be shown to someone who might not know it.
type AccountError struct {
	Reason string // a stable reason code, see the Reason constants
}

func (e *AccountError) Error() string { return "account refused: " + e.Reason }

// Reason codes for account refusals; they appear in audit records and are
// part of the documented interface.
const (
	ReasonAccountDisabled    = "account_disabled"
	ReasonAccountLocked      = "account_locked"
	ReasonAccountExpired     = "account_expired"
	ReasonPasswordExpired    = "password_expired"
	ReasonPasswordMustChange = "password_must_change"
	ReasonLogonHours         = "logon_hours"
	ReasonWorkstation        = "workstation_restricted"
)

// IsPasswordExpiry reports whether err says the password must be changed,
// which report_password_expiry may tell the user.
func IsPasswordExpiry(err error) bool {
	var ae *AccountError
	return errors.As(err, &ae) && (ae.Reason == ReasonPasswordExpired || ae.Reason == ReasonPasswordMustChange)
}

// Unavailable wraps err as ErrUnavailable with context.
func Unavailable(what string, err error) error {
	return fmt.Errorf("%s: %w: %w", what, ErrUnavailable, err)
}
