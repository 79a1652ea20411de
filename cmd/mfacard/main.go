// Command mfacard checks a user's PIV smartcard from the workstation it is
// plugged into: which readers PC/SC sees, the certificate for PIV
// authentication (slot 9A), whether mfabridge would accept that
// certificate, and whether the card holds the certificate's private key.
//
//	mfacard readers
//	mfacard show [--reader NAME]
//	mfacard export --out cert.pem [--force] [--reader NAME]
//	mfacard check --config FILE [--reader NAME]
//	mfacard sign [--pin-stdin] [--reader NAME]
//
// It is the only cgo program of the module: pcsc.go talks to pcscd through
// github.com/ebfe/scard and libpcsclite; built without cgo (or with -tags
// nopcsc) stub.go takes its place and every card command says so. The PIV
// protocol itself (piv.go) is plain Go. Each subcommand has a file; main
// only dispatches.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// Exit statuses (contract: DESIGN §5).
const (
	exitOK    = 0 // success
	exitFail  = 1 // a failed check: no card, wrong PIN, certificate refused
	exitUsage = 2 // bad usage
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// tool holds what the subcommands use; tests replace open with a fake
// PC/SC service.
type tool struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	open           func() (pcsc, error) // openPCSC in pcsc.go or stub.go
	now            func() time.Time
}

type command struct {
	name, summary string
	run           func(t *tool, ctx context.Context, args []string) int
}

func commands() []command {
	return []command{
		{"readers", "list the smartcard readers and whether a card is in each", (*tool).readers},
		{"show", "print the card's PIV authentication certificate (slot 9A)", (*tool).show},
		{"export", "write the card's PIV authentication certificate as PEM", (*tool).export},
		{"check", "tell whether mfabridge would accept the card's certificate", (*tool).check},
		{"sign", "prove with the PIN that the card holds its certificate's key", (*tool).sign},
	}
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	t := &tool{stdin: stdin, stdout: stdout, stderr: stderr, open: openPCSC, now: time.Now}
	return t.run(ctx, args)
}

func (t *tool) run(ctx context.Context, args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(t.stderr)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(t, ctx, args[1:])
		}
	}
	fmt.Fprintf(t.stderr, "mfacard: unknown command %q\n\n", args[0])
	usage(t.stderr)
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: mfacard COMMAND [flags]\n\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun mfacard COMMAND -h for the flags of a command.")
}

// fail prints err as mfacard's answer and returns exitFail.
func (t *tool) fail(err error) int {
	fmt.Fprintln(t.stderr, err)
	return exitFail
}

// misuse prints a usage line and returns exitUsage.
func (t *tool) misuse(format string, a ...any) int {
	fmt.Fprintf(t.stderr, format+"\n", a...)
	return exitUsage
}
