package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"

	"github.com/mfabridge/mfabridge/config"
	"github.com/mfabridge/mfabridge/factors"
	"github.com/mfabridge/mfabridge/factors/recovery"
	"github.com/mfabridge/mfabridge/internal/store"
)

const userUsage = `mfabridge user show    --config FILE --user U
       mfabridge user reset   --config FILE --user U          clear the lockout counters and end remembered logins
       mfabridge user remove  --config FILE --user U [METHOD] remove one method, or all
       mfabridge user default --config FILE --user U METHOD   make METHOD (totp, hotp, sms, voice) the default
       mfabridge user migrate --config FILE [--dry-run]       key every stored user on the name of the directory entry it finds
       mfabridge user invite  --config FILE --user U [--ttl 72h]  a one-time code to enrol a first method in the portal
  --user is found in the directory and the entry's name used; --no-directory uses it as given.`

var storedMethods = []factors.Method{factors.TOTP, factors.HOTP, factors.Cert, factors.Recovery}

func runUser(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage:", userUsage)
		return exitUsage
	}
	verb := args[0]
	switch verb {
	case "migrate":
		return userMigrate(ctx, args[1:], stdout, stderr)
	case "invite":
		return userInvite(ctx, args[1:], stdout, stderr)
	}
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
		_, st, user, err := a.open(ctx)
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
			fmt.Fprintf(stdout, "lockout counters of %s cleared (wrong passwords and wrong codes); remembered logins and known stations end too\n", user)
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
	until, invited, err := st.InviteExpiry(ctx, user)
	if err != nil {
		return err
	}
	if len(e.Credentials) == 0 && e.Default == "" && !invited {
		return fmt.Errorf("%s has nothing enrolled", user)
	}
	fmt.Fprintf(stdout, "user %s\n", user)
	if invited {
		fmt.Fprintf(stdout, "  an enrolment code for the portal is pending until %s\n", until.UTC().Format("2006-01-02 15:04 MST"))
	}
	if !e.Reported.IsZero() {
		fmt.Fprintf(stdout, "  blocked: the user reported a sign-in that was not theirs at %s; user reset lifts it\n",
			e.Reported.UTC().Format("2006-01-02 15:04 MST"))
	}
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
		if c.Method == factors.Recovery {
			fmt.Fprintf(stdout, "  recovery  %d of %d codes left, made %s, last used %s\n", recovery.Left(c), recovery.Count,
				c.Created.UTC().Format("2006-01-02 15:04 MST"), used)
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

// userMigrate renames every stored user whose name is not the canonical
// name of the directory entry it finds: a store written before users
// were keyed on their entry (a login by mail address under a filter on
// uid or mail, say) then keeps working under the name logins use now.
func userMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("user migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration file (required)")
	dry := fs.Bool("dry-run", false, "say what would be renamed, change nothing")
	if err := fs.Parse(args); err != nil || *path == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage:", userUsage)
		return exitUsage
	}
	err := func() error {
		cfg, err := config.Load(*path)
		if err != nil {
			return err
		}
		st, err := openStore(cfg)
		if err != nil {
			return err
		}
		if st == nil {
			return fmt.Errorf("%s: store.key is not set", *path)
		}
		defer st.Close()
		names, err := st.Names(ctx)
		if err != nil {
			return err
		}
		dir, err := newDirectory(cfg, slog.New(slog.DiscardHandler))
		if err != nil {
			return err
		}
		defer dir.Close()
		renamed, unknown, failed := 0, 0, 0
		for _, n := range names {
			u, err := dir.Find(ctx, n)
			switch {
			case errors.Is(err, factors.ErrNoSuchUser):
				unknown++
				fmt.Fprintf(stdout, "%s: no directory entry answers to this name; left as it is\n", n)
				continue
			case err != nil:
				return fmt.Errorf("%s: %w; nothing more was changed", n, err)
			case u.Name == n:
				continue
			}
			if *dry {
				fmt.Fprintf(stdout, "%s -> %s (dry run)\n", n, u.Name)
				renamed++
				continue
			}
			if err := st.Rename(ctx, n, u.Name); err != nil {
				failed++
				fmt.Fprintf(stdout, "%s -> %s: %v\n", n, u.Name, err)
				continue
			}
			renamed++
			fmt.Fprintf(stdout, "%s -> %s\n", n, u.Name)
		}
		fmt.Fprintf(stdout, "%d users in the store: %d renamed, %d unknown to the directory, %d not renamed\n", len(names), renamed, unknown, failed)
		if failed > 0 {
			return fmt.Errorf("%d users could not be renamed (above)", failed)
		}
		return nil
	}()
	return exitFor(err, stderr, userUsage)
}

// inviteAlphabet has no letters that read as digits (I, O) nor digits
// that read as letters (0, 1): 32 symbols, 5 bits each.
const inviteAlphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"

// newInvite returns 16 random symbols (80 bits) in groups of four.
func newInvite() (shown, stored string, err error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", "", err
	}
	for i := range b {
		b[i] = inviteAlphabet[b[i]&31]
	}
	stored = string(b)
	return stored[0:4] + "-" + stored[4:8] + "-" + stored[8:12] + "-" + stored[12:16], stored, nil
}

func userInvite(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	a := newAdminFlags("user invite", stderr)
	ttl := a.fs.Duration("ttl", 72*time.Hour, "how long the code works (at most 720h)")
	if err := a.fs.Parse(args); err != nil || a.fs.NArg() > 0 {
		return exitUsage
	}
	err := func() error {
		if *ttl <= 0 || *ttl > 720*time.Hour {
			return fmt.Errorf("--ttl %s is not from 1s to 720h", *ttl)
		}
		cfg, st, user, err := a.open(ctx)
		if err != nil {
			return err
		}
		defer st.Close()
		shown, stored, err := newInvite()
		if err != nil {
			return err
		}
		if err := st.Invite(ctx, user, stored, *ttl); err != nil {
			return err
		}
		where := "the portal"
		if cfg.Portal.PublicURL != "" {
			where = cfg.Portal.PublicURL
		}
		fmt.Fprintf(stdout, "enrolment code for %s: %s\nIt works once, until %s, at %s after the user's password; a new code replaces it.\n",
			user, shown, time.Now().Add(*ttl).UTC().Format("2006-01-02 15:04 MST"), where)
		return nil
	}()
	return exitFor(err, stderr, userUsage)
}
