package config

import (
	"fmt"
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
	AttrText    AttrKind = iota // UTF-8 text, at most 253 bytes
	AttrInteger                 // unsigned 32-bit decimal
)

// ReplyAttributes lists the attribute names reply_attributes accepts and the
// kind of value each takes. radius encodes exactly these names.
var ReplyAttributes = map[string]AttrKind{
	"Class":           AttrText,
	"Filter-Id":       AttrText,
	"Session-Timeout": AttrInteger,
	"Idle-Timeout":    AttrInteger,
	"Reply-Message":   AttrText,
}

// hintSep separates message and hint inside a yaml.TypeError string, so
// that UnmarshalYAML methods can report a problem and decoding can go on to
// collect the others (any other error type stops the decoder at once).
const hintSep = "\x1f"

func typeError(n *yaml.Node, msg, hint string) error {
	return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %s%s%s", n.Line, msg, hintSep, hint)}}
}
