package test

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2869"

	mradius "github.com/mfabridge/mfabridge/radius"
	"github.com/mfabridge/mfabridge/test/harness"
)

// cardSetup is a card CA with certificates, and the bridge's EAP-TLS
// server certificate from another CA the supplicant trusts.
type cardSetup struct {
	dir                   string
	cards                 *harness.CA
	clean                 string // a CRL of cards that revokes nothing
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
	if s.clean, err = s.cards.CRL(s.dir, "cards-clean-crl", 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	return s
}

// card is an issued card certificate, its key, and the certificate
// itself for comparing with audit records.
type card struct {
	cert, key string
	x         *x509.Certificate
}

// issue makes a card certificate from ca (the card CA when nil).
func (s *cardSetup) issue(t *testing.T, ca *harness.CA, name string, o harness.CardOptions) card {
	t.Helper()
	if ca == nil {
		ca = s.cards
	}
	cert, key, x, err := ca.CardCert(s.dir, name, o)
	if err != nil {
		t.Fatal(err)
	}
	return card{cert, key, x}
}

func (s *cardSetup) newCA(t *testing.T, name string) *harness.CA {
	t.Helper()
	ca, err := harness.NewCA(s.dir, name)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func (s *cardSetup) crl(t *testing.T, ca *harness.CA, name string, validFor time.Duration, serials ...*big.Int) string {
	t.Helper()
	path, err := ca.CRL(s.dir, name, validFor, serials...)
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// smartcardYAML is the factors section, as given: cas are paths or
// {file, revocation} mappings (the card CA when empty), crls the CRL
// files; more holds further flow-map keys of factors.smartcard, e.g.
// `identity: email`.
func (s *cardSetup) smartcardYAML(cas, crls []string, more ...string) string {
	if len(cas) == 0 {
		cas = []string{s.cards.CertFile}
	}
	items := make([]string, len(cas))
	for i, c := range cas {
		items[i] = c
		if !strings.HasPrefix(c, "{") {
			items[i] = `"` + c + `"`
		}
	}
	keys := []string{`server_cert_file: "` + s.serverCert + `"`, `server_key_file: "` + s.serverKey + `"`,
		`ca_files: [` + strings.Join(items, ", ") + `]`, `require_eku: [client_auth, smartcard_logon]`}
	if len(crls) > 0 {
		keys = append(keys, `crl_files: ["`+strings.Join(crls, `", "`)+`"]`)
	}
	keys = append(keys, more...)
	return "factors:\n  smartcard: {" + strings.Join(keys, ", ") + "}\n"
}

// extra is the factors section for the card CA with crls, or with a CRL
// that revokes nothing when none are given: every CA needs one.
func (s *cardSetup) extra(crls ...string) string {
	if len(crls) == 0 {
		crls = []string{s.clean}
	}
	return s.smartcardYAML(nil, crls)
}

// with is extra with more keys of factors.smartcard.
func (s *cardSetup) with(more ...string) string {
	return s.smartcardYAML(nil, []string{s.clean}, more...)
}

const cardPolicy = `  default:
    mfa: required
    factors: [totp]
    smartcard: true
    deny_groups: [blocked]
    reply_attributes:
      - groups: [vpn-admins]
        attributes: {Class: "admins"}`

// cardServer is the server section of every smartcard bridge: a UPN or
// an email address names the user by its local part.
const cardServer = "  username: {strip_realm: true}"

// cardAudit is an audit record with its certificate block.
type cardAudit struct {
	Client, User, Outcome, Reason, Policy, Factor string
	CallingStation                                string `json:"calling_station"`
	Cert                                          *struct {
		Subject, Serial, Issuer, SHA256 string
	} `json:"cert"`
}

// cardRecord waits for the audit record of the run from station and
// returns the last one.
func (b *bridge) cardRecord(t *testing.T, station string) cardAudit {
	t.Helper()
	var last *cardAudit
	harness.Eventually(5*time.Second, func() bool {
		for _, line := range strings.Split(b.Stdout(), "\n") {
			var r cardAudit
			if json.Unmarshal([]byte(line), &r) == nil && r.CallingStation == station {
				last = &r
			}
		}
		return last != nil
	})
	if last == nil {
		t.Fatalf("no audit record from %s in:\n%s", station, b.Stdout())
	}
	return *last
}

// stations hands out Calling-Station-Ids, one per eapol_test run, so that
// runs in parallel find their own audit records.
var stations atomic.Int64

// nextStation returns a MAC address for eapol_test's -M and the
// Calling-Station-Id it becomes.
func nextStation() (mac, station string) {
	n := stations.Add(1)
	mac = fmt.Sprintf("02:00:00:00:%02d:%02d", n/100%100, n%100) // digits only: no question of case
	return mac, strings.ReplaceAll(mac, ":", "-")
}

// eapolRun is one eapol_test run.
type eapolRun struct {
	res     harness.EAPOLResult
	station string
	msgs    []harness.RadiusMessage
}

// final is the last message the bridge sent.
func (r eapolRun) final() harness.RadiusMessage {
	for i := len(r.msgs) - 1; i >= 0; i-- {
		if r.msgs[i].Code != radiusCodeAccessRequest {
			return r.msgs[i]
		}
	}
	return harness.RadiusMessage{}
}

const (
	radiusCodeAccessRequest   = 1
	radiusCodeAccessAccept    = 2
	radiusCodeAccessReject    = 3
	radiusCodeAccessChallenge = 11
)

// eapol runs eapol_test with c for identity from clientIP ("" for
// 127.0.0.1) against b.
func (b *bridge) eapol(t *testing.T, s *cardSetup, c card, identity, clientIP string, tweak ...func(*harness.EAPOL)) eapolRun {
	t.Helper()
	e := harness.EAPOL{Identity: identity, CACert: s.serverCA.CertFile, ClientCert: c.cert, ClientKey: c.key}
	for _, f := range tweak {
		f(&e)
	}
	mac, st := nextStation()
	r, err := harness.RunEAPOLTestAs(context.Background(), s.dir, b.Radius, secretLocal, e, harness.EAPOLPeer{ClientIP: clientIP, MAC: mac})
	if err != nil {
		t.Fatal(err)
	}
	return eapolRun{res: r, station: st, msgs: harness.EAPOLMessages(r.Out)}
}

func tls12(e *harness.EAPOL) { e.TLS12Only = true }
func tls13(e *harness.EAPOL) { e.TLS13 = true }
func fragments(n int) func(*harness.EAPOL) {
	return func(e *harness.EAPOL) { e.FragmentSize = n }
}

// wantSuccess checks an accepted run: eapol_test's SUCCESS with MPPE keys
// that match its own MSK, the Access-Accept, and the audit record.
func (b *bridge) wantSuccess(t *testing.T, r eapolRun, user string, c card) cardAudit {
	t.Helper()
	if !r.res.Success || !r.res.MPPEOK {
		t.Fatalf("eapol_test did not succeed with matching MPPE keys:\n%s", tail(r.res.Out, 80))
	}
	if f := r.final(); f.Code != radiusCodeAccessAccept || !eapCode(f, 3) {
		t.Errorf("last reply %s with EAP %x: want Access-Accept with EAP-Success", f.Name, f.EAP())
	}
	rec := b.cardRecord(t, r.station)
	wantRecord(t, rec, "accept", "smartcard", user, c)
	if rec.Factor != "smartcard" {
		t.Errorf("audit factor %q, want smartcard", rec.Factor)
	}
	return rec
}

// wantFailure checks a refused run: eapol_test's FAILURE, an
// Access-Reject with EAP-Failure, and the audit record.
func (b *bridge) wantFailure(t *testing.T, r eapolRun, reason, user string, c card) cardAudit {
	t.Helper()
	if r.res.Success || !strings.Contains(r.res.Out, "\nFAILURE") {
		t.Fatalf("eapol_test: want FAILURE, got:\n%s", tail(r.res.Out, 80))
	}
	if f := r.final(); f.Code != radiusCodeAccessReject || !eapCode(f, 4) {
		t.Errorf("last reply %s with EAP %x: want Access-Reject with EAP-Failure", f.Name, f.EAP())
	}
	for _, m := range r.msgs {
		if m.Code == radiusCodeAccessReject && len(m.Values(26)) > 0 {
			t.Errorf("Access-Reject carries Vendor-Specific attributes (MS-MPPE keys?): %+v", m.Attrs)
		}
	}
	rec := b.cardRecord(t, r.station)
	wantRecord(t, rec, "reject", reason, user, c)
	return rec
}

func eapCode(m harness.RadiusMessage, code byte) bool {
	e := m.EAP()
	return len(e) >= 4 && e[0] == code
}

// wantRecord compares an audit record with what it should say, the
// certificate block with the certificate that was issued.
func wantRecord(t *testing.T, rec cardAudit, outcome, reason, user string, c card) {
	t.Helper()
	if rec.Outcome != outcome || rec.Reason != reason || rec.User != user {
		t.Errorf("audit outcome=%q reason=%q user=%q, want %q %q %q", rec.Outcome, rec.Reason, rec.User, outcome, reason, user)
	}
	sum := sha256.Sum256(c.x.Raw)
	want := struct{ Subject, Serial, Issuer, SHA256 string }{c.x.Subject.String(), hex.EncodeToString(c.x.SerialNumber.Bytes()),
		c.x.Issuer.String(), hex.EncodeToString(sum[:])}
	switch {
	case rec.Cert == nil:
		t.Errorf("audit record (reason %s) has no cert block; want %+v", rec.Reason, want)
	case *rec.Cert != want:
		t.Errorf("audit cert block %+v, want %+v", *rec.Cert, want)
	}
}

// answering checks that the bridge still answers Status-Server.
func (b *bridge) answering(t *testing.T) {
	t.Helper()
	if r := b.radclient(t, "status", secretLocal, `Message-Authenticator = 0x00`); r.Code != "Access-Accept" {
		t.Fatalf("Status-Server after the run: got %q\n%s", r.Code, r.Out)
	}
}

// tlsFragments returns the TLS data lengths of the EAP-TLS packets of
// messages with code, and how many had the M (more fragments) flag.
func tlsFragments(msgs []harness.RadiusMessage, code int) (sizes []int, more int) {
	for _, m := range msgs {
		e := m.EAP()
		if m.Code != code || len(e) < 6 || e[4] != 13 {
			continue
		}
		n := int(binary.BigEndian.Uint16(e[2:4])) - 6
		if e[5]&0x80 != 0 {
			n -= 4
		}
		sizes = append(sizes, n)
		if e[5]&0x40 != 0 {
			more++
		}
	}
	return sizes, more
}

// classOf returns the Class values of m, as strings.
func classOf(m harness.RadiusMessage) []string {
	var out []string
	for _, v := range m.Values(25) {
		out = append(out, string(v))
	}
	return out
}

// TestSmartcardEAPTLS runs eapol_test, the supplicant of hostapd, against
// the bridge for each outcome of a smartcard login: accepted over TLS 1.2
// and 1.3 in small fragments both ways, and refused for each reason a
// certificate or its holder can be refused for.
func TestSmartcardEAPTLS(t *testing.T) {
	t.Parallel()
	s := newCardSetup(t)

	// A directory of its own, with ppolicy, for a locked account.
	sdir := filepath.Join(s.dir, "slapd")
	if err := os.MkdirAll(sdir, 0o700); err != nil {
		t.Fatal(err)
	}
	sl, err := harness.StartSLAPDWithPPolicy(sdir, []harness.User{
		{UID: "alice", Password: "Alice-pass-1", Mail: "alice@example.org", Groups: []string{"vpn-users", "vpn-admins"}},
		{UID: "bob", Password: "Bob-pass-2", Mail: "bob@example.org", Groups: []string{"vpn-users"}},
		{UID: "carol", Password: "Carol-pass-3", Mail: "carol@example.org", Groups: []string{"blocked"}},
		{UID: "lena", Password: "Lena-pass-5", Mail: "lena@example.org", Groups: []string{"vpn-users"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sl.Stop)
	if err := sl.LockAccount("lena"); err != nil {
		t.Fatal(err)
	}

	rogue := s.newCA(t, "rogue")   // not in ca_files
	staleCA := s.newCA(t, "stale") // in ca_files, its CRL out of date
	noCRLCA := s.newCA(t, "nocrl") // in ca_files with revocation: none
	upn := func(u string) harness.CardOptions { return harness.CardOptions{CN: u, UPN: u + "@example.org"} }
	aliceCard := s.issue(t, nil, "alice", upn("alice"))
	bobCard := s.issue(t, noCRLCA, "bob", upn("bob"))
	revoked := s.issue(t, nil, "alice-revoked", upn("alice"))
	cards := map[string]card{
		"expired": s.issue(t, nil, "alice-expired", harness.CardOptions{CN: "alice", UPN: "alice@example.org",
			NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)}),
		"untrusted":   s.issue(t, rogue, "alice-rogue", upn("alice")),
		"revoked":     revoked,
		"stale":       s.issue(t, staleCA, "alice-stale", upn("alice")),
		"no EKU":      s.issue(t, nil, "alice-noeku", harness.CardOptions{CN: "alice", UPN: "alice@example.org", NoEKU: true}),
		"key usage":   s.issue(t, nil, "alice-ku", harness.CardOptions{CN: "alice", UPN: "alice@example.org", KeyUsageCertSignOnly: true}),
		"no identity": s.issue(t, nil, "alice-noupn", harness.CardOptions{CN: "alice", Email: "alice@example.org"}),
		"unknown":     s.issue(t, nil, "nobody", upn("nobody")),
		"locked":      s.issue(t, nil, "lena", upn("lena")),
		"denied":      s.issue(t, nil, "carol", upn("carol")),
	}
	crls := []string{s.crl(t, s.cards, "cards-crl", time.Hour, revoked.x.SerialNumber),
		s.crl(t, staleCA, "stale-crl", -time.Hour)}

	b := startBridge(t, conf{
		URLs: `"` + sl.URL + `"`, CA: sl.CA.CertFile,
		ServerExtra: cardServer,
		Clients: `  - {name: local, address: 127.0.0.1, secret: env:LOCAL_SECRET}
  - {name: nosmartcard, address: 127.0.0.2, secret: env:LOCAL_SECRET, policy: passwords}`,
		Policies: cardPolicy + `
  passwords:
    mfa: required
    factors: [totp]
    smartcard: false`,
		Extra: s.smartcardYAML([]string{s.cards.CertFile, staleCA.CertFile, `{file: "` + noCRLCA.CertFile + `", revocation: none}`}, crls, "fragment_size: 300"),
	})

	accept := []struct {
		name  string
		tweak func(*harness.EAPOL)
		ver   string
	}{
		{"accept TLS 1.2", tls12, "TLSv1.2"},
		{"accept TLS 1.3", tls13, "TLSv1.3"},
	}
	for _, tc := range accept {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := b.eapol(t, s, aliceCard, "alice@example.org", "", tc.tweak, fragments(300))
			b.wantSuccess(t, r, "alice", aliceCard)
			if v := harness.EAPOLTLSVersion(r.res.Out); v != tc.ver {
				t.Errorf("TLS version %q, want %s", v, tc.ver)
			}
			if got := classOf(r.final()); len(got) != 1 || got[0] != "admins" {
				t.Errorf("Access-Accept Class %q, want [admins] for vpn-admins", got)
			}
			// fragment_size 300 at the bridge: no EAP-TLS packet carries
			// more, and its flight took several.
			sizes, more := tlsFragments(r.msgs, radiusCodeAccessChallenge)
			if more == 0 || len(sizes) < 3 {
				t.Errorf("bridge's EAP-TLS packets %v, %d with M: want its flight fragmented", sizes, more)
			}
			for _, n := range sizes {
				if n > 300 {
					t.Errorf("bridge sent %d bytes of TLS in one packet; fragment_size is 300 (%v)", n, sizes)
				}
			}
			// fragment_size=300 at the supplicant: the bridge reassembled.
			csizes, cmore := tlsFragments(r.msgs, radiusCodeAccessRequest)
			if cmore == 0 {
				t.Errorf("supplicant's EAP-TLS packets %v: want its flight fragmented", csizes)
			}
			t.Logf("TLS bytes per EAP-TLS packet: bridge %v, supplicant %v", sizes, csizes)
			b.answering(t)
		})
	}

	t.Run("accept without reply attributes", func(t *testing.T) {
		t.Parallel()
		r := b.eapol(t, s, bobCard, "bob@example.org", "", tls13)
		b.wantSuccess(t, r, "bob", bobCard)
		if got := classOf(r.final()); len(got) != 0 {
			t.Errorf("Access-Accept for bob carries Class %q; only vpn-admins get one", got)
		}
		b.answering(t)
	})

	refuse := []struct {
		card, identity, clientIP, reason, user string
	}{
		{"expired", "alice@example.org", "", "cert_expired", "alice"},
		{"untrusted", "alice@example.org", "", "cert_untrusted", "alice"},
		{"revoked", "alice@example.org", "", "cert_revoked", "alice"},
		{"stale", "alice@example.org", "", "cert_crl_stale", "alice"},
		{"no EKU", "alice@example.org", "", "cert_eku", "alice"},
		{"key usage", "alice@example.org", "", "cert_key_usage", "alice"},
		{"no identity", "alice@example.org", "", "cert_no_identity", "alice"},
		{"unknown", "nobody@example.org", "", "cert_unknown_user", "nobody@example.org"},
		{"locked", "lena@example.org", "", "account_locked", "lena"},
		{"denied", "carol@example.org", "", "deny_group", "carol"},
	}
	for _, tc := range refuse {
		t.Run(tc.reason, func(t *testing.T) {
			t.Parallel()
			c := cards[tc.card]
			r := b.eapol(t, s, c, tc.identity, tc.clientIP, tls13)
			b.wantFailure(t, r, tc.reason, tc.user, c)
			b.answering(t)
		})
	}

	t.Run("smartcard_not_allowed", func(t *testing.T) {
		t.Parallel()
		// Refused at the first EAP message, before any TLS is spent.
		r := b.eapol(t, s, aliceCard, "alice@example.org", "127.0.0.2", tls12)
		if r.res.Success || !strings.Contains(r.res.Out, "\nFAILURE") {
			t.Fatalf("eapol_test: want FAILURE, got:\n%s", tail(r.res.Out, 40))
		}
		if sizes, _ := tlsFragments(r.msgs, radiusCodeAccessRequest); len(sizes) > 0 {
			t.Errorf("the supplicant sent TLS (%v) to a client whose policy takes no smartcard", sizes)
		}
		rec := b.cardRecord(t, r.station)
		if rec.Reason != "smartcard_not_allowed" || rec.User != "alice" || rec.Client != "nosmartcard" || rec.Policy != "passwords" || rec.Cert != nil {
			t.Errorf("audit %+v, want smartcard_not_allowed for alice from nosmartcard (passwords) with no cert", rec)
		}
		b.answering(t)
	})
}

// TestSmartcardIdentity maps the certificate to a user by its email SAN
// and by its subject CN.
func TestSmartcardIdentity(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		identity string
		opts     func(u string) harness.CardOptions
		missing  harness.CardOptions // names no identity of this kind
	}{
		{"email", func(u string) harness.CardOptions {
			return harness.CardOptions{CN: "Someone Else", Email: u + "@example.org"}
		},
			harness.CardOptions{CN: "x", UPN: "x@example.org"}},
		{"subject_cn", func(u string) harness.CardOptions {
			return harness.CardOptions{CN: strings.ToUpper(u), UPN: "someone.else@example.org"}
		}, harness.CardOptions{UPN: "x@example.org", Email: "x@example.org"}},
	} {
		t.Run(tc.identity, func(t *testing.T) {
			t.Parallel()
			s := newCardSetup(t)
			u := newUser(t, "vpn-admins")
			b := startBridge(t, conf{Policies: cardPolicy, ServerExtra: cardServer,
				Extra: s.with("identity: " + tc.identity)})
			good := s.issue(t, nil, "good", tc.opts(u.UID))
			r := b.eapol(t, s, good, u.UID, "", tls13)
			b.wantSuccess(t, r, u.UID, good)
			if got := classOf(r.final()); len(got) != 1 || got[0] != "admins" {
				t.Errorf("Access-Accept Class %q, want [admins]", got)
			}
			missing := s.issue(t, nil, "missing", tc.missing)
			r = b.eapol(t, s, missing, u.UID, "", tls12)
			b.wantFailure(t, r, "cert_no_identity", u.UID, missing)
			b.answering(t)
		})
	}
}

// TestSmartcardMatchStoredCertificate: with match_stored_certificate only
// the certificate enrolled for the user gets in.
func TestSmartcardMatchStoredCertificate(t *testing.T) {
	t.Parallel()
	s := newCardSetup(t)
	u := newUser(t)
	b := startBridge(t, conf{Policies: cardPolicy, ServerExtra: cardServer,
		Extra: s.with("match_stored_certificate: true")})
	opts := harness.CardOptions{CN: u.UID, UPN: u.UID + "@example.org"}
	first := s.issue(t, nil, "first", opts)
	second := s.issue(t, nil, "second", opts)
	id := u.UID + "@example.org"

	r := b.eapol(t, s, first, id, "", tls13)
	b.wantFailure(t, r, "cert_not_enrolled", u.UID, first)

	out, stderr, code := mfabridge(t, b.env(), "enrol", "cert", "--config", b.ConfigFile, "--user", u.UID, "--file", first.cert)
	sum := sha256.Sum256(first.x.Raw)
	if code != 0 || !strings.Contains(out, "certificate enrolled for "+u.UID) || !strings.Contains(out, hex.EncodeToString(sum[:])) {
		t.Fatalf("enrol cert: exit %d\n%s%s", code, out, stderr)
	}

	r = b.eapol(t, s, first, id, "", tls13)
	b.wantSuccess(t, r, u.UID, first)

	r = b.eapol(t, s, second, id, "", tls12)
	b.wantFailure(t, r, "cert_not_enrolled", u.UID, second)

	out, stderr, code = mfabridge(t, b.env(), "user", "show", "--config", b.ConfigFile, "--user", u.UID)
	if code != 0 || !containsAll(out, "cert ", hex.EncodeToString(sum[:]), fmt.Sprintf("serial %x", first.x.SerialNumber)) {
		t.Errorf("user show: exit %d, want the enrolled certificate listed\n%s%s", code, out, stderr)
	}
	sum2 := sha256.Sum256(second.x.Raw)
	if strings.Contains(out, hex.EncodeToString(sum2[:])) {
		t.Errorf("user show lists the second card, which was never enrolled:\n%s", out)
	}
	b.answering(t)
}

// TestSmartcardCRLReload: SIGHUP reads the CRL files again; a CRL that
// does not load is refused and the one in force stays.
func TestSmartcardCRLReload(t *testing.T) {
	t.Parallel()
	s := newCardSetup(t)
	u := newUser(t)
	c := s.issue(t, nil, "card", harness.CardOptions{CN: u.UID, UPN: u.UID + "@example.org"})
	crl := s.crl(t, s.cards, "crl", time.Hour) // revokes nothing
	b := startBridge(t, conf{Policies: cardPolicy, ServerExtra: cardServer, Extra: s.extra(crl)})
	id := u.UID + "@example.org"

	r := b.eapol(t, s, c, id, "", tls13)
	b.wantSuccess(t, r, u.UID, c)

	reload := func(want string) {
		t.Helper()
		n := strings.Count(b.Logs(), want)
		if err := b.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		if !harness.Eventually(10*time.Second, func() bool { return strings.Count(b.Logs(), want) > n }) {
			t.Fatalf("no %q after SIGHUP:\n%s", want, b.Logs())
		}
	}
	if got := s.crl(t, s.cards, "crl", time.Hour, c.x.SerialNumber); got != crl {
		t.Fatalf("CRL rewritten to %s, not %s", got, crl)
	}
	reload("configuration reloaded")
	r = b.eapol(t, s, c, id, "", tls13)
	b.wantFailure(t, r, "cert_revoked", u.UID, c)

	// A CRL file that no longer parses: the reload is refused and the
	// CRL in force (revoking the card) stays.
	if err := os.WriteFile(crl, []byte("-----BEGIN X509 CRL-----\nbm90IGEgQ1JM\n-----END X509 CRL-----\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	reload("reload refused")
	r = b.eapol(t, s, c, id, "", tls12)
	b.wantFailure(t, r, "cert_revoked", u.UID, c)
	b.answering(t)
}

// eapRequest builds an Access-Request carrying msg as EAP-Message, signed
// with Message-Authenticator when sign is set.
func eapRequest(user string, msg []byte, sign bool, more ...func(*radius.Packet)) *radius.Packet {
	p := radius.New(radius.CodeAccessRequest, []byte(secretLocal))
	rfc2865.UserName_SetString(p, user)
	rfc2865.NASIdentifier_SetString(p, "harness")
	rfc2869.EAPMessage_Set(p, msg)
	for _, f := range more {
		f(p)
	}
	if sign {
		if err := mradius.Sign(p); err != nil {
			panic(err)
		}
	}
	return p
}

func eapIdentity(id byte, name string) []byte {
	b := []byte{2, id, 0, byte(5 + len(name)), 1}
	return append(b, name...)
}

// TestSmartcardEAPTransport: an unsigned EAP request is dropped, and a
// supplicant that gives up midway leaves nothing behind once its session
// is idle for server.challenge_timeout (the EAP idle timeout).
func TestSmartcardEAPTransport(t *testing.T) {
	t.Parallel()
	s := newCardSetup(t)
	u := newUser(t)
	c := s.issue(t, nil, "card", harness.CardOptions{CN: u.UID, UPN: u.UID + "@example.org"})
	b := startBridge(t, conf{Policies: cardPolicy, ServerExtra: cardServer + "\n  challenge_timeout: 2s", Extra: s.extra()})
	gc := b.client(t, "127.0.0.1", secretLocal)

	t.Run("EAP without Message-Authenticator is dropped", func(t *testing.T) {
		series := `mfabridge_radius_dropped_total{cause="missing_message_authenticator"}`
		before := b.metric(t, series)
		p := eapRequest(u.UID, eapIdentity(1, u.UID), false)
		if _, _, err := gc.Exchange(p, noAnswer); err != harness.ErrNoReply {
			t.Fatalf("unsigned EAP-Message: want no reply, got %v", err)
		}
		if got := b.metric(t, series); got != before+1 {
			t.Errorf("%s = %v, want %v", series, got, before+1)
		}
	})

	t.Run("abandoned handshakes expire", func(t *testing.T) {
		const n = 20
		base := b.metric(t, "go_goroutines")
		type started struct {
			state []byte
			id    byte
		}
		var open []started
		for i := range n {
			p := eapRequest(u.UID, eapIdentity(1, u.UID), true, withStation(fmt.Sprintf("abandon-%d", i)))
			resp, _, err := gc.Exchange(p, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			eap := rfc2869.EAPMessage_Get(resp)
			st := rfc2865.State_Get(resp)
			if resp.Code != radius.CodeAccessChallenge || len(eap) != 6 || eap[0] != 1 || eap[4] != 13 || eap[5] != 0x20 || len(st) == 0 {
				t.Fatalf("reply to EAP-Response/Identity: %v EAP %x State %x; want Access-Challenge with EAP-TLS Start", resp.Code, eap, st)
			}
			open = append(open, started{st, eap[1]})
		}
		// Each open session holds a TLS server waiting for its ClientHello.
		open1 := b.metric(t, "go_goroutines")
		if open1 < base+n/2 {
			t.Errorf("go_goroutines %v with %d sessions open, %v before: want one more per session", open1, n, base)
		}
		time.Sleep(3 * time.Second) // > challenge_timeout, and the sweep runs at most once a second

		// The first abandoned session, taken up again: it is gone.
		p := eapRequest(u.UID, []byte{2, open[0].id, 0, 6, 13, 0}, true, withState(open[0].state), withStation("abandon-late"))
		resp, _, err := gc.Exchange(p, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if eap := rfc2869.EAPMessage_Get(resp); resp.Code != radius.CodeAccessReject || len(eap) < 4 || eap[0] != 4 {
			t.Errorf("expired session: got %v with EAP %x, want Access-Reject with EAP-Failure", resp.Code, eap)
		}
		if rec := b.cardRecord(t, "abandon-late"); rec.Outcome != "reject" || rec.Reason != "eap_failed" {
			t.Errorf("expired session: audit %+v, want reject eap_failed", rec)
		}
		// Their goroutines have ended.
		var g float64
		if !harness.Eventually(5*time.Second, func() bool { g = b.metric(t, "go_goroutines"); return g <= base+2 }) {
			t.Errorf("go_goroutines %v after the sessions expired; %v before %d were opened, %v while open", g, base, n, open1)
		}
		t.Logf("go_goroutines: %v before, %v with %d sessions open, %v after they expired", base, open1, n, g)
		// And a login still works.
		r := b.eapol(t, s, c, u.UID+"@example.org", "", tls13)
		b.wantSuccess(t, r, u.UID, c)
		b.answering(t)
	})
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
