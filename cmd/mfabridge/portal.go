package main

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/mfabridge/mfabridge/config"
	"github.com/mfabridge/mfabridge/factors/otp"
	"github.com/mfabridge/mfabridge/portal"
	"github.com/mfabridge/mfabridge/radius"
)

// currentConversation is the conversation of the configuration in force,
// so that the portal follows reloads.
type currentConversation struct{ g *atomic.Pointer[graph] }

func (c currentConversation) Web(ctx context.Context, policy string, from netip.Addr, login, secret string, state []byte) radius.WebStep {
	return c.g.Load().conv.Web(ctx, policy, from, login, secret, state)
}

// listenPortal starts the self-service portal on portal.listen: HTTPS
// with portal.tls, or plain HTTP on loopback for the demo and tests. Its
// configuration changes on restart.
func (d *daemon) listenPortal() error {
	pc := d.cfg.Portal
	if pc.Listen == "" {
		return nil
	}
	if d.be.store == nil {
		return errors.New("portal.listen: the portal needs the enrolment store (store.key)")
	}
	storeKey, err := config.DecodeKey(d.cfg.Store.Key.Value())
	if err != nil {
		return fmt.Errorf("store.key: %w", err)
	}
	key := sha256.Sum256(append([]byte("mfabridge portal\x00"), storeKey...))
	p, err := portal.New(portal.Options{
		Key:          key[:],
		Config:       pc,
		Policy:       d.cfg.Policies[pc.Policy],
		TOTP:         d.cfg.Factors.TOTP,
		HOTP:         d.cfg.Factors.HOTP,
		Conversation: currentConversation{&d.current},
		Enrolments:   d.be.store,
		State:        d.be.state,
		Codes:        otp.NewTOTP(d.cfg.Factors.TOTP.Skew, d.be.state, nil),
		Audit:        d.be.aud,
		Metrics:      d.reg,
		Log:          d.log.With("component", "portal"),
	})
	if err != nil {
		return fmt.Errorf("portal: %w", err)
	}
	ln, err := net.Listen("tcp", pc.Listen)
	if err != nil {
		return fmt.Errorf("portal.listen %s: %w", pc.Listen, err)
	}
	if !pc.InsecureHTTPLoopback {
		cert, err := tls.LoadX509KeyPair(pc.TLS.CertFile, pc.TLS.KeyFile)
		if err != nil {
			ln.Close()
			return fmt.Errorf("portal.tls: %w", err)
		}
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	}
	srv := &http.Server{Handler: p.Handler(), ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: time.Minute, MaxHeaderBytes: 16 << 10}
	d.http = append(d.http, srv)
	d.closers = append(d.closers, func() { ln.Close() })
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.fail(fmt.Errorf("portal.listen %s: %w", pc.Listen, err))
		}
	}()
	return nil
}
