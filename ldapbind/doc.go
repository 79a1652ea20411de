// Package ldapbind is the directory: it finds a user with the service
// account (an escaped filter), binds as the user's DN to check the
// password, and reads groups and the attributes the factors need.
//
// Connections come from two bounded pools, one bound as the service
// account for searches and one for user binds, so a user bind never
// changes the identity of a connection a search relies on. Servers in
// ldap.urls are tried in order; a server that fails is skipped for a
// growing back-off. Every network step has a deadline.
//
// It must not import radius or any factor implementation.
package ldapbind
