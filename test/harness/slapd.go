package harness

import (
	"bytes"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// Directory layout of every test slapd.
const (
	BaseDN      = "dc=example,dc=org"
	PeopleDN    = "ou=people," + BaseDN
	GroupsDN    = "ou=groups," + BaseDN
	ServiceDN   = "cn=bridge,ou=services," + BaseDN
	ServicePass = "bridge-service-pass"
	rootDN      = "cn=admin," + BaseDN
	rootPass    = "root-pass-for-tests"
)

// User is a fixture entry under ou=people.
type User struct {
	UID      string
	Password string
	Mobile   string
	Mail     string
	Groups   []string // cn of groups under ou=groups, created as needed
}

// DN returns the user's DN.
func (u User) DN() string { return "uid=" + ldap.EscapeDN(u.UID) + "," + PeopleDN }

// SLAPD is a throwaway OpenLDAP server on loopback.
type SLAPD struct {
	Dir      string
	URL      string // ldap://127.0.0.1:PORT
	LDAPSURL string // ldaps://127.0.0.1:PORT
	CA       *CA
	port     int
	tlsPort  int
	conf     string
	mu       sync.Mutex
	log      bytes.Buffer // slapd's stats log (-d 256)
	cmd      *exec.Cmd
	exited   chan struct{}
	groups   map[string][]string // cn → member DNs
	groupsMu sync.Mutex
}

// Need returns an error naming the Debian package for every tool missing
// from this machine.
func Need(tools ...string) error {
	pkgs := map[string]string{
		"slapd": "slapd", "slappasswd": "slapd", "ldapwhoami": "ldap-utils", "radclient": "freeradius-utils",
		"eapol_test": "eapoltest", "radsecproxy": "radsecproxy", "redis-server": "redis-server", "redis-cli": "redis-tools",
		"pcscd": "pcscd", "pamtester": "pamtester",
	}
	var missing []string
	for _, t := range tools {
		if _, err := lookPath(t); err != nil {
			missing = append(missing, fmt.Sprintf("%s (package %s)", t, pkgs[t]))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing test tools: %s; install them with: sudo scripts/deps (or: sudo apt-get install -y %s)",
			strings.Join(missing, ", "), strings.Join(uniquePkgs(missing), " "))
	}
	return nil
}

func uniquePkgs(missing []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, m := range missing {
		p := m[strings.Index(m, "package ")+8 : len(m)-1]
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}

// lookPath finds a tool on PATH or in the sbin directories, which a
// non-root PATH often lacks.
func lookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
	}
	return "", exec.ErrNotFound
}

// FreePort returns a TCP and UDP port free on 127.0.0.1 at the time of
// the call.
func FreePort() (int, error) {
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		l.Close()
		if err == nil {
			u.Close()
			return port, nil
		}
	}
	return 0, errors.New("no free port")
}

