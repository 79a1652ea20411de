// Package config owns the YAML schema of mfabridge: the types, their
// defaults, strict loading with file and line in every error, validation,
// and the resolution of secret references (env:NAME, file:/path).
//
// It is a leaf: it imports the standard library and gopkg.in/yaml.v3 only,
// so every other package may depend on it and it on none of them. A loaded
// *Config is never mutated; a reload builds a new one.
package config
