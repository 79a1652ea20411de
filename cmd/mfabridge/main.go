// Command mfabridge is the RADIUS MFA bridge: the server and the admin
// commands. Each subcommand has a file; main only dispatches.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Exit statuses (contract: DESIGN §5).
const (
	exitOK    = 0 // success
	exitFail  = 1 // a failed check: bad config, Access-Reject, server error
	exitUsage = 2 // bad usage
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

type command struct {
	name, summary string
	run           func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int
}

func commands() []command {
	return []command{
		{"serve", "run the RADIUS server", runServe},
		{"check-config", "validate a configuration file and print a redacted summary", runCheckConfig},
		{"enrol", "enrol a second factor: totp, hotp, confirm, import", runEnrol},
		{"user", "show, reset, remove, invite or set the default method of a user", runUser},
		{"token", "import hardware tokens that staff claim in the portal", runToken},
		{"test-auth", "send an Access-Request like a NAS and answer challenges", runTestAuth},
		{"version", "print the version", runVersion},
	}
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, args[1:], stdin, stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "mfabridge: unknown command %q\n\n", args[0])
	usage(stderr)
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: mfabridge COMMAND [flags]\n\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-13s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun mfabridge COMMAND -h for the flags of a command.")
}