// StartSLAPD starts slapd in dir with LDAP and LDAPS listeners on free
// loopback ports, an mdb database, the memberOf overlay, production-like
// ACLs, a service account, and the given users.
func StartSLAPD(dir string, users []User) (*SLAPD, error) {
	if err := Need("slapd"); err != nil {
		return nil, err
	}
	s := &SLAPD{Dir: dir, groups: map[string][]string{}}
	var err error
	if s.CA, err = NewCA(dir, "ldap"); err != nil {
		return nil, err
	}
	certFile, keyFile, err := s.CA.ServerCert(dir, "slapd")
	if err != nil {
		return nil, err
	}
	if s.port, err = FreePort(); err != nil {
		return nil, err
	}
	if s.tlsPort, err = FreePort(); err != nil {
		return nil, err
	}
	s.URL = fmt.Sprintf("ldap://127.0.0.1:%d", s.port)
	s.LDAPSURL = fmt.Sprintf("ldaps://127.0.0.1:%d", s.tlsPort)
	dbDir := filepath.Join(dir, "db")
	if err := os.MkdirAll(dbDir, 0o700); err != nil {
		return nil, err
	}
	s.conf = filepath.Join(dir, "slapd.conf")
	conf := fmt.Sprintf(`include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
pidfile %[1]s/slapd.pid
TLSCACertificateFile %[2]s
TLSCertificateFile %[3]s
TLSCertificateKeyFile %[4]s
database mdb
suffix "%[5]s"
rootdn "%[6]s"
rootpw %[7]s
directory %[8]s
dbnosync
maxsize 104857600
index objectClass eq
index uid,cn,mail eq
index member,memberOf eq
overlay memberof
memberof-group-oc groupOfNames
memberof-member-ad member
memberof-memberof-ad memberOf
memberof-refint TRUE
access to attrs=userPassword
  by anonymous auth
  by * none
access to *
  by dn.exact="%[9]s" read
  by self read
  by * none
`, dir, s.CA.CertFile, certFile, keyFile, BaseDN, rootDN, ssha(rootPass), dbDir, ServiceDN)
	if err := os.WriteFile(s.conf, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	if err := s.Start(); err != nil {
		return nil, err
	}
	if err := s.seed(users); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// Start runs slapd in the foreground (-d 256 logs each operation to
// stderr, which BindCount reads) and waits until it answers.
func (s *SLAPD) Start() error { return s.start("256", 15*time.Second) }

// start runs slapd in the foreground with debug level debug and waits at
// most wait for it to answer.
func (s *SLAPD) start(debug string, wait time.Duration) error {
	bin, err := lookPath("slapd")
	if err != nil {
		return err
	}
	s.cmd = exec.Command(bin, "-f", s.conf, "-d", debug,
		"-h", fmt.Sprintf("ldap://127.0.0.1:%d/ ldaps://127.0.0.1:%d/", s.port, s.tlsPort))
	s.cmd.Stdout = &lockedWriter{mu: &s.mu, w: &s.log}
	s.cmd.Stderr = s.cmd.Stdout
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("start slapd: %w", err)
	}
	s.exited = make(chan struct{})
	go func(c *exec.Cmd, done chan struct{}) { c.Wait(); close(done) }(s.cmd, s.exited)
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			return fmt.Errorf("slapd exited at start:\n%s", s.Log())
		default:
		}
		if c, err := ldap.DialURL(s.URL); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.Stop()
	return fmt.Errorf("slapd did not answer within %s:\n%s", wait, s.Log())
}

// Stop ends slapd (SIGTERM, then SIGKILL) and waits for it.
func (s *SLAPD) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(5 * time.Second):
		s.cmd.Process.Kill()
		<-s.exited
	}
	s.cmd = nil
}

// Pause stops slapd from answering (SIGSTOP) without closing its sockets:
// a black-holed server. Resume undoes it.
func (s *SLAPD) Pause() error  { return s.cmd.Process.Signal(syscall.SIGSTOP) }
func (s *SLAPD) Resume() error { return s.cmd.Process.Signal(syscall.SIGCONT) }

// Log returns slapd's output so far.
func (s *SLAPD) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

// BindCount counts the simple binds slapd has received for dn. slapd
// writes its log a moment after it answers, so the count is read until it
// has been still for 200ms.
func (s *SLAPD) BindCount(dn string) int {
	re := regexp.MustCompile(`BIND dn="(?i:` + regexp.QuoteMeta(dn) + `)" method=128`)
	return s.settled(func(log string) int { return len(re.FindAllString(log, -1)) })
}

// AllBinds counts every simple bind slapd has received.
func (s *SLAPD) AllBinds() int {
	return s.settled(func(log string) int { return strings.Count(log, " method=128") })
}

func (s *SLAPD) settled(count func(string) int) int {
	n := count(s.Log())
	for range 25 {
		time.Sleep(200 * time.Millisecond)
		m := count(s.Log())
		if m == n {
			return n
		}
		n = m
	}
	return n
}

