package harness

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// Radsecproxy is a radsecproxy that takes RADIUS over UDP on loopback and
// forwards everything over RadSec (TLS) to one server.
type Radsecproxy struct {
	UDPAddr string // where to send UDP RADIUS
	cmd     *exec.Cmd
	mu      sync.Mutex
	log     bytes.Buffer
	exited  chan struct{}
}

// RadsecproxyConfig says how radsecproxy reaches the RadSec server.
type RadsecproxyConfig struct {
	Dir       string
	UDPSecret string // secret of the UDP side
	Server    string // RadSec server host:port
	CAFile    string // verifies the server's certificate
	CertFile  string // radsecproxy's client certificate
	KeyFile   string
	// StatusServer turns on Status-Server keepalives to the server.
	StatusServer bool
}

// StartRadsecproxy writes a configuration and runs radsecproxy in the
// foreground until Stop.
func StartRadsecproxy(c RadsecproxyConfig) (*Radsecproxy, error) {
	if err := Need("radsecproxy"); err != nil {
		return nil, err
	}
	bin, _ := lookPath("radsecproxy")
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	host, sport, err := net.SplitHostPort(c.Server)
	if err != nil {
		return nil, err
	}
	status := "off"
	if c.StatusServer {
		status = "on"
	}
	conf := fmt.Sprintf(`ListenUDP 127.0.0.1:%d
LogLevel 4
tls default {
    CACertificateFile %s
    CertificateFile %s
    CertificateKeyFile %s
}
client local {
    host 127.0.0.1
    type udp
    secret %s
}
server bridge {
    host %s
    port %s
    type tls
    secret radsec
    tls default
    StatusServer %s
}
realm * {
    server bridge
}
`, port, c.CAFile, c.CertFile, c.KeyFile, c.UDPSecret, host, sport, status)
	path := filepath.Join(c.Dir, "radsecproxy.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	p := &Radsecproxy{UDPAddr: fmt.Sprintf("127.0.0.1:%d", port), exited: make(chan struct{})}
	p.cmd = exec.Command(bin, "-f", "-d", "4", "-c", path, "-i", filepath.Join(c.Dir, "radsecproxy.pid"))
	p.cmd.Stdout = &lockedWriter{mu: &p.mu, w: &p.log}
	p.cmd.Stderr = p.cmd.Stdout
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { p.cmd.Wait(); close(p.exited) }()
	// Ready when its UDP port is bound.
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		select {
		case <-p.exited:
			return nil, fmt.Errorf("radsecproxy exited at start:\n%s", p.Log())
		default:
		}
		if u, err := net.ListenPacket("udp", p.UDPAddr); err == nil {
			u.Close()
			time.Sleep(50 * time.Millisecond)
			continue
		}
		return p, nil
	}
	p.Stop()
	return nil, fmt.Errorf("radsecproxy did not bind %s:\n%s", p.UDPAddr, p.Log())
}

// Log returns radsecproxy's output.
func (p *Radsecproxy) Log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// Stop ends radsecproxy.
func (p *Radsecproxy) Stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
	}
}
