// Package deptest lets each package's TestDeps state the imports it must
// never have (STYLE §2): go list reports the dependencies, tests excluded.
package deptest

import (
	"bytes"
	"encoding/json"
	"errors"
	"go/build"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Package is one dependency as go list describes it.
type Package struct {
	ImportPath string
	Standard   bool
	Module     *struct{ Path string }
}

// List returns pkg (a pattern such as ".") and everything it imports.
func List(t testing.TB, pkg string) []Package {
	t.Helper()
	gotool := filepath.Join(build.Default.GOROOT, "bin", "go")
	if _, err := exec.LookPath(gotool); err != nil {
		if gotool, err = exec.LookPath("go"); err != nil {
			t.Fatal("no go tool to list dependencies:", err)
		}
	}
	out, err := exec.Command(gotool, "list", "-deps", "-json", pkg).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	var ps []Package
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p Package
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		ps = append(ps, p)
	}
	if len(ps) == 0 {
		t.Fatal("go list listed nothing")
	}
	return ps
}

// Forbid fails t for every dependency of pkg that is, or lies under, a key
// of bad; the value says why it is forbidden.
func Forbid(t testing.TB, pkg string, bad map[string]string) {
	t.Helper()
	for _, p := range List(t, pkg) {
		for b, why := range bad {
			if p.ImportPath == b || strings.HasPrefix(p.ImportPath, b+"/") {
				t.Errorf("%s is a dependency: %s", p.ImportPath, why)
			}
		}
	}
}
