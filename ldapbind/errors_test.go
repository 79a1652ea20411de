package ldapbind

import (
	"errors"
	"fmt"
	"io"
	"net"
	"testing"

	"github.com/go-ldap/ldap/v3"

	"github.com/mfabridge/mfabridge/factors"
	"github.com/mfabridge/mfabridge/internal/audit"
)

// adError is result 49 as Active Directory sends it, with sub-code data.
func adError(data string) error {
	return ldap.NewError(ldap.LDAPResultInvalidCredentials, fmt.Errorf(
		"80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext error, data %s, v4563", data))
}

func TestBindError(t *testing.T) {
	tests := []struct {
		name   string
		err    error
		reason audit.Reason // the AccountError's reason; "" for ErrBadCredentials
		down   bool         // ErrUnavailable
	}{
		{"525 no such user", adError("525"), "", false},
		{"52e bad password", adError("52e"), "", false},
		{"52E upper case", adError("52E"), "", false},
		{"530 logon hours", adError("530"), audit.ReasonLogonHours, false},
		{"531 workstation", adError("531"), audit.ReasonWorkstation, false},
		{"532 password expired", adError("532"), audit.ReasonPasswordExpired, false},
		{"533 disabled", adError("533"), audit.ReasonAccountDisabled, false},
		{"701 account expired", adError("701"), audit.ReasonAccountExpired, false},
		{"773 must change", adError("773"), audit.ReasonPasswordMustChange, false},
		{"775 locked", adError("775"), audit.ReasonAccountLocked, false},
		{"unknown sub-code", adError("999"), "", false},
		{"OpenLDAP result 49", ldap.NewError(ldap.LDAPResultInvalidCredentials, errors.New("invalid credentials")), "", false},
		{"result 49 without text", ldap.NewError(ldap.LDAPResultInvalidCredentials, nil), "", false},
		{"wrapped", fmt.Errorf("bind: %w", adError("775")), audit.ReasonAccountLocked, false},
		{"unwilling to perform", ldap.NewError(ldap.LDAPResultUnwillingToPerform, errors.New("account locked")), "", false},
		{"inappropriate authentication", ldap.NewError(ldap.LDAPResultInappropriateAuthentication, nil), "", false},
		{"constraint violation", ldap.NewError(ldap.LDAPResultConstraintViolation, nil), "", false},
		{"insufficient access", ldap.NewError(ldap.LDAPResultInsufficientAccessRights, nil), "", false},
		{"other result", ldap.NewError(ldap.LDAPResultOperationsError, nil), "", false},
		{"network", ldap.NewError(ldap.ErrorNetwork, io.EOF), "", true},
		{"busy", ldap.NewError(ldap.LDAPResultBusy, nil), "", true},
		{"unavailable", ldap.NewError(ldap.LDAPResultUnavailable, nil), "", true},
		{"server down", ldap.NewError(ldap.LDAPResultServerDown, nil), "", true},
		{"timeout", ldap.NewError(ldap.LDAPResultTimeout, nil), "", true},
		{"time limit", ldap.NewError(ldap.LDAPResultTimeLimitExceeded, nil), "", true},
		{"admin limit", ldap.NewError(ldap.LDAPResultAdminLimitExceeded, nil), "", true},
		{"not an LDAP error", &net.OpError{Op: "read", Net: "tcp", Err: io.ErrUnexpectedEOF}, "", true},
		{"EOF", io.EOF, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := bindError(tt.err)
			var ae *factors.AccountError
			switch {
			case tt.down:
				if !errors.Is(err, factors.ErrUnavailable) {
					t.Errorf("got %v, want ErrUnavailable", err)
				}
				if !errors.Is(err, tt.err) {
					t.Errorf("got %v, which does not wrap %v", err, tt.err)
				}
			case tt.reason != "":
				if !errors.As(err, &ae) || ae.Reason != tt.reason {
					t.Errorf("got %v, want an AccountError %q", err, tt.reason)
				}
			default:
				if err != factors.ErrBadCredentials {
					t.Errorf("got %v, want ErrBadCredentials", err)
				}
			}
			if tt.reason == "" && errors.As(err, &ae) {
				t.Errorf("got an AccountError %q", ae.Reason)
			}
		})
	}
}

func TestIsNetwork(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want bool
	}{
		{ldap.NewError(ldap.ErrorNetwork, io.EOF), true},
		{ldap.NewError(ldap.LDAPResultServerDown, nil), true},
		{adError("52e"), false},
		{io.EOF, false},
		{nil, false},
	} {
		if got := isNetwork(tt.err); got != tt.want {
			t.Errorf("isNetwork(%v) = %t, want %t", tt.err, got, tt.want)
		}
	}
}
