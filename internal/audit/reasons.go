package audit

import "errors"

// Reason is the stable code of a decision, in audit records and in the
// reason label of mfabridge_decisions_total. Admins alert on them: add
// codes, never rename one. docs/operations.md lists every one, and a test
// holds that table against this file.
type Reason string

// The reasons, by where they arise.
const (
	// The portal: what users do to their own account (outcome change or
	// reject); its sign-ins are the conversation's, with client portal.
	ReasonInviteUsed      Reason = "invite_used"     // a first enrolment opened by a helpdesk invite
	ReasonInviteRefused   Reason = "invite_refused"  // a wrong, used or expired invite code
	ReasonTrustedNetwork  Reason = "trusted_network" // a first enrolment opened by a source in portal.trusted_networks
	ReasonMethodEnrolled  Reason = "method_enrolled" // a method added (factor names it)
	ReasonMethodRemoved   Reason = "method_removed"  // a method removed
	ReasonDefaultChanged  Reason = "default_changed" // the default method changed
	ReasonCSRF            Reason = "csrf_refused"    // a form without its session's token, or from another origin
	ReasonPortalRateLimit Reason = "portal_rate_limited"
	ReasonTokenRefused    Reason = "token_refused" // a hardware token claimed with a serial and code that do not match a free one
	// ReasonReportedByUser: the user pressed "This wasn't me" (outcome
	// change); every later login is refused with it until user reset.
	ReasonReportedByUser Reason = "reported_by_user"

	// The conversation.
	ReasonBypassGroup       Reason = "bypass_group"            // accepted: member of a bypass group
	ReasonMFAOffPolicy      Reason = "mfa_off"                 // accepted: the policy has mfa: off
	ReasonOptionalNoMethods Reason = "mfa_optional_unenrolled" // accepted: mfa optional, user holds no method
	ReasonUnenrolledAllowed Reason = "unenrolled_allowed"      // accepted: mfa required, unenrolled: allow
	ReasonMFA               Reason = "mfa_passed"              // accepted: password and second factor
	ReasonRemembered        Reason = "remembered"              // accepted: password alone inside the remember window
	ReasonChallenge         Reason = "challenge_sent"          // challenged: the password was right
	ReasonMethodStarted     Reason = "method_started"          // challenged: a text message or call was chosen from the menu
	ReasonChallengePending  Reason = "approval_pending"        // challenged: Enter pressed before # on the phone
	ReasonRetry             Reason = "wrong_code_retry"        // challenged again after a wrong code
	ReasonReplayRetry       Reason = "code_replayed_retry"     // challenged again after a code used before
	ReasonBadRequest        Reason = "bad_request"             // no usable User-Name or User-Password
	ReasonBadUsername       Reason = "bad_username"            // control characters, too long, empty after stripping
	ReasonUnsupportedAuth   Reason = "unsupported_auth"        // CHAP or MS-CHAP
	ReasonEAPUnsupported    Reason = "eap_unsupported"         // EAP-Message without EAP support
	ReasonEmptyPassword     Reason = "empty_password"          // refused before any LDAP call
	ReasonBadCredentials    Reason = "bad_credentials"         // wrong password or unknown user
	ReasonDirectoryDown     Reason = "directory_unavailable"
	ReasonStoreDown         Reason = "store_unavailable"
	ReasonDeniedGroup       Reason = "deny_group"
	ReasonNotInRequired     Reason = "not_in_required_group"
	ReasonMFAUnavailable    Reason = "mfa_unavailable" // mfa required, no factor can be offered
	ReasonNotEnrolled       Reason = "not_enrolled"    // mfa required, the user holds no offered method
	ReasonWrongCode         Reason = "wrong_code"
	ReasonReplayedCode      Reason = "code_replayed" // a right code used before
	ReasonCodeMissing       Reason = "code_missing"  // append mode without a code after the password
	ReasonAttemptsExhausted Reason = "attempts_exhausted"
	ReasonCodeSent          Reason = "code_sent"           // append mode: "password,sms" sent a code; log in again with it
	ReasonSendFailed        Reason = "send_failed"         // a text message or call failed, or a limit refused it, and nothing else is left
	ReasonMethodUnavailable Reason = "method_unavailable"  // append mode asked for a method the user cannot use
	ReasonRefused           Reason = "call_refused"        // a key other than # was pressed
	ReasonApprovalTimeout   Reason = "approval_timeout"    // no # in time
	ReasonLockedPassword    Reason = "locked_out_password" // too many wrong passwords
	ReasonLockedCode        Reason = "locked_out_code"     // too many wrong codes
	ReasonStateDown         Reason = "state_unavailable"   // the ephemeral state cannot be read or written: refused, never let through
	ReasonUnknownState      Reason = "unknown_state"       // a State this server did not issue, used, or expired
	ReasonStateMismatch     Reason = "state_mismatch"      // a State from another client or for another user
	ReasonPolicyMissing     Reason = "policy_missing"
	ReasonInternal          Reason = "internal_error"

	// Account refusals: Active Directory sub-codes, and disabled or locked accounts a smartcard lookup finds.
	ReasonAccountDisabled    Reason = "account_disabled"
	ReasonAccountLocked      Reason = "account_locked"
	ReasonAccountExpired     Reason = "account_expired"
	ReasonPasswordExpired    Reason = "password_expired"
	ReasonPasswordMustChange Reason = "password_must_change"
	ReasonLogonHours         Reason = "logon_hours"
	ReasonWorkstation        Reason = "workstation_restricted"

	// Smartcard logins.
	ReasonEAPContinue         Reason = "eap_continue" // counted, not audited: a round in the middle of a handshake
	ReasonEAPFailed           Reason = "eap_failed"   // the EAP-TLS exchange failed (malformed, limits, TLS error)
	ReasonSmartcard           Reason = "smartcard"    // accepted: certificate, and the PIN that unlocked it
	ReasonSmartcardNotAllowed Reason = "smartcard_not_allowed"
	ReasonCertUnknownUser     Reason = "cert_unknown_user"      // the certificate's identity is no user in the directory
	ReasonCertMismatch        Reason = "cert_identity_mismatch" // the EAP identity or User-Name is not the certificate's user
	ReasonCertSIDMismatch     Reason = "cert_sid_mismatch"      // the certificate's SID is not its user's objectSid

	// Certificates refused by factors/smartcard.
	ReasonCertUntrusted       Reason = "cert_untrusted"         // the certificate does not chain to a configured CA
	ReasonCertExpired         Reason = "cert_expired"           // the certificate has expired or is not yet valid
	ReasonCertKeyUsage        Reason = "cert_key_usage"         // its key usage does not allow signing
	ReasonCertEKU             Reason = "cert_eku"               // it lacks a required extended key usage
	ReasonCertRevoked         Reason = "cert_revoked"           // it, or a CA of its chain, is revoked
	ReasonCertCRLStale        Reason = "cert_crl_stale"         // its issuer's CRL is past its next update
	ReasonCertCRLMissing      Reason = "cert_crl_missing"       // no CRL of its issuer is loaded
	ReasonCertOCSPUnavailable Reason = "cert_ocsp_unavailable"  // the OCSP responder could not confirm it
	ReasonCertOCSPStale       Reason = "cert_ocsp_stale"        // an OCSP answer that is not current (replayed, or from a wrong clock)
	ReasonCertNoIdentity      Reason = "cert_no_identity"       // it names no usable identity
	ReasonCertRealm           Reason = "cert_realm_not_allowed" // its realm is not in allowed_realms
	ReasonCertNotEnrolled     Reason = "cert_not_enrolled"      // it is not the certificate enrolled for its user
	ReasonCertInvalid         Reason = "cert_invalid"           // refused for another reason (an unreadable certificate)
)

// Refusal is an error that carries the reason it is audited with, so
// that a refusal travels up as an error and becomes a reason in one
// place (ReasonOf), with no table of errors to keep beside it.
type Refusal struct {
	Reason Reason
	Msg    string
}

func (r *Refusal) Error() string { return r.Msg }

// ReasonOf returns the reason of the first Refusal in err's chain.
func ReasonOf(err error) (Reason, bool) {
	var r *Refusal
	if errors.As(err, &r) {
		return r.Reason, true
	}
	return "", false
}
