package radius

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"layeh.com/radius"
	"layeh.com/radius/rfc2865"
)

// withAttribute appends a raw attribute to an encoded packet and fixes its
// Length.
func withAttribute(b []byte, typ byte, value []byte) []byte {
	out := append(append([]byte(nil), b...), typ, byte(2+len(value)))
	out = append(out, value...)
	out[2], out[3] = byte(len(out)>>8), byte(len(out))
	return out
}

func TestCheckMessageAuthenticator(t *testing.T) {
	signed := request{user: "alice", password: rightPassword}.encode(t, secretOne)
	unsigned := request{user: "alice", password: rightPassword, unsigned: true}.encode(t, secretOne)
	flip := func(b []byte, i int) []byte {
		out := append([]byte(nil), b...)
		out[i] ^= 0x01
		return out
	}
	// Sign puts Message-Authenticator first: its value is at 22..38.
	tests := []struct {
		name    string
		raw     []byte
		secret  string
		present bool
		err     error // nil: valid; errAny: some error
	}{
		{"signed", signed, secretOne, true, nil},
		{"signed, bytes after Length ignored", append(append([]byte(nil), signed...), 0xff, 0xff), secretOne, true, nil},
		{"absent", unsigned, secretOne, false, nil},
		{"wrong secret", signed, secretTwo, true, errMAMismatch},
		{"flipped MA byte", flip(signed, 30), secretOne, true, errMAMismatch},
		{"flipped User-Name byte", flip(signed, 40), secretOne, true, errMAMismatch},
		{"flipped Request Authenticator", flip(signed, 4), secretOne, true, errMAMismatch},
		{"flipped Identifier", flip(signed, 1), secretOne, true, errMAMismatch},
		{"two MAs", withAttribute(signed, 80, make([]byte, 16)), secretOne, true, errMANotUnique},
		{"MA of 15 bytes", withAttribute(unsigned, 80, make([]byte, 15)), secretOne, true, errMALength},
		{"MA of 17 bytes", withAttribute(unsigned, 80, make([]byte, 17)), secretOne, true, errMALength},
		{"empty MA", withAttribute(unsigned, 80, nil), secretOne, true, errMALength},
		{"short packet", signed[:19], secretOne, false, errAny},
		{"Length past the end", signed[:len(signed)-1], secretOne, false, errAny},
		{"Length below 20", append([]byte{1, 1, 0, 19}, make([]byte, 16)...), secretOne, false, errAny},
		{"attribute length 0", func() []byte {
			b := withAttribute(unsigned, 1, nil)
			b[len(b)-1] = 0
			return b
		}(), secretOne, false, errAny},
		{"attribute length 1", func() []byte {
			b := withAttribute(unsigned, 1, nil)
			b[len(b)-1] = 1
			return b
		}(), secretOne, false, errAny},
		{"attribute past the end", func() []byte {
			b := withAttribute(unsigned, 1, []byte("x"))
			b[len(b)-2] = 9
			return b
		}(), secretOne, false, errAny},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			present, err := checkMessageAuthenticator(tt.raw, []byte(tt.secret))
			switch {
			case tt.err == nil && err != nil:
				t.Fatalf("error %v, want none", err)
			case tt.err == errAny && err == nil:
				t.Fatal("no error, want one")
			case tt.err != nil && tt.err != errAny && !errors.Is(err, tt.err):
				t.Fatalf("error %v, want %v", err, tt.err)
			}
			if present != tt.present {
				t.Errorf("present = %t, want %t", present, tt.present)
			}
		})
	}
}

// errAny stands for any error in test tables.
var errAny = errors.New("any error")

func TestSignThenVerifyRoundTrip(t *testing.T) {
	for _, code := range []radius.Code{radius.CodeAccessRequest, radius.CodeStatusServer} {
		t.Run(code.String(), func(t *testing.T) {
			p := request{code: code, user: "bob", password: "pw", randomAuth: true}.packet(t, secretOne)
			// Signing again replaces the attribute instead of adding one.
			if err := Sign(p); err != nil {
				t.Fatal(err)
			}
			if n := len(attributesOf(p, typeMessageAuthenticator)); n != 1 {
				t.Fatalf("%d Message-Authenticators after signing twice", n)
			}
			if p.Attributes[0].Type != typeMessageAuthenticator {
				t.Errorf("first attribute is %d, want Message-Authenticator", p.Attributes[0].Type)
			}
			b, err := p.Encode()
			if err != nil {
				t.Fatal(err)
			}
			if present, err := checkMessageAuthenticator(b, []byte(secretOne)); !present || err != nil {
				t.Errorf("checkMessageAuthenticator = %t, %v", present, err)
			}
		})
	}
}

