package harness

import (
	"bytes"
	"errors"
	"fmt"
	"go/build"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// BuildBridge compiles cmd/mfabridge into dir, with the race detector
// when the calling test binary has it, and returns the binary's path.
func BuildBridge(dir string) (string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "mfabridge")
	args := []string{"build", "-o", bin}
	if RaceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "./cmd/mfabridge")
	cmd := exec.Command(GoTool(), args...)
	cmd.Dir = root
	if !RaceEnabled {
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/mfabridge: %v\n%s", err, out)
	}
	return bin, nil
}

// GoTool is the go command of the toolchain running the tests, or the
// one on PATH.
func GoTool() string {
	p := filepath.Join(build.Default.GOROOT, "bin", "go")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	return "go"
}

// ModuleRoot finds the directory holding go.mod, upwards from here.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// Bridge is a running mfabridge process.
type Bridge struct {
	ConfigFile string
	cmd        *exec.Cmd
	mu         sync.Mutex
	stdout     bytes.Buffer // the audit log when audit_file is unset
	stderr     bytes.Buffer // the operational log
	exited     chan struct{}
	exitCode   int
}

// StartBridge runs bin serve --config configFile with extra environment
// and waits until it logs that it has started.
func StartBridge(bin, configFile string, env ...string) (*Bridge, error) {
	return StartBridgeTee(bin, configFile, nil, env...)
}

// StartBridgeTee is StartBridge that also copies the operational log to
// tee when it is not nil.
func StartBridgeTee(bin, configFile string, tee io.Writer, env ...string) (*Bridge, error) {
	b := &Bridge{ConfigFile: configFile, exited: make(chan struct{})}
	b.cmd = exec.Command(bin, "serve", "--config", configFile)
	b.cmd.Env = append(os.Environ(), env...)
	b.cmd.Stdout = &lockedWriter{mu: &b.mu, w: &b.stdout}
	var stderr io.Writer = &lockedWriter{mu: &b.mu, w: &b.stderr}
	if tee != nil {
		stderr = io.MultiWriter(stderr, tee)
	}
	b.cmd.Stderr = stderr
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := b.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		b.cmd.Wait()
		b.exitCode = b.cmd.ProcessState.ExitCode()
		close(b.exited)
	}()
	deadline := time.After(30 * time.Second)
	for {
		if strings.Contains(b.Logs(), "mfabridge started") {
			return b, nil
		}
		select {
		case <-b.exited:
			return nil, fmt.Errorf("mfabridge exited with status %d at start:\n%s", b.exitCode, b.Logs())
		case <-deadline:
			b.Kill()
			return nil, fmt.Errorf("mfabridge did not start within 30s:\n%s", b.Logs())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Logs returns the operational log so far.
func (b *Bridge) Logs() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.stderr.String()
}

// Stdout returns standard output so far (audit records by default).
func (b *Bridge) Stdout() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.stdout.String()
}

// PID is the process id.
func (b *Bridge) PID() int { return b.cmd.Process.Pid }

// Signal sends sig to the process.
func (b *Bridge) Signal(sig os.Signal) error { return b.cmd.Process.Signal(sig) }

// Stop sends SIGTERM and returns the exit status.
func (b *Bridge) Stop() (int, error) {
	b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.exited:
		return b.exitCode, nil
	case <-time.After(20 * time.Second):
		b.Kill()
		return -1, errors.New("mfabridge did not exit within 20s of SIGTERM")
	}
}

// Kill ends the process at once.
func (b *Bridge) Kill() {
	b.cmd.Process.Kill()
	<-b.exited
}

// Exited reports whether the process has ended.
func (b *Bridge) Exited() bool {
	select {
	case <-b.exited:
		return true
	default:
		return false
	}
}

// WaitLog waits until the log contains s.
func (b *Bridge) WaitLog(s string, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if strings.Contains(b.Logs(), s) {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// Eventually polls cond every 20ms until it holds or timeout passes.
func Eventually(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}
