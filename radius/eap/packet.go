// Package eap is EAP over RADIUS (RFC 3579) with EAP-TLS (RFC 5216, and
// RFC 9190 for TLS 1.3): EAP framing, EAP-TLS fragmentation both ways,
// and crypto/tls run over the EAP exchange, round by round, with the
// session kept between Access-Challenges by State. It is transport only:
// which certificate is acceptable and who its holder is are decided by the
// caller's Verify function and by the conversation.
//
// Sessions are bounded: rounds, bytes and open sessions, and an idle
// session expires.
package eap

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// EAP codes (RFC 3748 §4).
const (
	CodeRequest  = 1
	CodeResponse = 2
	CodeSuccess  = 3
	CodeFailure  = 4
)

// EAP types.
const (
	TypeIdentity = 1
	TypeNak      = 3
	TypeTLS      = 13
)

// EAP-TLS flags (RFC 5216 §3.1).
const (
	flagLength = 0x80 // L: a 4-byte TLS Message Length follows
	flagMore   = 0x40 // M: more fragments follow
	flagStart  = 0x20 // S: EAP-TLS start
)

// Packet is one EAP packet.
type Packet struct {
	Code       byte
	Identifier byte
	Type       byte   // requests and responses only
	Data       []byte // after the type
}

var errShort = errors.New("eap: short packet")

// Parse reads an EAP packet, as joined from the EAP-Message attributes.
func Parse(b []byte) (*Packet, error) {
	if len(b) < 4 {
		return nil, errShort
	}
	n := int(binary.BigEndian.Uint16(b[2:4]))
	if n < 4 || n > len(b) {
		return nil, fmt.Errorf("eap: length %d does not fit %d bytes", n, len(b))
	}
	p := &Packet{Code: b[0], Identifier: b[1]}
	switch p.Code {
	case CodeRequest, CodeResponse:
		if n < 5 {
			return nil, errShort
		}
		p.Type = b[4]
		p.Data = append([]byte(nil), b[5:n]...)
	case CodeSuccess, CodeFailure:
	default:
		return nil, fmt.Errorf("eap: unknown code %d", p.Code)
	}
	return p, nil
}

// Marshal writes the packet.
func (p *Packet) Marshal() []byte {
	if p.Code == CodeSuccess || p.Code == CodeFailure {
		return []byte{p.Code, p.Identifier, 0, 4}
	}
	b := make([]byte, 5+len(p.Data))
	b[0], b[1] = p.Code, p.Identifier
	binary.BigEndian.PutUint16(b[2:4], uint16(len(b)))
	b[4] = p.Type
	copy(b[5:], p.Data)
	return b
}

// Failure is an EAP-Failure for the identifier of the last request.
func Failure(id byte) []byte { return (&Packet{Code: CodeFailure, Identifier: id}).Marshal() }

// Success is an EAP-Success.
func Success(id byte) []byte { return (&Packet{Code: CodeSuccess, Identifier: id}).Marshal() }

// tlsFragment is the EAP-TLS payload of one packet.
type tlsFragment struct {
	flags byte
	total uint32 // with L
	data  []byte
}

func parseTLS(d []byte) (tlsFragment, error) {
	if len(d) < 1 {
		return tlsFragment{}, errShort
	}
	f := tlsFragment{flags: d[0], data: d[1:]}
	if f.flags&flagLength != 0 {
		if len(d) < 5 {
			return tlsFragment{}, errShort
		}
		f.total = binary.BigEndian.Uint32(d[1:5])
		f.data = d[5:]
	}
	return f, nil
}

func (f tlsFragment) marshal() []byte {
	if f.flags&flagLength != 0 {
		b := make([]byte, 5+len(f.data))
		b[0] = f.flags
		binary.BigEndian.PutUint32(b[1:5], f.total)
		copy(b[5:], f.data)
		return b
	}
	return append([]byte{f.flags}, f.data...)
}
