package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/term"
	"layeh.com/radius"
	"layeh.com/radius/rfc2865"

	"github.com/mfabridge/mfabridge/config"
	mradius "github.com/mfabridge/mfabridge/radius"
)

// stringList is a repeatable flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// maxRounds bounds a challenge conversation.
const maxRounds = 10

func runTestAuth(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("test-auth", flag.ContinueOnError)
	fs.SetOutput(stderr)
	server := fs.String("server", "127.0.0.1:1812", "RADIUS server host:port")
	secretRef := fs.String("secret", "", "shared secret: env:NAME, file:/path, - to be asked for it, or a literal (which ps shows) (required)")
	user := fs.String("user", "", "User-Name (required)")
	password := fs.String("password", "", "password; asked for when absent (prefer that: flags show in ps)")
	var answers stringList
	fs.Var(&answers, "answer", "answer to the next Access-Challenge; repeat for several rounds")
	timeout := fs.Duration("timeout", 10*time.Second, "how long to wait for each reply, retransmissions included")
	retry := fs.Duration("retry", 2*time.Second, "retransmit after this long without a reply; 0 sends once")
	station := fs.String("calling-station-id", "", "Calling-Station-Id to send")
	nasID := fs.String("nas-identifier", "mfabridge-test-auth", "NAS-Identifier to send")
	noMA := fs.Bool("no-message-authenticator", false, "send without Message-Authenticator, like a legacy client")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if *user == "" || *secretRef == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: mfabridge test-auth --server HOST:PORT --secret S --user U [--password P] [--answer A]...")
		return exitUsage
	}
	in := bufio.NewReader(stdin)
	secret, err := secretFlag(*secretRef, in, stdin, stderr, "Shared secret: ")
	if err != nil {
		fmt.Fprintln(stderr, "mfabridge test-auth: --secret:", err)
		return exitUsage
	}
	pw := *password
	if pw == "" {
		if pw, err = ask(in, stdin, stderr, "Password: ", true); err != nil {
			fmt.Fprintln(stderr, "mfabridge test-auth: reading the password:", err)
			return exitUsage
		}
	}

	client := &radius.Client{Retry: *retry}
	var state []byte
	response := pw
	for round := 0; round < maxRounds; round++ {
		req := radius.New(radius.CodeAccessRequest, []byte(secret))
		rfc2865.UserName_SetString(req, *user)
		if err := rfc2865.UserPassword_SetString(req, response); err != nil {
			fmt.Fprintln(stderr, "mfabridge test-auth: password:", err)
			return exitUsage
		}
		rfc2865.NASIdentifier_SetString(req, *nasID)
		if *station != "" {
			rfc2865.CallingStationID_SetString(req, *station)
		}
		if state != nil {
			rfc2865.State_Set(req, state)
		}
		if !*noMA {
			if err := mradius.Sign(req); err != nil {
				fmt.Fprintln(stderr, "mfabridge test-auth:", err)
				return exitFail
			}
		}
		rctx, cancel := context.WithTimeout(ctx, *timeout)
		resp, err := client.Exchange(rctx, req, *server)
		cancel()
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				fmt.Fprintf(stderr, "no reply from %s within %s (wrong secret, unknown client address, or server down)\n", *server, *timeout)
			} else {
				fmt.Fprintln(stderr, "mfabridge test-auth:", err)
			}
			return exitFail
		}
		if err := checkResponse(resp, req); err != nil {
			fmt.Fprintln(stderr, "mfabridge test-auth: refusing the reply:", err)
			return exitFail
		}
		fmt.Fprintln(stdout, resp.Code)
		printAttributes(stdout, resp)
		switch resp.Code {
		case radius.CodeAccessAccept:
			return exitOK
		case radius.CodeAccessChallenge:
			state = rfc2865.State_Get(resp)
			prompt := rfc2865.ReplyMessage_GetString(resp)
			if len(answers) > 0 {
				response, answers = answers[0], answers[1:]
				fmt.Fprintf(stdout, "answering: %s\n", strings.Repeat("*", len(response)))
				continue
			}
			if response, err = ask(in, stdin, stderr, prompt+" ", false); err != nil {
				fmt.Fprintln(stderr, "mfabridge test-auth: no answer to the challenge:", err)
				return exitFail
			}
		default:
			return exitFail
		}
	}
	fmt.Fprintf(stderr, "mfabridge test-auth: still challenged after %d rounds\n", maxRounds)
	return exitFail
}

// checkResponse requires a valid Message-Authenticator in every reply, as
// a careful NAS does since Blast-RADIUS.
func checkResponse(resp, req *radius.Packet) error {
	raw, err := resp.MarshalBinary()
	if err != nil {
		return err
	}
	present, err := mradius.VerifyResponse(raw, req.Authenticator, req.Secret)
	if err != nil {
		return err
	}
	if !present {
		return errors.New("it carries no Message-Authenticator")
	}
	return nil
}

// ask reads a line, without echo when hidden and stdin is a terminal.
func ask(in *bufio.Reader, stdin io.Reader, stderr io.Writer, prompt string, hidden bool) (string, error) {
	fmt.Fprint(stderr, prompt)
	if f, ok := stdin.(*os.File); ok && hidden && term.IsTerminal(int(f.Fd())) {
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		return string(b), err
	}
	line, err := in.ReadString('\n')
	if err != nil && (line == "" || !errors.Is(err, io.EOF)) {
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}

var attributeNames = map[radius.Type]string{
	rfc2865.UserName_Type:       "User-Name",
	rfc2865.ReplyMessage_Type:   "Reply-Message",
	rfc2865.State_Type:          "State",
	rfc2865.Class_Type:          "Class",
	rfc2865.FilterID_Type:       "Filter-Id",
	rfc2865.SessionTimeout_Type: "Session-Timeout",
	rfc2865.IdleTimeout_Type:    "Idle-Timeout",
	rfc2865.VendorSpecific_Type: "Vendor-Specific",
	rfc2865.ProxyState_Type:     "Proxy-State",
	79:                          "EAP-Message",
	80:                          "Message-Authenticator",
}

func printAttributes(w io.Writer, p *radius.Packet) {
	for _, a := range p.Attributes {
		name, ok := attributeNames[a.Type]
		if !ok {
			name = fmt.Sprintf("Attr-%d", a.Type)
		}
		var val string
		switch {
		case a.Type == 80:
			continue
		case a.Type == rfc2865.SessionTimeout_Type || a.Type == rfc2865.IdleTimeout_Type:
			if n, err := radius.Integer(a.Attribute); err == nil {
				val = fmt.Sprint(n)
			}
		case a.Type == rfc2865.ReplyMessage_Type || a.Type == rfc2865.FilterID_Type || a.Type == rfc2865.Class_Type || a.Type == rfc2865.UserName_Type:
			if utf8.Valid(a.Attribute) {
				val = fmt.Sprintf("%q", string(a.Attribute))
			}
		}
		if val == "" {
			val = "0x" + hex.EncodeToString(a.Attribute)
		}
		fmt.Fprintf(w, "  %s = %s\n", name, val)
	}
}

// secretFlag reads a secret flag: "-" asks for it (without echo on a
// terminal), anything else is resolved as the configuration file would
// resolve it (env:NAME, file:/path, or a literal).
func secretFlag(ref string, in *bufio.Reader, stdin io.Reader, stderr io.Writer, prompt string) (string, error) {
	if ref != "-" {
		return config.ResolveSecret(ref)
	}
	v, err := ask(in, stdin, stderr, prompt, true)
	if err != nil {
		return "", err
	}
	if v == "" {
		return "", errors.New("nothing was typed")
	}
	return v, nil
}
