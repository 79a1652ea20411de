package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/mfabridge/mfabridge/config"
	"github.com/mfabridge/mfabridge/factors"
	"github.com/mfabridge/mfabridge/factors/otp"
	"github.com/mfabridge/mfabridge/factors/recovery"
	"github.com/mfabridge/mfabridge/factors/smartcard"
	"github.com/mfabridge/mfabridge/factors/sms"
	"github.com/mfabridge/mfabridge/factors/voice"
	"github.com/mfabridge/mfabridge/internal/audit"
	"github.com/mfabridge/mfabridge/internal/heapfloor"
	"github.com/mfabridge/mfabridge/internal/store"
	"github.com/mfabridge/mfabridge/internal/twilio"
	"github.com/mfabridge/mfabridge/ldapbind"
	"github.com/mfabridge/mfabridge/radius"
	"github.com/mfabridge/mfabridge/radius/eap"
)

// shutdownGrace bounds how long in-flight requests may finish after
// SIGTERM.
const shutdownGrace = 10 * time.Second

// heapFloor is the least heap the garbage collector aims for (see
// internal/heapfloor): below it, the collector would run many times a
// second under load for a heap of a few megabytes.
const heapFloor = 64 << 20

func runServe(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration file (required)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if *path == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: mfabridge serve --config FILE")
		return exitUsage
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		fmt.Fprintln(stderr, "mfabridge: not starting: the configuration is not valid")
		return exitFail
	}
	log := newLogger(cfg.Logging, stderr)
	for _, w := range cfg.Warnings {
		log.Warn(w)
	}
	// Fewer, shorter collections under load; GOGC in the environment is
	// honoured on top of the floor, and GOGC=off turns it off.
	defer heapfloor.Start(heapFloor).Stop()
	if err := serve(ctx, cfg, *path, log, stdout); err != nil {
		log.Error("mfabridge stopped", "err", err)
		return exitFail
	}
	return exitOK
}

func newLogger(l config.Logging, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(l.Level))
	opts := &slog.HandlerOptions{Level: level}
	if l.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// graph is everything built from one configuration; a reload builds a new
// one and swaps it in. The stores outlive graphs: they are opened once.
type graph struct {
	cfg     *config.Config
	dir     *ldapbind.Directory
	clients *radius.ClientTable
	conv    *radius.Conversation
	voice   *voice.Voice         // nil without Twilio
	twilio  *twilio.Client       // nil without Twilio
	cards   *smartcard.Validator // nil without smartcard policies
}

// backends are opened once per process.
type backends struct {
	store *store.Store // nil when no store is configured
	// eap runs EAP-TLS sessions; it outlives reloads so that logins in
	// progress survive one. Its server certificate changes on restart.
	eap   *eap.Server
	state *sharedState
	aud   *audit.Log
	m     *radius.Metrics
}

// newDirectory is the directory of a configuration, as the server and
// the admin commands use it.
func newDirectory(cfg *config.Config, log *slog.Logger) (*ldapbind.Directory, error) {
	return ldapbind.New(cfg.LDAP, ldapbind.Options{Log: log.With("component", "ldap"),
		Lowercase: cfg.Server.Username.Lowercase, Groups: policyGroups(cfg)})
}

// policyGroups lists every group a policy names, for the directory to
// tell which of them a user is in.
func policyGroups(cfg *config.Config) []string {
	var out []string
	for _, p := range cfg.Policies {
		out = append(append(append(out, p.DenyGroups...), p.RequireGroups...), p.BypassGroups...)
		for _, r := range p.ReplyAttributes {
			out = append(out, r.Groups...)
		}
	}
	return out
}

func build(cfg *config.Config, log *slog.Logger, be *backends) (*graph, error) {
	dir, err := newDirectory(cfg, log)
	if err != nil {
		return nil, err
	}
	g := &graph{cfg: cfg, dir: dir, clients: radius.NewClientTable(cfg.Clients)}
	fs, err := g.buildFactors(be)
	if err != nil {
		dir.Close()
		return nil, err
	}
	opts := radius.ConversationOptions{
		Directory:            dir,
		State:                be.state,
		Factors:              fs,
		Policies:             cfg.Policies,
		Clients:              cfg.Clients,
		Username:             cfg.Server.Username,
		ReportPasswordExpiry: cfg.LDAP.ReportPasswordExpiry,
		ChallengeTimeout:     cfg.Server.ChallengeTimeout,
		ApproveTimeout:       cfg.Factors.Voice.ApproveTimeout,
		DuplicateWindow:      cfg.Server.DuplicateWindow,
		Lockout:              cfg.Lockout,
		Audit:                be.aud,
		Metrics:              be.m,
		Log:                  log,
	}
	if be.store != nil {
		opts.Enrolments = be.store
	}
	if be.eap != nil && usesSmartcards(cfg) {
		sc := cfg.Factors.Smartcard
		g.cards, err = smartcard.New(smartcard.OptionsFrom(sc))
		if err != nil {
			dir.Close()
			return nil, err
		}
		opts.EAP, opts.Certificates, opts.MatchStoredCertificate = be.eap, g.cards, sc.MatchStoredCertificate
	}
	if g.conv, err = radius.NewConversation(opts); err != nil {
		dir.Close()
		return nil, err
	}
	return g, nil
}

