package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/mdp/qrterminal/v3"
	potp "github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
	"golang.org/x/term"

	"github.com/mfabridge/mfabridge/config"
	"github.com/mfabridge/mfabridge/factors"
	"github.com/mfabridge/mfabridge/factors/otp"
	"github.com/mfabridge/mfabridge/internal/state"
	"github.com/mfabridge/mfabridge/internal/store"
)

const enrolUsage = `mfabridge enrol totp    --config FILE --user U [--secret BASE32|env:NAME|file:PATH|-] [--code CODE] [--no-qr] [--replace]
       mfabridge enrol hotp    --config FILE --user U --secret HEX|BASE32|env:NAME|file:PATH|- [--counter N] [--digits 6|8] [--replace]
       mfabridge enrol confirm --config FILE --user U --code CODE
       mfabridge enrol import  --config FILE --csv FILE [--replace]
       mfabridge enrol cert    --config FILE --user U --file cert.pem [--replace]
  --user is found in the directory and the entry's name used; --no-directory uses it as given.
  --secret - asks for the secret; env: and file: read it from the environment or a file (a literal shows in ps).`

func runEnrol(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage:", enrolUsage)
		return exitUsage
	}
	switch args[0] {
	case "totp":
		return enrolTOTP(ctx, args[1:], stdin, stdout, stderr)
	case "hotp":
		return enrolHOTP(ctx, args[1:], stdin, stdout, stderr)
	case "confirm":
		return enrolConfirm(ctx, args[1:], stdout, stderr)
	case "import":
		return enrolImport(ctx, args[1:], stdout, stderr)
	case "cert":
		return enrolCert(ctx, args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "mfabridge: unknown enrol method %q\nusage: %s\n", args[0], enrolUsage)
	return exitUsage
}

func totpCredential(cfg *config.Config, secret []byte, active bool) factors.Credential {
	t := cfg.Factors.TOTP
	return factors.Credential{Method: factors.TOTP, Secret: secret, Algorithm: t.Algorithm, Digits: t.Digits,
		Period: int(t.Period / time.Second), Active: active}
}

func enrolTOTP(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	a := newAdminFlags("enrol totp", stderr)
	secretRef := a.fs.String("secret", "", "import an existing base32 secret (active at once): env:NAME, file:PATH, - to be asked for it, or the secret itself")
	code := a.fs.String("code", "", "a code from the app, to activate without a prompt")
	noQR := a.fs.Bool("no-qr", false, "do not print the QR code")
	replace := a.fs.Bool("replace", false, "replace an existing TOTP credential")
	if err := a.fs.Parse(args); err != nil || a.fs.NArg() > 0 {
		return exitUsage
	}
	err := func() error {
		cfg, st, user, err := a.open(ctx)
		if err != nil {
			return err
		}
		defer st.Close()
		if *secretRef != "" {
			ref, err := secretFlag(*secretRef, bufio.NewReader(stdin), stdin, stderr, "TOTP secret (base32): ")
			if err != nil {
				return fmt.Errorf("--secret: %w", err)
			}
			secret, err := otp.ParseBase32(ref)
			if err == nil {
				err = otp.CheckSecretLength(secret)
			}
			if err != nil {
				return fmt.Errorf("--secret: %w", err)
			}
			if err := st.Put(ctx, user, totpCredential(cfg, secret, true), *replace); err != nil {
				return replaceHint(err)
			}
			fmt.Fprintf(stdout, "imported an active TOTP credential for %s\n", user)
			return nil
		}
		t := cfg.Factors.TOTP
		key, err := totp.Generate(totp.GenerateOpts{Issuer: t.Issuer, AccountName: user, Period: uint(t.Period / time.Second),
			SecretSize: 20, Digits: potp.Digits(t.Digits), Algorithm: otp.Algorithm(t.Algorithm)})
		if err != nil {
			return err
		}
		secret, err := otp.ParseBase32(key.Secret())
		if err != nil {
			return err
		}
		if err := st.Put(ctx, user, totpCredential(cfg, secret, false), *replace); err != nil {
			return replaceHint(err)
		}
		fmt.Fprintf(stdout, "Scan this with the authenticator app of %s, or type the secret %s\n\n", user, key.Secret())
		if !*noQR {
			qrterminal.GenerateWithConfig(key.URL(), qrterminal.Config{Level: qrterminal.L, Writer: stdout, HalfBlocks: true,
				BlackChar: qrterminal.BLACK_BLACK, WhiteBlackChar: qrterminal.WHITE_BLACK, WhiteChar: qrterminal.WHITE_WHITE,
				BlackWhiteChar: qrterminal.BLACK_WHITE, QuietZone: 2})
		}
		fmt.Fprintf(stdout, "%s\n\n", key.URL())
		answer := *code
		if answer == "" {
			f, ok := stdin.(*os.File)
			if !ok || !term.IsTerminal(int(f.Fd())) {
				fmt.Fprintf(stdout, "The credential is pending until a first code confirms it:\n  mfabridge enrol confirm --config %s --user %s --code CODE\n", *a.config, user)
				return nil
			}
			fmt.Fprint(stdout, "Type the code the app shows now, to activate it: ")
			line, _ := bufio.NewReader(stdin).ReadString('\n')
			answer = strings.TrimSpace(line)
		}
		return confirm(ctx, cfg, st, user, answer, stdout)
	}()
	return exitFor(err, stderr, enrolUsage)
}

