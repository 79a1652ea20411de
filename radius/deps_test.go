package radius

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// TestDeps keeps the RADIUS front away from the directory: it reaches
// ldapbind through the Directory interface only (see doc.go).
func TestDeps(t *testing.T) {
	found := false
	for _, p := range deps(t) {
		found = found || p.ImportPath == "github.com/mfabridge/mfabridge/radius"
		if p.ImportPath == "github.com/mfabridge/mfabridge/ldapbind" {
			t.Errorf("radius depends on %s", p.ImportPath)
		}
	}
	if !found {
		t.Error("go list did not list radius itself")
	}
}

type listedPackage struct {
	ImportPath string
	Standard   bool
	Module     *struct{ Path string }
}

// deps lists the package in the current directory and everything it
// imports, tests excluded.
func deps(t *testing.T) []listedPackage {
	t.Helper()
	gotool := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := exec.LookPath(gotool); err != nil {
		if gotool, err = exec.LookPath("go"); err != nil {
			t.Skip("no go tool:", err)
		}
	}
	out, err := exec.Command(gotool, "list", "-deps", "-json", ".").Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	var ps []listedPackage
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p listedPackage
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
