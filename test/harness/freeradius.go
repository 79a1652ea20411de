package harness

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// freeradiusModules is where Debian's freeradius and freeradius-ldap put
// their modules.
const freeradiusModules = "/usr/lib/freeradius"

// NeedFreeRADIUS returns an error with the install step when the
// FreeRADIUS server (package freeradius) or its LDAP module (package
// freeradius-ldap) is missing.
func NeedFreeRADIUS() error {
	var missing, pkgs []string
	if _, err := lookPath("freeradius"); err != nil {
		missing, pkgs = append(missing, "freeradius (package freeradius)"), append(pkgs, "freeradius")
	}
	if _, err := os.Stat(filepath.Join(freeradiusModules, "rlm_ldap.so")); err != nil {
		missing, pkgs = append(missing, freeradiusModules+"/rlm_ldap.so (package freeradius-ldap)"), append(pkgs, "freeradius-ldap")
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing benchmark tools: %s; install them with: sudo scripts/deps (or: sudo apt-get install -y %s)",
			strings.Join(missing, ", "), strings.Join(pkgs, " "))
	}
	return nil
}

// FreeRADIUSVersion returns the first line of `freeradius -v`.
func FreeRADIUSVersion() string {
	bin, err := lookPath("freeradius")
	if err != nil {
		return "not installed"
	}
	out, _ := exec.Command(bin, "-v").CombinedOutput()
	line, _, _ := strings.Cut(string(out), "\n")
	// "radiusd: FreeRADIUS Version 3.2.1, for host …"
	if i := strings.Index(line, "FreeRADIUS Version "); i >= 0 {
		v, _, _ := strings.Cut(line[i+len("FreeRADIUS Version "):], ",")
		return "FreeRADIUS " + strings.TrimSpace(v)
	}
	return strings.TrimSpace(line)
}

// FreeRADIUSConfig describes a FreeRADIUS 3.2 that checks PAP passwords by
// an LDAP bind (rlm_ldap): authorize searches for the user with the
// service account, authenticate binds as the entry's DN.
type FreeRADIUSConfig struct {
	Dir          string // the configuration directory to write; it must exist
	Secret       string // shared secret of the client 127.0.0.1
	LDAPHost     string // e.g. 127.0.0.1
	LDAPPort     string
	BindDN       string
	BindPassword string
	BaseDN       string
	Filter       string // user search filter in FreeRADIUS syntax, e.g. (uid=%{User-Name})
	// PoolMax is the LDAP connection pool's start, min and max: every
	// connection is open from the start, as a warmed-up bridge's are.
	PoolMax int
	// Threads is the worker thread pool (start and max).
	Threads int
	// Timeout is rlm_ldap's res_timeout and srv_timelimit, in seconds.
	Timeout int
}

// FreeRADIUS is a running radiusd in the foreground.
type FreeRADIUS struct {
	Addr   string // 127.0.0.1:PORT, authentication and Status-Server
	cmd    *exec.Cmd
	mu     sync.Mutex
	log    bytes.Buffer
	exited chan struct{}
}

