package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"reflect"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/mfabridge/mfabridge/config"
	"github.com/mfabridge/mfabridge/factors/voice"
	"github.com/mfabridge/mfabridge/internal/admin"
	"github.com/mfabridge/mfabridge/internal/audit"
	"github.com/mfabridge/mfabridge/ldapbind"
	"github.com/mfabridge/mfabridge/radius"
)

// daemon is a running mfabridge serve: the backends opened once, the
// graph of the configuration in force, the RADIUS server and the
// listeners. Its steps are open, listen, run, wait (reloading on SIGHUP)
// and drain; every goroutine it starts reports its error to errc, which
// wait reads.
type daemon struct {
	path string
	cfg  *config.Config // as loaded at start; reloads keep listeners and logging
	log  *slog.Logger

	reg     *prometheus.Registry
	be      *backends
	current atomic.Pointer[graph]
	srv     *radius.Server

	conns    []net.PacketConn
	radsec   net.Listener
	http     []*http.Server // admin and webhook listeners
	ready    atomic.Bool
	errc     chan error
	serving  sync.WaitGroup
	closers  []func() // run by close, last first
	radsecOp radius.RadSecOptions
}

// serve runs the server until ctx ends or a listener fails.
func serve(ctx context.Context, cfg *config.Config, path string, log *slog.Logger, stdout io.Writer) error {
	d := &daemon{path: path, cfg: cfg, log: log, errc: make(chan error, 1)}
	defer d.close()
	if err := d.open(stdout); err != nil {
		return err
	}
	if err := d.listen(); err != nil {
		return err
	}
	d.run()
	err := d.wait(ctx)
	d.drain()
	return err
}

// open opens the audit log, the registry, the stores, the EAP server and
// the first graph.
func (d *daemon) open(stdout io.Writer) error {
	cfg := d.cfg
	auditOut, closeAudit, err := openAudit(cfg.Logging.AuditFile, stdout)
	if err != nil {
		return err
	}
	d.closers = append(d.closers, closeAudit)
	d.reg = prometheus.NewRegistry()
	d.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	st, err := openState(cfg, d.log)
	if err != nil {
		return err
	}
	d.be = &backends{aud: audit.New(auditOut), m: radius.NewMetrics(d.reg), state: st}
	d.closers = append(d.closers, func() { st.Close() })
	if d.be.store, err = openStore(cfg); err != nil {
		return err
	}
	if d.be.store != nil {
		d.closers = append(d.closers, func() { d.be.store.Close() })
	}
	if usesSmartcards(cfg) {
		if d.be.eap, err = newEAP(cfg.Factors.Smartcard, cfg.Server.ChallengeTimeout, func(chain []*x509.Certificate) error {
			if g := d.current.Load(); g != nil && g.cards != nil {
				return g.cards.Verify(chain)
			}
			return errors.New("smartcard logins are not configured")
		}); err != nil {
			return err
		}
		d.closers = append(d.closers, d.be.eap.Close)
	}
	g, err := build(cfg, d.log, d.be)
	if err != nil {
		return err
	}
	d.current.Store(g)
	d.reg.MustRegister(ldapbind.NewCollector(func() *ldapbind.Directory { return d.current.Load().dir }))
	d.srv = radius.NewServer(radius.Options{
		Clients:              g.clients,
		Handler:              g.conv,
		DuplicateWindow:      cfg.Server.DuplicateWindow,
		DuplicateEntries:     cfg.Server.DuplicateCacheEntries,
		MaxInFlightPerClient: cfg.Server.MaxInFlightPerClient,
		Metrics:              d.be.m,
		Log:                  d.log.With("component", "radius"),
	})
	return nil
}

// listen binds every listener, or none: a listener that cannot bind
// closes the ones bound before it.
func (d *daemon) listen() error {
	s := d.cfg.Server
	for _, addr := range s.RadiusListen {
		pc, err := listenUDP(addr)
		if err != nil {
			return fmt.Errorf("server.radius_listen %s: %w", addr, err)
		}
		d.conns = append(d.conns, pc)
		d.closers = append(d.closers, func() { pc.Close() })
	}
	if s.RadsecListen != "" {
		tlsCfg, err := radsecTLS(s.RadsecTLS)
		if err == nil {
			d.radsec, err = net.Listen("tcp", s.RadsecListen)
		}
		if err != nil {
			return fmt.Errorf("server.radsec_listen %s: %w", s.RadsecListen, err)
		}
		d.closers = append(d.closers, func() { d.radsec.Close() })
		d.radsecOp = radius.RadSecOptions{TLS: tlsCfg, IdleTimeout: s.RadsecIdleTimeout, MaxConnections: s.RadsecMaxConnections}
	}
	if s.AdminListen != "" {
		if err := d.listenHTTP("server.admin_listen", s.AdminListen, d.adminMux()); err != nil {
			return err
		}
	}
	if s.WebhookListen != "" {
		mux := http.NewServeMux()
		mux.Handle("POST "+voice.WebhookPath, webhook(&d.current, d.log))
		if err := d.listenHTTP("server.webhook_listen", s.WebhookListen, mux); err != nil {
			return err
		}
	}
	return d.listenPortal()
}

func (d *daemon) listenHTTP(key, addr string, h http.Handler) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%s %s: %w", key, addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second}
	d.http = append(d.http, srv)
	d.closers = append(d.closers, func() { ln.Close() })
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.fail(fmt.Errorf("%s %s: %w", key, addr, err))
		}
	}()
	return nil
}

