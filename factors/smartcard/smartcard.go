// Package smartcard decides whether a client certificate from EAP-TLS is
// acceptable and whose it is, in this order: the chain to the configured
// CAs, validity, key usage and the required EKUs, revocation (CRL files,
// and OCSP when enabled), then the identity (the UPN otherName SAN, the
// email SAN or the subject CN). The TLS handshake itself stays in
// radius/eap.
//
// It must not import radius, ldapbind or the stores.
package smartcard

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/mfabridge/mfabridge/factors"
)

// Reasons a certificate is refused; Reason gives the audit code.
var (
	ErrUntrusted   = errors.New("the certificate does not chain to a configured CA")
	ErrExpired     = errors.New("the certificate has expired or is not yet valid")
	ErrKeyUsage    = errors.New("the certificate's key usage does not allow signing")
	ErrEKU         = errors.New("the certificate lacks a required extended key usage")
	ErrRevoked     = errors.New("the certificate is revoked")
	ErrCRLStale    = errors.New("the CRL of the certificate's issuer is out of date")
	ErrOCSP        = errors.New("the OCSP responder could not confirm the certificate")
	ErrNoIdentity  = errors.New("the certificate names no usable identity")
	ErrNotEnrolled = factors.ErrCertNotEnrolled
)

// Reason maps an error to its audit reason code.
func (v *Validator) Reason(err error) string { return Reason(err) }

// Reason maps an error to its audit reason code.
func Reason(err error) string {
	for _, r := range []struct {
		err  error
		code string
	}{
		{ErrUntrusted, "cert_untrusted"}, {ErrExpired, "cert_expired"}, {ErrKeyUsage, "cert_key_usage"},
		{ErrEKU, "cert_eku"}, {ErrRevoked, "cert_revoked"}, {ErrCRLStale, "cert_crl_stale"},
		{ErrOCSP, "cert_ocsp_unavailable"}, {ErrNoIdentity, "cert_no_identity"}, {ErrNotEnrolled, "cert_not_enrolled"},
	} {
		if errors.Is(err, r.err) {
			return r.code
		}
	}
	return "cert_invalid"
}

// Identity sources.
const (
	IdentityUPN       = "upn"
	IdentityEmail     = "email"
	IdentitySubjectCN = "subject_cn"
)

// EKU names in require_eku.
const (
	EKUClientAuth     = "client_auth"
	EKUSmartcardLogon = "smartcard_logon"
)

var (
	oidSAN            = asn1.ObjectIdentifier{2, 5, 29, 17}
	oidUPN            = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 20, 2, 3}
	oidSmartcardLogon = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 20, 2, 2}
)

// Options configure a Validator.
type Options struct {
	CAFiles      []string
	CRLFiles     []string
	OCSP         bool
	OCSPTimeout  time.Duration // default 5s
	OCSPSoftFail bool          // accept when the responder cannot be reached
	Identity     string
	RequireEKU   []string
	Now          func() time.Time
	HTTPClient   *http.Client // OCSP; default one with OCSPTimeout
}

// Validator checks client certificates. It is safe for concurrent use;
// ReloadCRLs swaps the CRLs in place.
type Validator struct {
	o     Options
	roots *x509.CertPool
	crls  atomic.Pointer[[]*x509.RevocationList]
}

// New loads the CA and CRL files.
func New(o Options) (*Validator, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.OCSPTimeout <= 0 {
		o.OCSPTimeout = 5 * time.Second
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: o.OCSPTimeout}
	}
	if len(o.CAFiles) == 0 {
		return nil, errors.New("smartcard: no ca_files")
	}
	v := &Validator{o: o, roots: x509.NewCertPool()}
	for _, f := range o.CAFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("smartcard: ca_files: %w", err)
		}
		if !v.roots.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("smartcard: ca_files: %s holds no PEM certificate", f)
		}
	}
	if err := v.ReloadCRLs(); err != nil {
		return nil, err
	}
	return v, nil
}

// ReloadCRLs reads the CRL files again (SIGHUP); on error the old CRLs
// stay.
func (v *Validator) ReloadCRLs() error {
	var crls []*x509.RevocationList
	for _, f := range v.o.CRLFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("smartcard: crl_files: %w", err)
		}
		ders := [][]byte{b}
		if bytes.Contains(b, []byte("-----BEGIN")) {
			ders = nil
			for rest := b; ; {
				var blk *pem.Block
				blk, rest = pem.Decode(rest)
				if blk == nil {
					break
				}
				if blk.Type == "X509 CRL" {
					ders = append(ders, blk.Bytes)
				}
			}
		}
		if len(ders) == 0 {
			return fmt.Errorf("smartcard: crl_files: %s holds no CRL", f)
		}
		for _, d := range ders {
			crl, err := x509.ParseRevocationList(d)
			if err != nil {
				return fmt.Errorf("smartcard: crl_files: %s: %w", f, err)
			}
			crls = append(crls, crl)
		}
	}
	v.crls.Store(&crls)
	return nil
}

// Cert describes an accepted certificate for logs and audit records.
type Cert struct {
	Leaf        *x509.Certificate
	Subject     string
	Serial      string
	Issuer      string
	Fingerprint string // SHA-256 of the DER, hex
}

// Describe names a certificate.
func Describe(c *x509.Certificate) Cert {
	sum := sha256.Sum256(c.Raw)
	return Cert{Leaf: c, Subject: c.Subject.String(), Serial: hex.EncodeToString(c.SerialNumber.Bytes()),
		Issuer: c.Issuer.String(), Fingerprint: hex.EncodeToString(sum[:])}
}

