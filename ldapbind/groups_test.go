package ldapbind

import (
	"slices"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/mfabridge/mfabridge/factors"
	"github.com/mfabridge/mfabridge/internal/audit"
)

func TestGroupMatcher(t *testing.T) {
	m := newGroupMatcher("ou=groups,dc=example,dc=org", "cn", []string{
		"vpn-admins", // a name: only under ou=groups
		"CN=Contractors, OU=Groups,DC=example,DC=org", // a DN, written another way
		"cn=blocked,ou=other,dc=example,dc=org",       // a DN outside the base
		"not a dn = (",                                // matches nothing
	})
	for _, tc := range []struct {
		name string
		dns  []string
		want []string
	}{
		{"a group named by cn under the base", []string{"cn=vpn-admins,ou=groups,dc=example,dc=org"}, []string{"vpn-admins"}},
		{"the same name elsewhere", []string{"cn=vpn-admins,ou=users-can-create-groups,dc=example,dc=org"}, []string{}},
		{"the same name at the base itself", []string{"cn=vpn-admins,dc=example,dc=org"}, []string{}},
		{"the name in another attribute", []string{"ou=vpn-admins,ou=groups,dc=example,dc=org"}, []string{}},
		{"a DN however written", []string{"cn=contractors,ou=groups,dc=example,dc=org"}, []string{"CN=Contractors, OU=Groups,DC=example,DC=org"}},
		{"a DN outside the base", []string{"cn=blocked,ou=other,dc=example,dc=org"}, []string{"cn=blocked,ou=other,dc=example,dc=org"}},
		{"a name is not a DN", []string{"cn=blocked,ou=groups,dc=example,dc=org"}, []string{}},
		{"several", []string{"cn=blocked,ou=other,dc=example,dc=org", "cn=VPN-Admins,ou=groups,dc=example,dc=org", "garbage"},
			[]string{"cn=blocked,ou=other,dc=example,dc=org", "vpn-admins"}},
	} {
		got := m.match(tc.dns, nil)
		slices.Sort(got)
		slices.Sort(tc.want)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
	// A search gives names from name_attribute, which may differ from the
	// RDN.
	got := m.match([]string{"uid=g1,ou=groups,dc=example,dc=org"}, map[string]string{"uid=g1,ou=groups,dc=example,dc=org": "vpn-admins"})
	if !slices.Equal(got, []string{"vpn-admins"}) {
		t.Errorf("named by a search: %q", got)
	}
	if got := m.match(nil, nil); got == nil {
		t.Error("no groups must be an empty list, not nil: nil means not read yet")
	}
}

func TestGroupFilter(t *testing.T) {
	d := &Directory{}
	d.cfg.Groups.Filter = "(&(objectClass=group)(member={dn}))"
	u := &factors.User{Name: "alice", DN: "cn=Alice (Admin),ou=people,dc=example,dc=org"}
	if got, want := d.groupFilter(u), `(&(objectClass=group)(member=cn=Alice \28Admin\29,ou=people,dc=example,dc=org))`; got != want {
		t.Errorf("filter %q, want %q", got, want)
	}
	d.cfg.Groups.Nested = true
	if got, want := d.groupFilter(u), `(member:1.2.840.113556.1.4.1941:=cn=Alice \28Admin\29,ou=people,dc=example,dc=org)`; got != want {
		t.Errorf("nested filter %q, want %q", got, want)
	}
}

func TestDisabled(t *testing.T) {
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	ft := func(t time.Time) string { // a FILETIME
		return itoa(t.Unix()*10_000_000 + 116444736000000000)
	}
	entry := func(kv ...string) *ldap.Entry {
		m := map[string][]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = []string{kv[i+1]}
		}
		return ldap.NewEntry("cn=x,dc=example,dc=org", m)
	}
	for _, tc := range []struct {
		name string
		e    *ldap.Entry
		want audit.Reason
	}{
		{"nothing", entry(), ""},
		{"normal account", entry("userAccountControl", "512"), ""},
		{"disabled", entry("userAccountControl", "514"), audit.ReasonAccountDisabled},
		{"locked (stored)", entry("userAccountControl", "528"), audit.ReasonAccountLocked},
		{"locked (computed)", entry("userAccountControl", "512", "msDS-User-Account-Control-Computed", "16"), audit.ReasonAccountLocked},
		{"password expired (computed) is no lockout", entry("msDS-User-Account-Control-Computed", "8388608"), ""},
		{"unreadable flags", entry("userAccountControl", "lots"), audit.ReasonAccountDisabled},
		{"expired yesterday", entry("accountExpires", ft(now.Add(-24*time.Hour))), audit.ReasonAccountExpired},
		{"expires tomorrow", entry("accountExpires", ft(now.Add(24*time.Hour))), ""},
		{"never expires (0)", entry("accountExpires", "0"), ""},
		{"never expires (max)", entry("accountExpires", "9223372036854775807"), ""},
		{"unreadable expiry", entry("accountExpires", "soon"), audit.ReasonAccountExpired},
		{"ppolicy lock", entry("pwdAccountLockedTime", "20260101000000Z"), audit.ReasonAccountLocked},
		{"389 lock", entry("nsAccountLock", "TRUE"), audit.ReasonAccountDisabled},
	} {
		if got := disabled(tc.e, now); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

func itoa(n int64) string {
	const digits = "0123456789"
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{digits[n%10]}, b...)
	}
	return string(b)
}

func TestSIDString(t *testing.T) {
	// S-1-5-21-3623811015-3361044348-30300820-1013, as AD stores it.
	b := []byte{1, 5, 0, 0, 0, 0, 0, 5, 21, 0, 0, 0, 0xc7, 0xf7, 0xfe, 0xd7, 0x7c, 0x77, 0x55, 0xc8, 0x94, 0x5a, 0xce, 0x01, 0xf5, 0x03, 0, 0}
	if got, want := sidString(b), "S-1-5-21-3623811015-3361044348-30300820-1013"; got != want {
		t.Errorf("sidString = %q, want %q", got, want)
	}
	for _, bad := range [][]byte{nil, {1}, {2, 0, 0, 0, 0, 0, 0, 5}, b[:len(b)-1]} {
		if got := sidString(bad); got != "" {
			t.Errorf("sidString(%x) = %q, want nothing", bad, got)
		}
	}
}

func TestCanonical(t *testing.T) {
	d := &Directory{lowercase: true}
	d.cfg.Attributes.Username = "uid"
	for _, tc := range []struct {
		dn     string
		values []string
		want   string
		err    bool
	}{
		{"uid=alice,ou=people,dc=example,dc=org", []string{"alice"}, "alice", false},
		{"uid=alice,ou=people,dc=example,dc=org", []string{"Alice"}, "alice", false},
		{"cn=Alice Smith,ou=people,dc=example,dc=org", []string{"ＡＬＩＣＥ"}, "alice", false},
		{"uid=alice,ou=people,dc=example,dc=org", []string{"a.smith", "alice"}, "alice", false},
		{"cn=Alice,ou=people,dc=example,dc=org", []string{"a.smith", "alice"}, "", true},
		{"cn=Alice,ou=people,dc=example,dc=org", nil, "", true},
		{"cn=John,ou=people,dc=example,dc=org", []string{"john smith"}, "", true},
	} {
		e := ldap.NewEntry(tc.dn, map[string][]string{"UID": tc.values})
		got, err := d.canonical(e)
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("%s %q: %q, %v; want %q (error %t)", tc.dn, tc.values, got, err, tc.want, tc.err)
		}
	}
}
