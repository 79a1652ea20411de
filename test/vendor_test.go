package test

import (
	"slices"
	"testing"
)

// TestVendorReplyAttributes: vendor attributes by name and in the raw
// VENDOR:TYPE form, decoded by radclient with FreeRADIUS's dictionaries.
func TestVendorReplyAttributes(t *testing.T) {
	b := startBridge(t, conf{Policies: `  default:
    mfa: off
    reply_attributes:
      - groups: [vpn-admins]
        attributes:
          Cisco-AVPair: ["shell:priv-lvl=15", "ip:addr-pool=admins"]
          Fortinet-Group-Name: "fw-admins"
          PaloAlto-User-Group: "gp-admins"
          "14823:1": "aruba-admin"
          Class: "0x61646d696e"`})
	r := b.radclient(t, "auth", secretLocal, pap(alice.UID, alice.Password))
	if r.Code != "Access-Accept" {
		t.Fatalf("%s\n%s", r.Code, r.Out)
	}
	want := map[string][]string{
		"Cisco-AVPair":        {"shell:priv-lvl=15", "ip:addr-pool=admins"},
		"Fortinet-Group-Name": {"fw-admins"},
		"PaloAlto-User-Group": {"gp-admins"},
		"Aruba-User-Role":     {"aruba-admin"},
	}
	for name, vals := range want {
		if got := r.Attrs[name]; !slices.Equal(got, vals) {
			t.Errorf("%s = %q, want %q\n%s", name, got, vals, r.Out)
		}
	}
	if got := r.Attrs["Class"]; len(got) != 1 || got[0] != "0x61646d696e" && got[0] != "admin" {
		t.Errorf("Class = %q", got)
	}
	// bob is not in vpn-admins: none of them.
	r = b.radclient(t, "auth", secretLocal, pap(bob.UID, bob.Password))
	if r.Code != "Access-Accept" || len(r.Attrs["Cisco-AVPair"]) != 0 {
		t.Errorf("bob: %s %v", r.Code, r.Attrs)
	}
}
