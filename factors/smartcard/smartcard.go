// Package smartcard decides whether a client certificate from EAP-TLS is
// acceptable and whose it is, in this order: the chain to the configured
// CAs, validity, key usage and the required EKUs, the revocation of every
// certificate of the chain but its anchor (CRL files, OCSP, or both: a
// CA with no source for its rule does not load, and an answer that
// cannot be trusted refuses), then the identity (the UPN otherName SAN,
// the email SAN or the subject CN, and the strong-mapping SID). The TLS
// handshake itself stays in radius/eap.
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
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/ocsp"

	"github.com/mfabridge/mfabridge/config"
	"github.com/mfabridge/mfabridge/factors"
	"github.com/mfabridge/mfabridge/internal/audit"
)

// Reasons a certificate is refused. Each carries its audit reason, which
// every error wrapping it keeps (audit.ReasonOf).
var (
	ErrUntrusted   = refusal(audit.ReasonCertUntrusted, "the certificate does not chain to a configured CA")
	ErrExpired     = refusal(audit.ReasonCertExpired, "the certificate has expired or is not yet valid")
	ErrKeyUsage    = refusal(audit.ReasonCertKeyUsage, "the certificate's key usage does not allow signing")
	ErrEKU         = refusal(audit.ReasonCertEKU, "the certificate lacks a required extended key usage")
	ErrRevoked     = refusal(audit.ReasonCertRevoked, "the certificate is revoked")
	ErrCRLStale    = refusal(audit.ReasonCertCRLStale, "the CRL of the certificate's issuer is out of date")
	ErrCRLMissing  = refusal(audit.ReasonCertCRLMissing, "no CRL of the certificate's issuer is loaded")
	ErrOCSP        = refusal(audit.ReasonCertOCSPUnavailable, "the OCSP responder could not confirm the certificate")
	ErrOCSPStale   = refusal(audit.ReasonCertOCSPStale, "the OCSP answer is not current (replayed, or from a wrong clock)")
	ErrNoIdentity  = refusal(audit.ReasonCertNoIdentity, "the certificate names no usable identity")
	ErrRealm       = refusal(audit.ReasonCertRealm, "the certificate's realm is not in allowed_realms")
	ErrNotEnrolled = factors.ErrCertNotEnrolled
)

func refusal(r audit.Reason, msg string) error { return &audit.Refusal{Reason: r, Msg: msg} }

// Reason is the audit reason of a refusal: the one its error carries,
// cert_invalid for any other.
func Reason(err error) audit.Reason {
	if r, ok := audit.ReasonOf(err); ok {
		return r
	}
	return audit.ReasonCertInvalid
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

// Revocation rules (factors.smartcard.revocation).
const (
	RevocationCRL        = "crl"
	RevocationOCSP       = "ocsp"
	RevocationCRLAndOCSP = "crl_and_ocsp"
	RevocationNone       = "none"
)

var (
	oidSAN            = asn1.ObjectIdentifier{2, 5, 29, 17}
	oidUPN            = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 20, 2, 3}
	oidSmartcardLogon = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 20, 2, 2}
)

// CA is one CA of ca_files and its revocation rule ("" for the default).
type CA struct {
	File       string
	Revocation string
}

// Options configure a Validator.
type Options struct {
	CAs      []CA
	CRLFiles []string
	// Revocation is the rule of every CA that has none of its own;
	// default crl.
	Revocation   string
	OCSPTimeout  time.Duration // default 5s
	OCSPSoftFail bool          // accept when the responder cannot be reached
	Identity     string
	// AllowedRealms, when set, turns a UPN or email identity into the
	// login name before its @, and refuses any other realm.
	AllowedRealms []string
	RequireEKU    []string
	Now           func() time.Time
	HTTPClient    *http.Client // OCSP; default one with OCSPTimeout that follows no redirect
}

// Validator checks client certificates. It is safe for concurrent use.
type Validator struct {
	o          Options
	roots      *x509.CertPool
	inter      *x509.CertPool // CAs of ca_files whose issuer is configured too
	configured []*x509.Certificate
	rules      map[string]string // rule by the raw subject and key of a configured CA
	crls       []*x509.RevocationList
}

