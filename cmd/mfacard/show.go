package main

import (
	"context"
	"flag"
)

// show prints the certificate of slot 9A.
func (t *tool) show(_ context.Context, args []string) int {
	fs := flag.NewFlagSet("show", flag.ContinueOnError)
	fs.SetOutput(t.stderr)
	reader := fs.String("reader", "", "reader `NAME` as mfacard readers lists it; default: the first with a card")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		return t.misuse("usage: mfacard show [--reader NAME]")
	}
	cc, name, err := t.readCard(*reader)
	if err != nil {
		return t.fail(err)
	}
	printCert(t.stdout, name, cc, t.now())
	return exitOK
}

// readCard reads the certificate of slot 9A from the card in the reader
// named ("" for the first with a card), and returns the reader's name.
func (t *tool) readCard(reader string) (*cardCert, string, error) {
	s, err := t.connect(reader)
	if err != nil {
		return nil, "", err
	}
	defer s.close(false)
	if err := s.piv.selectPIV(); err != nil {
		return nil, s.reader, err
	}
	cc, err := s.piv.readCert()
	return cc, s.reader, err
}
