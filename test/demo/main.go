// Command demo starts a throwaway directory (slapd with demo users) and
// mfabridge in front of it, on loopback, and prints what to type to try
// it. Ctrl-C stops both and removes the directory. Run it with
// scripts/demo, which installs slapd first if it is missing.
package main

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/hex"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"syscall"
	"text/template"
	"time"

	"github.com/mfabridge/mfabridge/factors"
	"github.com/mfabridge/mfabridge/factors/otp"
	"github.com/mfabridge/mfabridge/test/harness"
)

const demoSecret = "demo-shared-secret-change-me"

var users = []harness.User{
	{UID: "alice", Password: "Alice-demo-1", Mobile: "+447700900001", Mail: "alice@example.org", Groups: []string{"vpn-users", "vpn-admins"}},
	{UID: "bob", Password: "Bob-demo-2", Groups: []string{"vpn-users"}},
	{UID: "carol", Password: "Carol-demo-3", Groups: []string{"leavers"}},
}

var configTmpl = template.Must(template.New("cfg").Parse(`# mfabridge demo configuration, written by scripts/demo.
server:
  radius_listen: ["{{.Radius}}"]
  admin_listen: "{{.Admin}}"
clients:
  - name: demo-nas
    address: 127.0.0.1
    secret: "file:{{.Dir}}/radius.secret"
ldap:
  urls: ["{{.LDAPS}}"]
  tls: {ca_file: "{{.CA}}"}
  bind_dn: "{{.ServiceDN}}"
  bind_password: "file:{{.Dir}}/ldap.secret"
  base_dn: "{{.PeopleDN}}"
  groups: {base_dn: "{{.GroupsDN}}"}
store:
  path: "{{.Dir}}/store.db"
  key: "file:{{.Dir}}/store.key"
factors:
  totp: {issuer: "mfabridge demo"}
policies:
  default:
    mode: challenge
    mfa: required
    factors: [totp, hotp]
    deny_groups: [leavers]
    reply_attributes:
      - groups: [vpn-admins]
        attributes: {Class: "admins", Session-Timeout: "28800"}
logging: {level: info, format: text, audit_file: "{{.Dir}}/audit.log"}
portal:
  listen: "{{.Portal}}"
  public_url: "{{.PortalURL}}"
  insecure_http_loopback: true   # the demo only: a real portal serves HTTPS (portal.tls)
`))

func main() {
	os.Exit(run())
}