// New loads the CA and CRL files. Every CA needs a source for its rule:
// a CRL in crl_files signed by it (crl, crl_and_ocsp). A CRL that does
// not parse, or whose signature no CA in ca_files verifies, does not
// load: whoever could write it could leave a revoked card out.
func New(o Options) (*Validator, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.OCSPTimeout <= 0 {
		o.OCSPTimeout = 5 * time.Second
	}
	if o.Revocation == "" {
		o.Revocation = RevocationCRL
	}
	if o.HTTPClient == nil {
		// A redirect could send the query anywhere; an answer must come
		// from the responder the certificate names.
		o.HTTPClient = &http.Client{Timeout: o.OCSPTimeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if len(o.CAs) == 0 {
		return nil, errors.New("smartcard: no ca_files")
	}
	v := &Validator{o: o, roots: x509.NewCertPool(), inter: x509.NewCertPool(), rules: map[string]string{}}
	var byFile [][]*x509.Certificate
	for _, ca := range o.CAs {
		certs, err := readCerts(ca.File)
		if err != nil {
			return nil, fmt.Errorf("smartcard: ca_files: %w", err)
		}
		rule := ca.Revocation
		if rule == "" {
			rule = o.Revocation
		}
		for _, c := range certs {
			v.configured = append(v.configured, c)
			v.rules[caKey(c)] = rule
		}
		byFile = append(byFile, certs)
	}
	// A CA whose issuer is configured too is an intermediate: chains go
	// through it up to that issuer, whose CRL then covers it.
	for _, c := range v.configured {
		if v.issuerConfigured(c) {
			v.inter.AddCert(c)
		} else {
			v.roots.AddCert(c)
		}
	}
	crls, err := v.loadCRLs()
	if err != nil {
		return nil, err
	}
	v.crls = crls
	for i, certs := range byFile {
		for _, c := range certs {
			rule := v.rules[caKey(c)]
			if (rule == RevocationCRL || rule == RevocationCRLAndOCSP) && v.crlOf(c) == nil {
				return nil, fmt.Errorf("smartcard: ca_files: %s: the CA %q has no CRL in crl_files, and its revocation is %s: "+
					"add its CRL to crl_files, or set revocation: ocsp (with ocsp: true), or revocation: none for this CA if its cards are never revoked",
					o.CAs[i].File, c.Subject, rule)
			}
		}
	}
	return v, nil
}

// caKey names a CA by subject and key, as a CRL or a chain names its
// issuer.
func caKey(c *x509.Certificate) string {
	return string(c.RawSubject) + "\x00" + string(c.RawSubjectPublicKeyInfo)
}

func (v *Validator) issuerConfigured(c *x509.Certificate) bool {
	if bytes.Equal(c.RawIssuer, c.RawSubject) {
		return false // self-signed
	}
	for _, p := range v.configured {
		if p != c && bytes.Equal(p.RawSubject, c.RawIssuer) && c.CheckSignatureFrom(p) == nil {
			return true
		}
	}
	return false
}

func readCerts(path string) ([]*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []*x509.Certificate
	for rest := b; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return out, nil
}

// loadCRLs reads the CRL files: each must parse and be signed by a CA of
// ca_files.
func (v *Validator) loadCRLs() ([]*x509.RevocationList, error) {
	var crls []*x509.RevocationList
	for _, f := range v.o.CRLFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("smartcard: crl_files: %w", err)
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
			return nil, fmt.Errorf("smartcard: crl_files: %s holds no CRL", f)
		}
		for _, d := range ders {
			crl, err := x509.ParseRevocationList(d)
			if err != nil {
				return nil, fmt.Errorf("smartcard: crl_files: %s: %w", f, err)
			}
			named, signed := false, false
			for _, ca := range v.configured {
				if bytes.Equal(crl.RawIssuer, ca.RawSubject) {
					named = true
					signed = signed || crl.CheckSignatureFrom(ca) == nil
				}
			}
			switch {
			case !named:
				return nil, fmt.Errorf("smartcard: crl_files: %s: the CRL's issuer %q is not in ca_files: add that CA's certificate to ca_files", f, crl.Issuer)
			case !signed:
				return nil, fmt.Errorf("smartcard: crl_files: %s: the CRL's signature does not verify against its issuer %q in ca_files: it was not made by that CA", f, crl.Issuer)
			}
			crls = append(crls, crl)
		}
	}
	return crls, nil
}

