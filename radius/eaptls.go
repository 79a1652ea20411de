package radius

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"

	"layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2869"

	"github.com/mfabridge/mfabridge/factors"
	"github.com/mfabridge/mfabridge/internal/audit"
	"github.com/mfabridge/mfabridge/radius/eap"
)

// Certificates decides who a client certificate belongs to:
// factors/smartcard implements it. (Whether the certificate is
// acceptable at all is decided during the handshake, by the Verify
// function the EAP server was given.)
type Certificates interface {
	// Identity returns the user name the certificate carries.
	Identity(c *x509.Certificate) (string, error)
	// Reason maps a refusal to its audit reason code.
	Reason(err error) string
}

// Reason codes of smartcard logins.
const (
	ReasonEAPContinue         = "eap_continue" // counted, not audited: a round in the middle of a handshake
	ReasonEAPFailed           = "eap_failed"   // the EAP-TLS exchange failed (malformed, limits, TLS error)
	ReasonSmartcard           = "smartcard"    // accepted: certificate, and the PIN that unlocked it
	ReasonSmartcardNotAllowed = "smartcard_not_allowed"
	ReasonCertUnknownUser     = "cert_unknown_user" // the certificate's identity is no user in the directory
)

// certInfo names a certificate in the audit record.
type certInfo struct {
	subject, serial, issuer, sha256 string
}

func describeCert(c *x509.Certificate) *certInfo {
	sum := sha256.Sum256(c.Raw)
	return &certInfo{subject: c.Subject.String(), serial: hex.EncodeToString(c.SerialNumber.Bytes()),
		issuer: c.Issuer.String(), sha256: hex.EncodeToString(sum[:])}
}

func (ci *certInfo) audit() *audit.Cert {
	if ci == nil {
		return nil
	}
	return &audit.Cert{Subject: ci.subject, Serial: ci.serial, Issuer: ci.issuer, SHA256: ci.sha256}
}

// eapRequest runs one EAP round (DESIGN §2 step 13): the transport in
// radius/eap, then, when the handshake is done, the policy: the client's
// policy must accept smartcards; the certificate's identity must be a
// user in the directory, not disabled, in the right groups; and, when
// configured, the certificate must be the one enrolled for the user.
func (c *Conversation) eapRequest(ctx context.Context, p *radius.Packet, pol *policy) decision {
	msg := rfc2869.EAPMessage_Get(p)
	if c.eap == nil {
		d := reject(ReasonEAPUnsupported, msgEAP)
		if len(msg) >= 2 {
			d.eap = eap.Failure(msg[1])
		}
		return d
	}
	r := c.eap.Handle(rfc2865.State_Get(p), msg)
	switch r.Status {
	case eap.Continue:
		return decision{code: radius.CodeAccessChallenge, reason: ReasonEAPContinue, eap: r.EAP, state: r.State, quiet: true}
	case eap.Failed:
		d := reject(ReasonEAPFailed, "")
		if c.certs != nil && !isTransportError(r.Err) {
			d.reason = c.certs.Reason(r.Err)
		}
		if len(r.Peer) > 0 {
			d.cert = describeCert(r.Peer[0])
		}
		c.log.Info("EAP-TLS refused", "reason", d.reason, "err", r.Err)
		d.eap = r.EAP
		return d
	}

	leaf := r.Peer[0]
	fail := func(reason string) decision {
		d := reject(reason, "")
		d.eap, d.cert = eap.Failure(r.ID), describeCert(leaf)
		return d
	}
	id, err := c.certs.Identity(leaf)
	if err != nil {
		return fail(c.certs.Reason(err))
	}
	user, err := normaliseUsername([]byte(id), c.username)
	if err != nil {
		return fail(ReasonBadUsername)
	}
	withUser := func(d decision) decision {
		d.user = user
		return d
	}
	if !pol.Smartcard {
		return withUser(fail(ReasonSmartcardNotAllowed))
	}
	u, err := c.dir.Lookup(ctx, user)
	var ae *factors.AccountError
	switch {
	case errors.Is(err, factors.ErrBadCredentials):
		return withUser(fail(ReasonCertUnknownUser))
	case errors.As(err, &ae):
		return withUser(fail(ae.Reason))
	case err != nil:
		c.log.Error("directory unavailable", "user", user, "err", err)
		return withUser(fail(ReasonDirectoryDown))
	}
	if c.matchStored {
		enr, err := c.enrolment(ctx, user)
		if err != nil {
			return withUser(fail(ReasonStoreDown))
		}
		if !certEnrolled(leaf, enr, u) {
			return withUser(fail(c.certs.Reason(errCertNotEnrolled)))
		}
	}
	switch {
	case u.InAny(pol.DenyGroups):
		return withUser(fail(ReasonDeniedGroup))
	case len(pol.RequireGroups) > 0 && !u.InAny(pol.RequireGroups):
		return withUser(fail(ReasonNotInRequired))
	}
	d := accept(ReasonSmartcard, pol.replyAttributes(u))
	d.eap, d.msk, d.cert, d.user, d.factor = eap.Success(r.ID), r.MSK, describeCert(leaf), user, factors.Smartcard
	return d
}

// errCertNotEnrolled is mapped to a reason by Certificates.Reason.
var errCertNotEnrolled = factors.ErrCertNotEnrolled

// certEnrolled reports whether leaf is the certificate enrolled for the
// user (mfabridge enrol cert) or held in the directory's certificate
// attribute.
func certEnrolled(leaf *x509.Certificate, enr *factors.Enrolment, u *factors.User) bool {
	if cr, ok := enr.Credential(factors.Cert); ok && bytes.Equal(cr.Secret, leaf.Raw) {
		return true
	}
	for _, der := range u.Certificates {
		if bytes.Equal(der, leaf.Raw) {
			return true
		}
	}
	return false
}

// isTransportError tells EAP's own failures from a certificate refused
// by Verify.
func isTransportError(err error) bool {
	for _, e := range []error{eap.ErrBadPacket, eap.ErrNotTLS, eap.ErrTooMany, eap.ErrLimit, eap.ErrExpired,
		eap.ErrNoKeys, eap.ErrStepTimeout, eap.ErrHandshake} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
