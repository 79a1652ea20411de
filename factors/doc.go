// Package factors holds the domain types the conversation and its backends
// share: the User the directory finds, the outcomes a directory or a factor
// reports, and the Factor interface each second factor implements (one
// folder each under factors/).
//
// It imports nothing of mfabridge but config, so radius, ldapbind and the
// factor packages can all depend on it without depending on each other.
package factors
