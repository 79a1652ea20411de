package main

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"
)

// readers lists every reader pcscd knows and whether a card is in it.
func (t *tool) readers(_ context.Context, args []string) int {
	fs := flag.NewFlagSet("readers", flag.ContinueOnError)
	fs.SetOutput(t.stderr)
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		return t.misuse("usage: mfacard readers")
	}
	sys, err := t.open()
	if err != nil {
		return t.fail(err)
	}
	defer sys.Close()
	rs, err := sys.Readers()
	if err != nil {
		return t.fail(err)
	}
	tw := tabwriter.NewWriter(t.stdout, 0, 0, 2, ' ', 0)
	for _, r := range rs {
		if r.Present {
			fmt.Fprintf(tw, "%s\tcard present\tATR %s\n", r.Name, strings.ToUpper(fmt.Sprintf("% x", r.ATR)))
		} else {
			fmt.Fprintf(tw, "%s\tno card\n", r.Name)
		}
	}
	tw.Flush()
	return exitOK
}
