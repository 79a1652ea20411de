package harness

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// BuildBridgePlain compiles cmd/mfabridge into dir as it is released
// (CGO_ENABLED=0, without the race detector), whatever the calling test
// binary has: for tests and programs whose timing the race detector would
// distort (modernc.org/sqlite runs about 20 times slower under it). It
// returns the binary's path.
func BuildBridgePlain(dir string) (string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "mfabridge-plain")
	cmd := exec.Command(GoTool(), "build", "-o", bin, "./cmd/mfabridge")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/mfabridge: %v\n%s", err, out)
	}
	return bin, nil
}
