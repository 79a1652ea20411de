package ldapbind

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// server is one entry of ldap.urls with its failure back-off.
type server struct {
	url      string
	hostport string
	ldaps    bool
	tls      *tls.Config

	mu        sync.Mutex
	failures  int
	downUntil time.Time
}

const (
	backoffBase = 2 * time.Second
	backoffMax  = time.Minute
)

func newServer(raw string, base *tls.Config) (*server, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	s := &server{url: raw, ldaps: u.Scheme == "ldaps"}
	port := u.Port()
	if port == "" {
		port = "389"
		if s.ldaps {
			port = "636"
		}
	}
	s.hostport = net.JoinHostPort(u.Hostname(), port)
	s.tls = base.Clone()
	if s.tls.ServerName == "" {
		s.tls.ServerName = u.Hostname()
	}
	return s, nil
}

func (s *server) available(now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !now.Before(s.downUntil)
}

// failed starts or doubles the back-off.
func (s *server) failed(now time.Time) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := backoffBase << min(s.failures, 5)
	d = min(d, backoffMax)
	s.failures++
	s.downUntil = now.Add(d)
	return d
}

func (s *server) succeeded() {
	s.mu.Lock()
	s.failures, s.downUntil = 0, time.Time{}
	s.mu.Unlock()
}

// dial connects to the first server in order that is not backing off;
// when every server is backing off it tries them all anyway, so a brief
// outage of every server does not outlast the outage.
func (d *Directory) dial(ctx context.Context, service bool) (*conn, error) {
	now := d.now()
	var order []*server
	for _, s := range d.servers {
		if s.available(now) {
			order = append(order, s)
		}
	}
	if len(order) == 0 {
		order = d.servers
	}
	var errs []error
	for _, s := range order {
		lc, raw, err := d.dialServer(ctx, s)
		if err == nil && service && d.cfg.BindDN != "" {
			if err = lc.Bind(d.cfg.BindDN, d.cfg.BindPassword.Value()); err != nil {
				lc.Close()
				if ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
					// The server is up; the configuration is wrong. Do not
					// put a healthy server into back-off for it.
					return nil, fmt.Errorf("ldapbind: %s refused the service account %q: check ldap.bind_dn and ldap.bind_password: %w", s.url, d.cfg.BindDN, err)
				}
			}
		}
		if err != nil {
			back := s.failed(d.now())
			d.log.Warn("directory server failed; trying the next", "url", s.url, "retry_after", back, "err", err)
			errs = append(errs, fmt.Errorf("%s: %w", s.url, err))
			if ctx.Err() != nil {
				break
			}
			continue
		}
		if err := raw.SetDeadline(time.Time{}); err != nil {
			lc.Close()
			return nil, err
		}
		s.succeeded()
		return &conn{Conn: lc, raw: raw, timeout: d.cfg.Timeout, server: s, lastUsed: d.now()}, nil
	}
	return nil, fmt.Errorf("ldapbind: no directory server reachable: %w", errors.Join(errs...))
}

// dialServer opens one connection with every step under the timeout:
// go-ldap's StartTLS has no deadline of its own, so the whole set-up runs
// under a deadline on the TCP connection, which the caller clears once
// the service account has bound. The connection has no go-ldap request
// timeout: each request runs under a deadline of its own (conn.do).
func (d *Directory) dialServer(ctx context.Context, s *server) (*ldap.Conn, net.Conn, error) {
	timeout := d.cfg.Timeout
	dl := net.Dialer{Timeout: timeout}
	raw, err := dl.DialContext(ctx, "tcp", s.hostport)
	if err != nil {
		return nil, nil, err
	}
	if err := raw.SetDeadline(d.now().Add(timeout)); err != nil {
		raw.Close()
		return nil, nil, err
	}
	var nc net.Conn = raw
	if s.ldaps {
		tc := tls.Client(raw, s.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			raw.Close()
			return nil, nil, fmt.Errorf("TLS: %w", err)
		}
		nc = tc
	}
	lc := ldap.NewConn(nc, s.ldaps)
	lc.Start()
	if d.cfg.StartTLS {
		if err := lc.StartTLS(s.tls); err != nil {
			lc.Close()
			return nil, nil, fmt.Errorf("StartTLS: %w", err)
		}
	}
	return lc, raw, nil
}
