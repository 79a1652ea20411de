package harness

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"regexp"
	"strings"
	"time"

	"layeh.com/radius"
	"layeh.com/radius/rfc2865"

	mradius "github.com/mfabridge/mfabridge/radius"
)

// Client is a RADIUS client on a chosen loopback address that sends any
// bytes and returns the raw reply, for tests that need exact bytes or a
// particular source address.
type Client struct {
	conn   *net.UDPConn
	server *net.UDPAddr
	Secret []byte
}

// NewClient binds localIP (e.g. "127.0.0.2") on a free port.
func NewClient(localIP, server string, secret string) (*Client, error) {
	sa, err := net.ResolveUDPAddr("udp", server)
	if err != nil {
		return nil, err
	}
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(localIP)})
	if err != nil {
		return nil, err
	}
	return &Client{conn: conn, server: sa, Secret: []byte(secret)}, nil
}

// Close releases the socket.
func (c *Client) Close() error { return c.conn.Close() }

// LocalAddr is the client's source address.
func (c *Client) LocalAddr() *net.UDPAddr { return c.conn.LocalAddr().(*net.UDPAddr) }

// Send sends raw bytes.
func (c *Client) Send(b []byte) error {
	_, err := c.conn.WriteToUDP(b, c.server)
	return err
}

// ErrNoReply means nothing came back within the timeout.
var ErrNoReply = errors.New("no reply")

// Receive waits for one datagram.
func (c *Client) Receive(timeout time.Duration) ([]byte, error) {
	c.conn.SetReadDeadline(time.Now().Add(timeout))
	buf := make([]byte, 8192)
	n, _, err := c.conn.ReadFromUDP(buf)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil, ErrNoReply
		}
		return nil, err
	}
	return buf[:n], nil
}

// Exchange encodes and sends p once, then waits for the reply with p's
// Identifier, checks its Response Authenticator and returns it parsed and
// raw. A reply with a bad Response Authenticator is an error.
func (c *Client) Exchange(p *radius.Packet, timeout time.Duration) (*radius.Packet, []byte, error) {
	b, err := p.Encode()
	if err != nil {
		return nil, nil, err
	}
	if err := c.Send(b); err != nil {
		return nil, nil, err
	}
	return c.ReplyTo(b, timeout)
}

// ReplyTo waits for the reply to the request in raw.
func (c *Client) ReplyTo(raw []byte, timeout time.Duration) (*radius.Packet, []byte, error) {
	deadline := time.Now().Add(timeout)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return nil, nil, ErrNoReply
		}
		rb, err := c.Receive(left)
		if err != nil {
			return nil, nil, err
		}
		if len(rb) < 20 || rb[1] != raw[1] {
			continue
		}
		if !radius.IsAuthenticResponse(rb, raw, c.Secret) {
			return nil, rb, errors.New("reply has a bad Response Authenticator")
		}
		resp, err := radius.Parse(rb, c.Secret)
		return resp, rb, err
	}
}

// Request builds an Access-Request for user and password, signed with
// Message-Authenticator when sign is set; more sets extra attributes
// before signing.
func Request(secret, user, password string, sign bool, more ...func(*radius.Packet)) *radius.Packet {
	p := radius.New(radius.CodeAccessRequest, []byte(secret))
	rfc2865.UserName_SetString(p, user)
	rfc2865.UserPassword_SetString(p, password)
	rfc2865.NASIdentifier_SetString(p, "harness")
	for _, f := range more {
		f(p)
	}
	if sign {
		if err := mradius.Sign(p); err != nil {
			panic(err)
		}
	}
	return p
}

// RadReply is radclient's view of a reply.
type RadReply struct {
	Code  string              // Access-Accept, Access-Reject, Access-Challenge; "" for none
	Attrs map[string][]string // attribute name → values as radclient prints them
	Out   string              // the whole output
}

var receivedRE = regexp.MustCompile(`Received (Access-\w+|Accounting-\w+) Id`)
var attrRE = regexp.MustCompile(`^\s+([A-Za-z0-9-]+) = (.*)$`)

// Radclient runs radclient once (no retries) with attrs on standard
// input, e.g. `User-Name = "bob", User-Password = "x"`. kind is auth or
// status. A timeout is not an error: Code is "".
func Radclient(ctx context.Context, server, secret, kind, attrs string) (RadReply, error) {
	bin, err := lookPath("radclient")
	if err != nil {
		return RadReply{}, Need("radclient")
	}
	cmd := exec.CommandContext(ctx, bin, "-x", "-r", "1", "-t", "3", server, kind, secret)
	cmd.Stdin = strings.NewReader(attrs + "\n")
	outb, err := cmd.CombinedOutput()
	out := string(outb)
	r := RadReply{Attrs: map[string][]string{}, Out: out}
	inReply := false
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if m := receivedRE.FindStringSubmatch(line); m != nil {
			r.Code, inReply = m[1], true
			continue
		}
		if strings.HasPrefix(line, "Sent ") {
			inReply = false
		}
		if m := attrRE.FindStringSubmatch(line); m != nil && inReply {
			r.Attrs[m[1]] = append(r.Attrs[m[1]], strings.Trim(m[2], `"`))
		}
	}
	if r.Code == "" && err != nil && !strings.Contains(out, "No reply from server") {
		return r, fmt.Errorf("radclient: %v\n%s", err, out)
	}
	return r, nil
}
