// Package sms is the text-message factor: the bridge makes a random code,
// sends it through a Messenger (Twilio's Messages API in production), and
// checks the answer against it: single-use, expiring, a few tries, sends
// limited per user per hour and for all users per minute.
//
// It must not import radius, ldapbind or the stores.
package sms
