package main

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mfabridge/mfabridge/factors/smartcard"
)

var oidSmartcardLogon = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 20, 2, 2}

// printCert writes what show prints about the certificate in slot 9A.
// Serial and fingerprint are spelled as in the bridge's audit records
// (smartcard.Describe), so that a card can be found there.
func printCert(w io.Writer, reader string, cc *cardCert, now time.Time) {
	c := cc.cert
	d := smartcard.Describe(c)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
	row("reader", reader)
	row("slot", "9A (PIV authentication)")
	row("subject", d.Subject)
	row("UPN", orNone(smartcard.UPN(c)))
	row("email", orNone(strings.Join(c.EmailAddresses, ", ")))
	row("issuer", d.Issuer)
	row("serial", d.Serial)
	row("not before", c.NotBefore.UTC().Format(time.RFC3339))
	row("not after", c.NotAfter.UTC().Format(time.RFC3339)+" ("+validity(c, now)+")")
	row("key", keyName(c.PublicKey))
	row("SHA-256", d.Fingerprint)
	row("EKUs", ekuNames(c))
	if cc.compressed {
		row("stored", fmt.Sprintf("gzip-compressed, %d bytes (%d unpacked)", cc.stored, len(c.Raw)))
	}
	tw.Flush()
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func validity(c *x509.Certificate, now time.Time) string {
	switch {
	case now.Before(c.NotBefore):
		return "not yet valid"
	case now.After(c.NotAfter):
		return "expired"
	}
	return "valid now"
}

// keyName names the certificate's public key the way PIV does.
func keyName(pub any) string {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA %d", k.N.BitLen())
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	case ed25519.PublicKey:
		return "Ed25519"
	}
	return fmt.Sprintf("%T", pub)
}

func ekuNames(c *x509.Certificate) string {
	names := map[x509.ExtKeyUsage]string{
		x509.ExtKeyUsageAny:             "any",
		x509.ExtKeyUsageServerAuth:      "server authentication",
		x509.ExtKeyUsageClientAuth:      "client authentication",
		x509.ExtKeyUsageCodeSigning:     "code signing",
		x509.ExtKeyUsageEmailProtection: "email protection",
		x509.ExtKeyUsageTimeStamping:    "time stamping",
		x509.ExtKeyUsageOCSPSigning:     "OCSP signing",
	}
	var out []string
	for _, u := range c.ExtKeyUsage {
		if n, ok := names[u]; ok {
			out = append(out, n)
		} else {
			out = append(out, fmt.Sprintf("usage %d", u))
		}
	}
	for _, o := range c.UnknownExtKeyUsage {
		if o.Equal(oidSmartcardLogon) {
			out = append(out, "smartcard logon")
		} else {
			out = append(out, o.String())
		}
	}
	if len(out) == 0 {
		return "(none: the certificate does not restrict its use)"
	}
	return strings.Join(out, ", ")
}
