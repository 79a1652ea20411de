package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/mfabridge/mfabridge/config"
	"github.com/mfabridge/mfabridge/factors"
	"github.com/mfabridge/mfabridge/internal/store"
	"github.com/mfabridge/mfabridge/internal/username"
	"github.com/mfabridge/mfabridge/ldapbind"
)

// errUsage is returned by admin subcommands for bad usage (exit 2).
var errUsage = errors.New("usage")

// adminFlags are the flags every store command takes.
type adminFlags struct {
	fs          *flag.FlagSet
	config      *string
	user        *string
	noDirectory *bool
}

func newAdminFlags(name string, stderr io.Writer) adminFlags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return adminFlags{fs: fs, config: fs.String("config", "", "configuration file (required)"),
		user: fs.String("user", "", "user name (required)"),
		noDirectory: fs.Bool("no-directory", false,
			"use --user as given (normalised) instead of the name the directory's entry holds; for a user not in the directory yet")}
}

// open loads the configuration and opens its store. The user is named
// as logins name them: by the canonical name of the directory entry
// --user finds (so that "Alice@example.org" enrols alice, as her logins
// will look her up), unless --no-directory is set.
func (a adminFlags) open(ctx context.Context) (*config.Config, *store.Store, string, error) {
	if *a.config == "" || *a.user == "" {
		return nil, nil, "", errUsage
	}
	cfg, err := config.Load(*a.config)
	if err != nil {
		return nil, nil, "", err
	}
	if cfg.Store.Key.IsZero() {
		return nil, nil, "", fmt.Errorf("%s: store.key is not set: create one with openssl rand -hex 32 and point store.key at it", *a.config)
	}
	var users []string
	if *a.noDirectory {
		users, err = namesAsGiven(cfg, []string{*a.user})
	} else {
		users, err = canonicalNames(ctx, cfg, []string{*a.user})
	}
	if err != nil {
		return nil, nil, "", err
	}
	st, err := openStore(cfg)
	if err != nil {
		return nil, nil, "", err
	}
	return cfg, st, users[0], nil
}

// namesAsGiven normalises names as logins are normalised.
func namesAsGiven(cfg *config.Config, names []string) ([]string, error) {
	out := make([]string, len(names))
	for i, n := range names {
		u, err := username.Normalise([]byte(n), cfg.Server.Username)
		if err != nil {
			return nil, fmt.Errorf("user %q: %w", n, err)
		}
		out[i] = u
	}
	return out, nil
}

// resolveWorkers bounds the directory lookups of a bulk import in flight.
const resolveWorkers = 8

// canonicalNames finds each name in the directory, as a login would,
// and returns the canonical names of the entries, in order.
func canonicalNames(ctx context.Context, cfg *config.Config, names []string) ([]string, error) {
	logins, err := namesAsGiven(cfg, names)
	if err != nil {
		return nil, err
	}
	dir, err := newDirectory(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	out := make([]string, len(logins))
	errs := make([]error, len(logins))
	next := make(chan int)
	done := make(chan struct{})
	for range min(resolveWorkers, len(logins)) {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range next {
				out[i], errs[i] = canonicalName(ctx, dir, names[i], logins[i])
			}
		}()
	}
	for i := range logins {
		next <- i
	}
	close(next)
	for range min(resolveWorkers, len(logins)) {
		<-done
	}
	return out, errors.Join(errs...)
}

func canonicalName(ctx context.Context, dir *ldapbind.Directory, given, login string) (string, error) {
	u, err := dir.Find(ctx, login)
	switch {
	case errors.Is(err, factors.ErrNoSuchUser):
		return "", fmt.Errorf("user %q: no single directory entry answers to this name; check it, or add --no-directory to use it as given", given)
	case err != nil:
		return "", fmt.Errorf("user %q: cannot ask the directory (%w); add --no-directory to use the name as given", given, err)
	}
	return u.Name, nil
}

// exitFor maps an admin command's error to an exit status, printing it.
func exitFor(err error, stderr io.Writer, usage string) int {
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, errUsage):
		fmt.Fprintln(stderr, "usage:", usage)
		return exitUsage
	}
	fmt.Fprintln(stderr, "mfabridge:", err)
	return exitFail
}
