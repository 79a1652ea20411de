package config

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// MARequirement says whether a client must sign its Access-Requests with
// Message-Authenticator (RFC 3579 §3.2). The zero value is MAAuto.
type MARequirement int

const (
	// MAAuto requires Message-Authenticator from a client once it has sent
	// one, as FreeRADIUS 3.2.5 does; a client that never signs keeps working
	// with a warning (pam_radius_auth and radcli never sign).
	MAAuto MARequirement = iota
	// MATrue drops every request without a Message-Authenticator.
	MATrue
	// MAFalse checks Message-Authenticator when present and never requires it.
	MAFalse
)

func (m MARequirement) String() string {
	switch m {
	case MATrue:
		return "true"
	case MAFalse:
		return "false"
	}
	return "auto"
}

// UnmarshalYAML accepts true, false or auto.
func (m *MARequirement) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		switch strings.ToLower(n.Value) {
		case "auto":
			*m = MAAuto
			return nil
		case "true", "yes", "on":
			*m = MATrue
			return nil
		case "false", "no", "off":
			*m = MAFalse
			return nil
		}
	}
	return typeError(n, fmt.Sprintf("%q is not auto, true or false", n.Value), "write auto (the default), true or false")
}

// MarshalYAML writes the value as it would be typed.
func (m MARequirement) MarshalYAML() (any, error) { return m.String(), nil }

// AttrKind is the kind of value a reply attribute takes.
type AttrKind int

const (
	AttrText    AttrKind = iota // UTF-8 text, at most 253 bytes (247 in a vendor attribute)
	AttrInteger                 // unsigned 32-bit decimal
	AttrOctets                  // text, or 0x followed by hex
)

// AttrSpec says how a reply attribute is encoded: a standard attribute
// (Vendor 0) or a vendor-specific one (RFC 2865 §5.26).
type AttrSpec struct {
	Kind   AttrKind
	Vendor uint32 // SMI enterprise number; 0 for a standard attribute
	Type   byte
}

// ReplyAttributes lists the attribute names reply_attributes accepts.
// Any other vendor attribute is written "VENDOR:TYPE" (numbers), such as
// "9:1" for Cisco-AVPair; its value is text, or 0x and hex.
var ReplyAttributes = map[string]AttrSpec{
	"Class":                   {Kind: AttrOctets, Type: 25},
	"Filter-Id":               {Kind: AttrText, Type: 11},
	"Session-Timeout":         {Kind: AttrInteger, Type: 27},
	"Idle-Timeout":            {Kind: AttrInteger, Type: 28},
	"Reply-Message":           {Kind: AttrText, Type: 18},
	"Cisco-AVPair":            {Kind: AttrText, Vendor: 9, Type: 1},
	"Fortinet-Group-Name":     {Kind: AttrText, Vendor: 12356, Type: 1},
	"PaloAlto-User-Group":     {Kind: AttrText, Vendor: 25461, Type: 5},
	"Juniper-Local-User-Name": {Kind: AttrText, Vendor: 2636, Type: 1},
	"Aruba-User-Role":         {Kind: AttrText, Vendor: 14823, Type: 1},
	"MS-Primary-DNS-Server":   {Kind: AttrOctets, Vendor: 311, Type: 28},
}

var rawAttrRE = regexp.MustCompile(`^([0-9]{1,10}):([0-9]{1,3})$`)

// LookupReplyAttribute resolves a name in reply_attributes: a known name,
// or VENDOR:TYPE.
func LookupReplyAttribute(name string) (AttrSpec, bool) {
	if s, ok := ReplyAttributes[name]; ok {
		return s, true
	}
	m := rawAttrRE.FindStringSubmatch(name)
	if m == nil {
		return AttrSpec{}, false
	}
	v, err1 := strconv.ParseUint(m[1], 10, 32)
	t, err2 := strconv.ParseUint(m[2], 10, 8)
	if err1 != nil || err2 != nil || v == 0 || t == 0 {
		return AttrSpec{}, false
	}
	return AttrSpec{Kind: AttrOctets, Vendor: uint32(v), Type: byte(t)}, true
}

// Values is one value or a list of them: `Class: admins` or
// `Cisco-AVPair: ["shell:priv-lvl=15", "ip:addr-pool=staff"]`.
type Values []string

// UnmarshalYAML accepts a scalar or a list of scalars.
func (v *Values) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		*v = Values{n.Value}
		return nil
	case yaml.SequenceNode:
		out := make(Values, 0, len(n.Content))
		for _, c := range n.Content {
			if c.Kind != yaml.ScalarNode {
				return typeError(c, "a list of attribute values holds something that is not a value", "write each value as text")
			}
			out = append(out, c.Value)
		}
		*v = out
		return nil
	}
	return typeError(n, "an attribute value must be a value or a list of values", `write Class: admins, or Cisco-AVPair: ["a=1", "b=2"]`)
}

// hintSep separates message and hint inside a yaml.TypeError string, so
// that UnmarshalYAML methods can report a problem and decoding can go on to
// collect the others (any other error type stops the decoder at once).
const hintSep = "\x1f"

func typeError(n *yaml.Node, msg, hint string) error {
	return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %s%s%s", n.Line, msg, hintSep, hint)}}
}

// UnmarshalYAML accepts a path, or a mapping {file, revocation}.
func (f *CAFile) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		*f = CAFile{File: n.Value}
		return nil
	case yaml.MappingNode:
		var out CAFile
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if v.Kind != yaml.ScalarNode {
				return typeError(v, fmt.Sprintf("%s must be a value", k.Value), "write file: /path/ca.pem and revocation: crl, ocsp, crl_and_ocsp or none")
			}
			switch k.Value {
			case "file":
				out.File = v.Value
			case "revocation":
				out.Revocation = v.Value
			default:
				return typeError(k, fmt.Sprintf("unknown key %q in a CA", k.Value), "keys here: file, revocation")
			}
		}
		*f = out
		return nil
	}
	return typeError(n, "a CA must be a path or {file: PATH, revocation: RULE}", `write "/etc/mfabridge/cards-ca.pem", or {file: /etc/mfabridge/cards-ca.pem, revocation: none}`)
}

// MarshalYAML writes a CA with no rule of its own as its path.
func (f CAFile) MarshalYAML() (any, error) {
	if f.Revocation == "" {
		return f.File, nil
	}
	return map[string]string{"file": f.File, "revocation": f.Revocation}, nil
}
