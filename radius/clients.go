package radius

import (
	"net/netip"
	"sort"
	"strings"

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
	// RadSecName is the certificate name of a RadSec client; such a
	// client is reached over RadSec only.
	RadSecName string
}

// ClientTable finds the client for a source address: the most specific
// configured prefix wins.
type ClientTable struct {
	byLen  []*Client // UDP clients, longest prefix first
	radsec []*Client // RadSec clients, longest prefix first
}

// NewClientTable builds a table from the configured clients, whose secrets
// must be resolved.
func NewClientTable(cs []config.Client) *ClientTable {
	t := &ClientTable{}
	for _, c := range cs {
		cl := &Client{
			Name:       c.Name,
			Prefix:     c.Prefix,
			Secret:     []byte(c.Secret.Value()),
			RequireMA:  c.RequireMessageAuthenticator,
			Proxy:      c.Proxy,
			Policy:     c.Policy,
			RadSecName: c.RadsecName,
		}
		if cl.RadSecName != "" {
			// RFC 6614 §2.3: the shared secret over TLS is "radsec".
			cl.Secret = []byte(RadSecSecret)
			t.radsec = append(t.radsec, cl)
		} else {
			t.byLen = append(t.byLen, cl)
		}
	}
	for _, l := range [][]*Client{t.byLen, t.radsec} {
		sort.SliceStable(l, func(i, j int) bool { return l[i].Prefix.Bits() > l[j].Prefix.Bits() })
	}
	return t
}

// RadSecSecret is the fixed shared secret of RADIUS over TLS.
const RadSecSecret = "radsec"

// Lookup returns the UDP client for ip, or nil for an unknown address.
func (t *ClientTable) Lookup(ip netip.Addr) *Client {
	ip = ip.Unmap()
	for _, c := range t.byLen {
		if c.Prefix.Contains(ip) {
			return c
		}
	}
	return nil
}

// LookupRadSec returns the RadSec client whose certificate name is one of
// names (the peer certificate's DNS names and subject CN) and whose
// address contains ip, the most specific first; nil when none matches.
func (t *ClientTable) LookupRadSec(ip netip.Addr, names []string) *Client {
	ip = ip.Unmap()
	for _, c := range t.radsec {
		if !c.Prefix.Contains(ip) {
			continue
		}
		for _, n := range names {
			if strings.EqualFold(n, c.RadSecName) {
				return c
			}
		}
	}
	return nil
}

// RadSecSource reports whether ip lies inside the range of a RadSec
// client, so that a connection from it may go on to its handshake.
func (t *ClientTable) RadSecSource(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, c := range t.radsec {
		if c.Prefix.Contains(ip) {
			return true
		}
	}
	return false
}

// Clients returns the UDP clients then the RadSec clients, each most
// specific first.
func (t *ClientTable) Clients() []*Client {
	return append(append([]*Client(nil), t.byLen...), t.radsec...)
}
