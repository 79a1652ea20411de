package radius

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"layeh.com/radius"
)

// Options configure a Server.
type Options struct {
	Clients *ClientTable
	// Handler answers the requests that pass every check: the conversation.
	Handler radius.Handler
	// DuplicateWindow is how long a reply is kept for retransmissions
	// (RFC 5080 §2.2.2); default 30s.
	DuplicateWindow time.Duration
	// MaxInFlightPerClient bounds the requests of one client handled at
	// once, so that one noisy client cannot starve the others; more are
	// dropped and counted. Default 256.
	MaxInFlightPerClient int
	Metrics              *Metrics // nil: counted nowhere
	Log                  *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Server answers RADIUS over UDP. It reads datagrams itself rather than
// through layeh's PacketServer, so that it has the raw bytes for the
// Message-Authenticator check, its own duplicate key (address, Identifier
// and Request Authenticator), a bound on concurrent work per client, and
// counts for every dropped packet.
type Server struct {
	clients atomic.Pointer[ClientTable]
	inner   atomic.Pointer[radius.Handler] // the conversation, swapped on reload
	handler radius.Handler                 // the whole chain
	metrics *Metrics
	log     *slog.Logger
	now     func() time.Time
	limit   int

	ctx    context.Context // cancelled by Shutdown
	cancel context.CancelFunc

	mu        sync.Mutex
	conns     map[net.PacketConn]struct{}
	listeners map[net.Listener]struct{} // RadSec
	streams   map[net.Conn]struct{}     // open RadSec connections
	inflight  map[string]chan struct{}  // by client name
	closing   bool
	handlers  sync.WaitGroup
	readers   sync.WaitGroup
}

// NewServer builds a server; call Serve for each listening socket.
func NewServer(o Options) *Server {
	if o.DuplicateWindow <= 0 {
		o.DuplicateWindow = 30 * time.Second
	}
	if o.MaxInFlightPerClient <= 0 {
		o.MaxInFlightPerClient = 256
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Server{
		metrics:   o.Metrics,
		log:       o.Log,
		now:       o.Now,
		limit:     o.MaxInFlightPerClient,
		conns:     map[net.PacketConn]struct{}{},
		listeners: map[net.Listener]struct{}{},
		streams:   map[net.Conn]struct{}{},
		inflight:  map[string]chan struct{}{},
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.clients.Store(o.Clients)
	s.inner.Store(&o.Handler)
	current := radius.HandlerFunc(func(w radius.ResponseWriter, r *radius.Request) {
		(*s.inner.Load()).ServeRADIUS(w, r)
	})
	s.handler = chain(current,
		recoverPanics(s.metrics, s.log),
		observe(s.metrics, s.log, s.now),
		checkPacket(newSigners(), s.metrics, s.log),
		dedup(newReplyCache(o.DuplicateWindow, 65536, s.now), s.metrics),
		statusServer,
	)
	return s
}

// middleware wraps a handler with one cross-cutting behaviour.
type middleware func(radius.Handler) radius.Handler

// chain applies mw around h, the first outermost.
func chain(h radius.Handler, mw ...middleware) radius.Handler {
	for i := len(mw) - 1; i >= 0; i-- {
		h = mw[i](h)
	}
	return h
}

// SetClients replaces the client table; requests in flight keep the
// client they started with.
func (s *Server) SetClients(t *ClientTable) { s.clients.Store(t) }

// SetHandler replaces the conversation; requests in flight finish with
// the one they started with.
func (s *Server) SetHandler(h radius.Handler) { s.inner.Store(&h) }

// Serve reads requests from conn until it is closed or Shutdown is called.
func (s *Server) Serve(conn net.PacketConn) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return errors.New("radius: server is shut down")
	}
	s.conns[conn] = struct{}{}
	s.readers.Add(1)
	s.mu.Unlock()
	defer s.readers.Done()

	// One byte more than the largest RADIUS packet, so that an oversized
	// datagram shows up as too long instead of silently truncated.
	buf := make([]byte, radius.MaxPacketLength+1)
	for {
		n, addr, err := conn.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) || s.ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		s.dispatch(conn, addr, buf[:n])
	}
}

