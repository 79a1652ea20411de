package harness

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// EAPOL describes one eapol_test run: an EAP-TLS supplicant with a client
// certificate, checking the server's certificate against CACert.
type EAPOL struct {
	Identity     string
	CACert       string
	ClientCert   string
	ClientKey    string
	TLS13        bool // allow TLS 1.3 (off by default in this eapol_test)
	TLS12Only    bool
	FragmentSize int // 0: eapol_test's default
}

// EAPOLResult is what eapol_test printed and concluded.
type EAPOLResult struct {
	Out     string
	Success bool // printed SUCCESS
	MPPEOK  bool // "MPPE keys OK: 1  mismatch: 0"
}

// RunEAPOLTest runs eapol_test against server with secret.
func RunEAPOLTest(ctx context.Context, dir, server, secret string, e EAPOL) (EAPOLResult, error) {
	bin, err := lookPath("eapol_test")
	if err != nil {
		return EAPOLResult{}, Need("eapol_test")
	}
	phase1 := []string{}
	if e.TLS13 {
		phase1 = append(phase1, "tls_disable_tlsv1_3=0")
	}
	if e.TLS12Only {
		phase1 = append(phase1, "tls_disable_tlsv1_3=1", "tls_disable_tlsv1_0=1", "tls_disable_tlsv1_1=1")
	}
	conf := fmt.Sprintf(`network={
	key_mgmt=WPA-EAP
	eap=TLS
	identity=%q
	ca_cert=%q
	client_cert=%q
	private_key=%q
	eapol_flags=0
	phase1=%q
`, e.Identity, e.CACert, e.ClientCert, e.ClientKey, strings.Join(phase1, " "))
	if e.FragmentSize > 0 {
		conf += fmt.Sprintf("\tfragment_size=%d\n", e.FragmentSize)
	}
	conf += "}\n"
	f, err := os.CreateTemp(dir, "eapol-*.conf")
	if err != nil {
		return EAPOLResult{}, err
	}
	f.WriteString(conf)
	f.Close()
	host, port, _ := strings.Cut(server, ":")
	ctx, cancel := context.WithTimeout(ctx, 40*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-c", f.Name(), "-a", host, "-p", port, "-s", secret, "-r", "0", "-t", "20")
	cmd.Dir = filepath.Dir(f.Name())
	out, _ := cmd.CombinedOutput()
	r := EAPOLResult{Out: string(out)}
	r.Success = strings.Contains(r.Out, "\nSUCCESS")
	r.MPPEOK = strings.Contains(r.Out, "MPPE keys OK: 1  mismatch: 0")
	return r, nil
}
