// Package radius is the RADIUS front of mfabridge and the conversation
// behind it: UDP listeners with a bounded worker count per client, the
// client table, the packet checks of RFC 3579 and the Blast-RADIUS
// guidance, the RFC 5080 duplicate cache, Status-Server (RFC 5997), and the
// conversation that turns an Access-Request into a decision.
//
// Every response passes through one writer that puts Message-Authenticator
// first and echoes Proxy-State, so no handler can forget either.
//
// The directory and the second factors are reached through the interfaces
// declared here (Directory); this package must not import ldapbind or any
// factor implementation.
package radius