// StartFreeRADIUS writes a minimal configuration (the pap and ldap
// modules, one virtual server, one client that must sign with
// Message-Authenticator, no detail or linelog, no debug logging) into
// c.Dir and runs `freeradius -f -d DIR` until Stop.
func StartFreeRADIUS(c FreeRADIUSConfig) (*FreeRADIUS, error) {
	if err := NeedFreeRADIUS(); err != nil {
		return nil, err
	}
	bin, _ := lookPath("freeradius")
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	if c.PoolMax < 1 {
		c.PoolMax = 16
	}
	if c.Threads < 1 {
		c.Threads = 32
	}
	if c.Timeout < 1 {
		c.Timeout = 5
	}
	for _, d := range []string{"run", "log"} {
		if err := os.MkdirAll(filepath.Join(c.Dir, d), 0o700); err != nil {
			return nil, err
		}
	}
	dict := "$INCLUDE /usr/share/freeradius/dictionary\n"
	if err := os.WriteFile(filepath.Join(c.Dir, "dictionary"), []byte(dict), 0o600); err != nil {
		return nil, err
	}
	conf := fmt.Sprintf(`# Written by the mfabridge benchmark: PAP checked by an LDAP bind.
prefix = /usr
exec_prefix = /usr
sysconfdir = /etc
localstatedir = /var
sbindir = /usr/sbin
confdir = %[1]s
raddbdir = %[1]s
logdir = %[1]s/log
run_dir = %[1]s/run
libdir = %[2]s
pidfile = %[1]s/run/radiusd.pid
name = radiusd
max_request_time = 30
cleanup_delay = 5
max_requests = 65536
hostname_lookups = no

log {
	destination = stdout
	colourise = no
	stripped_names = no
	auth = no
	auth_badpass = no
	auth_goodpass = no
}

security {
	allow_core_dumps = no
	max_attributes = 200
	reject_delay = 0
	status_server = yes
}

proxy_requests = no

thread pool {
	start_servers = %[3]d
	max_servers = %[3]d
	min_spare_servers = 1
	max_spare_servers = %[3]d
	max_requests_per_server = 0
	max_queue_size = 65536
	auto_limit_acct = no
}

client local {
	ipaddr = 127.0.0.1
	secret = %[4]q
	require_message_authenticator = yes
	nas_type = other
}

modules {
	pap {
		normalise = yes
	}
	ldap {
		server = %[5]q
		port = %[6]s
		identity = %[7]q
		password = %[8]q
		base_dn = %[9]q
		user {
			base_dn = "${..base_dn}"
			filter = %[10]q
		}
		options {
			chase_referrals = no
			rebind = no
			res_timeout = %[11]d
			srv_timelimit = %[11]d
			net_timeout = %[11]d
			idle = 60
			probes = 3
			interval = 3
			ldap_debug = 0
		}
		pool {
			start = %[12]d
			min = %[12]d
			max = %[12]d
			spare = 0
			uses = 0
			retry_delay = 1
			lifetime = 0
			idle_timeout = 0
		}
	}
}

instantiate {
}

server bench {
	listen {
		type = auth
		ipaddr = 127.0.0.1
		port = %[13]d
	}
	authorize {
		ldap
		if ((ok || updated)) {
			update control {
				Auth-Type := ldap
			}
		}
	}
	authenticate {
		Auth-Type ldap {
			ldap
		}
	}
}
`, c.Dir, freeradiusModules, c.Threads, c.Secret, c.LDAPHost, c.LDAPPort, c.BindDN, c.BindPassword, c.BaseDN,
		c.Filter, c.Timeout, c.PoolMax, port)
	if err := os.WriteFile(filepath.Join(c.Dir, "radiusd.conf"), []byte(conf), 0o600); err != nil {
		return nil, err
	}
	f := &FreeRADIUS{Addr: fmt.Sprintf("127.0.0.1:%d", port), exited: make(chan struct{})}
	f.cmd = exec.Command(bin, "-f", "-d", c.Dir, "-n", "radiusd", "-l", "stdout")
	f.cmd.Stdout = &lockedWriter{mu: &f.mu, w: &f.log}
	f.cmd.Stderr = f.cmd.Stdout
	f.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := f.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start freeradius: %w", err)
	}
	go func() { f.cmd.Wait(); close(f.exited) }()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); {
		select {
		case <-f.exited:
			return nil, fmt.Errorf("freeradius exited at start:\n%s", f.Log())
		default:
		}
		if strings.Contains(f.Log(), "Ready to process requests") {
			return f, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	f.Stop()
	return nil, fmt.Errorf("freeradius did not get ready within 20s:\n%s", f.Log())
}

// Log returns radiusd's output so far.
func (f *FreeRADIUS) Log() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.log.String()
}

// PID is the process id of radiusd.
func (f *FreeRADIUS) PID() int { return f.cmd.Process.Pid }

// Exited reports whether radiusd has ended.
func (f *FreeRADIUS) Exited() bool {
	select {
	case <-f.exited:
		return true
	default:
		return false
	}
}

// Stop ends radiusd (SIGTERM, then SIGKILL) and waits for it.
func (f *FreeRADIUS) Stop() {
	if f.Exited() {
		return
	}
	f.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-f.exited:
	case <-time.After(5 * time.Second):
		f.cmd.Process.Kill()
		<-f.exited
	}
}