func replaceHint(err error) error {
	if errors.Is(err, store.ErrExists) {
		return fmt.Errorf("%w; add --replace to replace it", err)
	}
	return err
}

// confirm activates a pending TOTP credential when code is right.
func confirm(ctx context.Context, cfg *config.Config, st *store.Store, user, code string, stdout io.Writer) error {
	enr, err := st.Enrolment(ctx, user)
	if err != nil {
		return err
	}
	var pending *factors.Credential
	for i, c := range enr.Credentials {
		if c.Method == factors.TOTP && !c.Active {
			pending = &enr.Credentials[i]
		}
	}
	if pending == nil {
		return fmt.Errorf("%s has no pending TOTP credential to confirm", user)
	}
	pending.Active = true
	mem := state.NewMemory(state.MemoryOptions{Sweep: -1})
	defer mem.Close()
	u := &factors.User{Name: user, Enrolment: &factors.Enrolment{Credentials: []factors.Credential{*pending}}}
	if err := otp.NewTOTP(cfg.Factors.TOTP.Skew, mem, nil).Check(ctx, u, code); err != nil {
		return fmt.Errorf("that code does not match (check the phone's clock); the credential stays pending: %w", err)
	}
	if err := st.Activate(ctx, user, factors.TOTP); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "TOTP is active for %s\n", user)
	return nil
}

func enrolConfirm(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	a := newAdminFlags("enrol confirm", stderr)
	code := a.fs.String("code", "", "a code from the app (required)")
	if err := a.fs.Parse(args); err != nil || a.fs.NArg() > 0 {
		return exitUsage
	}
	err := func() error {
		if *code == "" {
			return errUsage
		}
		cfg, st, user, err := a.open(ctx)
		if err != nil {
			return err
		}
		defer st.Close()
		return confirm(ctx, cfg, st, user, *code, stdout)
	}()
	return exitFor(err, stderr, enrolUsage)
}

func enrolHOTP(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	a := newAdminFlags("enrol hotp", stderr)
	secretRef := a.fs.String("secret", "", "the token's seed, hex or base32: env:NAME, file:PATH, - to be asked for it, or the seed itself (required)")
	counter := a.fs.Uint64("counter", 0, "the token's next counter")
	digits := a.fs.Int("digits", 6, "code length: 6 or 8")
	replace := a.fs.Bool("replace", false, "replace an existing HOTP credential")
	if err := a.fs.Parse(args); err != nil || a.fs.NArg() > 0 {
		return exitUsage
	}
	err := func() error {
		if *secretRef == "" || (*digits != 6 && *digits != 8) {
			return errUsage
		}
		_, st, user, err := a.open(ctx)
		if err != nil {
			return err
		}
		defer st.Close()
		seed, err := secretFlag(*secretRef, bufio.NewReader(stdin), stdin, stderr, "HOTP seed (hex or base32): ")
		if err != nil {
			return fmt.Errorf("--secret: %w", err)
		}
		secret, err := otp.ParseSeed(seed)
		if err == nil {
			err = otp.CheckSecretLength(secret)
		}
		if err != nil {
			return fmt.Errorf("--secret: %w", err)
		}
		c := factors.Credential{Method: factors.HOTP, Secret: secret, Algorithm: "SHA1", Digits: *digits, Counter: *counter, Active: true}
		if err := st.Put(ctx, user, c, *replace); err != nil {
			return replaceHint(err)
		}
		fmt.Fprintf(stdout, "HOTP token enrolled for %s at counter %d\n", user, *counter)
		return nil
	}()
	return exitFor(err, stderr, enrolUsage)
}

