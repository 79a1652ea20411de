package radius

import (
	"fmt"
	"sort"
	"strconv"

	"layeh.com/radius"
	"layeh.com/radius/rfc2865"

	"github.com/mfabridge/mfabridge/config"
	"github.com/mfabridge/mfabridge/factors"
	"github.com/mfabridge/mfabridge/internal/audit"
)

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
				for _, val := range r.Attributes[n] {
					a, err := encodeReplyAttribute(n, val)
					if err != nil {
						return nil, fmt.Errorf("policies.%s.reply_attributes[%d]: %w", name, i, err)
					}
					rule.attrs = append(rule.attrs, a)
				}
			}
			cp.replies = append(cp.replies, rule)
		}
		out[name] = cp
	}
	return out, nil
}

// encodeReplyAttribute encodes one value: a standard attribute, or a
// Vendor-Specific attribute holding one vendor sub-attribute (RFC 2865
// §5.26).
func encodeReplyAttribute(name, val string) (*radius.AVP, error) {
	spec, ok := config.LookupReplyAttribute(name)
	if !ok {
		return nil, fmt.Errorf("unknown reply attribute %q", name)
	}
	var a radius.Attribute
	switch spec.Kind {
	case config.AttrInteger:
		n, err := strconv.ParseUint(val, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("%s: %q is not a whole number", name, val)
		}
		a = radius.NewInteger(uint32(n))
	case config.AttrOctets:
		b, err := config.OctetsValue(val)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		a = radius.Attribute(b)
	default:
		a = radius.Attribute(val)
	}
	if spec.Vendor == 0 {
		if len(a) > 253 {
			return nil, fmt.Errorf("%s: value longer than 253 bytes", name)
		}
		return &radius.AVP{Type: radius.Type(spec.Type), Attribute: a}, nil
	}
	if len(a) > 247 {
		return nil, fmt.Errorf("%s: value longer than 247 bytes", name)
	}
	vsa, err := radius.NewVendorSpecific(spec.Vendor, append([]byte{spec.Type, byte(2 + len(a))}, a...))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &radius.AVP{Type: rfc2865.VendorSpecific_Type, Attribute: vsa}, nil
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

// groupRules applies the deny and require groups of a policy (DESIGN §2
// step 9): done is true when they refuse the user. Every way in, the
// card included, passes them.
func groupRules(p *policy, u *factors.User) (d decision, done bool) {
	switch {
	case u.InAny(p.DenyGroups):
		return reject(audit.ReasonDeniedGroup, msgFailed), true
	case len(p.RequireGroups) > 0 && !u.InAny(p.RequireGroups):
		return reject(audit.ReasonNotInRequired, msgFailed), true
	}
	return decision{}, false
}

// applyPolicy applies the groups of the client's policy to an
// authenticated user: deny groups first, then required groups, then
// bypass groups, then mfa: off. done is false when a second factor is
// needed.
func (c *Conversation) applyPolicy(p *policy, u *factors.User) (d decision, done bool) {
	if d, done := groupRules(p, u); done {
		return d, true
	}
	switch {
	case u.InAny(p.BypassGroups):
		return accept(audit.ReasonBypassGroup, p.replyAttributes(u)), true
	case p.MFA == config.MFAOff:
		return accept(audit.ReasonMFAOffPolicy, p.replyAttributes(u)), true
	}
	return decision{}, false
}
