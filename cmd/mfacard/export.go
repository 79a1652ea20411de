package main

import (
	"context"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// export writes the certificate of slot 9A as PEM, for mfabridge enrol
// cert or a CA's records.
func (t *tool) export(_ context.Context, args []string) int {
	flags := flag.NewFlagSet("export", flag.ContinueOnError)
	flags.SetOutput(t.stderr)
	out := flags.String("out", "", "`FILE` to write the PEM certificate to; - for standard output (required)")
	force := flags.Bool("force", false, "overwrite FILE if it exists")
	reader := flags.String("reader", "", "reader `NAME` as mfacard readers lists it; default: the first with a card")
	if err := flags.Parse(args); err != nil {
		return exitUsage
	}
	if *out == "" || flags.NArg() > 0 {
		return t.misuse("usage: mfacard export --out cert.pem [--force] [--reader NAME]")
	}
	if *out != "-" && !*force {
		// Refuse before touching the card, and again when writing.
		if _, err := os.Lstat(*out); err == nil {
			return t.fail(fmt.Errorf("%s already exists: give --force to overwrite it, or another --out", *out))
		}
	}
	cc, _, err := t.readCard(*reader)
	if err != nil {
		return t.fail(err)
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cc.cert.Raw})
	if *out == "-" {
		t.stdout.Write(data)
		return exitOK
	}
	if err := writeFile(*out, data, *force); err != nil {
		return t.fail(err)
	}
	fmt.Fprintf(t.stdout, "wrote the certificate of %s to %s\n", cc.cert.Subject, *out)
	return exitOK
}

// writeFile creates path with data; with force it replaces an existing
// file whole (through a temporary file and rename), so a reader never sees
// half a certificate.
func writeFile(path string, data []byte, force bool) error {
	if !force {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s already exists: give --force to overwrite it, or another --out", path)
		}
		if err != nil {
			return fmt.Errorf("cannot write the certificate: %w", err)
		}
		if _, err := f.Write(data); err != nil {
			f.Close()
			return fmt.Errorf("cannot write the certificate: %w", err)
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("cannot write the certificate: %w", err)
		}
		return nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".mfacard-*.pem")
	if err != nil {
		return fmt.Errorf("cannot write the certificate: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("cannot write the certificate: %w", err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("cannot write the certificate: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("cannot write the certificate: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("cannot write the certificate: %w", err)
	}
	return nil
}
