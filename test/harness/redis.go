package harness

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Redis is a throwaway redis-server (or Sentinel) on loopback, with no
// persistence.
type Redis struct {
	Dir      string
	Port     int
	Addr     string // 127.0.0.1:PORT
	Username string // the bridge's ACL user ("" for none)
	Password string
	CA       *CA // set when it speaks TLS only
	conf     string
	sentinel bool
	mu       sync.Mutex
	log      bytes.Buffer
	cmd      *exec.Cmd
	exited   chan struct{}
}

// RedisOptions configure StartRedis.
type RedisOptions struct {
	// Username and Password make an ACL user limited to the bridge's
	// keys (~mfabridge:*); the default user is then off. Empty: no
	// authentication.
	Username, Password string
	// TLS serves TLS only, with a server certificate of this CA.
	TLS *CA
	// ReplicaOf makes it a replica of that primary (host:port).
	ReplicaOf string
	// Port to listen on; 0: a free one.
	Port int
}

// AdminUser is the ACL user replicas and Sentinels use when the bridge's
// user is limited to its own keys.
const (
	AdminUser = "admin"
	AdminPass = "redis-admin-pass-for-tests"
)

// StartRedis starts redis-server in dir.
func StartRedis(dir string, o RedisOptions) (*Redis, error) {
	if err := Need("redis-server", "redis-cli"); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	port := o.Port
	if port == 0 {
		var err error
		if port, err = FreePort(); err != nil {
			return nil, err
		}
	}
	r := &Redis{Dir: dir, Port: port, Addr: "127.0.0.1:" + strconv.Itoa(port), Username: o.Username, Password: o.Password,
		CA: o.TLS, conf: filepath.Join(dir, "redis.conf")}
	var c strings.Builder
	fmt.Fprintf(&c, "bind 127.0.0.1\nprotected-mode no\ndir %s\nsave \"\"\nappendonly no\ndaemonize no\nlogfile \"\"\n", dir)
	if o.TLS != nil {
		cert, key, err := o.TLS.ServerCert(dir, "redis")
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(&c, "port 0\ntls-port %d\ntls-cert-file %s\ntls-key-file %s\ntls-ca-cert-file %s\ntls-auth-clients no\n",
			port, cert, key, o.TLS.CertFile)
	} else {
		fmt.Fprintf(&c, "port %d\n", port)
	}
	if o.Username != "" {
		fmt.Fprintf(&c, "user default off\nuser %s on >%s resetkeys ~mfabridge:* resetchannels -@all +@read +@write +@scripting +@connection +role\nuser %s on >%s ~* &* +@all\n",
			o.Username, o.Password, AdminUser, AdminPass)
		fmt.Fprintf(&c, "masteruser %s\nmasterauth %s\n", AdminUser, AdminPass)
	} else if o.Password != "" {
		fmt.Fprintf(&c, "requirepass %s\nmasterauth %s\n", o.Password, o.Password)
	}
	if o.ReplicaOf != "" {
		h, p, _ := strings.Cut(o.ReplicaOf, ":")
		fmt.Fprintf(&c, "replicaof %s %s\n", h, p)
	}
	if err := os.WriteFile(r.conf, []byte(c.String()), 0o600); err != nil {
		return nil, err
	}
	return r, r.Start()
}

// SentinelOptions configure StartSentinel.
type SentinelOptions struct {
	Master  string // the name monitored
	Primary *Redis
}

// StartSentinel starts a Sentinel in dir watching o.Primary under
// o.Master, quorum 1, declaring it down after 1 s.
func StartSentinel(dir string, o SentinelOptions) (*Redis, error) {
	if err := Need("redis-server", "redis-cli"); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	r := &Redis{Dir: dir, Port: port, Addr: "127.0.0.1:" + strconv.Itoa(port), conf: filepath.Join(dir, "sentinel.conf"), sentinel: true}
	var c strings.Builder
	fmt.Fprintf(&c, "port %d\nbind 127.0.0.1\nprotected-mode no\ndir %s\ndaemonize no\nlogfile \"\"\n", port, dir)
	fmt.Fprintf(&c, "sentinel monitor %s 127.0.0.1 %d 1\n", o.Master, o.Primary.Port)
	fmt.Fprintf(&c, "sentinel down-after-milliseconds %s 1000\nsentinel failover-timeout %s 5000\nsentinel parallel-syncs %s 1\n",
		o.Master, o.Master, o.Master)
	if o.Primary.Username != "" {
		fmt.Fprintf(&c, "sentinel auth-user %s %s\nsentinel auth-pass %s %s\n", o.Master, AdminUser, o.Master, AdminPass)
	} else if o.Primary.Password != "" {
		fmt.Fprintf(&c, "sentinel auth-pass %s %s\n", o.Master, o.Primary.Password)
	}
	// Sentinel rewrites its file, so it must own a writable one.
	if err := os.WriteFile(r.conf, []byte(c.String()), 0o600); err != nil {
		return nil, err
	}
	return r, r.Start()
}

// Start starts the server (again, on the same port, after Stop or Kill).
func (r *Redis) Start() error {
	args := []string{r.conf}
	if r.sentinel {
		args = append(args, "--sentinel")
	}
	bin, _ := lookPath("redis-server")
	r.cmd = exec.Command(bin, args...)
	r.cmd.Stdout = &lockedWriter{mu: &r.mu, w: &r.log}
	r.cmd.Stderr = r.cmd.Stdout
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := r.cmd.Start(); err != nil {
		return err
	}
	r.exited = make(chan struct{})
	go func(c *exec.Cmd, done chan struct{}) { c.Wait(); close(done) }(r.cmd, r.exited)
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-r.exited:
			return fmt.Errorf("redis-server exited at start:\n%s", r.Log())
		default:
		}
		if out, err := r.CLI("PING"); err == nil && strings.TrimSpace(out) == "PONG" {
			return nil
		}
		if time.Now().After(deadline) {
			r.Kill()
			return fmt.Errorf("redis-server did not answer within 10s:\n%s", r.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// CLI runs redis-cli against the server as the admin (or the only) user
// and returns its output.
func (r *Redis) CLI(args ...string) (string, error) {
	base := []string{"-h", "127.0.0.1", "-p", strconv.Itoa(r.Port), "--no-auth-warning"}
	switch {
	case r.sentinel:
	case r.Username != "":
		base = append(base, "--user", AdminUser, "--pass", AdminPass)
	case r.Password != "":
		base = append(base, "-a", r.Password)
	}
	if r.CA != nil {
		base = append(base, "--tls", "--cacert", r.CA.CertFile)
	}
	bin, err := lookPath("redis-cli")
	if err != nil {
		return "", fmt.Errorf("redis-cli (package redis-tools) is missing: %w", err)
	}
	out, err := exec.Command(bin, append(base, args...)...).CombinedOutput()
	return string(out), err
}

// Stop ends the server with SIGTERM.
func (r *Redis) Stop() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.exited:
	case <-time.After(5 * time.Second):
		r.cmd.Process.Kill()
		<-r.exited
	}
	r.cmd = nil
}

// Kill ends the server at once, as a crash would.
func (r *Redis) Kill() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	r.cmd.Process.Kill()
	<-r.exited
	r.cmd = nil
}

// Log returns the server's output so far.
func (r *Redis) Log() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.log.String()
}
