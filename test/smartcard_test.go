package test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mfabridge/mfabridge/test/harness"
)

// cardSetup is a card CA with certificates, and the bridge's EAP-TLS
// server certificate from another CA the supplicant trusts.
type cardSetup struct {
	dir                   string
	cards                 *harness.CA
	serverCA              *harness.CA
	serverCert, serverKey string
}

func newCardSetup(t *testing.T) *cardSetup {
	t.Helper()
	s := &cardSetup{dir: t.TempDir()}
	var err error
	if s.cards, err = harness.NewCA(s.dir, "cards"); err != nil {
		t.Fatal(err)
	}
	if s.serverCA, err = harness.NewCA(s.dir, "eapserver"); err != nil {
		t.Fatal(err)
	}
	if s.serverCert, s.serverKey, err = s.serverCA.ServerCert(s.dir, "eap-server"); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *cardSetup) card(t *testing.T, name string, o harness.CardOptions) (cert, key string) {
	t.Helper()
	cert, key, _, err := s.cards.CardCert(s.dir, name, o)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func (s *cardSetup) extra(crls ...string) string {
	crl := ""
	if len(crls) > 0 {
		crl = `, crl_files: ["` + strings.Join(crls, `", "`) + `"]`
	}
	return `factors:
  smartcard: {server_cert_file: "` + s.serverCert + `", server_key_file: "` + s.serverKey + `", ca_files: ["` + s.cards.CertFile + `"], require_eku: [client_auth, smartcard_logon]` + crl + `}
`
}

const cardPolicy = `  default:
    mfa: required
    factors: [totp]
    smartcard: true
    deny_groups: [blocked]
    reply_attributes:
      - groups: [vpn-admins]
        attributes: {Class: "admins"}`

func TestSmartcardEAPTLS(t *testing.T) {
	s := newCardSetup(t)
	b := startBridge(t, conf{Policies: cardPolicy, Extra: s.extra(), ServerExtra: "  username: {strip_realm: true}"})
	cert, key := s.card(t, "alice-card", harness.CardOptions{CN: "Alice", UPN: "alice@example.org"})
	r, err := harness.RunEAPOLTest(context.Background(), s.dir, b.Radius, secretLocal, harness.EAPOL{
		Identity: "alice@example.org", CACert: s.serverCA.CertFile, ClientCert: cert, ClientKey: key})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Success || !r.MPPEOK {
		t.Fatalf("eapol_test did not succeed with matching MPPE keys:\n%s", tail(r.Out, 60))
	}
	rec := b.lastAudit(t, "alice")
	if rec.Outcome != "accept" || rec.Reason != "smartcard" {
		t.Errorf("audit %+v", rec)
	}
	_ = filepath.Join
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
