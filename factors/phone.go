package factors

import "strings"

// NormalisePhone turns a number as a directory holds it into E.164
// (+447700900001), or reports false. Spaces, dashes, dots and brackets
// are dropped; 00 is read as +; a national number starting with one 0
// gets countryCode (digits, e.g. "44") in its place. A number that stays
// ambiguous is refused rather than guessed.
func NormalisePhone(raw, countryCode string) (string, bool) {
	raw = strings.TrimSpace(raw)
	// "+44 (0)7700 900001": the bracketed trunk zero is dialled only
	// within the country.
	if strings.HasPrefix(raw, "+") || strings.HasPrefix(raw, "00") {
		raw = strings.Replace(raw, "(0)", "", 1)
	}
	var b strings.Builder
	for i, r := range raw {
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == '+' && i == 0:
			b.WriteRune(r)
		case r == ' ' || r == '-' || r == '.' || r == '(' || r == ')' || r == '/':
		default:
			return "", false
		}
	}
	n := b.String()
	switch {
	case strings.HasPrefix(n, "+"):
	case strings.HasPrefix(n, "00"):
		n = "+" + n[2:]
	case strings.HasPrefix(n, "0") && countryCode != "":
		n = "+" + countryCode + n[1:]
	default:
		return "", false
	}
	digits := n[1:]
	if len(digits) < 7 || len(digits) > 15 || digits[0] == '0' {
		return "", false
	}
	return n, true
}

// MaskPhone shows only the last four digits: ******0001.
func MaskPhone(e164 string) string {
	if len(e164) <= 4 {
		return "******"
	}
	return "******" + e164[len(e164)-4:]
}
