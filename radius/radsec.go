package radius

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"layeh.com/radius"
)

// RadSecOptions configure ServeRadSec.
type RadSecOptions struct {
	// TLS must require and verify client certificates; ServeRadSec
	// enforces TLS 1.2 or later.
	TLS *tls.Config
	// IdleTimeout closes a connection that sends nothing for this long;
	// default 2m. Clients keep a connection open with Status-Server.
	IdleTimeout time.Duration
	// MaxConnections bounds open connections; more are closed at once.
	// Default 256.
	MaxConnections int
	// HandshakeTimeout bounds the TLS handshake; default 10s.
	HandshakeTimeout time.Duration
	// MaxPerSource bounds the connections open from one address; more
	// are closed at once. Default 16.
	MaxPerSource int
}

// More drop causes for RadSec.
const (
	DropRadSecLimit     = "radsec_connection_limit"
	DropRadSecHandshake = "radsec_handshake"
	DropRadSecFraming   = "radsec_framing"
	DropRadSecSource    = "radsec_source_limit"
)

// ServeRadSec answers RADIUS over TLS (RFC 6614, framed as RFC 6613) on
// ln until it is closed or Shutdown is called. A connection's client is
// the RadSec client whose radsec_name its certificate carries and whose
// address holds its source; the shared secret is "radsec". Requests go
// through the same chain as UDP ones, under the same per-client bound.
func (s *Server) ServeRadSec(ln net.Listener, o RadSecOptions) error {
	if o.TLS == nil || o.TLS.ClientAuth != tls.RequireAndVerifyClientCert {
		return errors.New("radius: RadSec needs a TLS config that requires and verifies client certificates")
	}
	cfg := o.TLS.Clone()
	if cfg.MinVersion < tls.VersionTLS12 {
		cfg.MinVersion = tls.VersionTLS12
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 2 * time.Minute
	}
	if o.MaxConnections <= 0 {
		o.MaxConnections = 256
	}
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = 10 * time.Second
	}
	if o.MaxPerSource <= 0 {
		o.MaxPerSource = 16
	}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return errors.New("radius: server is shut down")
	}
	s.listeners[ln] = struct{}{}
	s.readers.Add(1)
	s.mu.Unlock()
	defer s.readers.Done()

	adm := &admission{slots: make(chan struct{}, o.MaxConnections), perSource: o.MaxPerSource}
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || s.ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return err
		}
		release, ok := s.admit(adm, c)
		if !ok {
			c.Close()
			continue
		}
		if !s.track(c, true) {
			c.Close()
			release()
			return nil
		}
		s.readers.Add(1)
		go func() {
			defer func() {
				s.track(c, false)
				c.Close()
				release()
				s.readers.Done()
			}()
			s.serveTLSConn(tls.Server(c, cfg), o)
		}()
	}
}

// admission bounds the RadSec connections open: in all, and per source
// address.
type admission struct {
	slots     chan struct{}
	perSource int
	sources   sync.Map // netip.Addr → *atomic.Int32
}

// admit decides on a new connection before any TLS work: a connection
// costs a slot and up to HandshakeTimeout of handshake before its
// certificate says who it is, so its source must be inside a RadSec
// client's range before either is spent, and one address may hold only a
// few. release gives the slot back.
func (s *Server) admit(a *admission, c net.Conn) (release func(), ok bool) {
	from := tcpAddrPort(c.RemoteAddr())
	if !s.clients.Load().RadSecSource(from.Addr()) {
		s.drop(DropUnknownClient, from, nil)
		s.warn.note(s.now(), DropUnknownClient, from.Addr().Unmap(), "",
			"RadSec connection from an address inside no RadSec client's range; closed (check clients[].address)")
		return nil, false
	}
	v, _ := a.sources.LoadOrStore(from.Addr().Unmap(), new(atomic.Int32))
	count := v.(*atomic.Int32)
	if count.Add(1) > int32(a.perSource) {
		count.Add(-1)
		s.metrics.Dropped.WithLabelValues(DropRadSecSource).Inc()
		return nil, false
	}
	select {
	case a.slots <- struct{}{}:
	default:
		count.Add(-1)
		s.metrics.Dropped.WithLabelValues(DropRadSecLimit).Inc()
		return nil, false
	}
	return func() {
		count.Add(-1)
		<-a.slots
	}, true
}

