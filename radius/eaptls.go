package radius

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"strings"

	"layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2869"

	"github.com/mfabridge/mfabridge/factors"
	"github.com/mfabridge/mfabridge/internal/audit"
	"github.com/mfabridge/mfabridge/internal/username"
	"github.com/mfabridge/mfabridge/radius/eap"
)

// Certificates decides who a client certificate belongs to:
// factors/smartcard implements it. (Whether the certificate is
// acceptable at all is decided during the handshake, by the Verify
// function the EAP server was given.)
type Certificates interface {
	// Identity returns who the certificate says it belongs to. An error
	// carries its reason (audit.ReasonOf).
	Identity(c *x509.Certificate) (factors.CertIdentity, error)
}

// certReason is the audit reason of a refused certificate: the reason
// its error carries, cert_invalid for any other.
func certReason(err error) audit.Reason {
	if r, ok := audit.ReasonOf(err); ok {
		return r
	}
	return audit.ReasonCertInvalid
}

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

// eapRequest runs one EAP round (DESIGN §2 step 13): the policy of the
// client must accept smartcards, checked before any TLS is spent; then
// the transport in radius/eap; then, when the handshake is done, the
// user: the certificate's identity must be a user in the directory, not
// disabled, locked or expired, in the right groups, and, when
// configured, the certificate must be the one enrolled for the user.
// The identity the supplicant claimed (EAP-Response/Identity, and the
// User-Name the NAS copied it to) must be that same user: the NAS logs,
// accounts and authorises the session by it.
func (c *Conversation) eapRequest(ctx context.Context, p *radius.Packet, client *Client, pol *policy, login string) decision {
	msg := rfc2869.EAPMessage_Get(p)
	if c.eap == nil {
		d := c.eapRefusal(p, audit.ReasonEAPUnsupported)
		d.message = msgEAP
		return d
	}
	if !pol.Smartcard {
		return c.eapRefusal(p, audit.ReasonSmartcardNotAllowed)
	}
	owner := eap.Owner{Client: client.Name, Station: callingStation(p)}
	r := c.eap.Handle(owner, rfc2865.State_Get(p), msg)
	switch r.Status {
	case eap.Continue:
		return decision{code: radius.CodeAccessChallenge, reason: audit.ReasonEAPContinue, eap: r.EAP, state: r.State, quiet: true}
	case eap.Failed:
		d := reject(audit.ReasonEAPFailed, "")
		if c.certs != nil && !isTransportError(r.Err) {
			d.reason = certReason(r.Err)
		}
		if len(r.Peer) > 0 {
			d.cert = describeCert(r.Peer[0])
		}
		c.log.Info("EAP-TLS refused", "reason", d.reason, "err", r.Err)
		d.eap = r.EAP
		return d
	}

	leaf := r.Peer[0]
	fail := func(reason audit.Reason) decision {
		d := reject(reason, "")
		d.eap, d.cert = eap.Failure(r.ID), describeCert(leaf)
		return d
	}
	id, err := c.certs.Identity(leaf)
	if err != nil {
		return fail(certReason(err))
	}
	var u *factors.User
	if id.Login != "" {
		var n string
		if n, err = username.Normalise([]byte(id.Login), c.username); err != nil {
			d := fail(audit.ReasonBadUsername)
			d.user = id.Value
			return d
		}
		u, err = c.dir.Lookup(ctx, n)
	} else {
		u, err = c.dir.LookupIdentity(ctx, id.Value)
	}
	var ae *factors.AccountError
	switch {
	case errors.Is(err, factors.ErrBadCredentials):
		d := fail(audit.ReasonCertUnknownUser)
		d.user = id.Value
		return d
	case errors.As(err, &ae):
		d := fail(ae.Reason)
		d.user = id.Value
		if ae.User != "" {
			d.user = ae.User
		}
		return d
	case err != nil:
		c.log.Error("directory unavailable", "user", id.Value, "err", err)
		d := fail(audit.ReasonDirectoryDown)
		d.user = id.Value
		return d
	}
	d := c.cardUser(ctx, pol, r, leaf, id, u, login)
	if d.code == radius.CodeAccessAccept {
		d.eap, d.msk, d.cert, d.factor = eap.Success(r.ID), r.MSK, describeCert(leaf), factors.Smartcard
	} else {
		d.eap, d.cert = eap.Failure(r.ID), describeCert(leaf)
	}
	d.user, d.login, d.found = u.Name, "", true
	if claimed := strings.TrimSpace(r.Identity); claimed != u.Name {
		d.login = printable(claimed, 256)
	}
	return d
}

// eapRefusal refuses an EAP request before any EAP work, with an
// EAP-Failure for the identifier it carried.
func (c *Conversation) eapRefusal(p *radius.Packet, reason audit.Reason) decision {
	d := reject(reason, "")
	if msg := rfc2869.EAPMessage_Get(p); len(msg) >= 2 {
		d.eap = eap.Failure(msg[1])
	}
	return d
}

// cardUser decides about the user a valid card belongs to.
func (c *Conversation) cardUser(ctx context.Context, pol *policy, r eap.Reply, leaf *x509.Certificate, id factors.CertIdentity,
	u *factors.User, login string) decision {
	if id.SID != "" && u.SID != "" && !strings.EqualFold(id.SID, u.SID) {
		c.log.Warn("a card's SID is not its user's; refused", "user", u.Name, "cert_sid", id.SID)
		return reject(audit.ReasonCertSIDMismatch, "")
	}
	claims := []string{r.Identity}
	if login != "" {
		claims = append(claims, login) // without a User-Name, the EAP identity is the claim
	}
	for _, claimed := range claims {
		if !c.sameUser(ctx, claimed, id, u) {
			c.log.Warn("EAP-TLS identity is not the card's user; refused", "user", u.Name, "claimed", printable(claimed, 256))
			return reject(audit.ReasonCertMismatch, msgMismatch)
		}
	}
	enr, err := c.enrolment(ctx, u.Name)
	if err != nil {
		return reject(audit.ReasonStoreDown, "")
	}
	if !enr.Reported.IsZero() {
		return reject(audit.ReasonReportedByUser, "")
	}
	if c.matchStored && !certEnrolled(leaf, enr, u) {
		return reject(audit.ReasonCertNotEnrolled, "")
	}
	if d, done := groupRules(pol, u); done {
		return d
	}
	return accept(audit.ReasonSmartcard, pol.replyAttributes(u))
}

// sameUser reports whether a claimed identity names u, the card's user:
// the certificate's own identity, or a login name the directory finds u
// by. An empty or anonymous identity names nobody: EAP-TLS without a
// tunnel has no use for one.
func (c *Conversation) sameUser(ctx context.Context, claimed string, id factors.CertIdentity, u *factors.User) bool {
	claimed = strings.TrimSpace(claimed)
	if claimed == "" {
		return false
	}
	if strings.EqualFold(claimed, id.Value) {
		return true
	}
	n, err := username.Normalise([]byte(claimed), c.username)
	if err != nil {
		return false
	}
	if n == u.Name || u.Login != "" && n == u.Login {
		return true
	}
	found, err := c.dir.Find(ctx, n)
	return err == nil && found.Name == u.Name
}

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
