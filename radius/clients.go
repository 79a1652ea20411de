package radius

import (
	"net/netip"
	"sort"

	"github.com/mfabridge/mfabridge/config"
)

// Client is a RADIUS client (NAS) or a range of them, as configured.
type Client struct {
	Name      string
	Prefix    netip.Prefix
	Secret    []byte
	RequireMA config.MARequirement
	Proxy     bool   // may send Proxy-State without Message-Authenticator
	Policy    string // policy name
}

// ClientTable finds the client for a source address: the most specific
// configured prefix wins.
type ClientTable struct {
	byLen []*Client // longest prefix first
}

// NewClientTable builds a table from the configured clients, whose secrets
// must be resolved.
func NewClientTable(cs []config.Client) *ClientTable {
	t := &ClientTable{}
	for _, c := range cs {
		t.byLen = append(t.byLen, &Client{
			Name:      c.Name,
			Prefix:    c.Prefix,
			Secret:    []byte(c.Secret.Value()),
			RequireMA: c.RequireMessageAuthenticator,
			Proxy:     c.Proxy,
			Policy:    c.Policy,
		})
	}
	sort.SliceStable(t.byLen, func(i, j int) bool { return t.byLen[i].Prefix.Bits() > t.byLen[j].Prefix.Bits() })
	return t
}

// Lookup returns the client for ip, or nil for an unknown address.
func (t *ClientTable) Lookup(ip netip.Addr) *Client {
	ip = ip.Unmap()
	for _, c := range t.byLen {
		if c.Prefix.Contains(ip) {
			return c
		}
	}
	return nil
}

// Clients returns the clients, most specific first.
func (t *ClientTable) Clients() []*Client { return t.byLen }
