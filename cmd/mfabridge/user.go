package main

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/mfabridge/mfabridge/factors"
	"github.com/mfabridge/mfabridge/internal/store"
)

const userUsage = `mfabridge user show    --config FILE --user U
       mfabridge user reset   --config FILE --user U          clear the lockout counters
       mfabridge user remove  --config FILE --user U [METHOD] remove one method, or all
       mfabridge user default --config FILE --user U METHOD   make METHOD (totp, hotp, sms, voice) the default`

var storedMethods = []factors.Method{factors.TOTP, factors.HOTP, factors.Cert}

func runUser(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage:", userUsage)
		return exitUsage
	}
	verb := args[0]
	a := newAdminFlags("user "+verb, stderr)
	if err := a.fs.Parse(args[1:]); err != nil {
		return exitUsage
	}
	method := factors.Method(a.fs.Arg(0))
	valid := storedMethods
	if verb == "default" {
		valid = []factors.Method{factors.TOTP, factors.HOTP, factors.SMS, factors.Voice}
	}
	if a.fs.NArg() > 1 || (method != "" && !slices.Contains(valid, method)) {
		fmt.Fprintln(stderr, "usage:", userUsage)
		return exitUsage
	}
	err := func() error {
		switch verb {
		case "show", "reset", "remove", "default":
		default:
			return errUsage
		}
		if (verb == "default") != (method != "") && verb != "remove" {
			return errUsage
		}
		_, st, user, err := a.open()
		if err != nil {
			return err
		}
		defer st.Close()
		switch verb {
		case "show":
			return showUser(ctx, st, user, stdout)
		case "reset":
			if err := st.ResetLockout(ctx, user); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "lockout counters of %s cleared (wrong passwords and wrong codes)\n", user)
		case "remove":
			n, err := st.Remove(ctx, user, method)
			if err != nil {
				return err
			}
			if n == 0 {
				return fmt.Errorf("%s holds no %s", user, orAll(method))
			}
			fmt.Fprintf(stdout, "removed %d credential(s) of %s\n", n, user)
		case "default":
			if err := st.SetDefault(ctx, user, method); err != nil {
				if errors.Is(err, store.ErrNotFound) {
					return fmt.Errorf("%s holds no %s credential", user, method)
				}
				return err
			}
			fmt.Fprintf(stdout, "%s is now the default method of %s\n", method, user)
		}
		return nil
	}()
	return exitFor(err, stderr, userUsage)
}

func orAll(m factors.Method) string {
	if m == "" {
		return "credentials"
	}
	return string(m) + " credential"
}

func showUser(ctx context.Context, st *store.Store, user string, stdout io.Writer) error {
	e, err := st.Enrolment(ctx, user)
	if err != nil {
		return err
	}
	if len(e.Credentials) == 0 && e.Default == "" {
		return fmt.Errorf("%s has nothing enrolled", user)
	}
	fmt.Fprintf(stdout, "user %s\n", user)
	if e.Default != "" {
		fmt.Fprintf(stdout, "  default method: %s (its number comes from the directory)\n", e.Default)
	}
	for _, c := range e.Credentials {
		status := "active"
		if !c.Active {
			status = "pending confirmation"
		}
		def := ""
		if c.Default {
			def = " (default)"
		}
		used := "never"
		if !c.LastUsed.IsZero() {
			used = c.LastUsed.UTC().Format("2006-01-02 15:04 MST")
		}
		if c.Method == factors.Cert {
			if cert, err := x509.ParseCertificate(c.Secret); err == nil {
				sum := sha256.Sum256(cert.Raw)
				fmt.Fprintf(stdout, "  cert  %s, serial %x, SHA-256 %x, valid until %s, enrolled %s\n", cert.Subject, cert.SerialNumber,
					sum, cert.NotAfter.UTC().Format("2006-01-02"), c.Created.UTC().Format("2006-01-02 15:04 MST"))
			}
			continue
		}
		detail := fmt.Sprintf("%s %d digits", c.Algorithm, c.Digits)
		if c.Method == factors.TOTP {
			detail += fmt.Sprintf(" every %ds", c.Period)
		} else {
			detail += fmt.Sprintf(", counter %d", c.Counter)
		}
		fmt.Fprintf(stdout, "  %-5s %s%s, %s, enrolled %s, last used %s\n", c.Method, status, def, detail,
			c.Created.UTC().Format("2006-01-02 15:04 MST"), used)
	}
	return nil
}
