package radius

import (
	"fmt"
	"sort"
	"strconv"

	"layeh.com/radius"
	"layeh.com/radius/rfc2865"

	"github.com/mfabridge/mfabridge/config"
	"github.com/mfabridge/mfabridge/factors"
)

// replyAttributeTypes encodes the names config.ReplyAttributes accepts;
// the two tables must list the same names (TestReplyAttributeTables).
var replyAttributeTypes = map[string]radius.Type{
	"Class":           rfc2865.Class_Type,
	"Filter-Id":       rfc2865.FilterID_Type,
	"Session-Timeout": rfc2865.SessionTimeout_Type,
	"Idle-Timeout":    rfc2865.IdleTimeout_Type,
	"Reply-Message":   rfc2865.ReplyMessage_Type,
}

// policy is a config.Policy with its reply attributes encoded once.
type policy struct {
	name string
	config.Policy
	replies []replyRule
}

type replyRule struct {
	groups []string
	attrs  radius.Attributes
}

func compilePolicies(m map[string]config.Policy) (map[string]*policy, error) {
	out := make(map[string]*policy, len(m))
	for name, p := range m {
		cp := &policy{name: name, Policy: p}
		for i, r := range p.ReplyAttributes {
			rule := replyRule{groups: r.Groups}
			names := make([]string, 0, len(r.Attributes))
			for n := range r.Attributes {
				names = append(names, n)
			}
			sort.Strings(names) // a stable order on the wire
			for _, n := range names {
				a, err := encodeReplyAttribute(n, r.Attributes[n])
				if err != nil {
					return nil, fmt.Errorf("policies.%s.reply_attributes[%d]: %w", name, i, err)
				}
				rule.attrs = append(rule.attrs, a)
			}
			cp.replies = append(cp.replies, rule)
		}
		out[name] = cp
	}
	return out, nil
}

func encodeReplyAttribute(name, val string) (*radius.AVP, error) {
	t, ok := replyAttributeTypes[name]
	if !ok {
		return nil, fmt.Errorf("unknown reply attribute %q", name)
	}
	var a radius.Attribute
	var err error
	switch config.ReplyAttributes[name] {
	case config.AttrInteger:
		n, perr := strconv.ParseUint(val, 10, 32)
		if perr != nil {
			return nil, fmt.Errorf("%s: %q is not a whole number", name, val)
		}
		a = radius.NewInteger(uint32(n))
	default:
		a, err = radius.NewString(val)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	return &radius.AVP{Type: t, Attribute: a}, nil
}

// replyAttributes returns the attributes for u: every rule whose groups
// the user is in, or that names no group, in the order written.
func (p *policy) replyAttributes(u *factors.User) radius.Attributes {
	var out radius.Attributes
	for _, r := range p.replies {
		if len(r.groups) == 0 || u.InAny(r.groups) {
			out = append(out, r.attrs...)
		}
	}
	return out
}
