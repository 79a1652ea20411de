// Package otp implements the code-based second factors on
// github.com/pquerna/otp: TOTP (RFC 6238) and HOTP (RFC 4226) with SHA1,
// SHA256 or SHA512 and 6 or 8 digits.
//
// pquerna/otp validates statelessly, so reuse is blocked here: a TOTP time
// step is accepted once per user through the ephemeral state (Guard), and
// an HOTP counter moves forward only by compare-and-set in the enrolment
// store (Counters), so two requests racing with the same code cannot both
// pass. Codes are compared in constant time.
//
// It must not import radius, ldapbind or the stores.
package otp
