package harness

import (
	"errors"
	"os"
	"path/filepath"
)

// PAMRadiusModule returns the path of pam_radius_auth.so (Debian package
// libpam-radius-auth), or an error with the install step.
func PAMRadiusModule() (string, error) {
	var dirs []string
	for _, pattern := range []string{"/lib/*/security", "/usr/lib/*/security", "/lib/security", "/usr/lib/security"} {
		m, _ := filepath.Glob(pattern)
		dirs = append(dirs, m...)
	}
	for _, d := range dirs {
		p := filepath.Join(d, "pam_radius_auth.so")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("missing test module: pam_radius_auth.so (package libpam-radius-auth); install it with: sudo scripts/deps (or: sudo apt-get install -y libpam-radius-auth)")
}
