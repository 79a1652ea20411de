package test

import (
	"encoding/base32"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"layeh.com/radius"
	"layeh.com/radius/rfc2865"

	"github.com/mfabridge/mfabridge/factors"
	"github.com/mfabridge/mfabridge/factors/otp"
	"github.com/mfabridge/mfabridge/test/harness"
)

// token plays an authenticator app holding secret.
type token struct {
	cred factors.Credential
}

func newToken(secret []byte) token {
	return token{cred: factors.Credential{Method: factors.TOTP, Secret: secret, Algorithm: "SHA1", Digits: 6, Period: 30, Active: true}}
}

// code returns the code for now plus offset time steps.
func (tk token) code(offset int64) string {
	return otp.Generate(tk.cred, uint64(time.Now().Unix()/30+offset))
}

func (tk token) base32() string {
	return base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(tk.cred.Secret)
}

// enrolTOTP enrols user with a fresh secret through the CLI and returns
// the token.
func (b *bridge) enrolTOTP(t *testing.T, user string) token {
	t.Helper()
	secret := make([]byte, 20)
	copy(secret, []byte(user+"-totp-secret-0123456789"))
	tk := newToken(secret)
	out, stderr, code := mfabridge(t, b.env(), "enrol", "totp", "--config", b.ConfigFile, "--user", user, "--secret", tk.base32())
	if code != 0 {
		t.Fatalf("enrol totp: %d %s %s", code, out, stderr)
	}
	return tk
}

func (b *bridge) env() []string {
	return []string{"LOCAL_SECRET=" + secretLocal, "OTHER_SECRET=" + secretOther, "LDAP_PASSWORD=" + harness.ServicePass, "STORE_KEY=" + storeKey}
}

const mfaPolicy = `  default:
    mfa: required
    factors: [totp, hotp]`

func TestTOTPChallengeThroughRadclient(t *testing.T) {
	b := startBridge(t, conf{Policies: mfaPolicy})
	u := newUser(t)
	tk := b.enrolTOTP(t, u.UID)

	r := b.radclient(t, "auth", secretLocal, pap(u.UID, u.Password))
	if r.Code != "Access-Challenge" {
		t.Fatalf("got %q, want Access-Challenge\n%s", r.Code, r.Out)
	}
	if msg := r.Attrs["Reply-Message"]; len(msg) != 1 || !strings.Contains(msg[0], "authenticator app") {
		t.Errorf("prompt = %v", msg)
	}
	state := r.Attrs["State"]
	if len(state) != 1 || len(state[0]) != 2+32 {
		t.Fatalf("State = %v, want 16 bytes", state)
	}
	r = b.radclient(t, "auth", secretLocal, pap(u.UID, tk.code(0))+", State = "+state[0])
	if r.Code != "Access-Accept" {
		t.Fatalf("answer: got %q\n%s", r.Code, r.Out)
	}
	rec := b.lastAudit(t, u.UID)
	if rec.Reason != "mfa_passed" {
		t.Errorf("audit %+v", rec)
	}
	// The State worked once.
	r = b.radclient(t, "auth", secretLocal, pap(u.UID, tk.code(0))+", State = "+state[0])
	if r.Code != "Access-Reject" || b.lastAudit(t, u.UID).Reason != "unknown_state" {
		t.Fatalf("reused State: %q %+v", r.Code, b.lastAudit(t, u.UID))
	}
}

func TestTestAuthAnswersChallenge(t *testing.T) {
	b := startBridge(t, conf{Policies: mfaPolicy})
	u := newUser(t)
	tk := b.enrolTOTP(t, u.UID)
	out, stderr, code := mfabridge(t, nil, "test-auth", "--server", b.Radius, "--secret", secretLocal, "--user", u.UID,
		"--password", u.Password, "--answer", tk.code(0))
	if code != 0 || !strings.Contains(out, "Access-Challenge") || !strings.Contains(out, "Access-Accept") {
		t.Fatalf("status %d\n%s%s", code, out, stderr)
	}
	if strings.Contains(out, tk.code(0)) {
		t.Errorf("test-auth printed the code")
	}
}

var _ = hex.EncodeToString
var _ = radius.CodeAccessAccept
var _ = rfc2865.State_Get
