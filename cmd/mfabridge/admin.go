package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/mfabridge/mfabridge/config"
	"github.com/mfabridge/mfabridge/internal/store"
	"github.com/mfabridge/mfabridge/radius"
)

// errUsage is returned by admin subcommands for bad usage (exit 2).
var errUsage = errors.New("usage")

// adminFlags are the flags every store command takes.
type adminFlags struct {
	fs     *flag.FlagSet
	config *string
	user   *string
}

func newAdminFlags(name string, stderr io.Writer) adminFlags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return adminFlags{fs: fs, config: fs.String("config", "", "configuration file (required)"), user: fs.String("user", "", "user name (required)")}
}

// openFromConfig loads the configuration and opens its store; the user
// name is normalised as logins normalise it.
func (a adminFlags) open() (*config.Config, *store.Store, string, error) {
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
	user, err := radius.NormaliseUsername(*a.user, cfg.Server.Username)
	if err != nil {
		return nil, nil, "", fmt.Errorf("--user %q: %w", *a.user, err)
	}
	st, err := openStore(cfg)
	if err != nil {
		return nil, nil, "", err
	}
	return cfg, st, user, nil
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