func (s *SLAPD) admin() (*ldap.Conn, error) {
	c, err := ldap.DialURL(s.URL)
	if err != nil {
		return nil, err
	}
	if err := c.Bind(rootDN, rootPass); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func (s *SLAPD) seed(users []User) error {
	c, err := s.admin()
	if err != nil {
		return err
	}
	defer c.Close()
	adds := []*ldap.AddRequest{
		entry(BaseDN, map[string][]string{"objectClass": {"dcObject", "organization"}, "o": {"Example"}, "dc": {"example"}}),
		entry(PeopleDN, map[string][]string{"objectClass": {"organizationalUnit"}, "ou": {"people"}}),
		entry(GroupsDN, map[string][]string{"objectClass": {"organizationalUnit"}, "ou": {"groups"}}),
		entry("ou=services,"+BaseDN, map[string][]string{"objectClass": {"organizationalUnit"}, "ou": {"services"}}),
		entry(ServiceDN, map[string][]string{"objectClass": {"person"}, "cn": {"bridge"}, "sn": {"bridge"},
			"userPassword": {ssha(ServicePass)}}),
	}
	for _, a := range adds {
		if err := c.Add(a); err != nil {
			return fmt.Errorf("seed %s: %w", a.DN, err)
		}
	}
	return s.addUsers(c, users)
}

// AddUsers adds users (and their groups) to the running server.
func (s *SLAPD) AddUsers(users ...User) error {
	c, err := s.admin()
	if err != nil {
		return err
	}
	defer c.Close()
	return s.addUsers(c, users)
}

func (s *SLAPD) addUsers(c *ldap.Conn, users []User) error {
	s.groupsMu.Lock()
	defer s.groupsMu.Unlock()
	for _, u := range users {
		attrs := map[string][]string{"objectClass": {"inetOrgPerson"}, "uid": {u.UID}, "cn": {u.UID}, "sn": {u.UID},
			"userPassword": {ssha(u.Password)}}
		if u.Mobile != "" {
			attrs["mobile"] = []string{u.Mobile}
		}
		if u.Mail != "" {
			attrs["mail"] = []string{u.Mail}
		}
		if err := c.Add(entry(u.DN(), attrs)); err != nil {
			return fmt.Errorf("add user %s: %w", u.UID, err)
		}
		for _, g := range u.Groups {
			gdn := "cn=" + ldap.EscapeDN(g) + "," + GroupsDN
			if _, ok := s.groups[g]; !ok {
				err := c.Add(entry(gdn, map[string][]string{"objectClass": {"groupOfNames"}, "cn": {g}, "member": {u.DN()}}))
				if err != nil {
					return fmt.Errorf("add group %s: %w", g, err)
				}
			} else {
				m := ldap.NewModifyRequest(gdn, nil)
				m.Add("member", []string{u.DN()})
				if err := c.Modify(m); err != nil {
					return fmt.Errorf("add %s to %s: %w", u.UID, g, err)
				}
			}
			s.groups[g] = append(s.groups[g], u.DN())
		}
	}
	return nil
}

func entry(dn string, attrs map[string][]string) *ldap.AddRequest {
	a := ldap.NewAddRequest(dn, nil)
	for k, v := range attrs {
		a.Attribute(k, v)
	}
	return a
}

// ssha hashes a password as slappasswd -h {SSHA} does.
func ssha(pw string) string {
	salt := make([]byte, 8)
	rand.Read(salt)
	h := sha1.Sum(append([]byte(pw), salt...))
	return "{SSHA}" + base64.StdEncoding.EncodeToString(append(h[:], salt...))
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// Port returns the plain LDAP port.
func (s *SLAPD) Port() string { return strconv.Itoa(s.port) }

// SetMail replaces the mail attribute of u's entry.
func (s *SLAPD) SetMail(u User, mail string) error {
	return s.modify(u.DN(), func(m *ldap.ModifyRequest) { m.Replace("mail", []string{mail}) })
}

// modify applies f to a modify request for dn, as the root DN.
func (s *SLAPD) modify(dn string, f func(*ldap.ModifyRequest)) error {
	c, err := s.admin()
	if err != nil {
		return err
	}
	defer c.Close()
	m := ldap.NewModifyRequest(dn, nil)
	f(m)
	return c.Modify(m)
}
