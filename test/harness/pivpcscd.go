package harness

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// PCSCDSocket is where pcscd 1.9.9 listens. The daemon ignores
// PCSCLITE_CSOCK_NAME, so one pcscd at a time fits a machine (or a mount
// namespace with its own /run/pcscd).
const PCSCDSocket = "/run/pcscd/pcscd.comm"

// vpcdDriver is the reader driver of Debian's vsmartcard-vpcd.
const vpcdDriver = "/usr/lib/pcsc/drivers/serial/libifdvpcd.so"

// NeedPCSC returns an error with the install step for everything the
// smartcard tool's tests need that is missing: root (pcscd binds
// /run/pcscd), pcscd, the vpcd reader driver, and for the cgo build of
// cmd/mfacard gcc, pkg-config and libpcsclite's development files.
func NeedPCSC() error {
	var missing, pkgs []string
	need := func(ok bool, what, pkg string) {
		if !ok {
			missing = append(missing, fmt.Sprintf("%s (package %s)", what, pkg))
			pkgs = append(pkgs, pkg)
		}
	}
	_, err := lookPath("pcscd")
	need(err == nil, "pcscd", "pcscd")
	_, err = os.Stat(vpcdDriver)
	need(err == nil, vpcdDriver, "vsmartcard-vpcd")
	_, err = exec.LookPath("gcc")
	need(err == nil, "gcc", "gcc")
	pc, err := exec.LookPath("pkg-config")
	need(err == nil, "pkg-config", "pkgconf")
	if err == nil {
		need(exec.Command(pc, "--exists", "libpcsclite").Run() == nil, "libpcsclite.pc", "libpcsclite-dev")
	}
	var problems []string
	if len(missing) > 0 {
		problems = append(problems, fmt.Sprintf("missing for the smartcard tests: %s; install them with: sudo scripts/deps (or: sudo apt-get install -y %s)",
			strings.Join(missing, ", "), strings.Join(pkgs, " ")))
	}
	if os.Geteuid() != 0 {
		problems = append(problems, "the smartcard tests start pcscd, which must run as root (it creates /run/pcscd/pcscd.comm): run them as root")
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// BuildMfacard compiles cmd/mfacard with cgo (and -race when this binary
// has it, which reuses the test build's cache) into dir and returns the
// binary's path. Run a -race mfacard with GORACE=atexit_sleep_ms=0, or
// each run lasts a second longer.
func BuildMfacard(dir string) (string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "mfacard")
	args := []string{"build", "-o", bin}
	if RaceEnabled {
		args = append(args, "-race")
	}
	cmd := exec.Command(GoTool(), append(args, "./cmd/mfacard")...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/mfacard (cgo): %v\n%s", err, out)
	}
	return bin, nil
}

// PCSCD is a pcscd started for a test, with the vpcd reader driver on a
// loopback port of its own or with no reader at all.
type PCSCD struct {
	Dir  string
	Port int // vpcd's port for slot "Virtual PCD 00 00"; slot 00 01 is Port+1; 0 without vpcd
	cmd  *exec.Cmd
	log  *pcscdLog
	done chan struct{}
}

// StartPCSCD starts pcscd --foreground --config dir/readers. With vpcd it
// gets a reader file for the vpcd driver on two free ports; without, an
// empty reader directory, so pcscd runs and sees no reader. It fails when
// another pcscd answers on PCSCDSocket, and returns once pcscd listens
// there.
func StartPCSCD(dir string, vpcd bool) (*PCSCD, error) {
	if err := foreignPCSCD(); err != nil {
		return nil, err
	}
	pcscd, err := lookPath("pcscd")
	if err != nil {
		return nil, errors.New("pcscd is not installed: sudo apt-get install -y pcscd")
	}
	p := &PCSCD{Dir: dir, log: &pcscdLog{}, done: make(chan struct{})}
	conf := filepath.Join(dir, "readers")
	if err := os.MkdirAll(conf, 0o755); err != nil {
		return nil, err
	}
	if vpcd {
		if p.Port, err = freePortPair(); err != nil {
			return nil, err
		}
		// DEVICENAME /dev/null:PORT makes vpcd listen for the card on
		// PORT and PORT+1 (two slots). The reversed form host:port, where
		// vpcd dials the card, crashed pcscd when nothing listened.
		reader := fmt.Sprintf("FRIENDLYNAME \"Virtual PCD\"\nDEVICENAME /dev/null:%d\nLIBPATH %s\n", p.Port, vpcdDriver)
		if err := os.WriteFile(filepath.Join(conf, "vpcd"), []byte(reader), 0o644); err != nil {
			return nil, err
		}
	}
	p.cmd = exec.Command(pcscd, "--foreground", "--config", conf)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	// SIGTERM, not SIGKILL, if the test binary dies: pcscd then removes
	// its socket and pid file.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start pcscd: %w", err)
	}
	go func() {
		p.cmd.Wait()
		close(p.done)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			return nil, fmt.Errorf("pcscd exited at start (%v):\n%s", p.cmd.ProcessState, p.log.String())
		default:
		}
		if pid, _ := os.ReadFile("/run/pcscd/pcscd.pid"); pidOf(pid) == strconv.Itoa(p.cmd.Process.Pid) {
			if c, err := net.Dial("unix", PCSCDSocket); err == nil {
				c.Close()
				return p, nil
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	p.Stop()
	return nil, fmt.Errorf("pcscd did not listen on %s within 10s:\n%s", PCSCDSocket, p.log.String())
}

// foreignPCSCD fails when some other pcscd owns the socket: a test must
// not take over, or stop, a pcscd it did not start.
func foreignPCSCD() error {
	if _, err := os.Stat(PCSCDSocket); err != nil {
		return nil
	}
	c, err := net.Dial("unix", PCSCDSocket)
	if err != nil {
		return nil // left behind by a pcscd that died; pcscd replaces it
	}
	c.Close()
	pid, _ := os.ReadFile("/run/pcscd/pcscd.pid")
	return fmt.Errorf("another pcscd (pid %s) listens on %s, and the tests need their own: stop it (systemctl stop pcscd.socket pcscd), or run the tests in a mount namespace with a private /run/pcscd",
		orUnknown(pidOf(pid)), PCSCDSocket)
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// freePortPair returns a port p with p and p+1 free on TCP at the time of
// the call.
func freePortPair() (int, error) {
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		p := l.Addr().(*net.TCPAddr).Port
		l2, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p+1))
		l.Close()
		if err == nil {
			l2.Close()
			return p, nil
		}
	}
	return 0, errors.New("no two free adjacent ports")
}