// Verify checks chain (leaf first, as the client sent it).
func (v *Validator) Verify(chain []*x509.Certificate) error {
	if len(chain) == 0 {
		return ErrUntrusted
	}
	leaf := chain[0]
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	now := v.o.Now()
	// EKUs are checked below against require_eku, which may ask for
	// smartcard logon alone; the chain is checked for any usage here.
	chains, err := leaf.Verify(x509.VerifyOptions{Roots: v.roots, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	if err != nil {
		var inv x509.CertificateInvalidError
		if errors.As(err, &inv) && inv.Reason == x509.Expired {
			return fmt.Errorf("%w: %v", ErrExpired, err)
		}
		return fmt.Errorf("%w: %v", ErrUntrusted, err)
	}
	if leaf.KeyUsage != 0 && leaf.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		return ErrKeyUsage
	}
	for _, want := range v.o.RequireEKU {
		if !hasEKU(leaf, want) {
			return fmt.Errorf("%w: %s", ErrEKU, want)
		}
	}
	verified := chains[0]
	if err := v.checkCRLs(verified, now); err != nil {
		return err
	}
	if v.o.OCSP && len(verified) > 1 && len(leaf.OCSPServer) > 0 {
		if err := v.checkOCSP(leaf, verified[1]); err != nil {
			return err
		}
	}
	return nil
}

func hasEKU(c *x509.Certificate, want string) bool {
	switch want {
	case EKUClientAuth:
		return slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
	case EKUSmartcardLogon:
		return slices.ContainsFunc(c.UnknownExtKeyUsage, func(o asn1.ObjectIdentifier) bool { return o.Equal(oidSmartcardLogon) })
	}
	return false
}

// checkCRLs looks up each certificate of the verified chain in the CRL of
// its issuer, when one is configured; such a CRL must be signed by the
// issuer and current.
func (v *Validator) checkCRLs(chain []*x509.Certificate, now time.Time) error {
	crls := *v.crls.Load()
	for i := 0; i+1 < len(chain); i++ {
		c, issuer := chain[i], chain[i+1]
		for _, crl := range crls {
			if !bytes.Equal(crl.RawIssuer, issuer.RawSubject) || crl.CheckSignatureFrom(issuer) != nil {
				continue
			}
			if !crl.NextUpdate.IsZero() && now.After(crl.NextUpdate) {
				return fmt.Errorf("%w: next update was %s", ErrCRLStale, crl.NextUpdate.UTC().Format(time.RFC3339))
			}
			for _, r := range crl.RevokedCertificateEntries {
				if r.SerialNumber.Cmp(c.SerialNumber) == 0 {
					return fmt.Errorf("%w (CRL of %s)", ErrRevoked, issuer.Subject)
				}
			}
		}
	}
	return nil
}

// checkOCSP asks the leaf's responder. A revoked answer refuses; no
// usable answer refuses unless soft failure is configured.
func (v *Validator) checkOCSP(leaf, issuer *x509.Certificate) error {
	req, err := ocsp.CreateRequest(leaf, issuer, nil)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrOCSP, err)
	}
	fail := func(err error) error {
		if v.o.OCSPSoftFail {
			return nil
		}
		return fmt.Errorf("%w: %v", ErrOCSP, err)
	}
	resp, err := v.o.HTTPClient.Post(leaf.OCSPServer[0], "application/ocsp-request", bytes.NewReader(req))
	if err != nil {
		return fail(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil || resp.StatusCode != http.StatusOK {
		return fail(fmt.Errorf("responder answered HTTP %d", resp.StatusCode))
	}
	r, err := ocsp.ParseResponseForCert(body, leaf, issuer)
	if err != nil {
		return fail(err)
	}
	switch r.Status {
	case ocsp.Good:
		return nil
	case ocsp.Revoked:
		return fmt.Errorf("%w (OCSP)", ErrRevoked)
	}
	return fail(errors.New("responder does not know the certificate"))
}

// Identity returns the configured identity of the certificate.
func (v *Validator) Identity(c *x509.Certificate) (string, error) {
	var id string
	switch v.o.Identity {
	case IdentityEmail:
		if len(c.EmailAddresses) > 0 {
			id = c.EmailAddresses[0]
		}
	case IdentitySubjectCN:
		id = c.Subject.CommonName
	default:
		id = UPN(c)
	}
	if id == "" {
		return "", fmt.Errorf("%w (%s)", ErrNoIdentity, v.o.Identity)
	}
	return id, nil
}

// UPN returns the Microsoft UPN otherName (1.3.6.1.4.1.311.20.2.3) of the
// subject alternative name, which crypto/x509 does not expose, or "".
func UPN(c *x509.Certificate) string {
	for _, ext := range c.Extensions {
		if !ext.Id.Equal(oidSAN) {
			continue
		}
		var seq asn1.RawValue
		if rest, err := asn1.Unmarshal(ext.Value, &seq); err != nil || len(rest) > 0 || !seq.IsCompound {
			return ""
		}
		for b := seq.Bytes; len(b) > 0; {
			var gn asn1.RawValue
			var err error
			if b, err = asn1.Unmarshal(b, &gn); err != nil {
				return ""
			}
			if gn.Class != asn1.ClassContextSpecific || gn.Tag != 0 {
				continue // not an otherName
			}
			var on struct {
				ID    asn1.ObjectIdentifier
				Value asn1.RawValue `asn1:"explicit,tag:0"`
			}
			if _, err := asn1.UnmarshalWithParams(gn.FullBytes, &on, "tag:0"); err != nil || !on.ID.Equal(oidUPN) {
				continue
			}
			// RawValue keeps the [0] EXPLICIT wrapper: its content is the
			// UTF8String.
			var s string
			if _, err := asn1.UnmarshalWithParams(on.Value.Bytes, &s, "utf8"); err == nil {
				return s
			}
		}
	}
	return ""
}
