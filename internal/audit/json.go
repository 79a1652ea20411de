package audit

import (
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

// appendJSON appends r as encoding/json writes it (HTML characters left
// as they are) and a newline. Written out because it runs for every
// request, and reflection made it the audit log's largest cost; the
// tests hold it to encoding/json's output.
func (r *Record) appendJSON(b []byte) []byte {
	b = append(b, `{"time":"`...)
	b = r.Time.AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	b = appendField(b, "client", r.Client, false)
	b = appendField(b, "client_addr", r.ClientAddress, false)
	b = appendField(b, "user", r.User, false)
	b = appendField(b, "login", r.Login, true)
	b = appendField(b, "calling_station", r.CallingStation, true)
	b = appendField(b, "nas_ip", r.NASIP, true)
	b = appendField(b, "nas_identifier", r.NASIdentifier, true)
	b = appendField(b, "outcome", r.Outcome, false)
	b = appendField(b, "reason", string(r.Reason), false)
	b = appendField(b, "policy", r.Policy, true)
	b = appendField(b, "factor", r.Factor, true)
	if c := r.Cert; c != nil {
		b = appendString(append(b, `,"cert":{"subject":`...), c.Subject)
		b = appendField(b, "serial", c.Serial, false)
		b = appendField(b, "issuer", c.Issuer, false)
		b = appendField(b, "sha256", c.SHA256, false)
		b = append(b, '}')
	}
	b = append(b, `,"latency_ms":`...)
	b = appendFloat(b, r.LatencyMS)
	return append(b, "}\n"...)
}

// appendField appends ,"name":value, or nothing for an empty value when
// omitEmpty is set (the json tag's omitempty).
func appendField(b []byte, name, value string, omitEmpty bool) []byte {
	if omitEmpty && value == "" {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return appendString(b, value)
}

const hex = "0123456789abcdef"

// appendString appends s as a JSON string: quotes, backslashes and
// control characters escaped, invalid UTF-8 replaced by U+FFFD, and
// U+2028 and U+2029 escaped (JavaScript reads them as line ends).
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendFloat formats f as encoding/json does: plain decimals, exponents
// only for very small or large magnitudes, and no NaN or infinity (which
// JSON cannot hold: they are written as 0).
func appendFloat(b []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(b, '0')
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// e-09 becomes e-9, as encoding/json writes it.
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}
