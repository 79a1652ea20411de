package test

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mfabridge/mfabridge/test/harness"
)

// A card is its holder's and nobody else's: the identity a supplicant
// claims must be the card's user, a card for another realm is no local
// user, and the Access-Accept names the user it accepted.

func TestSmartcardClaimedIdentityMustBeTheCardsUser(t *testing.T) {
	t.Parallel()
	s := newCardSetup(t)
	holder, other := newUser(t, "vpn-admins"), newUser(t)
	b := startBridge(t, conf{Policies: cardPolicy, ServerExtra: cardServer, Extra: s.extra()})
	c := s.issue(t, nil, "holder", harness.CardOptions{CN: holder.UID, UPN: holder.UID + "@example.org"})

	for _, claimed := range []string{other.UID + "@example.org", other.UID, strings.ToUpper(other.UID), "anonymous", "nobody-at-all"} {
		t.Run(claimed, func(t *testing.T) {
			r := b.eapol(t, s, c, claimed, "", tls13)
			rec := b.wantFailure(t, r, "cert_identity_mismatch", holder.UID, c)
			if rec.User == other.UID {
				t.Errorf("audit names %s, the claimed user, not the card's", other.UID)
			}
		})
	}

	// Claimed as the holder, in any spelling the directory folds: in, and
	// the Access-Accept carries the canonical User-Name (RFC 2865 §5.1).
	for _, claimed := range []string{holder.UID + "@example.org", holder.UID, strings.ToUpper(holder.UID)} {
		r := b.eapol(t, s, c, claimed, "", tls13)
		b.wantSuccess(t, r, holder.UID, c)
		if got := r.final().Texts(1); len(got) != 1 || got[0] != holder.UID {
			t.Errorf("claimed %q: Access-Accept User-Name %q, want [%s]", claimed, got, holder.UID)
		}
	}
	b.answering(t)
}

func TestSmartcardAnotherRealmIsNoLocalUser(t *testing.T) {
	t.Parallel()
	s := newCardSetup(t)
	u := newUser(t)
	// strip_realm, as the README once advised for UPNs: the realm must
	// still count.
	b := startBridge(t, conf{Policies: cardPolicy, ServerExtra: cardServer, Extra: s.extra()})
	foreign := s.issue(t, nil, "foreign", harness.CardOptions{CN: u.UID, UPN: u.UID + "@other.example"})
	r := b.eapol(t, s, foreign, u.UID+"@other.example", "", tls13)
	b.wantFailure(t, r, "cert_unknown_user", u.UID+"@other.example", foreign)

	own := s.issue(t, nil, "own", harness.CardOptions{CN: u.UID, UPN: u.UID + "@example.org"})
	r = b.eapol(t, s, own, u.UID+"@example.org", "", tls13)
	b.wantSuccess(t, r, u.UID, own)

	// allowed_realms instead of the directory's UPN attribute: a listed
	// realm's local part is the user, any other realm is refused.
	b2 := startBridge(t, conf{Policies: cardPolicy, Extra: s.with("allowed_realms: [example.org]"),
		LDAPExtra: "  attributes: {upn: \"\"}"})
	r = b2.eapol(t, s, own, u.UID+"@example.org", "", tls13)
	b2.wantSuccess(t, r, u.UID, own)
	r = b2.eapol(t, s, foreign, u.UID+"@other.example", "", tls13)
	b2.wantFailure(t, r, "cert_realm_not_allowed", u.UID+"@other.example", foreign)
	b2.answering(t)
}

// checkConfig writes a configuration around a smartcard section and
// runs check-config on it.
func checkConfig(t *testing.T, s *cardSetup, smartcard string) (out string, code int) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "mfabridge.yaml")
	cfg := `clients: [{name: vpn, address: 127.0.0.1, secret: "` + secretLocal + `"}]
ldap: {urls: ["` + env.slapd.URL + `"], base_dn: "` + harness.PeopleDN + `", groups: {base_dn: "` + harness.GroupsDN + `"}}
store: {path: "` + filepath.Dir(path) + `/store.db", key: "` + storeKey + `"}
policies:
` + cardPolicy + `
` + smartcard
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := mfabridge(t, nil, "check-config", "--config", path)
	return stdout + stderr, code
}

