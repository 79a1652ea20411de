package radius

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
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
	// DuplicateEntries bounds the replies kept for one client; default
	// 65536. See replyCache.
	DuplicateEntries int
	// MaxInFlightPerClient bounds the requests of one client handled at
	// once, so that one noisy client cannot starve the others; more are
	// dropped and counted. A request waiting for a phone approval no
	// longer counts (see hold). Default 32.
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

	dropLog logLimiter      // samples "packet dropped" debug lines
	warn    *sourceWarnings // what an operator must see, once a minute per source
	held    atomic.Int64    // requests held for an approval

	mu        sync.Mutex
	conns     map[net.PacketConn]struct{}
	listeners map[net.Listener]struct{} // RadSec
	streams   map[net.Conn]struct{}     // open RadSec connections
	inflight  map[string]chan struct{}  // by client name
	closing   bool
	handlers  sync.WaitGroup
	readers   sync.WaitGroup
	workers   *workers
}

// NewServer builds a server; call Serve for each listening socket.
func NewServer(o Options) *Server {
	if o.DuplicateWindow <= 0 {
		o.DuplicateWindow = 30 * time.Second
	}
	if o.MaxInFlightPerClient <= 0 {
		o.MaxInFlightPerClient = 32
	}
	if o.DuplicateEntries <= 0 {
		o.DuplicateEntries = 65536
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
		dropLog:   logLimiter{perSecond: 20},
		warn:      newSourceWarnings(o.Log),
		conns:     map[net.PacketConn]struct{}{},
		listeners: map[net.Listener]struct{}{},
		streams:   map[net.Conn]struct{}{},
		inflight:  map[string]chan struct{}{},
		workers:   newWorkers(2 * time.Second),
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
		checkPacket(newSigners(), s.metrics, s.log, &s.dropLog, s.warn, s.now),
		dedup(newReplyCache(o.DuplicateWindow, o.DuplicateEntries, s.now), s.metrics, s.warn, s.now),
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

	// A large receive buffer rides out bursts; a flood from one client
	// then costs drops counted here rather than packets of other clients
	// lost in the kernel. Several readers drain the socket in parallel.
	if rb, ok := conn.(interface{ SetReadBuffer(int) error }); ok {
		rb.SetReadBuffer(udpReadBuffer)
	}
	forceReadBuffer(conn, udpReadBuffer)
	readers := min(max(runtime.GOMAXPROCS(0), 2), 8)
	errc := make(chan error, readers)
	for range readers {
		go func() { errc <- s.read(conn) }()
	}
	var first error
	for range readers {
		if err := <-errc; err != nil && first == nil {
			first = err
			conn.Close() // stop the other readers too
		}
	}
	return first
}

// udpReadBuffer is the socket receive buffer asked for; the kernel caps
// it at net.core.rmem_max unless the process may force it (root).
const udpReadBuffer = 4 << 20

// read is one reader of a UDP socket.
func (s *Server) read(conn net.PacketConn) error {
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
				if s.isClosing() {
					return nil // Shutdown stopped the reading; the socket stays open for replies
				}
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
		s.warn.note(s.now(), DropUnknownClient, from.Addr().Unmap(), "",
			"RADIUS request from an address that is no configured client; dropped (add it to clients, or check the NAS's server address)")
		return
	}
	raw := make([]byte, len(b))
	copy(raw, b)
	s.handle(raw, from, conn.LocalAddr(), addr, client, func(req *radius.Packet) sealedWriter {
		return &responseWriter{conn: conn, addr: addr, req: req}
	}, nil)
}

