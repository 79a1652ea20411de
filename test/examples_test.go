package test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestExamplesCheck runs mfabridge check-config on every deployment
// example, with the secrets they name in the environment.
func TestExamplesCheck(t *testing.T) {
	files, _ := filepath.Glob("../examples/*.yaml")
	if len(files) < 6 {
		t.Fatalf("only %d examples", len(files))
	}
	env := []string{"STORE_KEY=" + storeKey, "LDAP_PASSWORD=example-service-password",
		"MFABRIDGE_PG_DSN=postgres://mfabridge@db.example.org/mfabridge?sslmode=verify-full", "REDIS_PASSWORD=example-redis-password"}
	for _, v := range []string{"ASA_SECRET", "FORTIGATE_SECRET", "PANOS_SECRET", "OCSERV_SECRET", "OPENVPN_SECRET", "DOVECOT_SECRET"} {
		env = append(env, v+"=an-example-shared-secret-0123")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			out, stderr, code := mfabridge(t, env, "check-config", "--config", f)
			if code != 0 || !strings.Contains(out, "configuration OK") {
				t.Errorf("check-config: status %d\n%s%s", code, out, stderr)
			}
		})
	}
}

// TestSystemdUnit keeps the unit's sandboxing in place.
func TestSystemdUnit(t *testing.T) {
	b := mustRead(t, "../packaging/mfabridge.service")
	for _, want := range []string{"User=mfabridge", "Group=mfabridge", "ProtectSystem=strict", "StateDirectory=mfabridge", "NoNewPrivileges=yes",
		"RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX", "ExecReload=/bin/kill -HUP $MAINPID", "CapabilityBoundingSet="} {
		if !strings.Contains(b, want) {
			t.Errorf("mfabridge.service lacks %q", want)
		}
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := readFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func readFile(p string) (string, error) {
	b, err := os.ReadFile(p)
	return string(b), err
}
