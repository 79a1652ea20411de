package config_test

import (
	"errors"
	"testing"

	"github.com/mfabridge/mfabridge/config"
)

// FuzzParse checks that Parse never panics and that every failure is a
// *config.Error with at least one problem. Crashers found here become
// cases of TestParseErrors.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		minimal,
		ldapExtra("  groups: {mode: search, filter: \"(member={dn})\"}\n"),
		minimal + "  - {name: b, address: \"2001:db8::/32\", secret: x, require_message_authenticator: true}\n",
		minimal + "policies:\n  default: {mode: append, mfa: optional, remember: 8h}\n",
		minimal + "policies:\n  default:\n    reply_attributes:\n      - {groups: [a], attributes: {Class: x, Session-Timeout: \"60\"}}\n",
		"server:\n  duplicate_window: 30\n" + minimal,
		"defaults: &d {secret: x}\n" + minimal + "  - {<<: *d, name: b, address: 192.0.2.11}\n",
		minimal + "---\nserver: {}\n",
		"clients:\n  - name: vpn\n   address: 192.0.2.10\n",
		"- a\n- b\n",
		"",
		"server: {}\n",
		"clients: [{address: \"::ffff:10.0.0.0/90\"}]\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := config.Parse("fuzz.yaml", data)
		if err == nil {
			if c == nil {
				t.Fatal("Parse returned neither a config nor an error")
			}
			return
		}
		var ce *config.Error
		if !errors.As(err, &ce) {
			t.Fatalf("error %T is not a *config.Error: %v", err, err)
		}
		if len(ce.Problems) == 0 {
			t.Fatal("*config.Error without problems")
		}
		_ = ce.Error()
	})
}
