package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/mfabridge/mfabridge/config"
	"github.com/mfabridge/mfabridge/factors/smartcard"
)

func runCheckConfig(_ context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check-config", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration file (required)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if *path == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: mfabridge check-config --config FILE")
		return exitUsage
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		fmt.Fprintln(stderr, "configuration is not valid; nothing would start")
		return exitFail
	}
	if usesSmartcards(cfg) {
		// What serve would load: every CA with a source for its
		// revocation rule, every CRL signed by its CA.
		if _, err := smartcard.New(smartcard.OptionsFrom(cfg.Factors.Smartcard)); err != nil {
			fmt.Fprintf(stderr, "%s: factors.smartcard: %v\n", *path, err)
			fmt.Fprintln(stderr, "configuration is not valid; nothing would start")
			return exitFail
		}
	}
	fmt.Fprint(stdout, cfg.Summary())
	for _, w := range cfg.Warnings {
		fmt.Fprintln(stderr, w)
	}
	fmt.Fprintln(stdout, "configuration OK")
	return exitOK
}
