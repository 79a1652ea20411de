package radius

import (
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"

	"layeh.com/radius"
	"layeh.com/radius/rfc2865"

	"github.com/mfabridge/mfabridge/config"
	"github.com/mfabridge/mfabridge/factors"
)

// TestReplyAttributeTables: every name config accepts encodes, and vendor
// attributes become one Vendor-Specific with the vendor's sub-attribute.
func TestReplyAttributeTables(t *testing.T) {
	for _, name := range slices.Sorted(maps.Keys(config.ReplyAttributes)) {
		spec := config.ReplyAttributes[name]
		value := "text"
		if spec.Kind == config.AttrInteger {
			value = "3600"
		}
		a, err := encodeReplyAttribute(name, value)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if spec.Vendor == 0 {
			if a.Type != radius.Type(spec.Type) {
				t.Errorf("%s: type %d, want %d", name, a.Type, spec.Type)
			}
			continue
		}
		id, sub, err := radius.VendorSpecific(a.Attribute)
		if a.Type != rfc2865.VendorSpecific_Type || err != nil || id != spec.Vendor || len(sub) < 2 || sub[0] != spec.Type ||
			int(sub[1]) != len(sub) {
			t.Errorf("%s: vendor attribute % x (vendor %d, %v)", name, a.Attribute, id, err)
		}
	}
	// VENDOR:TYPE for any other vendor, and 0x for bytes.
	a, err := encodeReplyAttribute("9:1", "shell:priv-lvl=15")
	if id, sub, _ := radius.VendorSpecific(a.Attribute); err != nil || id != 9 || string(sub[2:]) != "shell:priv-lvl=15" {
		t.Errorf("9:1: %v % x", err, a.Attribute)
	}
	if a, err := encodeReplyAttribute("Class", "0x0102ff"); err != nil || string(a.Attribute) != "\x01\x02\xff" {
		t.Errorf("Class 0x: %v %v", err, a)
	}
}

func TestEncodeReplyAttribute(t *testing.T) {
	tests := []struct {
		name, attr, value string
		want              *radius.AVP // nil: an error
	}{
		{"text", "Class", "admins", &radius.AVP{Type: rfc2865.Class_Type, Attribute: radius.Attribute("admins")}},
		{"integer", "Session-Timeout", "3600", &radius.AVP{Type: rfc2865.SessionTimeout_Type, Attribute: radius.NewInteger(3600)}},
		{"largest integer", "Idle-Timeout", "4294967295", &radius.AVP{Type: rfc2865.IdleTimeout_Type, Attribute: radius.NewInteger(1<<32 - 1)}},
		{"integer too large", "Idle-Timeout", "4294967296", nil},
		{"negative", "Session-Timeout", "-1", nil},
		{"not a number", "Session-Timeout", "1h", nil},
		{"unknown", "Framed-IP-Address", "192.0.2.1", nil},
		{"text too long", "Reply-Message", strings.Repeat("x", 254), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := encodeReplyAttribute(tt.attr, tt.value)
			if tt.want == nil {
				if err == nil {
					t.Errorf("got %v, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestReplyAttributes(t *testing.T) {
	pol := config.DefaultPolicy()
	pol.ReplyAttributes = []config.ReplyRule{
		{Groups: []string{"admins"}, Attributes: map[string]config.Values{"Class": {"admins"}, "Filter-Id": {"full"}}},
		{Attributes: map[string]config.Values{"Session-Timeout": {"3600"}}},
		{Groups: []string{"staff", "contractors"}, Attributes: map[string]config.Values{"Filter-Id": {"limited"}}},
	}
	ps, err := compilePolicies(map[string]config.Policy{"p": pol})
	if err != nil {
		t.Fatal(err)
	}
	p := ps["p"]
	if p.name != "p" {
		t.Errorf("name = %q", p.name)
	}
	class := &radius.AVP{Type: rfc2865.Class_Type, Attribute: radius.Attribute("admins")}
	full := &radius.AVP{Type: rfc2865.FilterID_Type, Attribute: radius.Attribute("full")}
	timeout := &radius.AVP{Type: rfc2865.SessionTimeout_Type, Attribute: radius.NewInteger(3600)}
	limited := &radius.AVP{Type: rfc2865.FilterID_Type, Attribute: radius.Attribute("limited")}
	tests := []struct {
		name   string
		groups []string
		want   radius.Attributes
	}{
		{"no group", nil, radius.Attributes{timeout}},
		{"other group", []string{"printers"}, radius.Attributes{timeout}},
		{"admin: names sorted within a rule, rules in order", []string{"admins"}, radius.Attributes{class, full, timeout}},
		{"staff, any case", []string{"STAFF"}, radius.Attributes{timeout, limited}},
		{"by DN", []string{"cn=x,dc=example,dc=org", "contractors"}, radius.Attributes{timeout, limited}},
		{"both", []string{"staff", "admins"}, radius.Attributes{class, full, timeout, limited}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := p.replyAttributes(&factors.User{Name: "u", Groups: tt.groups})
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestCompilePoliciesError(t *testing.T) {
	pol := config.DefaultPolicy()
	pol.ReplyAttributes = []config.ReplyRule{{Attributes: map[string]config.Values{"Session-Timeout": {"soon"}}}}
	if _, err := compilePolicies(map[string]config.Policy{"p": pol}); err == nil ||
		!strings.Contains(err.Error(), "policies.p.reply_attributes[0]") {
		t.Errorf("error %v, want one naming policies.p.reply_attributes[0]", err)
	}
}
