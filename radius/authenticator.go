package radius

import (
	"crypto/hmac"
	"crypto/md5"
	"errors"

	"layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2869"
)

const (
	typeMessageAuthenticator = rfc2869.MessageAuthenticator_Type
	typeProxyState           = rfc2865.ProxyState_Type
	typeEAPMessage           = rfc2869.EAPMessage_Type
)

var (
	errMANotUnique = errors.New("more than one Message-Authenticator")
	errMALength    = errors.New("Message-Authenticator is not 16 bytes")
	errMAMismatch  = errors.New("Message-Authenticator does not match (wrong shared secret or altered packet)")
)

// checkMessageAuthenticator verifies the Message-Authenticator of the
// request in raw (RFC 3579 §3.2: HMAC-MD5 keyed with the shared secret over
// the packet with the attribute's value zeroed). present is false when the
// packet carries none. layeh.com/radius never checks it, so this must run
// on every request.
func checkMessageAuthenticator(raw, secret []byte) (present bool, err error) {
	if len(raw) < 20 {
		return false, errors.New("short packet")
	}
	length := int(raw[2])<<8 | int(raw[3])
	if length < 20 || length > len(raw) {
		return false, errors.New("bad length")
	}
	raw = raw[:length]
	at := -1
	for i := 20; i+2 <= len(raw); {
		l := int(raw[i+1])
		if l < 2 || i+l > len(raw) {
			return false, errors.New("bad attribute length")
		}
		if radius.Type(raw[i]) == typeMessageAuthenticator {
			if at >= 0 {
				return true, errMANotUnique
			}
			if l != 18 {
				return true, errMALength
			}
			at = i + 2
		}
		i += l
	}
	if at < 0 {
		return false, nil
	}
	// The HMAC covers the packet with the attribute's value zeroed; write
	// it in three pieces rather than copying the packet.
	var zero [16]byte
	m := hmac.New(md5.New, secret)
	m.Write(raw[:at])
	m.Write(zero[:])
	m.Write(raw[at+16:])
	if !hmac.Equal(m.Sum(nil), raw[at:at+16]) {
		return true, errMAMismatch
	}
	return true, nil
}

// seal builds the wire form of response p to request req: a zeroed
// Message-Authenticator first (the Blast-RADIUS guidance, CVE-2024-3596),
// then p's attributes, then every Proxy-State of the request in order
// (RFC 2865 §5.33); the HMAC is computed over that with the Request
// Authenticator in place and written into the attribute, then the
// Response Authenticator, MD5(Code+Identifier+Length+Request
// Authenticator+Attributes+secret) (RFC 2865 §3), over the same bytes.
// p is not modified.
func seal(p, req *radius.Packet) ([]byte, error) {
	out := &radius.Packet{
		Code:          p.Code,
		Identifier:    req.Identifier,
		Authenticator: req.Authenticator,
		Secret:        req.Secret,
		Attributes:    make(radius.Attributes, 0, len(p.Attributes)+2),
	}
	ma := &radius.AVP{Type: typeMessageAuthenticator, Attribute: make([]byte, 16)}
	out.Attributes = append(out.Attributes, ma)
	for _, a := range p.Attributes {
		if a.Type != typeMessageAuthenticator && a.Type != typeProxyState {
			out.Attributes = append(out.Attributes, a)
		}
	}
	for _, a := range req.Attributes {
		if a.Type == typeProxyState {
			out.Attributes = append(out.Attributes, a)
		}
	}
	b, err := out.MarshalBinary()
	if err != nil {
		return nil, err
	}
	// The Message-Authenticator is the first attribute: type, length, then
	// its 16 bytes from offset 22.
	const maValue = 20 + 2
	m := hmac.New(md5.New, req.Secret)
	m.Write(b)
	m.Sum(b[maValue:maValue])
	h := md5.New()
	h.Write(b)
	h.Write(req.Secret)
	h.Sum(b[4:4])
	return b, nil
}

// Sign sets a Message-Authenticator on request p, which must already hold
// every other attribute (User-Password included), for clients of this
// package: test-auth and tests.
func Sign(p *radius.Packet) error {
	p.Attributes.Del(typeMessageAuthenticator)
	ma := &radius.AVP{Type: typeMessageAuthenticator, Attribute: make([]byte, 16)}
	p.Attributes = append(radius.Attributes{ma}, p.Attributes...)
	b, err := p.MarshalBinary()
	if err != nil {
		return err
	}
	m := hmac.New(md5.New, p.Secret)
	m.Write(b)
	ma.Attribute = m.Sum(nil)
	return nil
}

// VerifyResponse checks the Message-Authenticator of a response raw to a
// request with requestAuth; present is false when the response has none.
func VerifyResponse(raw []byte, requestAuth [16]byte, secret []byte) (present bool, err error) {
	if len(raw) < 20 {
		return false, errors.New("short packet")
	}
	b := make([]byte, len(raw))
	copy(b, raw)
	copy(b[4:20], requestAuth[:])
	return checkMessageAuthenticator(b, secret)
}
