// Command virtual-piv-card is a PIV card for pcscd without hardware: it
// connects to the vsmartcard vpcd reader driver (package vsmartcard-vpcd)
// on 127.0.0.1 and answers as the card in that reader until pcscd goes
// away or it is stopped.
//
//	pcscd --foreground --config DIR &   # DIR/vpcd: the reader file
//	virtual-piv-card --cert alice.pem --key alice-key.pem [--port 35963]
//
// The card answers what mfacard and OpenSC's PIV driver send (see package
// pivcard). It exits 0 when vpcd closes the connection or on SIGTERM, 1 on
// an error, 2 on bad usage.
package main

import (
	"context"
	"crypto"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/mfabridge/mfabridge/test/pivcard"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("virtual-piv-card", flag.ContinueOnError)
	fs.SetOutput(stderr)
	certFile := fs.String("cert", "", "certificate of slot 9A, PEM or DER")
	keyFile := fs.String("key", "", "private key of slot 9A, unencrypted PEM (RSA or ECDSA P-256/P-384)")
	pin := fs.String("pin", "123456", "the card's PIN, 6 to 8 characters")
	tries := fs.Int("tries", 3, "PIN tries before the PIN is blocked")
	host := fs.String("host", "127.0.0.1", "where vpcd listens")
	port := fs.Int("port", pivcard.DefaultPort, "vpcd's port for the reader slot (the second slot is one above)")
	gz := fs.Bool("gzip-cert", false, "store the certificate gzip-compressed (CertInfo 01)")
	noCert := fs.Bool("no-cert", false, "leave slot 9A without a certificate")
	noPIV := fs.Bool("no-piv", false, "a card without a PIV application")
	mismatch := fs.Bool("allow-key-mismatch", false, "accept a key that is not the certificate's (negative tests)")
	wait := fs.Duration("retry", 10*time.Second, "how long to retry while vpcd does not listen yet")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 || (*certFile == "") != (*keyFile == "") || (*certFile != "" && *noCert) {
		fmt.Fprintln(stderr, "usage: virtual-piv-card [--cert FILE --key FILE | --no-cert] [--pin PIN] [--port N] [--gzip-cert] [--no-piv] [--allow-key-mismatch]")
		return 2
	}
	o := pivcard.Options{PIN: *pin, Tries: *tries, GzipCert: *gz, NoPIV: *noPIV}
	if *keyFile != "" {
		key, err := pivcard.ReadKey(*keyFile)
		if err != nil {
			fmt.Fprintln(stderr, "virtual-piv-card:", err)
			return 1
		}
		cert, err := pivcard.ReadCert(*certFile)
		if err != nil {
			fmt.Fprintln(stderr, "virtual-piv-card:", err)
			return 1
		}
		if ok, err := pivcard.KeyMatches(cert, key); err != nil || !ok {
			if !*mismatch {
				fmt.Fprintf(stderr, "virtual-piv-card: %s is not the key of %s; give --allow-key-mismatch for a card whose signatures do not verify\n", *keyFile, *certFile)
				return 2
			}
		}
		o.Key = crypto.Signer(key)
		if !*noCert {
			o.Cert = cert
		}
	}
	card, err := pivcard.New(o)
	if err != nil {
		fmt.Fprintln(stderr, "virtual-piv-card:", err)
		return 2
	}
	dctx, cancel := context.WithTimeout(ctx, *wait)
	conn, err := pivcard.Dial(dctx, net.JoinHostPort(*host, strconv.Itoa(*port)))
	cancel()
	if err != nil {
		fmt.Fprintf(stderr, "virtual-piv-card: %v (is pcscd running with the vpcd reader on port %d?)\n", err, *port)
		return 1
	}
	go func() {
		<-ctx.Done()
		conn.Close()
	}()
	if err := card.Serve(conn); err != nil && !errors.Is(err, net.ErrClosed) {
		fmt.Fprintln(stderr, "virtual-piv-card:", err)
		return 1
	}
	return 0
}