// handle parses a request of client and runs the handler chain for it in
// its own goroutine, under the client's in-flight bound. reply makes the
// writer that sends the answer. It reports whether it started a handler; done, when not nil, is called
// when that handler returns.
func (s *Server) handle(raw []byte, from netip.AddrPort, local, remote net.Addr, client *Client,
	reply func(req *radius.Packet) sealedWriter, done func()) bool {
	// The bound is taken before any parsing, so that a flood costs as
	// little as possible once its client has work enough in hand.
	sem := s.semaphore(client.Name)
	select {
	case sem <- struct{}{}:
	default:
		s.drop(DropOverload, from, client)
		return false
	}
	pkt, err := radius.Parse(raw, client.Secret)
	if err == nil && pkt.Code != radius.CodeAccessRequest && pkt.Code != radius.CodeStatusServer {
		s.drop(DropUnsupportedCode, from, client)
		<-sem
		return false
	}
	if err != nil {
		s.drop(DropMalformed, from, client)
		<-sem
		return false
	}
	s.handlers.Add(1)
	s.metrics.InFlight.Inc()
	s.workers.run(func() {
		info := &requestInfo{client: client, raw: raw, from: from, received: s.now()}
		info.release = sync.OnceFunc(func() {
			<-sem
			s.metrics.InFlight.Dec()
		})
		info.hold = func() (func(), bool) { return s.hold(info) }
		defer func() {
			info.release()
			if done != nil {
				done()
			}
			s.handlers.Done()
		}()
		req := (&radius.Request{LocalAddr: local, RemoteAddr: remote, Packet: pkt}).
			WithContext(context.WithValue(s.ctx, infoKey{}, info))
		s.handler.ServeRADIUS(reply(pkt), req)
	})
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
	if !s.log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	// A flood must not turn into a flood of log lines: the counter above
	// has every drop, the log a sample.
	ok, suppressed := s.dropLog.allow(s.now())
	if !ok {
		return
	}
	name := ""
	if c != nil {
		name = c.Name
	}
	s.log.Debug("packet dropped", "cause", cause, "from", from.String(), "client", name, "suppressed_before", suppressed)
}

// logLimiter lets through at most perSecond events a second and counts
// the rest.
type logLimiter struct {
	mu         sync.Mutex
	perSecond  int
	second     int64
	n          int
	suppressed int
}

func (l *logLimiter) allow(now time.Time) (ok bool, suppressed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if sec := now.Unix(); sec != l.second {
		l.second, l.n = sec, 0
	}
	if l.n >= l.perSecond {
		l.suppressed++
		return false, 0
	}
	l.n++
	suppressed, l.suppressed = l.suppressed, 0
	return true, suppressed
}

// Shutdown stops reading, then waits for the requests in flight until ctx
// ends. Requests still running then see their context cancelled.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	// UDP sockets stop reading now but stay open, so that the requests in
	// flight can still send their replies; they close at the end.
	for c := range s.conns {
		c.SetReadDeadline(time.Now())
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
	closeAll := func() {
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		for c := range s.streams {
			c.Close()
		}
		s.mu.Unlock()
	}
	select {
	case <-done:
		s.cancel()
		closeAll()
		return nil
	case <-ctx.Done():
		s.cancel()
		closeAll()
		<-done
		return ctx.Err()
	}
}

func (s *Server) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
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
	// release frees the request's in-flight slot; it runs once, when the
	// handler returns or when the request starts waiting (hold).
	release func()
	hold    func() (release func(), ok bool)
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
	return w.writeSealed(b)
}

func (w *responseWriter) writeSealed(b []byte) error {
	_, err := w.conn.WriteTo(b, w.addr)
	return err
}

// maxHeld bounds the requests held for an approval, across all clients.
const maxHeld = 4096

// hold is called by a handler about to wait without working (a request
// held for a phone approval): its in-flight slot goes to other requests
// of the client. It reports false when too many requests are held
// already; the handler should then refuse.
func (s *Server) hold(info *requestInfo) (release func(), ok bool) {
	if s.held.Add(1) > maxHeld {
		s.held.Add(-1)
		return func() {}, false
	}
	info.release()
	return func() { s.held.Add(-1) }, true
}

// holdRequest is what handlers call; without a server behind the request
// (tests driving a handler directly) holding is always allowed.
func holdRequest(ctx context.Context) (release func(), ok bool) {
	info := infoFrom(ctx)
	if info == nil || info.hold == nil {
		return func() {}, true
	}
	return info.hold()
}