func TestSeal(t *testing.T) {
	req := request{user: "alice", password: rightPassword, attrs: radius.Attributes{
		{Type: typeProxyState, Attribute: radius.Attribute("first")},
		{Type: rfc2865.NASIdentifier_Type, Attribute: radius.Attribute("nas")},
		{Type: typeProxyState, Attribute: radius.Attribute("second")},
		{Type: typeProxyState, Attribute: radius.Attribute("third")},
	}}.packet(t, secretOne)
	reqRaw, err := req.Encode()
	if err != nil {
		t.Fatal(err)
	}

	resp := req.Response(radius.CodeAccessAccept)
	rfc2865.ReplyMessage_SetString(resp, "Welcome")
	// A handler's own Message-Authenticator and Proxy-State are replaced.
	resp.Add(typeMessageAuthenticator, make([]byte, 16))
	resp.Add(typeProxyState, radius.Attribute("forged"))
	rfc2865.Class_Add(resp, []byte("vpn-users"))
	before := &radius.Packet{Code: resp.Code, Identifier: resp.Identifier, Authenticator: resp.Authenticator,
		Secret: bytes.Clone(resp.Secret)}
	for _, a := range resp.Attributes {
		before.Attributes = append(before.Attributes, &radius.AVP{Type: a.Type, Attribute: bytes.Clone(a.Attribute)})
	}

	b, err := seal(resp, req)
	if err != nil {
		t.Fatalf("seal: %v", err)
	}
	if !reflect.DeepEqual(resp, before) {
		t.Errorf("seal modified its input:\n got %+v\nwant %+v", resp, before)
	}
	again, err := seal(resp, req)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, again) {
		t.Errorf("sealing the same packet twice gave different bytes:\n%x\n%x", b, again)
	}

	if present, err := VerifyResponse(b, req.Authenticator, []byte(secretOne)); !present || err != nil {
		t.Errorf("VerifyResponse = %t, %v; want true, nil", present, err)
	}
	if !radius.IsAuthenticResponse(b, reqRaw, []byte(secretOne)) {
		t.Error("the Response Authenticator does not verify")
	}
	if present, err := VerifyResponse(b, req.Authenticator, []byte(secretTwo)); !present || !errors.Is(err, errMAMismatch) {
		t.Errorf("VerifyResponse with the wrong secret = %t, %v", present, err)
	}

	out, err := radius.Parse(b, []byte(secretOne))
	if err != nil {
		t.Fatal(err)
	}
	if out.Code != radius.CodeAccessAccept || out.Identifier != req.Identifier {
		t.Errorf("code %s id %d, want Access-Accept id %d", out.Code, out.Identifier, req.Identifier)
	}
	if out.Attributes[0].Type != typeMessageAuthenticator {
		t.Errorf("first attribute is %d, want Message-Authenticator (80)", out.Attributes[0].Type)
	}
	if n := len(attributesOf(out, typeMessageAuthenticator)); n != 1 {
		t.Errorf("%d Message-Authenticators", n)
	}
	var states []string
	for _, a := range attributesOf(out, typeProxyState) {
		states = append(states, string(a))
	}
	if want := []string{"first", "second", "third"}; !reflect.DeepEqual(states, want) {
		t.Errorf("Proxy-State = %q, want %q", states, want)
	}
	if got := rfc2865.ReplyMessage_GetString(out); got != "Welcome" {
		t.Errorf("Reply-Message = %q", got)
	}
	if got := string(rfc2865.Class_Get(out)); got != "vpn-users" {
		t.Errorf("Class = %q", got)
	}
}

func TestSealTooLarge(t *testing.T) {
	req := request{user: "alice"}.packet(t, secretOne)
	resp := req.Response(radius.CodeAccessReject)
	for range 20 {
		resp.Add(rfc2865.ReplyMessage_Type, bytes.Repeat([]byte("x"), 250))
	}
	if _, err := seal(resp, req); err == nil {
		t.Error("sealed a reply over 4096 bytes")
	}
}

func TestVerifyResponseShort(t *testing.T) {
	if _, err := VerifyResponse(make([]byte, 19), fixedAuth, []byte(secretOne)); err == nil {
		t.Error("no error for a 19-byte response")
	}
}