// adminMux is /metrics, /healthz and /readyz, the webhooks unless they
// have their own listener, and the profiler when asked for.
func (d *daemon) adminMux() *http.ServeMux {
	checks := func() []admin.Check {
		return []admin.Check{
			{Name: "listeners", Func: func(context.Context) error {
				if !d.ready.Load() {
					return errors.New("not bound yet")
				}
				return nil
			}},
			{Name: "ldap", Func: func(ctx context.Context) error { return d.current.Load().dir.Ping(ctx) }},
			{Name: "state", Func: func(ctx context.Context) error {
				if d.be.state.ping == nil {
					return nil
				}
				return d.be.state.ping(ctx)
			}},
			{Name: "store", Func: func(ctx context.Context) error {
				if d.be.store == nil {
					return nil
				}
				return d.be.store.Ping(ctx)
			}},
		}
	}
	mux := admin.Handler(d.reg, checks, d.log.With("component", "admin"))
	if d.cfg.Server.WebhookListen == "" {
		mux.Handle("POST "+voice.WebhookPath, webhook(&d.current, d.log))
	}
	if d.cfg.Server.Pprof {
		// One contended lock in 100 is recorded, for /debug/pprof/mutex.
		runtime.SetMutexProfileFraction(100)
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	}
	return mux
}

// run serves every RADIUS listener.
func (d *daemon) run() {
	for _, pc := range d.conns {
		d.serving.Add(1)
		go func() {
			defer d.serving.Done()
			if err := d.srv.Serve(pc); err != nil {
				d.fail(fmt.Errorf("server.radius_listen %s: %w", pc.LocalAddr(), err))
			}
		}()
	}
	if d.radsec != nil {
		go func() {
			if err := d.srv.ServeRadSec(d.radsec, d.radsecOp); err != nil {
				d.fail(fmt.Errorf("server.radsec_listen %s: %w", d.cfg.Server.RadsecListen, err))
			}
		}()
	}
	d.ready.Store(true)
	addrs := make([]string, len(d.conns))
	for i, c := range d.conns {
		addrs[i] = c.LocalAddr().String()
	}
	s := d.cfg.Server
	d.log.Info("mfabridge started", "version", versionString(), "radius", addrs, "radsec", s.RadsecListen, "admin", s.AdminListen,
		"webhooks", orAdmin(s.WebhookListen), "portal", d.cfg.Portal.Listen, "clients", len(d.cfg.Clients), "ldap", d.cfg.LDAP.URLs)
}

// wait runs until ctx ends or a listener fails, reloading on SIGHUP.
func (d *daemon) wait(ctx context.Context) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			d.log.Info("shutting down: no new packets; finishing requests in flight", "grace", shutdownGrace)
			return nil
		case err := <-d.errc:
			return err
		case <-hup:
			d.reload()
		}
	}
}

// drain stops reading, finishes the requests in flight within the
// grace period, and stops the HTTP listeners.
func (d *daemon) drain() {
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := d.srv.Shutdown(sctx); err != nil {
		d.log.Warn("requests still in flight at the end of the grace period were abandoned", "err", err)
	}
	d.serving.Wait()
	for _, h := range d.http {
		h.Shutdown(sctx)
	}
	d.current.Load().dir.Close()
	if err := d.be.aud.Err(); err != nil {
		d.log.Error("audit log write failed", "err", err)
	}
	d.log.Info("mfabridge stopped")
}

// fail reports a goroutine's error to wait; the first one ends the
// daemon, and the others are not waited for.
func (d *daemon) fail(err error) {
	select {
	case d.errc <- err:
	default:
	}
}

// close releases what open and listen opened, last first.
func (d *daemon) close() {
	for _, f := range slices.Backward(d.closers) {
		f()
	}
}

// reload builds a new graph from the file and swaps it in; a file that
// does not load is refused with one log line and the old graph stays.
func (d *daemon) reload() {
	refuse := func(why string) {
		d.log.Error("reload refused; the running configuration stays in force", "err", why)
	}
	cfg, err := config.Load(d.path)
	if err != nil {
		refuse(err.Error())
		return
	}
	old := d.current.Load()
	if usesSmartcards(cfg) && d.be.eap == nil {
		refuse("smartcard logins can be turned on only at start")
		return
	}
	if cfg.Store.Driver != old.cfg.Store.Driver || cfg.Store.Path != old.cfg.Store.Path ||
		cfg.Store.DSN.Source() != old.cfg.Store.DSN.Source() || cfg.Store.Key.Source() != old.cfg.Store.Key.Source() {
		refuse("store.driver, path, dsn and key change only on restart")
		return
	}
	g, err := build(cfg, d.log, d.be)
	if err != nil {
		refuse(err.Error())
		return
	}
	if restartOnly(cfg, old.cfg) {
		d.log.Warn("listeners, RadSec certificates, state, logging and the portal change only on restart; the rest of the new configuration is in force")
	}
	for _, w := range cfg.Warnings {
		d.log.Warn(w)
	}
	d.current.Store(g)
	d.srv.SetClients(g.clients)
	d.srv.SetHandler(g.conv)
	// Requests already holding the old directory finish with it; its pools
	// close their connections as they come back.
	time.AfterFunc(time.Minute, old.dir.Close)
	d.log.Info("configuration reloaded", "clients", len(cfg.Clients), "policies", len(cfg.Policies))
}

// restartOnly reports whether cfg changes what a reload cannot.
func restartOnly(cfg, old *config.Config) bool {
	s, o := cfg.Server, old.Server
	return !slices.Equal(s.RadiusListen, o.RadiusListen) || s.AdminListen != o.AdminListen || s.WebhookListen != o.WebhookListen ||
		s.RadsecListen != o.RadsecListen || s.RadsecTLS != o.RadsecTLS || s.DuplicateCacheEntries != o.DuplicateCacheEntries ||
		!reflect.DeepEqual(cfg.State, old.State) || cfg.Logging != old.Logging || !reflect.DeepEqual(cfg.Portal, old.Portal)
}
