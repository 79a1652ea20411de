package harness

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Postgres is a throwaway PostgreSQL cluster on loopback. initdb and
// postgres refuse to run as root, so as root (CI) the cluster belongs to
// the postgres system user, which the Debian package creates, and every
// command runs through runuser; as anyone else, as that user.
type Postgres struct {
	Dir      string
	Port     int
	User     string // the cluster's superuser, which the bridges use
	Password string
	bin      string
	runAs    string // "" or postgres
	mu       sync.Mutex
	seq      int
}

// PostgresUser and PostgresPass are the superuser of every test cluster.
const (
	PostgresUser = "mfabridge"
	PostgresPass = "pg-test-pass-3e9d1c"
)

// NeedPostgres names the install step when PostgreSQL is missing.
func NeedPostgres() (bin string, err error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", fmt.Errorf("missing test tool: PostgreSQL (package postgresql); install it with: sudo scripts/deps (or: sudo apt-get install -y postgresql)")
}

func version(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

// StartPostgres creates a cluster in a directory of its own and starts
// it on a free loopback port.
func StartPostgres() (*Postgres, error) {
	bin, err := NeedPostgres()
	if err != nil {
		return nil, err
	}
	p := &Postgres{User: PostgresUser, Password: PostgresPass, bin: bin}
	if os.Geteuid() == 0 {
		p.runAs = "postgres"
	}
	if p.Dir, err = os.MkdirTemp("", "mfabridge-pg-"); err != nil {
		return nil, err
	}
	pw := filepath.Join(p.Dir, "pw")
	if err := os.WriteFile(pw, []byte(p.Password+"\n"), 0o600); err != nil {
		return nil, err
	}
	if p.runAs != "" {
		u, err := user.Lookup(p.runAs)
		if err != nil {
			return nil, fmt.Errorf("no %s user to run PostgreSQL as (the postgresql package makes it): %w", p.runAs, err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		for _, f := range []string{p.Dir, pw} {
			if err := os.Chown(f, uid, gid); err != nil {
				return nil, err
			}
		}
	}
	if out, err := p.run("initdb", "-D", filepath.Join(p.Dir, "data"), "-A", "scram-sha-256", "--pwfile="+pw,
		"-U", p.User, "-E", "UTF8", "--locale=C", "--no-sync"); err != nil {
		return nil, fmt.Errorf("initdb: %v\n%s", err, out)
	}
	if p.Port, err = FreePort(); err != nil {
		return nil, err
	}
	return p, p.Start()
}

func (p *Postgres) run(tool string, args ...string) ([]byte, error) {
	path := filepath.Join(p.bin, tool)
	var cmd *exec.Cmd
	if p.runAs != "" {
		cmd = exec.Command("runuser", append([]string{"-u", p.runAs, "--", path}, args...)...)
	} else {
		cmd = exec.Command(path, args...)
	}
	cmd.Dir = p.Dir
	return cmd.CombinedOutput()
}

// Start starts the server (again, after Stop or Kill), waiting until it
// accepts connections.
func (p *Postgres) Start() error {
	opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -c port=%d -c unix_socket_directories=%s -c max_connections=300 -c shared_buffers=32MB",
		p.Port, p.Dir)
	if out, err := p.run("pg_ctl", "-D", filepath.Join(p.Dir, "data"), "-o", opts, "-l", filepath.Join(p.Dir, "log"), "-w", "-t", "30", "start"); err != nil {
		return fmt.Errorf("pg_ctl start: %v\n%s\n%s", err, out, p.Log())
	}
	return nil
}

// Stop stops the server, letting it finish cleanly.
func (p *Postgres) Stop() {
	p.run("pg_ctl", "-D", filepath.Join(p.Dir, "data"), "-m", "fast", "-w", "stop")
}

// Kill stops the server at once, as a crash would (it recovers from its
// log at the next Start).
func (p *Postgres) Kill() {
	p.run("pg_ctl", "-D", filepath.Join(p.Dir, "data"), "-m", "immediate", "-w", "stop")
}

// Remove stops the server and deletes the cluster.
func (p *Postgres) Remove() {
	p.Stop()
	os.RemoveAll(p.Dir)
}

// Log returns the server's log.
func (p *Postgres) Log() string {
	b, _ := os.ReadFile(filepath.Join(p.Dir, "log"))
	return string(b)
}

// DSN is the connection string of database db, with the password.
func (p *Postgres) DSN(db string) string {
	return fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/%s?sslmode=disable", p.User, p.Password, p.Port, db)
}

// NewDatabase creates an empty database of its own for one test and
// returns its name.
func (p *Postgres) NewDatabase(prefix string) (string, error) {
	p.mu.Lock()
	p.seq++
	name := fmt.Sprintf("%s_%d", strings.ToLower(sanitize(prefix)), p.seq)
	p.mu.Unlock()
	if len(name) > 60 {
		name = name[len(name)-60:]
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, p.DSN("postgres"))
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", err
	}
	return name, nil
}

func sanitize(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// Version is the server's version line, such as "PostgreSQL 15.18".
func (p *Postgres) Version() string {
	out, err := p.run("postgres", "--version")
	if err != nil {
		return ""
	}
	v := strings.TrimSpace(string(out))
	v = strings.TrimPrefix(v, "postgres (PostgreSQL) ")
	return "PostgreSQL " + strings.Fields(v + " ")[0]
}
