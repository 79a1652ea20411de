// Package voice is the phone-call factor, in two modes. code: the call
// reads a random code slowly, twice, and the user types it at the
// challenge (checked like a text-message code). approve: the call asks
// the user to press # (TwiML Gather); Twilio posts the key pressed to the
// webhook, which checks X-Twilio-Signature and that the call belongs to a
// live approval, and records approval or refusal.
//
// It must not import radius, ldapbind or the stores.
package voice
