package config

import (
	"fmt"
	"os"
	"strings"

	"gopkg.in/yaml.v3"
)

// Secret is a value that must never be printed: a shared secret, a bind
// password, a key or a token. In the file it is written as a literal, as
// env:NAME (read from the environment) or as file:/path (the file's
// contents, trailing newline removed). String, GoString and MarshalYAML
// never show a literal value, so a Secret is safe in any log line.
type Secret struct {
	ref   string // as written in the file
	value string // resolved
	set   bool   // resolved and non-empty
}

// NewSecret returns a resolved literal secret, for programs that build a
// configuration in code.
func NewSecret(v string) Secret { return Secret{ref: v, value: v, set: v != ""} }

// Value returns the resolved secret; "" until Load has resolved it.
func (s Secret) Value() string { return s.value }

// IsZero reports whether nothing was written for the secret.
func (s Secret) IsZero() bool { return s.ref == "" }

// Source describes where the secret comes from without revealing it:
// "env:NAME", "file:/path", "literal" or "" when unset.
func (s Secret) Source() string {
	switch {
	case s.ref == "":
		return ""
	case strings.HasPrefix(s.ref, "env:"), strings.HasPrefix(s.ref, "file:"):
		return s.ref
	}
	return "literal"
}

func (s Secret) String() string {
	if s.ref == "" {
		return "(unset)"
	}
	return "(secret from " + s.Source() + ")"
}

// GoString keeps %#v from printing the value.
func (s Secret) GoString() string { return s.String() }

// MarshalYAML writes the source, never the value.
func (s Secret) MarshalYAML() (any, error) { return s.Source(), nil }

// UnmarshalYAML accepts a string.
func (s *Secret) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode || (n.Tag != "!!str" && n.Tag != "!!int" && n.Tag != "!!float") {
		return typeError(n, "a secret must be a string", `write it in quotes, or as "env:NAME" or "file:/path"`)
	}
	s.ref = n.Value
	return nil
}

// resolve reads the secret. warn receives non-fatal findings.
func (s *Secret) resolve(warn func(string)) (msg, hint string) {
	switch {
	case s.ref == "":
		return "", ""
	case strings.HasPrefix(s.ref, "env:"):
		name := strings.TrimPrefix(s.ref, "env:")
		if name == "" {
			return "env: names no variable", `write "env:NAME"`
		}
		v, ok := os.LookupEnv(name)
		if !ok {
			return fmt.Sprintf("environment variable %s is not set", name), "export it before starting mfabridge, or use file:/path"
		}
		if v == "" {
			return fmt.Sprintf("environment variable %s is empty", name), "give it a value"
		}
		s.value = v
	case strings.HasPrefix(s.ref, "file:"):
		path := strings.TrimPrefix(s.ref, "file:")
		if path == "" {
			return "file: names no file", `write "file:/path/to/secret"`
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err.Error(), "check the path and that mfabridge may read the file"
		}
		if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o004 != 0 {
			warn(fmt.Sprintf("secret file %s is readable by every user; run: chmod o-r %s", path, path))
		}
		v := strings.TrimRight(string(b), "\r\n")
		if v == "" {
			return fmt.Sprintf("secret file %s is empty", path), "write the secret into it"
		}
		s.value = v
	default:
		s.value = s.ref
	}
	s.set = true
	return "", ""
}

// ResolveSecret reads a secret given on a command line as the file would
// give it: a literal, env:NAME or file:/path (so that it need not be
// typed where ps and /proc show it). The message of the error says what
// is wrong and what to do.
func ResolveSecret(ref string) (string, error) {
	s := Secret{ref: ref}
	if msg, hint := s.resolve(func(string) {}); msg != "" {
		return "", fmt.Errorf("%s (%s)", msg, hint)
	}
	return s.value, nil
}