func TestSmartcardRevocationFailsClosed(t *testing.T) {
	t.Parallel()
	s := newCardSetup(t)

	t.Run("a CA without a revocation source does not load", func(t *testing.T) {
		out, code := checkConfig(t, s, s.smartcardYAML(nil, nil))
		if code != 1 || !containsAll(out, "factors.smartcard", s.cards.CertFile, "revocation") {
			t.Errorf("check-config with a CA and no CRL or OCSP: exit %d, want 1 naming the CA and revocation:\n%s", code, out)
		}
		out, code = checkConfig(t, s, "factors:\n  smartcard: {server_cert_file: \""+s.serverCert+"\", server_key_file: \""+s.serverKey+
			"\", ca_files: [{file: \""+s.cards.CertFile+"\", revocation: none}]}\n")
		if code != 0 || !containsAll(out, "warning", "revocation") {
			t.Errorf("check-config with revocation: none for the CA: exit %d, want 0 with a warning:\n%s", code, out)
		}
	})

	// A CRL under the CA's name signed by another key: whoever wrote it
	// could leave a revoked card out.
	impostor, err := harness.NewCA(filepath.Join(s.dir, mkdir(t, s.dir, "impostor")), "cards")
	if err != nil {
		t.Fatal(err)
	}
	forged := s.crl(t, impostor, "forged-crl", time.Hour)

	t.Run("a CRL with a bad signature does not load", func(t *testing.T) {
		out, code := checkConfig(t, s, s.extra(forged))
		if code != 1 || !containsAll(out, forged, "signature") {
			t.Errorf("check-config with a forged CRL: exit %d, want 1 naming the file and its signature:\n%s", code, out)
		}
	})

	t.Run("a CRL with a bad signature is refused at reload", func(t *testing.T) {
		u := newUser(t)
		c := s.issue(t, nil, "reload-card", harness.CardOptions{CN: u.UID, UPN: u.UID + "@example.org"})
		crl := s.crl(t, s.cards, "reload-crl", time.Hour, c.x.SerialNumber)
		b := startBridge(t, conf{Policies: cardPolicy, ServerExtra: cardServer, Extra: s.extra(crl)})
		r := b.eapol(t, s, c, u.UID+"@example.org", "", tls13)
		b.wantFailure(t, r, "cert_revoked", u.UID, c)

		der, err := os.ReadFile(forged)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(crl, der, 0o644); err != nil {
			t.Fatal(err)
		}
		n := strings.Count(b.Logs(), "reload refused")
		if err := b.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		if !harness.Eventually(10*time.Second, func() bool { return strings.Count(b.Logs(), "reload refused") > n }) {
			t.Fatalf("no refused reload after a forged CRL:\n%s", b.Logs())
		}
		r = b.eapol(t, s, c, u.UID+"@example.org", "", tls13)
		b.wantFailure(t, r, "cert_revoked", u.UID, c)
	})

	t.Run("an old OCSP answer is refused", func(t *testing.T) {
		resp, err := harness.StartOCSPResponder(s.cards)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(resp.Close)
		u := newUser(t)
		c := s.issue(t, nil, "ocsp-card", harness.CardOptions{CN: u.UID, UPN: u.UID + "@example.org", OCSP: resp.URL})
		crl := s.crl(t, s.cards, "ocsp-crl", time.Hour)
		b := startBridge(t, conf{Policies: cardPolicy, ServerExtra: cardServer, Extra: s.smartcardYAML(nil, []string{crl}, "ocsp: true")})
		r := b.eapol(t, s, c, u.UID+"@example.org", "", tls13)
		b.wantSuccess(t, r, u.UID, c)

		// A good answer from two days ago, valid for a day: replayed.
		resp.SetTimes(48*time.Hour, 24*time.Hour)
		r = b.eapol(t, s, c, u.UID+"@example.org", "", tls13)
		b.wantFailure(t, r, "cert_ocsp_stale", u.UID, c)

		// One that claims to come from the future.
		resp.SetTimes(-time.Hour, 24*time.Hour)
		r = b.eapol(t, s, c, u.UID+"@example.org", "", tls13)
		b.wantFailure(t, r, "cert_ocsp_stale", u.UID, c)
		if resp.Requests() < 3 {
			t.Errorf("%d OCSP requests; want one per login", resp.Requests())
		}
	})

	t.Run("ocsp without a responder URL in the card is refused", func(t *testing.T) {
		u := newUser(t)
		c := s.issue(t, nil, "no-aia-card", harness.CardOptions{CN: u.UID, UPN: u.UID + "@example.org"})
		crl := s.crl(t, s.cards, "no-aia-crl", time.Hour)
		b := startBridge(t, conf{Policies: cardPolicy, ServerExtra: cardServer, Extra: s.smartcardYAML(nil, []string{crl}, "ocsp: true")})
		r := b.eapol(t, s, c, u.UID+"@example.org", "", tls13)
		b.wantFailure(t, r, "cert_ocsp_unavailable", u.UID, c)
	})
}

func mkdir(t *testing.T, dir, name string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, name), 0o700); err != nil {
		t.Fatal(err)
	}
	return name
}
