package main

import (
	"crypto/elliptic"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mfabridge/mfabridge/test/pivcard"
)

// bridgeConfig writes an mfabridge configuration whose smartcard checks
// trust caFile, and returns its path.
func bridgeConfig(t *testing.T, caFile string, smartcardPolicy bool, extra string) string {
	t.Helper()
	dir := t.TempDir()
	server := newTestPKI(t, "eap server")
	key := newECKey(t, elliptic.P256())
	leaf := server.leaf(t, key, leafOpts{cn: "radius.example.org"})
	certFile, keyFile := filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem")
	writeTestPEM(t, certFile, "CERTIFICATE", leaf.Raw)
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writeTestPEM(t, keyFile, "PRIVATE KEY", kder)
	cfg := fmt.Sprintf(`server:
  radius_listen: ["127.0.0.1:18120"]
clients:
  - name: local
    address: 127.0.0.1
    secret: a-test-shared-secret-01
ldap:
  urls: ["ldap://127.0.0.1:3389"]
  base_dn: "dc=example,dc=org"
store: {path: "%s/store.db", key: "0f1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778899aabbccddeeff0"}
policies:
  default:
    mfa: required
    factors: [totp]
    smartcard: %v
factors:
  smartcard:
    server_cert_file: "%s"
    server_key_file: "%s"
    ca_files: [{file: "%s", revocation: none}]
    require_eku: [client_auth, smartcard_logon]
%s`, dir, smartcardPolicy, certFile, keyFile, caFile, extra)
	path := filepath.Join(dir, "mfabridge.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCheck(t *testing.T) {
	cards, other := newTestPKI(t, "cards"), newTestPKI(t, "other")
	key := newECKey(t, elliptic.P256())
	good := cards.leaf(t, key, leafOpts{cn: "Alice", upn: "alice@example.org", email: "a@mail.example.org"})
	expired := cards.leaf(t, key, leafOpts{cn: "Alice", upn: "alice@example.org", notAfter: time.Now().Add(-time.Hour)})
	foreign := other.leaf(t, key, leafOpts{cn: "Alice", upn: "alice@example.org"})
	noUPN := cards.leaf(t, key, leafOpts{cn: "Alice"})
	cfg := bridgeConfig(t, cards.caFile, true, "")
	for _, tc := range []struct {
		name string
		cert []byte
		cfg  string
		code int
		want string
	}{
		{"accepted", good.Raw, cfg, exitOK, "the bridge would accept this card for alice@example.org\n"},
		{"accepted by email", good.Raw, bridgeConfig(t, cards.caFile, true, "    identity: email\n"), exitOK,
			"the bridge would accept this card for a@mail.example.org\n"},
		{"expired", expired.Raw, cfg, exitFail, "the bridge would refuse this card (reason cert_expired): the certificate has expired"},
		{"another CA", foreign.Raw, cfg, exitFail, "the bridge would refuse this card (reason cert_untrusted): the certificate does not chain to a configured CA"},
		{"no UPN", noUPN.Raw, cfg, exitFail, "the bridge would refuse this card (reason cert_no_identity)"},
		{"no smartcard policy", good.Raw, bridgeConfig(t, cards.caFile, false, ""), exitFail, "accepts smartcards (smartcard: true), so the bridge would refuse every card"},
		{"config does not load", good.Raw, filepath.Join(t.TempDir(), "missing.yaml"), exitFail, "the configuration does not load"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sys := oneCard(newCard(t, pivcard.Options{Cert: tc.cert, Key: key}))
			out, stderr, code := runTool(t, sys, "", "check", "--config", tc.cfg)
			if code != tc.code || !strings.Contains(out+stderr, tc.want) {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit %d and %q", code, out, stderr, tc.code, tc.want)
			}
		})
	}
}
