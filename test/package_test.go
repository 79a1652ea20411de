package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/mfabridge/mfabridge/config"
	"github.com/mfabridge/mfabridge/test/harness"
)

// TestDebianPackage builds the .deb with scripts/package and reads it as
// dpkg would: the control fields, every file with its mode and owner, the
// conffile, and the maintainer scripts; then the unpacked binary runs and
// the unpacked configuration loads.
func TestDebianPackage(t *testing.T) {
	t.Parallel()
	for _, tool := range []string{"dpkg-deb", "sh"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed to read the package: sudo apt-get install -y dpkg", tool)
		}
	}
	root, err := harness.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	dist := t.TempDir()
	cmd := exec.Command("scripts/package")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "DIST="+dist, "VERSION=1.2.3")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/package: %v\n%s", err, out)
	}
	debs, _ := filepath.Glob(filepath.Join(dist, "mfabridge_1.2.3_*.deb"))
	if len(debs) != 1 {
		t.Fatalf("scripts/package made %q, want one mfabridge_1.2.3_ARCH.deb", debs)
	}
	deb := debs[0]
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("dpkg-deb", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("dpkg-deb %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}

	info := run("-I", deb)
	for _, want := range []string{"Package: mfabridge", "Version: 1.2.3", "Depends: adduser", "Section: net", "postinst", "prerm", "postrm", "conffiles"} {
		if !strings.Contains(info, want) {
			t.Errorf("dpkg-deb -I lacks %q:\n%s", want, info)
		}
	}

	// Every file, with its mode and owner.
	listing := run("-c", deb)
	for path, mode := range map[string]string{
		"./usr/bin/mfabridge":                    "-rwxr-xr-x root/root",
		"./lib/systemd/system/mfabridge.service": "-rw-r--r-- root/root",
		"./etc/mfabridge/mfabridge.yaml":         "-rw-r----- root/root",
		"./etc/mfabridge/":                       "drwxr-x--- root/root",
		"./var/lib/mfabridge/":                   "drwx------ root/root",
		"./usr/share/doc/mfabridge/copyright":    "-rw-r--r--",
		"./usr/share/doc/mfabridge/README.md":    "-rw-r--r--",
	} {
		re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(mode) + `\s.*\s` + regexp.QuoteMeta(path) + `$`)
		if !re.MatchString(listing) {
			t.Errorf("the package has no %s with %s:\n%s", path, mode, listing)
		}
	}

	// The maintainer scripts and the conffile.
	control := t.TempDir()
	run("-e", deb, control)
	conffiles, err := os.ReadFile(filepath.Join(control, "conffiles"))
	if err != nil || strings.TrimSpace(string(conffiles)) != "/etc/mfabridge/mfabridge.yaml" {
		t.Errorf("conffiles %q (%v), want /etc/mfabridge/mfabridge.yaml alone", conffiles, err)
	}
	for _, script := range []string{"postinst", "prerm", "postrm"} {
		path := filepath.Join(control, script)
		fi, err := os.Stat(path)
		if err != nil || fi.Mode().Perm()&0o111 == 0 {
			t.Errorf("%s: %v, mode %v: want an executable script", script, err, fi.Mode())
			continue
		}
		if out, err := exec.Command("sh", "-n", path).CombinedOutput(); err != nil {
			t.Errorf("sh -n %s: %v\n%s", script, err, out)
		}
	}
	postinst, _ := os.ReadFile(filepath.Join(control, "postinst"))
	for _, want := range []string{"adduser --system --group", "chown mfabridge:mfabridge /var/lib/mfabridge", "chgrp mfabridge /etc/mfabridge"} {
		if !strings.Contains(string(postinst), want) {
			t.Errorf("postinst lacks %q", want)
		}
	}
	if postrm, _ := os.ReadFile(filepath.Join(control, "postrm")); strings.Contains(string(postrm), "rm -rf /var/lib/mfabridge") {
		t.Error("postrm removes the enrolment store")
	}

	// Unpacked: the binary is the server, the unit names the package's
	// user and binary, the conffile loads.
	files := t.TempDir()
	run("-x", deb, files)
	out, err := exec.Command(filepath.Join(files, "usr/bin/mfabridge"), "version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "1.2.3") {
		t.Errorf("the packaged binary's version: %v %s", err, out)
	}
	unit, _ := os.ReadFile(filepath.Join(files, "lib/systemd/system/mfabridge.service"))
	for _, want := range []string{"User=mfabridge", "Group=mfabridge", "ExecStart=/usr/bin/mfabridge serve --config /etc/mfabridge/mfabridge.yaml"} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("the packaged unit lacks %q", want)
		}
	}
	if strings.Contains(string(unit), "SupplementaryGroups") || strings.Contains(string(unit), "DynamicUser") {
		t.Error("the packaged unit names a group or user the package does not create")
	}
	yaml, err := os.ReadFile(filepath.Join(files, "etc/mfabridge/mfabridge.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := config.Parse("/etc/mfabridge/mfabridge.yaml", yaml); err != nil {
		t.Errorf("the packaged configuration does not load:\n%v", err)
	}
}
