package radius

import (
	"context"
	"strings"

	"github.com/mfabridge/mfabridge/config"
	"github.com/mfabridge/mfabridge/factors"
	"github.com/mfabridge/mfabridge/internal/audit"
)

// appendStart handles "password,sms" and "password,call" in append mode:
// the password was right, so a code is sent and the login refused with a
// message saying so; the next login carries password and code. A call in
// approve mode is awaited instead.
func (c *Conversation) appendStart(ctx context.Context, client *Client, pol *policy, u *factors.User, lk lockKeys,
	offered []factors.Method, m factors.Method, station string) decision {
	if !contains(offered, m) || !c.isStarter(m) {
		return reject(audit.ReasonMethodUnavailable, "That method is not available to you.")
	}
	if c.isApprover(m) {
		if cl, ok := c.factors[m].(factors.CodeLength); !ok || cl.CodeLength(u) == 0 {
			return c.await(ctx, client, pol, u, m, station)
		}
	}
	lead, _, ok := c.startOnce(ctx, client, u, m, station)
	if !ok {
		return reject(audit.ReasonSendFailed, lead)
	}
	d := reject(audit.ReasonCodeSent, lead+" Log in again with your password followed by the code.")
	d.factor = m
	return d
}

// appendHint tells a user who typed only the password what to add.
func (c *Conversation) appendHint(u *factors.User, offered []factors.Method) string {
	var typed []factors.Method
	var asks []string
	for _, m := range offered {
		if !c.isStarter(m) {
			typed = append(typed, m)
			continue
		}
		switch m {
		case factors.SMS:
			asks = append(asks, "add ,sms to get a text message")
		case factors.Voice:
			asks = append(asks, "add ,call to get a phone call")
		}
	}
	msg := "Type your password followed by "
	if len(typed) > 0 {
		msg += c.labelsOf(u, typed)
	} else {
		msg += "a code"
	}
	if len(asks) > 0 {
		msg += ", or " + strings.Join(asks, ", or ")
	}
	return msg + "."
}

// askedMethod splits "password,sms" and "password,call".
func askedMethod(typed string) (password string, m factors.Method, ok bool) {
	i := strings.LastIndexByte(typed, ',')
	if i <= 0 {
		return "", "", false
	}
	switch strings.ToLower(typed[i+1:]) {
	case "sms", "text":
		return typed[:i], factors.SMS, true
	case "call", "voice", "phone":
		return typed[:i], factors.Voice, true
	}
	return "", "", false
}

// candidates lists the readings of what the user typed, cheapest first,
// so that a login costs one bind whenever possible:
//   - challenge mode: all of it is the password;
//   - append mode, user with code methods: the last N characters are the
//     code when they are N digits, N being the code length of the user's
//     methods (the default method's first); the rest is the password.
//     When no such split exists, all of it is tried as the password and
//     the login then fails for want of a code;
//   - append mode, inside a remember window: all of it first (the mail
//     client's saved password), then the splits.
//
// A password that ends in digits therefore never skips the second factor:
// those digits are read as the code and must verify as one.
func (c *Conversation) candidates(pol *policy, u *factors.User, typed string, remembered bool) []candidate {
	if pol.Mode != config.ModeAppend {
		return []candidate{{password: typed}}
	}
	var out []candidate
	if remembered {
		out = append(out, candidate{password: typed})
	}
	offered := c.offered(pol, u)
	seen := map[int]bool{}
	for _, m := range offered {
		cl, ok := c.factors[m].(factors.CodeLength)
		if !ok {
			continue
		}
		n := cl.CodeLength(u)
		if n <= 0 || seen[n] || len(typed) <= n || !allDigits(typed[len(typed)-n:]) {
			continue
		}
		seen[n] = true
		out = append(out, candidate{password: typed[:len(typed)-n], code: typed[len(typed)-n:]})
	}
	if len(out) == 0 {
		out = append(out, candidate{password: typed})
	}
	return out
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
