package portal

import "github.com/mfabridge/mfabridge/factors"

// text holds every sentence the portal says outside its templates, in
// one place, so that a site's wording is changed here and in templates/.
var text = struct {
	signinFailed, unavailable, rateLimited        string
	trustedNetwork, inviteAccepted, inviteRefused string
	totpExists, totpWrongCode, totpActive         string
	noSuchMethod, lastMethod, never               string
	signInAgainToRemove, signInAgainForCodes      string
	reported, thisPortal                          string
	hotpActive, hotpRefused, hotpExists           string
	formExpired, formUnreadable                   string
	tooManyFromAddress                            string
	method                                        func(factors.Method) string
	defaultSet, removed                           func(factors.Method) string
	outcome                                       func(string) string
}{
	signinFailed:        "Sign-in failed. Check your user name and password and try again.",
	unavailable:         "The service is unavailable just now. Try again in a minute.",
	rateLimited:         "Too many attempts. Wait a minute and try again.",
	trustedNetwork:      "You are on the organisation's network, so you can set up your first method now.",
	inviteAccepted:      "Your enrolment code was accepted. Set up your first method now: it is used once.",
	inviteRefused:       "That enrolment code is wrong, used or expired. Ask the service desk for a new one.",
	totpExists:          "You already have an authenticator app. Remove it first to set up another.",
	totpWrongCode:       "That code does not match. Check the phone's clock and type the code the app shows now.",
	totpActive:          "Your authenticator app is set up.",
	noSuchMethod:        "You do not have that method.",
	lastMethod:          "This is your only method, so it cannot be removed. Add another first.",
	never:               "never",
	signInAgainToRemove: "To remove a method, sign in again first.",
	signInAgainForCodes: "To make new recovery codes, sign in again first.",
	reported: "Thank you. Your account is now blocked for every sign-in, and the security team has been told. " +
		"Call the service desk: they will check your account, and you will set up your methods again.",
	thisPortal:         "This portal",
	hotpActive:         "Your hardware token is set up.",
	hotpRefused:        "That serial number and code do not match a token that is free. Check the number on the back, press the button and type the new code.",
	hotpExists:         "You already have a hardware token. Remove it first to set up another.",
	formExpired:        "This form has expired or did not come from this page. Go back, reload the page and try again.",
	formUnreadable:     "That form could not be read.",
	tooManyFromAddress: "Too many attempts from your address. Wait a minute and try again.",
}

var methodNames = map[factors.Method]string{
	factors.TOTP:      "Authenticator app",
	factors.HOTP:      "Hardware token",
	factors.SMS:       "Text message",
	factors.Voice:     "Phone call",
	factors.Recovery:  "Recovery codes",
	factors.Smartcard: "Smartcard",
}

func init() {
	text.method = func(m factors.Method) string {
		if n, ok := methodNames[m]; ok {
			return n
		}
		if m == "" {
			return "—"
		}
		return string(m)
	}
	text.defaultSet = func(m factors.Method) string { return text.method(m) + " is now your default method." }
	text.removed = func(m factors.Method) string { return text.method(m) + " was removed." }
	text.outcome = func(o string) string {
		if o == "accept" {
			return "Signed in"
		}
		return "Refused"
	}
}
