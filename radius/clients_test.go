package radius

import (
	"net/netip"
	"testing"

	"github.com/mfabridge/mfabridge/config"
)

func TestClientTableLookup(t *testing.T) {
	client := func(name, prefix string) config.Client {
		return config.Client{Name: name, Prefix: netip.MustParsePrefix(prefix), Secret: config.NewSecret(name + "-secret"), Policy: "default"}
	}
	// Written widest first, so that only the sort can find the most
	// specific.
	table := NewClientTable([]config.Client{
		client("wide", "10.0.0.0/8"),
		client("site", "10.1.2.0/24"),
		client("host", "10.1.2.3/32"),
		client("v6-site", "2001:db8::/32"),
		client("v6-host", "2001:db8::1/128"),
	})
	tests := []struct {
		ip   string
		want string // "" for no client
	}{
		{"10.1.2.3", "host"},
		{"10.1.2.4", "site"},
		{"10.1.3.3", "wide"},
		{"10.255.255.255", "wide"},
		{"11.0.0.1", ""},
		{"192.0.2.1", ""},
		{"::ffff:10.1.2.3", "host"},
		{"::ffff:10.1.2.4", "site"},
		{"::ffff:11.0.0.1", ""},
		{"2001:db8::1", "v6-host"},
		{"2001:db8::2", "v6-site"},
		{"2001:db8:ffff::1", "v6-site"},
		{"2001:db9::1", ""},
		{"::1", ""},
	}
	for _, tt := range tests {
		t.Run(tt.ip, func(t *testing.T) {
			c := table.Lookup(netip.MustParseAddr(tt.ip))
			got := ""
			if c != nil {
				got = c.Name
				if string(c.Secret) != c.Name+"-secret" || c.Policy != "default" {
					t.Errorf("client %+v lost its secret or policy", c)
				}
			}
			if got != tt.want {
				t.Errorf("Lookup(%s) = %q, want %q", tt.ip, got, tt.want)
			}
		})
	}
	if got := table.Clients(); len(got) != 5 || got[0].Prefix.Bits() != 128 || got[len(got)-1].Prefix.Bits() != 8 {
		t.Errorf("Clients() not most specific first: %v", got)
	}
}

func TestClientTableEmpty(t *testing.T) {
	if c := NewClientTable(nil).Lookup(netip.MustParseAddr("127.0.0.1")); c != nil {
		t.Errorf("empty table found %+v", c)
	}
}
