package ldapbind

import (
	"errors"
	"regexp"
	"strings"

	"github.com/go-ldap/ldap/v3"

	"github.com/mfabridge/mfabridge/factors"
	"github.com/mfabridge/mfabridge/internal/audit"
)

// adDataRE finds the sub-code Active Directory puts in the diagnostic
// message of result 49, e.g. "80090308: LdapErr: DSID-0C09044E, comment:
// AcceptSecurityContext error, data 52e, v4563".
var adDataRE = regexp.MustCompile(`data ([0-9a-fA-F]{3,8})`)

// adReasons maps AD sub-codes to reasons. 525 (no such user) and 52e (bad
// password) are the ordinary failure; the others are reported by AD only
// when the password was right.
var adReasons = map[string]audit.Reason{
	"530": audit.ReasonLogonHours,
	"531": audit.ReasonWorkstation,
	"532": audit.ReasonPasswordExpired,
	"533": audit.ReasonAccountDisabled,
	"701": audit.ReasonAccountExpired,
	"773": audit.ReasonPasswordMustChange,
	"775": audit.ReasonAccountLocked,
}

// bindError classifies the error of a user bind.
func bindError(err error) error {
	var le *ldap.Error
	if !errors.As(err, &le) {
		return factors.Unavailable("ldapbind: bind", err)
	}
	switch le.ResultCode {
	case ldap.LDAPResultInvalidCredentials:
		if le.Err != nil {
			if m := adDataRE.FindStringSubmatch(le.Err.Error()); m != nil {
				if r, ok := adReasons[strings.ToLower(m[1])]; ok {
					return &factors.AccountError{Reason: r}
				}
			}
		}
		return factors.ErrBadCredentials
	case ldap.LDAPResultUnwillingToPerform, ldap.LDAPResultInappropriateAuthentication,
		ldap.LDAPResultConstraintViolation, ldap.LDAPResultInsufficientAccessRights:
		// OpenLDAP's ppolicy and other servers refuse locked or disabled
		// accounts this way; never treat it as success, never say why.
		return factors.ErrBadCredentials
	case ldap.ErrorNetwork, ldap.LDAPResultBusy, ldap.LDAPResultUnavailable, ldap.LDAPResultServerDown,
		ldap.LDAPResultTimeout, ldap.LDAPResultTimeLimitExceeded, ldap.LDAPResultAdminLimitExceeded:
		return factors.Unavailable("ldapbind: bind", err)
	}
	return factors.ErrBadCredentials
}

// isNetwork reports an error after which a connection must be thrown away.
func isNetwork(err error) bool {
	return ldap.IsErrorWithCode(err, ldap.ErrorNetwork) || ldap.IsErrorWithCode(err, ldap.LDAPResultServerDown)
}

// isTimeout reports a request that got no answer in time (go-ldap gives
// it the network error code).
func isTimeout(err error) bool {
	return err != nil && strings.Contains(err.Error(), "timed out")
}