// dispatch drops what must not reach a handler, then hands a datagram to
// handle with a writer that answers over UDP.
func (s *Server) dispatch(conn net.PacketConn, addr net.Addr, b []byte) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return
	}
	from := ua.AddrPort()
	if len(b) > radius.MaxPacketLength {
		s.drop(DropTooLarge, from, nil)
		return
	}
	client := s.clients.Load().Lookup(from.Addr())
	if client == nil {
		s.drop(DropUnknownClient, from, nil)
		return
	}
	raw := make([]byte, len(b))
	copy(raw, b)
	s.handle(raw, from, conn.LocalAddr(), addr, client, func(req *radius.Packet) radius.ResponseWriter {
		return &responseWriter{conn: conn, addr: addr, req: req}
	}, nil)
}

// handle parses a request of client and runs the handler chain for it in
// its own goroutine, under the client's in-flight bound. reply makes the
// writer that sends the answer. It reports whether it started a handler; done, when not nil, is called
// when that handler returns.
func (s *Server) handle(raw []byte, from netip.AddrPort, local, remote net.Addr, client *Client,
	reply func(req *radius.Packet) radius.ResponseWriter, done func()) bool {
	pkt, err := radius.Parse(raw, client.Secret)
	if err != nil {
		s.drop(DropMalformed, from, client)
		return false
	}
	if pkt.Code != radius.CodeAccessRequest && pkt.Code != radius.CodeStatusServer {
		s.drop(DropUnsupportedCode, from, client)
		return false
	}
	sem := s.semaphore(client.Name)
	select {
	case sem <- struct{}{}:
	default:
		s.drop(DropOverload, from, client)
		return false
	}
	s.handlers.Add(1)
	s.metrics.InFlight.Inc()
	go func() {
		defer func() {
			<-sem
			s.metrics.InFlight.Dec()
			if done != nil {
				done()
			}
			s.handlers.Done()
		}()
		info := &requestInfo{client: client, raw: raw, from: from, received: s.now()}
		req := (&radius.Request{LocalAddr: local, RemoteAddr: remote, Packet: pkt}).
			WithContext(context.WithValue(s.ctx, infoKey{}, info))
		s.handler.ServeRADIUS(reply(pkt), req)
	}()
	return true
}

func (s *Server) semaphore(name string) chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	sem, ok := s.inflight[name]
	if !ok {
		sem = make(chan struct{}, s.limit)
		s.inflight[name] = sem
	}
	return sem
}

func (s *Server) drop(cause string, from netip.AddrPort, c *Client) {
	s.metrics.Dropped.WithLabelValues(cause).Inc()
	if s.log.Enabled(context.Background(), slog.LevelDebug) {
		name := ""
		if c != nil {
			name = c.Name
		}
		s.log.Debug("packet dropped", "cause", cause, "from", from.String(), "client", name)
	}
}

// Shutdown stops reading, then waits for the requests in flight until ctx
// ends. Requests still running then see their context cancelled.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	for c := range s.conns {
		c.Close()
	}
	for l := range s.listeners {
		l.Close()
	}
	// RadSec connections stop reading now but stay open until their
	// requests in flight are answered.
	for c := range s.streams {
		c.SetReadDeadline(time.Now())
	}
	s.mu.Unlock()

	done := make(chan struct{})
	go func() {
		s.readers.Wait()
		s.handlers.Wait()
		close(done)
	}()
	select {
	case <-done:
		s.cancel()
		return nil
	case <-ctx.Done():
		s.cancel()
		s.mu.Lock()
		for c := range s.streams {
			c.Close()
		}
		s.mu.Unlock()
		<-done
		return ctx.Err()
	}
}

// infoKey carries *requestInfo in a request's context.
type infoKey struct{}

// requestInfo is what the front knows about a request beyond its packet.
type requestInfo struct {
	client   *Client
	raw      []byte // the datagram as received
	from     netip.AddrPort
	received time.Time
	signed   bool // carried a valid Message-Authenticator
}

func infoFrom(ctx context.Context) *requestInfo {
	info, _ := ctx.Value(infoKey{}).(*requestInfo)
	return info
}

// responseWriter seals every response (Message-Authenticator first,
// Proxy-State echoed) and sends it to the request's source.
type responseWriter struct {
	conn net.PacketConn
	addr net.Addr
	req  *radius.Packet
}

func (w *responseWriter) Write(p *radius.Packet) error {
	b, err := seal(p, w.req)
	if err != nil {
		return err
	}
	_, err = w.conn.WriteTo(b, w.addr)
	return err
}
