package ldapbind

import (
	"encoding/binary"
	"strconv"
	"strings"

	"github.com/go-ldap/ldap/v3"
)

// groupMatcher decides which of the groups policies name a user is in.
// A group written as a DN matches that entry (compared as DNs, so case
// and spacing do not matter); a group written as a name matches a group
// of that name only under groups.base_dn, so that a group a user can
// create elsewhere under the base never counts.
type groupMatcher struct {
	base     *ldap.DN // nil: names match nowhere
	nameAttr string
	wanted   []wantedGroup
}

type wantedGroup struct {
	text string   // as the policy writes it; what User.Groups holds
	dn   *ldap.DN // nil: a name
}

func newGroupMatcher(baseDN, nameAttr string, groups []string) *groupMatcher {
	m := &groupMatcher{nameAttr: nameAttr}
	if b, err := ldap.ParseDN(baseDN); err == nil && baseDN != "" {
		m.base = b
	}
	seen := map[string]bool{}
	for _, g := range groups {
		g = strings.TrimSpace(g)
		if g == "" || seen[strings.ToLower(g)] {
			continue
		}
		seen[strings.ToLower(g)] = true
		w := wantedGroup{text: g}
		if strings.Contains(g, "=") {
			dn, err := ldap.ParseDN(g)
			if err != nil || len(dn.RDNs) == 0 {
				continue // not a DN: it matches nothing
			}
			w.dn = dn
		}
		m.wanted = append(m.wanted, w)
	}
	return m
}

// match returns the wanted groups among the user's group entries, given
// by DN with, where known, their names (a search read name_attribute);
// without one, a group's name is its RDN value when the RDN is
// name_attribute (memberOf gives DNs only). The result is never nil.
func (m *groupMatcher) match(dns []string, names map[string]string) []string {
	out := []string{}
	found := map[int]bool{}
	for _, s := range dns {
		dn, err := ldap.ParseDN(s)
		if err != nil || len(dn.RDNs) == 0 {
			continue
		}
		name, named := names[s]
		if !named && len(dn.RDNs[0].Attributes) == 1 && strings.EqualFold(dn.RDNs[0].Attributes[0].Type, m.nameAttr) {
			name = dn.RDNs[0].Attributes[0].Value
		}
		inScope := m.base != nil && m.base.AncestorOfFold(dn)
		for i, w := range m.wanted {
			if found[i] {
				continue
			}
			if w.dn != nil && w.dn.EqualFold(dn) || w.dn == nil && inScope && name != "" && strings.EqualFold(name, w.text) {
				found[i] = true
				out = append(out, w.text)
			}
		}
	}
	return out
}

// sidString formats a binary security identifier (MS-DTYP 2.4.2) as
// S-1-5-21-…; "" when b is not one.
func sidString(b []byte) string {
	if len(b) < 8 || b[0] != 1 || len(b) != 8+4*int(b[1]) {
		return ""
	}
	var auth uint64
	for _, x := range b[2:8] {
		auth = auth<<8 | uint64(x)
	}
	var sb strings.Builder
	sb.WriteString("S-1-")
	sb.WriteString(strconv.FormatUint(auth, 10))
	for i := 0; i < int(b[1]); i++ {
		sb.WriteByte('-')
		sb.WriteString(strconv.FormatUint(uint64(binary.LittleEndian.Uint32(b[8+4*i:])), 10))
	}
	return sb.String()
}