// armRead sets the idle deadline for the next read, unless Shutdown has
// begun; under s.mu, so that it cannot undo Shutdown's deadline.
func (s *Server) armRead(c net.Conn, idle time.Duration) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	c.SetReadDeadline(time.Now().Add(idle))
	return true
}

// track adds or removes an open connection, so that Shutdown can close
// it; it reports false when the server is shutting down.
func (s *Server) track(c net.Conn, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !add {
		delete(s.streams, c)
		return true
	}
	if s.closing {
		return false
	}
	s.streams[c] = struct{}{}
	return true
}

// serveTLSConn runs one RadSec connection: handshake, identify the
// client, then read framed packets until the peer closes, the idle
// timeout passes, or the framing is broken (RFC 6613 §2.6.4: close).
func (s *Server) serveTLSConn(tc *tls.Conn, o RadSecOptions) {
	remote, _ := tc.RemoteAddr().(*net.TCPAddr)
	if remote == nil {
		return
	}
	from := remote.AddrPort()
	hctx, cancel := context.WithTimeout(s.ctx, o.HandshakeTimeout)
	err := tc.HandshakeContext(hctx)
	cancel()
	if err != nil {
		s.metrics.Dropped.WithLabelValues(DropRadSecHandshake).Inc()
		s.log.Debug("RadSec handshake failed", "from", from.String(), "err", err)
		return
	}
	client := s.clients.Load().LookupRadSec(from.Addr(), certNames(tc.ConnectionState()))
	if client == nil {
		s.drop(DropUnknownClient, from, nil)
		s.log.Warn("RadSec connection with a certificate that names no RadSec client; closed",
			"from", from.String(), "names", certNames(tc.ConnectionState()))
		return
	}
	s.log.Debug("RadSec connection", "client", client.Name, "from", from.String())
	w := &streamWriter{conn: tc}
	r := bufio.NewReaderSize(tc, radius.MaxPacketLength)
	// The connection closes only once the requests read from it are
	// answered.
	var pending sync.WaitGroup
	defer pending.Wait()
	for {
		if !s.armRead(tc, o.IdleTimeout) {
			return
		}
		raw, err := readFrame(r)
		if err != nil {
			if errors.Is(err, errFraming) {
				s.drop(DropRadSecFraming, from, client)
			}
			return
		}
		pending.Add(1)
		started := s.handle(raw, from, tc.LocalAddr(), tc.RemoteAddr(), client, func(req *radius.Packet) sealedWriter {
			return &streamReply{w: w, req: req}
		}, pending.Done)
		if !started {
			pending.Done()
		}
	}
}

var errFraming = errors.New("radsec: bad packet length")

func tcpAddrPort(a net.Addr) netip.AddrPort {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.AddrPort()
	}
	return netip.AddrPort{}
}

// readFrame reads one RADIUS packet from a stream: the header's Length
// says how much (RFC 6613 §2.6).
func readFrame(r io.Reader) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(hdr[2:4]))
	if n < 20 || n > radius.MaxPacketLength {
		return nil, errFraming
	}
	b := make([]byte, n)
	copy(b, hdr[:])
	if _, err := io.ReadFull(r, b[4:]); err != nil {
		return nil, err
	}
	return b, nil
}

// certNames returns the DNS names and subject CN of the peer certificate.
func certNames(cs tls.ConnectionState) []string {
	if len(cs.PeerCertificates) == 0 {
		return nil
	}
	c := cs.PeerCertificates[0]
	names := append([]string(nil), c.DNSNames...)
	if c.Subject.CommonName != "" {
		names = append(names, c.Subject.CommonName)
	}
	return names
}

// streamWriter serialises replies on one connection.
type streamWriter struct {
	mu   sync.Mutex
	conn net.Conn
}

// streamReply answers one request on a stream.
type streamReply struct {
	w   *streamWriter
	req *radius.Packet
}

func (r *streamReply) Write(p *radius.Packet) error {
	b, err := seal(p, r.req)
	if err != nil {
		return err
	}
	return r.writeSealed(b)
}

func (r *streamReply) writeSealed(b []byte) error {
	r.w.mu.Lock()
	defer r.w.mu.Unlock()
	r.w.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := r.w.conn.Write(b)
	return err
}