func enrolImport(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newAdminFlags("enrol import", stderr)
	csvPath := fs.fs.String("csv", "", "CSV file of user,type,secret[,counter] (required)")
	replace := fs.fs.Bool("replace", false, "replace credentials users already hold")
	if err := fs.fs.Parse(args); err != nil || fs.fs.NArg() > 0 || *csvPath == "" || *fs.config == "" {
		fmt.Fprintln(stderr, "usage:", enrolUsage)
		return exitUsage
	}
	err := func() error {
		cfg, err := config.Load(*fs.config)
		if err != nil {
			return err
		}
		f, err := os.Open(*csvPath)
		if err != nil {
			return err
		}
		defer f.Close()
		lines, bad := parseImport(f, *csvPath, cfg)
		if len(bad) > 0 {
			for _, b := range bad {
				fmt.Fprintln(stderr, b)
			}
			return fmt.Errorf("%d bad lines in %s; nothing was imported", len(bad), *csvPath)
		}
		if len(lines) == 0 {
			return fmt.Errorf("%s holds no credentials; nothing was imported", *csvPath)
		}
		if !*fs.noDirectory {
			if err := resolveImport(ctx, cfg, *csvPath, lines, stderr); err != nil {
				return err
			}
		}
		st, err := openStore(cfg)
		if err != nil {
			return err
		}
		if st == nil {
			return fmt.Errorf("%s: store.key is not set", *fs.config)
		}
		defer st.Close()
		users := make([]string, len(lines))
		creds := make([]factors.Credential, len(lines))
		for i, l := range lines {
			users[i], creds[i] = l.user, l.cred
		}
		if err := st.Import(ctx, users, creds, *replace); err != nil {
			return fmt.Errorf("%w; nothing was imported", replaceHint(err))
		}
		fmt.Fprintf(stdout, "imported %d credentials from %s\n", len(lines), *csvPath)
		return nil
	}()
	return exitFor(err, stderr, enrolUsage)
}

// enrolCert stores a user's smartcard certificate, for
// match_stored_certificate: a login must then present exactly it.
func enrolCert(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	a := newAdminFlags("enrol cert", stderr)
	file := a.fs.String("file", "", "the certificate, PEM or DER (required)")
	replace := a.fs.Bool("replace", false, "replace an enrolled certificate (a renewed card)")
	if err := a.fs.Parse(args); err != nil || a.fs.NArg() > 0 {
		return exitUsage
	}
	err := func() error {
		if *file == "" {
			return errUsage
		}
		b, err := os.ReadFile(*file)
		if err != nil {
			return err
		}
		if blk, _ := pem.Decode(b); blk != nil {
			if blk.Type != "CERTIFICATE" {
				return fmt.Errorf("%s holds a %s, not a CERTIFICATE", *file, blk.Type)
			}
			b = blk.Bytes
		}
		cert, err := x509.ParseCertificate(b)
		if err != nil {
			return fmt.Errorf("%s: %w", *file, err)
		}
		_, st, user, err := a.open(ctx)
		if err != nil {
			return err
		}
		defer st.Close()
		if err := st.Put(ctx, user, factors.Credential{Method: factors.Cert, Secret: cert.Raw, Active: true}, *replace); err != nil {
			return replaceHint(err)
		}
		sum := sha256.Sum256(cert.Raw)
		fmt.Fprintf(stdout, "certificate enrolled for %s: %s, serial %x, SHA-256 %x, valid until %s\n", user, cert.Subject,
			cert.SerialNumber, sum, cert.NotAfter.UTC().Format("2006-01-02"))
		return nil
	}()
	return exitFor(err, stderr, enrolUsage)
}
