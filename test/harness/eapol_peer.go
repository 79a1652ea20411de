package harness

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// EAPOLPeer says where an eapol_test run comes from.
type EAPOLPeer struct {
	ClientIP string // -A: the source address, e.g. "127.0.0.2" for another configured client; "" lets the system choose
	MAC      string // -M, as 02:00:00:00:00:01: sent as Calling-Station-Id 02-00-00-00-00-01, which tells runs apart in audit records
}

// RunEAPOLTestAs is RunEAPOLTest from a chosen source address and
// Calling-Station-Id.
func RunEAPOLTestAs(ctx context.Context, dir, server, secret string, e EAPOL, p EAPOLPeer) (EAPOLResult, error) {
	bin, err := lookPath("eapol_test")
	if err != nil {
		return EAPOLResult{}, Need("eapol_test")
	}
	var phase1 []string
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
	args := []string{"-c", f.Name(), "-a", host, "-p", port, "-s", secret, "-r", "0", "-t", "20"}
	if p.ClientIP != "" {
		args = append(args, "-A", p.ClientIP)
	}
	if p.MAC != "" {
		args = append(args, "-M", p.MAC)
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = filepath.Dir(f.Name())
	out, _ := cmd.CombinedOutput()
	r := EAPOLResult{Out: string(out)}
	r.Success = strings.Contains(r.Out, "\nSUCCESS")
	r.MPPEOK = strings.Contains(r.Out, "MPPE keys OK: 1  mismatch: 0")
	return r, nil
}

// RadiusMessage is one RADIUS message as eapol_test dumps it, sent or
// received.
type RadiusMessage struct {
	Code  int    // 1 Access-Request, 2 Access-Accept, 3 Access-Reject, 11 Access-Challenge
	Name  string // "Access-Accept", …
	Attrs []RadiusAttr
}

// RadiusAttr is one attribute of a dumped message.
type RadiusAttr struct {
	Type   int
	Name   string // eapol_test's name, e.g. "Class"
	Length int    // the attribute's length field, header included
	Value  string // as printed: 'text', a number, an address or hex
}

// Bytes decodes a hex-dumped value; nil if the value is not hex.
func (a RadiusAttr) Bytes() []byte {
	b, err := hex.DecodeString(a.Value)
	if err != nil {
		return nil
	}
	return b
}

// Values returns the decoded values of every attribute of type t.
func (m RadiusMessage) Values(t int) [][]byte {
	var out [][]byte
	for _, a := range m.Attrs {
		if a.Type == t {
			out = append(out, a.Bytes())
		}
	}
	return out
}

// Texts returns the values of every attribute of type t that
// eapol_test printed as text ('…'), without the quotes.
func (m RadiusMessage) Texts(t int) []string {
	var out []string
	for _, a := range m.Attrs {
		if a.Type == t && len(a.Value) >= 2 && a.Value[0] == '\'' && a.Value[len(a.Value)-1] == '\'' {
			out = append(out, a.Value[1:len(a.Value)-1])
		}
	}
	return out
}

// EAP joins the message's EAP-Message attributes (RFC 3579 §3.1).
func (m RadiusMessage) EAP() []byte {
	var b []byte
	for _, v := range m.Values(79) {
		b = append(b, v...)
	}
	return b
}

var (
	msgRE     = regexp.MustCompile(`^RADIUS message: code=(\d+) \(([^)]*)\)`)
	msgAttrRE = regexp.MustCompile(`^\s+Attribute (\d+) \(([^)]*)\) length=(\d+)`)
	msgValRE  = regexp.MustCompile(`^\s+Value: (.*)$`)
	tlsVerRE  = regexp.MustCompile(`SSL: Using TLS version (\S+)`)
)

// EAPOLMessages parses the RADIUS messages of eapol_test's output, in
// order.
func EAPOLMessages(out string) []RadiusMessage {
	var msgs []RadiusMessage
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if m := msgRE.FindStringSubmatch(line); m != nil {
			code, _ := strconv.Atoi(m[1])
			msgs = append(msgs, RadiusMessage{Code: code, Name: m[2]})
			continue
		}
		if len(msgs) == 0 {
			continue
		}
		cur := &msgs[len(msgs)-1]
		if m := msgAttrRE.FindStringSubmatch(line); m != nil {
			t, _ := strconv.Atoi(m[1])
			n, _ := strconv.Atoi(m[3])
			cur.Attrs = append(cur.Attrs, RadiusAttr{Type: t, Name: m[2], Length: n})
			continue
		}
		if m := msgValRE.FindStringSubmatch(line); m != nil && len(cur.Attrs) > 0 && cur.Attrs[len(cur.Attrs)-1].Value == "" {
			cur.Attrs[len(cur.Attrs)-1].Value = m[1]
		}
	}
	return msgs
}

// EAPOLTLSVersion returns the TLS version eapol_test last reported
// ("TLSv1.2", "TLSv1.3"), or "".
func EAPOLTLSVersion(out string) string {
	m := tlsVerRE.FindAllStringSubmatch(out, -1)
	if len(m) == 0 {
		return ""
	}
	return m[len(m)-1][1]
}