// SlotAddr is where the card of slot i (0 or 1) connects to vpcd.
func (p *PCSCD) SlotAddr(i int) string { return "127.0.0.1:" + strconv.Itoa(p.Port+i) }

// Logs returns what pcscd printed.
func (p *PCSCD) Logs() string { return p.log.String() }

// Stop ends pcscd with SIGTERM (SIGKILL after 5 s) and waits for it to
// exit; pcscd removes its socket and pid file as it goes.
func (p *PCSCD) Stop() error {
	select {
	case <-p.done:
		return nil
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("pcscd did not stop within 5s of SIGTERM and was killed")
	}
	return nil
}

// CardCertKey issues a card certificate like CardCert but for the given
// key (RSA, or ECDSA on another curve), and writes dir/name.pem and
// dir/name-key.pem.
func (ca *CA) CardCertKey(dir, name string, o CardOptions, key crypto.Signer) (certFile, keyFile string, cert *x509.Certificate, err error) {
	certFile, keyFile, proto, err := ca.CardCert(dir, name, o)
	if err != nil {
		return "", "", nil, err
	}
	// Issue the same certificate again for key: CardCert's SAN moves to
	// ExtraExtensions, the key identifiers are derived anew.
	tmpl := *proto
	tmpl.ExtraExtensions = nil
	for _, e := range proto.Extensions {
		if e.Id.Equal(oidSAN) {
			tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, e)
		}
	}
	tmpl.SubjectKeyId, tmpl.AuthorityKeyId, tmpl.PublicKey, tmpl.PublicKeyAlgorithm = nil, nil, nil, 0
	tmpl.SerialNumber = serial()
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return "", "", nil, err
	}
	if cert, err = x509.ParseCertificate(der); err != nil {
		return "", "", nil, err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", "", nil, err
	}
	if err := writePEM(certFile, "CERTIFICATE", der, 0o644); err != nil {
		return "", "", nil, err
	}
	return certFile, keyFile, cert, writePEM(keyFile, "PRIVATE KEY", kder, 0o600)
}

// pcscdLog collects pcscd's output while tests read it.
type pcscdLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *pcscdLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *pcscdLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// pidOf reads pcscd.pid, which pcscd ends with a newline and a NUL.
func pidOf(b []byte) string { return strings.Trim(string(b), " \n\x00") }
