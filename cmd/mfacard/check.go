package main

import (
	"context"
	"crypto/x509"
	"flag"
	"fmt"

	"github.com/mfabridge/mfabridge/config"
	"github.com/mfabridge/mfabridge/factors"
	"github.com/mfabridge/mfabridge/factors/smartcard"
)

// check runs the bridge's own certificate checks on the card's
// certificate: the configuration is loaded as mfabridge serve loads it,
// the validator is built from factors.smartcard as serve builds it, and
// the certificate is verified as EAP-TLS hands it over (a chain of the
// leaf alone), then mapped to an identity.
func (t *tool) check(_ context.Context, args []string) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(t.stderr)
	path := fs.String("config", "", "mfabridge's configuration `FILE` (required)")
	reader := fs.String("reader", "", "reader `NAME` as mfacard readers lists it; default: the first with a card")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if *path == "" || fs.NArg() > 0 {
		return t.misuse("usage: mfacard check --config FILE [--reader NAME]")
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintln(t.stderr, err)
		return t.fail(fmt.Errorf("the configuration does not load, so the bridge would not start; mfacard reads it as the bridge does, secrets included, so run it with the bridge's environment"))
	}
	for _, w := range cfg.Warnings {
		fmt.Fprintln(t.stderr, w)
	}
	if !acceptsSmartcards(cfg) {
		return t.fail(fmt.Errorf("no policy in %s accepts smartcards (smartcard: true), so the bridge would refuse every card", *path))
	}
	v, err := newValidator(cfg.Factors.Smartcard)
	if err != nil {
		return t.fail(fmt.Errorf("the bridge would not start: %w", err))
	}

	cc, _, err := t.readCard(*reader)
	if err != nil {
		return t.fail(err)
	}
	d := smartcard.Describe(cc.cert)
	fmt.Fprintf(t.stdout, "certificate: %s (issuer %s, serial %s)\n", d.Subject, d.Issuer, d.Serial)
	if err := v.Verify([]*x509.Certificate{cc.cert}); err != nil {
		fmt.Fprintf(t.stdout, "the bridge would refuse this card (reason %s): %v\n", smartcard.Reason(err), err)
		return exitFail
	}
	id, err := v.Identity(cc.cert)
	if err != nil {
		fmt.Fprintf(t.stdout, "the bridge would refuse this card (reason %s): %v\n", smartcard.Reason(err), err)
		return exitFail
	}
	fmt.Fprintf(t.stdout, "the bridge would accept this card for %s\n", id.Value)
	note := "at login the bridge also finds the user in the directory (by " + lookupOf(cfg, id) + "), checks that the identity the supplicant gives is that user's, and applies the policy's groups"
	if cfg.Factors.Smartcard.MatchStoredCertificate {
		note += ", and wants this certificate enrolled for the user (match_stored_certificate)"
	}
	fmt.Fprintf(t.stdout, "note: %s; mfacard sign checks the PIN and the key\n", note)
	return exitOK
}

// lookupOf says how the bridge finds the card's user.
func lookupOf(cfg *config.Config, id factors.CertIdentity) string {
	if id.Login != "" {
		return fmt.Sprintf("user_filter with %q", id.Login)
	}
	return fmt.Sprintf("%s=%s", cfg.LDAP.Attributes.UPN, id.Value)
}

// acceptsSmartcards reports whether a policy has smartcard: true; without
// one the bridge runs no EAP-TLS (as cmd/mfabridge usesSmartcards).
func acceptsSmartcards(cfg *config.Config) bool {
	for _, p := range cfg.Policies {
		if p.Smartcard {
			return true
		}
	}
	return false
}

// newValidator builds the validator as mfabridge serve does.
func newValidator(sc config.Smartcard) (*smartcard.Validator, error) {
	return smartcard.New(smartcard.OptionsFrom(sc))
}