func run() int {
	radiusAddr := flag.String("radius", "127.0.0.1:1812", "RADIUS listen address")
	adminAddr := flag.String("admin", "127.0.0.1:9812", "admin (metrics) listen address")
	portalAddr := flag.String("portal", "127.0.0.1:8443", "self-service portal listen address (plain HTTP on loopback)")
	keep := flag.Bool("keep", false, "keep the demo directory when stopping")
	flag.Parse()

	// Take the usual ports when they are free, others when not (a
	// FreeRADIUS or another bridge may hold them).
	*radiusAddr = freeOr(*radiusAddr, "udp")
	*adminAddr = freeOr(*adminAddr, "tcp")
	*portalAddr = freeOr(*portalAddr, "tcp")
	_, portalPort, _ := net.SplitHostPort(*portalAddr)
	portalURL := "http://localhost:" + portalPort
	if err := harness.Need("slapd"); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "mfabridge-demo-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		return 1
	}
	if !*keep {
		defer os.RemoveAll(dir)
	}
	fmt.Printf("demo directory: %s\nstarting slapd with demo users…\n", dir)
	sdir := filepath.Join(dir, "slapd")
	os.MkdirAll(sdir, 0o700)
	s, err := harness.StartSLAPD(sdir, users)
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		return 1
	}
	defer s.Stop()

	fmt.Println("building mfabridge…")
	bin, err := harness.BuildBridge(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		return 1
	}
	os.WriteFile(filepath.Join(dir, "radius.secret"), []byte(demoSecret+"\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "ldap.secret"), []byte(harness.ServicePass+"\n"), 0o600)
	key := make([]byte, 32)
	rand.Read(key)
	os.WriteFile(filepath.Join(dir, "store.key"), []byte(hex.EncodeToString(key)+"\n"), 0o600)
	cfgPath := filepath.Join(dir, "mfabridge.yaml")
	f, err := os.Create(cfgPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		return 1
	}
	configTmpl.Execute(f, map[string]string{
		"Radius": *radiusAddr, "Admin": *adminAddr, "Portal": *portalAddr, "PortalURL": portalURL, "Dir": dir, "LDAPS": s.LDAPSURL, "CA": s.CA.CertFile,
		"ServiceDN": harness.ServiceDN, "PeopleDN": harness.PeopleDN, "GroupsDN": harness.GroupsDN,
	})
	f.Close()

	// alice's phone: a TOTP secret enrolled through the admin command.
	secret := make([]byte, 20)
	rand.Read(secret)
	phone := factors.Credential{Method: factors.TOTP, Secret: secret, Algorithm: "SHA1", Digits: 6, Period: 30, Active: true}
	enrol := exec.Command(bin, "enrol", "totp", "--config", cfgPath, "--user", "alice",
		"--secret", base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(secret))
	if out, err := enrol.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "demo: enrol alice: %v\n%s", err, out)
		return 1
	}

	b, err := harness.StartBridgeTee(bin, cfgPath, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		return 1
	}
	defer b.Stop()

	// bob enrols himself in the portal, with an invite from the helpdesk.
	out, err := exec.Command(bin, "user", "invite", "--config", cfgPath, "--user", "bob").Output()
	invite := regexp.MustCompile(`[A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4}`).Find(out)
	if err != nil || invite == nil {
		fmt.Fprintf(os.Stderr, "demo: user invite: %v\n%s", err, out)
		return 1
	}

	fmt.Printf(`
mfabridge is running on %[1]s (RADIUS) with its configuration in
  %[2]s
and the audit log in %[3]s/audit.log. Try it from another terminal:

  %[4]s test-auth --server %[1]s --secret file:%[3]s/radius.secret --user alice
      password Alice-demo-1, then the code this window prints for alice's
      authenticator app (Access-Challenge, then Access-Accept with Class "admins")
  %[4]s test-auth --server %[1]s --secret file:%[3]s/radius.secret --user bob
      password Bob-demo-2: rejected, bob has no second factor enrolled. Let him
      enrol himself: open %[7]s in a browser, sign in as bob with
      Bob-demo-2, type the enrolment code %[8]s, and add an
      authenticator app; then test-auth as bob again. (Or as an admin:
      %[4]s enrol totp --config %[2]s --user bob)
  %[4]s test-auth --server %[1]s --secret file:%[3]s/radius.secret --user carol
      password Carol-demo-3: rejected, carol is in the deny group "leavers"

  radclient works too:
  echo 'User-Name = "alice", User-Password = "Alice-demo-1", Message-Authenticator = 0x00' | radclient -x %[1]s auth %[5]s

Metrics: http://%[6]s/metrics   Press Ctrl-C to stop.

`, *radiusAddr, cfgPath, dir, bin, demoSecret, *adminAddr, portalURL, invite)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	lastStep := int64(-1)
	for {
		select {
		case <-ctx.Done():
			fmt.Println("\nstopping…")
			return 0
		case now := <-tick.C:
			if step := now.Unix() / 30; step != lastStep {
				lastStep = step
				fmt.Printf("alice's authenticator app shows %s (next code in %ds)\n", otp.Generate(phone, uint64(step)), 30-now.Unix()%30)
			}
			if b.Exited() {
				fmt.Fprintf(os.Stderr, "mfabridge exited:\n%s", b.Logs())
				return 1
			}
		}
	}
}

// freeOr returns addr when it can be bound, else the same host with a free
// port.
func freeOr(addr, network string) string {
	var err error
	if network == "udp" {
		var c net.PacketConn
		if c, err = net.ListenPacket("udp", addr); err == nil {
			c.Close()
		}
	} else {
		var l net.Listener
		if l, err = net.Listen("tcp", addr); err == nil {
			l.Close()
		}
	}
	if err == nil {
		return addr
	}
	host, _, _ := net.SplitHostPort(addr)
	p, perr := harness.FreePort()
	if perr != nil {
		return addr
	}
	fmt.Printf("%s is taken; using port %d instead\n", addr, p)
	return net.JoinHostPort(host, fmt.Sprint(p))
}
