package harness

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// StartSLAPDQuiet is StartSLAPD for load: slapd logs nothing per
// operation (loglevel 0, run with -d 0 instead of -d 256, so neither its
// output nor BindCount grows with the load), and users are loaded in bulk
// with slapadd on the stopped database rather than one LDAP add at a
// time. Users must not have Groups (slapadd does not fill memberOf).
func StartSLAPDQuiet(dir string, users []User) (*SLAPD, error) {
	s, err := StartSLAPD(dir, nil)
	if err != nil {
		return nil, err
	}
	s.Stop()
	b, err := os.ReadFile(s.conf)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(s.conf, append([]byte("loglevel 0\n"), b...), 0o600); err != nil {
		return nil, err
	}
	if err := s.slapadd(users); err != nil {
		return nil, err
	}
	if err := s.startQuiet(); err != nil {
		return nil, err
	}
	return s, nil
}

// BulkAdd stops slapd, adds users with slapadd and starts it again
// quietly on the same ports. Users must not have Groups.
func (s *SLAPD) BulkAdd(users []User) error {
	s.Stop()
	if err := s.slapadd(users); err != nil {
		return err
	}
	return s.startQuiet()
}

func (s *SLAPD) slapadd(users []User) error {
	if len(users) == 0 {
		return nil
	}
	bin, err := lookPath("slapadd")
	if err != nil {
		return Need("slapd")
	}
	path := filepath.Join(s.Dir, fmt.Sprintf("bulk-%d.ldif", time.Now().UnixNano()))
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer os.Remove(path)
	w := bufio.NewWriterSize(f, 1<<20)
	for _, u := range users {
		if len(u.Groups) > 0 {
			f.Close()
			return errors.New("slapadd: users with groups need AddUsers (memberOf)")
		}
		for _, v := range []string{u.UID, u.Password, u.Mobile, u.Mail} {
			if strings.ContainsAny(v, "\r\n") || strings.HasPrefix(v, " ") || strings.HasPrefix(v, ":") {
				f.Close()
				return fmt.Errorf("slapadd: %q cannot be written as plain LDIF", v)
			}
		}
		fmt.Fprintf(w, "dn: %s\nobjectClass: inetOrgPerson\nuid: %s\ncn: %s\nsn: %s\nuserPassword: %s\n",
			u.DN(), u.UID, u.UID, u.UID, ssha(u.Password))
		if u.Mobile != "" {
			fmt.Fprintf(w, "mobile: %s\n", u.Mobile)
		}
		if u.Mail != "" {
			fmt.Fprintf(w, "mail: %s\n", u.Mail)
		}
		w.WriteString("\n")
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	// -q skips consistency checks, which is what makes it fast; the LDIF
	// is ours and well formed.
	out, err := exec.Command(bin, "-q", "-f", s.conf, "-l", path).CombinedOutput()
	if err != nil {
		return fmt.Errorf("slapadd: %v\n%s", err, out)
	}
	return nil
}

// startQuiet runs slapd in the foreground with -d 0: nothing is logged per
// operation.
func (s *SLAPD) startQuiet() error { return s.start("0", 30*time.Second) }

// PID is slapd's process id, 0 when it is not running.
func (s *SLAPD) PID() int {
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// SlapdVersion returns slapd's version line, e.g. "slapd 2.5.13+dfsg-5".
func SlapdVersion() string {
	bin, err := lookPath("slapd")
	if err != nil {
		return "not installed"
	}
	out, _ := exec.Command(bin, "-VV").CombinedOutput()
	for _, line := range strings.Split(string(out), "\n") {
		if i := strings.Index(line, "slapd "); i >= 0 && strings.Contains(line, "OpenLDAP") {
			rest := line[i:]
			if j := strings.Index(rest, " ("); j > 0 {
				rest = rest[:j]
			}
			return "OpenLDAP " + strings.TrimSpace(rest)
		}
	}
	return strings.TrimSpace(string(out))
}
