// Package harness starts the real servers the integration tests and the
// demo run against (a throwaway slapd with its own CA, the mfabridge
// binary) and drives them with real clients (radclient) and a small Go
// RADIUS client that can send any bytes from any loopback address.
//
// Everything listens on 127.0.0.0/8 and lives in a directory the caller
// owns; nothing is left running when the caller stops what it started.
package harness