// crlOf returns the loaded CRL issued by ca, or nil: the newest by
// ThisUpdate, then by CRL number (RFC 5280 §5.2.3).
func (v *Validator) crlOf(ca *x509.Certificate) *x509.RevocationList {
	var best *x509.RevocationList
	for _, crl := range v.crls {
		if !bytes.Equal(crl.RawIssuer, ca.RawSubject) || crl.CheckSignatureFrom(ca) != nil {
			continue
		}
		if best == nil || crl.ThisUpdate.After(best.ThisUpdate) ||
			crl.ThisUpdate.Equal(best.ThisUpdate) && crl.Number != nil && best.Number != nil && crl.Number.Cmp(best.Number) > 0 {
			best = crl
		}
	}
	return best
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

// Verify checks chain (leaf first, as the client sent it): the chain to
// a configured CA with the required usages, then the revocation of every
// certificate in it but the trust anchor, by the rule of its issuer.
func (v *Validator) Verify(chain []*x509.Certificate) error {
	if len(chain) == 0 {
		return ErrUntrusted
	}
	leaf := chain[0]
	inter := v.inter.Clone()
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
	anchor := verified[len(verified)-1]
	for i := 0; i+1 < len(verified); i++ {
		c, issuer := verified[i], verified[i+1]
		rule, ok := v.rules[caKey(issuer)]
		if !ok {
			rule = v.rules[caKey(anchor)] // an intermediate the client sent
		}
		if err := v.checkRevocation(c, issuer, rule, now); err != nil {
			return err
		}
	}
	return nil
}

func (v *Validator) checkRevocation(c, issuer *x509.Certificate, rule string, now time.Time) error {
	if rule == RevocationCRL || rule == RevocationCRLAndOCSP {
		if err := v.checkCRL(c, issuer, now); err != nil {
			return err
		}
	}
	if rule == RevocationOCSP || rule == RevocationCRLAndOCSP {
		if err := v.checkOCSP(c, issuer, now); err != nil {
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

// checkCRL looks c up in the CRL of its issuer, which must be loaded,
// signed by the issuer and current.
func (v *Validator) checkCRL(c, issuer *x509.Certificate, now time.Time) error {
	crl := v.crlOf(issuer)
	if crl == nil {
		return fmt.Errorf("%w (issuer %s)", ErrCRLMissing, issuer.Subject)
	}
	if !crl.NextUpdate.IsZero() && now.After(crl.NextUpdate) {
		return fmt.Errorf("%w: next update was %s", ErrCRLStale, crl.NextUpdate.UTC().Format(time.RFC3339))
	}
	for _, r := range crl.RevokedCertificateEntries {
		if r.SerialNumber.Cmp(c.SerialNumber) == 0 {
			return fmt.Errorf("%w (CRL of %s)", ErrRevoked, issuer.Subject)
		}
	}
	return nil
}

// ocspSkew is the clock difference allowed between the bridge and an
// OCSP responder; ocspMaxAge is how old an answer without NextUpdate may
// be.
const (
	ocspSkew   = 5 * time.Minute
	ocspMaxAge = time.Hour
)

// checkOCSP asks c's responder (RFC 6960). The answer must be about c,
// signed by its issuer or by a responder the issuer delegated to
// (id-kp-OCSPSigning), and current: ThisUpdate not in the future, and
// NextUpdate (or, without one, ThisUpdate plus an hour) not past, so
// that an old "good" answer replayed after a revocation is refused. A
// certificate that names no responder cannot be confirmed. Revoked
// refuses; no usable answer refuses unless soft failure is configured.
func (v *Validator) checkOCSP(c, issuer *x509.Certificate, now time.Time) error {
	fail := func(err error) error {
		if v.o.OCSPSoftFail {
			return nil
		}
		return fmt.Errorf("%w: %v", ErrOCSP, err)
	}
	if len(c.OCSPServer) == 0 {
		return fmt.Errorf("%w: %s names no OCSP responder", ErrOCSP, c.Subject)
	}
	req, err := ocsp.CreateRequest(c, issuer, nil)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrOCSP, err)
	}
	resp, err := v.o.HTTPClient.Post(c.OCSPServer[0], "application/ocsp-request", bytes.NewReader(req))
	if err != nil {
		return fail(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil || resp.StatusCode != http.StatusOK {
		return fail(fmt.Errorf("responder answered HTTP %d", resp.StatusCode))
	}
	r, err := ocsp.ParseResponseForCert(body, c, issuer)
	if err != nil {
		return fail(err)
	}
	if rc := r.Certificate; rc != nil && !bytes.Equal(rc.Raw, issuer.Raw) {
		// x/crypto checks that the issuer signed the responder's
		// certificate, not that it made it a responder: any certificate
		// of the CA, a card's included, could otherwise vouch for itself.
		if !slices.Contains(rc.ExtKeyUsage, x509.ExtKeyUsageOCSPSigning) {
			return fail(errors.New("the answer is signed by a certificate the issuer did not delegate OCSP signing to"))
		}
		if now.Before(rc.NotBefore) || now.After(rc.NotAfter) {
			return fail(errors.New("the responder's certificate is not valid now"))
		}
	}
	switch {
	case r.ThisUpdate.After(now.Add(ocspSkew)):
		return fmt.Errorf("%w: made %s, in the future", ErrOCSPStale, r.ThisUpdate.UTC().Format(time.RFC3339))
	case !r.NextUpdate.IsZero() && now.After(r.NextUpdate.Add(ocspSkew)):
		return fmt.Errorf("%w: valid until %s", ErrOCSPStale, r.NextUpdate.UTC().Format(time.RFC3339))
	case r.NextUpdate.IsZero() && now.After(r.ThisUpdate.Add(ocspMaxAge)):
		return fmt.Errorf("%w: made %s, with no next update", ErrOCSPStale, r.ThisUpdate.UTC().Format(time.RFC3339))
	}
	switch r.Status {
	case ocsp.Good:
		return nil
	case ocsp.Revoked:
		return fmt.Errorf("%w (OCSP)", ErrRevoked)
	}
	return fail(errors.New("responder does not know the certificate"))
}

// Identity returns who the certificate belongs to (see
// factors.CertIdentity): the configured identity, with its realm checked
// against allowed_realms when those are set, and the strong-mapping SID
// where the certificate carries one.
func (v *Validator) Identity(c *x509.Certificate) (factors.CertIdentity, error) {
	var id factors.CertIdentity
	switch v.o.Identity {
	case IdentityEmail:
		if len(c.EmailAddresses) > 0 {
			id.Value = c.EmailAddresses[0]
		}
	case IdentitySubjectCN:
		id.Value, id.Login = c.Subject.CommonName, c.Subject.CommonName
	default:
		id.Value = UPN(c)
	}
	if id.Value == "" {
		return id, fmt.Errorf("%w (%s)", ErrNoIdentity, v.o.Identity)
	}
	if len(v.o.AllowedRealms) > 0 && id.Login == "" {
		i := strings.LastIndexByte(id.Value, '@')
		if i <= 0 || !slices.ContainsFunc(v.o.AllowedRealms, func(r string) bool { return strings.EqualFold(r, id.Value[i+1:]) }) {
			return id, fmt.Errorf("%w: %q", ErrRealm, id.Value)
		}
		id.Login = id.Value[:i]
	}
	id.SID = SID(c)
	return id, nil
}

// asn1String reads a DER string type as UTF-8, as UPNs are written (a
// T61String is read as Latin-1).
func asn1String(der []byte) (string, bool) {
	var s string
	if _, err := asn1.UnmarshalWithParams(der, &s, "utf8"); err != nil || !utf8.ValidString(s) {
		return "", false
	}
	return s, true
}

// octetsOrString reads an OCTET STRING holding text, as AD CS writes the
// SID, or a string type.
func octetsOrString(der []byte) (string, bool) {
	var b []byte
	if _, err := asn1.Unmarshal(der, &b); err == nil && utf8.Valid(b) {
		return string(b), true
	}
	return asn1String(der)
}

// oidSIDExtension is the strong certificate mapping extension of Active
// Directory Certificate Services (KB5014754); its otherName holds the
// SID as text.
var (
	oidSIDExtension = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 25, 2}
	oidSIDOtherName = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 25, 2, 1}
)

// SID returns the security identifier of the strong mapping extension,
// "S-1-5-21-…", or "" when the certificate has none.
func SID(c *x509.Certificate) string {
	for _, ext := range c.Extensions {
		if !ext.Id.Equal(oidSIDExtension) {
			continue
		}
		if s := otherName(ext.Value, oidSIDOtherName, octetsOrString); strings.HasPrefix(s, "S-1-") {
			return s
		}
	}
	return ""
}

// otherName finds the first otherName with id in a GeneralNames sequence
// whose value (the content of its [0] EXPLICIT) decode reads, and returns
// it. A malformed sequence gives "".
func otherName(der []byte, id asn1.ObjectIdentifier, decode func([]byte) (string, bool)) string {
	var seq asn1.RawValue
	if rest, err := asn1.Unmarshal(der, &seq); err != nil || len(rest) > 0 || !seq.IsCompound {
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
		if _, err := asn1.UnmarshalWithParams(gn.FullBytes, &on, "tag:0"); err != nil || !on.ID.Equal(id) {
			continue
		}
		// RawValue keeps the [0] EXPLICIT wrapper: its content is the
		// value.
		if v, ok := decode(on.Value.Bytes); ok {
			return v
		}
	}
	return ""
}

// UPN returns the Microsoft UPN otherName (1.3.6.1.4.1.311.20.2.3) of the
// subject alternative name, which crypto/x509 does not expose, or "".
func UPN(c *x509.Certificate) string {
	for _, ext := range c.Extensions {
		if ext.Id.Equal(oidSAN) {
			return otherName(ext.Value, oidUPN, asn1String)
		}
	}
	return ""
}

// OptionsFrom is the validator of a configuration, as the server and
// mfacard check both build it.
func OptionsFrom(sc config.Smartcard) Options {
	o := Options{CRLFiles: sc.CRLFiles, Revocation: sc.Revocation, OCSPTimeout: sc.OCSPTimeout, OCSPSoftFail: sc.OCSPSoftFail,
		Identity: sc.Identity, AllowedRealms: sc.AllowedRealms, RequireEKU: sc.RequireEKU}
	for _, ca := range sc.CAFiles {
		o.CAs = append(o.CAs, CA{File: ca.File, Revocation: ca.Revocation})
	}
	return o
}