// buildFactors lists the second factors this configuration can offer:
// TOTP, HOTP and recovery codes with a store, text messages and calls
// with Twilio.
func (g *graph) buildFactors(be *backends) ([]factors.Factor, error) {
	cfg := g.cfg
	var fs []factors.Factor
	if be.store != nil {
		fs = append(fs, otp.NewTOTP(cfg.Factors.TOTP.Skew, be.state, nil), otp.NewHOTP(cfg.Factors.HOTP.LookAhead, be.store),
			recovery.New(be.store))
	}
	tw := cfg.Factors.Twilio
	if tw.AccountSID.IsZero() {
		return fs, nil
	}
	var err error
	if g.twilio, err = twilio.New(tw); err != nil {
		return nil, err
	}
	limits := func(perHour int) *factors.SendLimits {
		return &factors.SendLimits{KV: be.state, PerUserHour: perHour, GlobalMinute: tw.MaxPerMinute}
	}
	codes := func() *factors.SentCodes {
		return &factors.SentCodes{KV: be.state, Length: cfg.Factors.SMS.CodeLength, TTL: cfg.Factors.SMS.CodeTTL, Key: be.state.codeKey}
	}
	fs = append(fs, sms.New(sms.Options{Messenger: g.twilio, Codes: codes(), Limits: limits(cfg.Factors.SMS.MaxPerHour),
		Message: cfg.Factors.SMS.Message, Issuer: cfg.Factors.TOTP.Issuer, CountryCode: tw.DefaultCountryCode}))
	g.voice = voice.New(voice.Options{Caller: g.twilio, Mode: voice.Mode(cfg.Factors.Voice.Mode), Codes: codes(),
		Limits: limits(cfg.Factors.Voice.MaxPerHour), KV: be.state,
		ApproveTTL: max(cfg.Factors.Voice.ApproveTimeout, cfg.Server.ChallengeTimeout),
		PublicURL:  cfg.Server.PublicURL, Issuer: cfg.Factors.TOTP.Issuer, CountryCode: tw.DefaultCountryCode})
	return append(fs, g.voice.Factor()), nil
}

// openStore opens the enrolment store when the configuration has a key.
func openStore(cfg *config.Config) (*store.Store, error) {
	if cfg.Store.Key.IsZero() {
		return nil, nil
	}
	key, err := config.DecodeKey(cfg.Store.Key.Value())
	if err != nil {
		return nil, fmt.Errorf("store.key: %w", err)
	}
	if cfg.Store.Driver == config.DriverPostgres {
		return store.OpenPostgres(cfg.Store.DSN.Value(), key)
	}
	return store.Open(cfg.Store.Path, key)
}

// webhook serves Twilio's posts of the key pressed in an approval call;
// the current graph's voice factor checks and records it.
func webhook(current *atomic.Pointer[graph], log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g := current.Load()
		if g.voice == nil {
			http.NotFound(w, r)
			return
		}
		g.voice.Webhook(g.twilio, log.With("component", "twilio")).ServeHTTP(w, r)
	})
}

func orAdmin(s string) string {
	if s == "" {
		return "on admin_listen"
	}
	return s
}

// listenUDP binds one RADIUS listener. An IPv6 literal binds IPv6 only,
// so "0.0.0.0:1812" and "[::]:1812" may both be listed.
func listenUDP(addr string) (net.PacketConn, error) {
	host, _, _ := net.SplitHostPort(addr)
	network := "udp"
	if ip := net.ParseIP(host); ip != nil {
		network = "udp4"
		if ip.To4() == nil {
			network = "udp6"
		}
	}
	return net.ListenPacket(network, addr)
}

func openAudit(path string, stdout io.Writer) (io.Writer, func(), error) {
	if path == "" {
		return stdout, func() {}, nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, nil, fmt.Errorf("logging.audit_file: %w", err)
	}
	return f, func() { f.Sync(); f.Close() }, nil
}

// radsecTLS builds the RadSec server's TLS configuration: its certificate,
// and client certificates required and verified against client_ca_file.
func radsecTLS(c config.RadsecTLS) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("radsec_tls: %w", err)
	}
	pem, err := os.ReadFile(c.ClientCAFile)
	if err != nil {
		return nil, fmt.Errorf("radsec_tls.client_ca_file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("radsec_tls.client_ca_file %s holds no PEM certificate", c.ClientCAFile)
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
	}, nil
}

// usesSmartcards reports whether a policy accepts EAP-TLS.
func usesSmartcards(cfg *config.Config) bool {
	for _, p := range cfg.Policies {
		if p.Smartcard {
			return true
		}
	}
	return false
}

// newEAP builds the EAP-TLS server with the bridge's certificate.
func newEAP(sc config.Smartcard, idle time.Duration, verify func([]*x509.Certificate) error) (*eap.Server, error) {
	cert, err := tls.LoadX509KeyPair(sc.ServerCertFile, sc.ServerKeyFile)
	if err != nil {
		return nil, fmt.Errorf("factors.smartcard: server certificate: %w", err)
	}
	return eap.NewServer(eap.Config{TLS: &tls.Config{Certificates: []tls.Certificate{cert}}, Verify: verify,
		FragmentSize: sc.FragmentSize, IdleTimeout: idle})
}
