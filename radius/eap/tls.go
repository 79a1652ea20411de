package eap

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Config configures the EAP-TLS server.
type Config struct {
	// TLS holds the server certificate; Server sets client authentication,
	// versions (1.2 and 1.3) and turns session tickets off.
	TLS *tls.Config
	// Verify is called during the handshake with the client's chain, leaf
	// first, as sent; an error ends the handshake and is the Reply's Err.
	Verify func(chain []*x509.Certificate) error
	// FragmentSize is the most TLS data in one EAP-TLS packet; default 1000
	// (EAP-Message is split into 253-byte attributes; a packet stays well
	// under 4096 bytes).
	FragmentSize int
	MaxRounds    int           // per session; default 64
	MaxBytes     int           // TLS bytes per session, both ways; default 128 KiB
	IdleTimeout  time.Duration // default 30s
	MaxSessions  int           // open at once; default 4096
	// MaxPerClient and MaxPerStation bound the sessions one owner may
	// hold open: one NAS, and one Calling-Station-Id behind it; defaults
	// 1024 and 4. A flood from one place then cannot take every session.
	MaxPerClient, MaxPerStation int
	// StepTimeout bounds the TLS work of one round; default 5s.
	StepTimeout time.Duration
}

// Status says where a session stands after a round.
type Status int

const (
	Continue Status = iota // send EAP in an Access-Challenge with State
	Done                   // the handshake succeeded: decide, then send Success or Failure
	Failed                 // send EAP (an EAP-Failure) in an Access-Reject
)

// Reply is the outcome of one round.
type Reply struct {
	Status   Status
	EAP      []byte // the EAP packet to send (Continue, Failed)
	State    []byte // Continue: the State for the Access-Challenge
	ID       byte   // Done: the identifier for EAP-Success or EAP-Failure
	Identity string // the EAP-Response/Identity, as the peer gave it
	Peer     []*x509.Certificate
	Version  uint16 // TLS version
	MSK      []byte // Done: 64 bytes (MS-MPPE-Recv-Key = MSK[0:32], Send = MSK[32:64])
	Err      error  // Failed: why
}

// Errors a failed session reports.
var (
	ErrBadPacket   = errors.New("eap: malformed or unexpected packet")
	ErrNotTLS      = errors.New("eap: the peer refused EAP-TLS")
	ErrTooMany     = errors.New("eap: too many open sessions")
	ErrOwner       = errors.New("eap: session continued by another client")
	ErrLimit       = errors.New("eap: session over its round or byte limit")
	ErrExpired     = errors.New("eap: unknown or expired session")
	ErrNoKeys      = errors.New("eap: no keying material (TLS 1.2 without extended master secret)")
	ErrStepTimeout = errors.New("eap: TLS did not progress in time")
	ErrHandshake   = errors.New("eap: TLS handshake failed")
)

// Server runs EAP-TLS sessions. It is safe for concurrent use.
type Server struct {
	cfg Config
	now func() time.Time

	mu        sync.Mutex
	sessions  map[string]*session
	perOwner  map[string]int // open sessions by client, and by client and station
	lastSweep time.Time
}

// Owner is where a session's requests come from: the client (NAS) and
// the Calling-Station-Id. A session continues only from the client that
// began it.
type Owner struct {
	Client, Station string
}

func (o Owner) keys() []string {
	keys := []string{"c\x00" + o.Client}
	if o.Station != "" {
		keys = append(keys, "s\x00"+o.Client+"\x00"+o.Station)
	}
	return keys
}

// NewServer checks cfg and applies defaults.
func NewServer(cfg Config) (*Server, error) {
	if cfg.TLS == nil || len(cfg.TLS.Certificates) == 0 && cfg.TLS.GetCertificate == nil {
		return nil, errors.New("eap: a server certificate is required")
	}
	if cfg.Verify == nil {
		return nil, errors.New("eap: a Verify function is required")
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&cfg.FragmentSize, 1000)
	def(&cfg.MaxRounds, 64)
	def(&cfg.MaxBytes, 128<<10)
	def(&cfg.MaxSessions, 4096)
	def(&cfg.MaxPerClient, 1024)
	def(&cfg.MaxPerStation, 4)
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 30 * time.Second
	}
	if cfg.StepTimeout <= 0 {
		cfg.StepTimeout = 5 * time.Second
	}
	return &Server{cfg: cfg, now: time.Now, sessions: map[string]*session{}, perOwner: map[string]int{}}, nil
}

// Open reports the number of open sessions.
func (s *Server) Open() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// Close ends every session.
func (s *Server) Close() {
	s.mu.Lock()
	ss := s.sessions
	s.sessions, s.perOwner = map[string]*session{}, map[string]int{}
	s.mu.Unlock()
	for _, se := range ss {
		se.close()
	}
}

// Handle runs one round for owner: msg is the EAP packet from the
// request's EAP-Message attributes, state the request's State (nil on
// the first).
func (s *Server) Handle(owner Owner, state, msg []byte) Reply {
	p, err := Parse(msg)
	if err != nil || p.Code != CodeResponse {
		id := byte(0)
		if len(msg) > 1 {
			id = msg[1]
		}
		return failed(id, ErrBadPacket)
	}
	s.sweep()
	if state == nil {
		if p.Type != TypeIdentity {
			return failed(p.Identifier, ErrBadPacket)
		}
		return s.start(owner, p)
	}
	key := hex.EncodeToString(state)
	s.mu.Lock()
	se := s.sessions[key]
	s.mu.Unlock()
	if se == nil {
		return failed(p.Identifier, ErrExpired)
	}
	if se.owner.Client != owner.Client {
		return failed(p.Identifier, ErrOwner)
	}
	r := se.round(p, s.cfg)
	switch r.Status {
	case Continue:
		r.State = state
	default:
		s.mu.Lock()
		s.drop(key, se)
		s.mu.Unlock()
		se.close()
	}
	return r
}

// drop forgets a session; under s.mu.
func (s *Server) drop(key string, se *session) {
	if s.sessions[key] != se {
		return
	}
	delete(s.sessions, key)
	for _, k := range se.owner.keys() {
		if s.perOwner[k]--; s.perOwner[k] <= 0 {
			delete(s.perOwner, k)
		}
	}
}

func failed(id byte, err error) Reply {
	return Reply{Status: Failed, EAP: Failure(id), Err: err}
}

// sweep closes idle sessions, at most once a second.
func (s *Server) sweep() {
	now := s.now()
	s.mu.Lock()
	if now.Sub(s.lastSweep) < time.Second {
		s.mu.Unlock()
		return
	}
	s.lastSweep = now
	var idle []*session
	for k, se := range s.sessions {
		if se.idleSince(now) > s.cfg.IdleTimeout {
			idle = append(idle, se)
			s.drop(k, se)
		}
	}
	s.mu.Unlock()
	for _, se := range idle {
		se.close()
	}
}

// start answers EAP-Response/Identity with EAP-TLS Start.
func (s *Server) start(owner Owner, p *Packet) Reply {
	st := make([]byte, 16)
	if _, err := rand.Read(st); err != nil {
		return failed(p.Identifier, err)
	}
	se := &session{identity: string(p.Data), owner: owner, id: p.Identifier + 1, now: s.now}
	se.last.Store(s.now().UnixNano())
	keys := owner.keys()
	s.mu.Lock()
	if len(s.sessions) >= s.cfg.MaxSessions || s.perOwner[keys[0]] >= s.cfg.MaxPerClient ||
		len(keys) > 1 && s.perOwner[keys[1]] >= s.cfg.MaxPerStation {
		s.mu.Unlock()
		return failed(p.Identifier, ErrTooMany)
	}
	s.sessions[hex.EncodeToString(st)] = se
	for _, k := range keys {
		s.perOwner[k]++
	}
	s.mu.Unlock()
	se.begin(s.cfg)
	req := &Packet{Code: CodeRequest, Identifier: se.id, Type: TypeTLS, Data: []byte{flagStart}}
	return Reply{Status: Continue, EAP: req.Marshal(), State: st, Identity: se.identity}
}

// session is one EAP-TLS conversation.
type session struct {
	mu       sync.Mutex // one round at a time
	identity string
	owner    Owner
	id       byte         // identifier of the last request sent
	last     atomic.Int64 // unix nanoseconds of the last round, read without the round's lock
	now      func() time.Time
	rounds   int
	bytes    int

	conn    *pipe
	tls     *tls.Conn
	peer    []*x509.Certificate
	verrMu  sync.Mutex
	verr    error // from Verify
	inBuf   []byte
	inTotal int
	out     []byte // TLS data not yet sent
	outLen  int    // total of the message being sent
	outSent bool   // some of it has been sent
}

func (se *session) idleSince(now time.Time) time.Duration {
	return now.Sub(time.Unix(0, se.last.Load()))
}

// begin starts the TLS server over the pipe; it waits for input.
func (se *session) begin(cfg Config) {
	tc := cfg.TLS.Clone()
	tc.MinVersion = tls.VersionTLS12
	if tc.MaxVersion == 0 || tc.MaxVersion > tls.VersionTLS13 {
		tc.MaxVersion = tls.VersionTLS13
	}
	tc.SessionTicketsDisabled = true
	tc.ClientAuth = tls.RequireAnyClientCert
	tc.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
		chain := make([]*x509.Certificate, 0, len(raw))
		for _, r := range raw {
			c, err := x509.ParseCertificate(r)
			if err != nil {
				se.setVerifyErr(fmt.Errorf("eap: unreadable client certificate: %w", err))
				return err
			}
			chain = append(chain, c)
		}
		// Kept even when refused: the audit record names the card.
		se.setPeer(chain)
		if err := cfg.Verify(chain); err != nil {
			se.setVerifyErr(err)
			return err
		}
		return nil
	}
	se.conn = newPipe()
	se.tls = tls.Server(se.conn, tc)
	go func() {
		err := se.tls.Handshake()
		if err == nil && se.tls.ConnectionState().Version == tls.VersionTLS13 {
			// RFC 9190 §2.5: one byte of application data commits the
			// server to the end of the handshake.
			_, err = se.tls.Write([]byte{0})
		}
		se.conn.finish(err)
	}()
}

func (se *session) setPeer(chain []*x509.Certificate) {
	se.verrMu.Lock()
	se.peer = chain
	se.verrMu.Unlock()
}

func (se *session) peerChain() []*x509.Certificate {
	se.verrMu.Lock()
	defer se.verrMu.Unlock()
	return se.peer
}

func (se *session) setVerifyErr(err error) {
	se.verrMu.Lock()
	se.verr = err
	se.verrMu.Unlock()
}

func (se *session) verifyErr() error {
	se.verrMu.Lock()
	defer se.verrMu.Unlock()
	return se.verr
}

func (se *session) close() {
	if se.conn != nil {
		se.conn.Close()
	}
}

// round handles one EAP-Response of the session.
func (se *session) round(p *Packet, cfg Config) Reply {
	se.mu.Lock()
	defer se.mu.Unlock()
	se.last.Store(se.now().UnixNano())
	se.rounds++
	if p.Identifier != se.id {
		return failed(p.Identifier, ErrBadPacket)
	}
	if se.rounds > cfg.MaxRounds {
		return failed(p.Identifier, ErrLimit)
	}
	switch p.Type {
	case TypeTLS:
	case TypeNak:
		return failed(p.Identifier, ErrNotTLS)
	default:
		return failed(p.Identifier, ErrBadPacket)
	}
	f, err := parseTLS(p.Data)
	if err != nil {
		return failed(p.Identifier, ErrBadPacket)
	}
	se.bytes += len(f.data)
	if se.bytes > cfg.MaxBytes || int(f.total) > cfg.MaxBytes {
		return failed(p.Identifier, ErrLimit)
	}

	// Sending a message in fragments: each empty response acknowledges
	// one (RFC 5216 §2.1.5).
	if len(se.out) > 0 {
		if len(f.data) > 0 || f.flags != 0 {
			return failed(p.Identifier, ErrBadPacket)
		}
		return se.sendNext(cfg)
	}

	// Receiving: collect fragments until one without M.
	if f.flags&flagLength != 0 && se.inTotal == 0 {
		se.inTotal = int(f.total)
	}
	se.inBuf = append(se.inBuf, f.data...)
	if se.inTotal > 0 && len(se.inBuf) > se.inTotal {
		return failed(p.Identifier, ErrBadPacket)
	}
	if f.flags&flagMore != 0 {
		se.id++
		ack := &Packet{Code: CodeRequest, Identifier: se.id, Type: TypeTLS, Data: []byte{0}}
		return Reply{Status: Continue, EAP: ack.Marshal()}
	}
	in := se.inBuf
	se.inBuf, se.inTotal = nil, 0

	if len(in) > 0 {
		se.conn.feed(in)
	}
	out, finished, herr, ok := se.conn.await(cfg.StepTimeout)
	if !ok {
		return failed(p.Identifier, ErrStepTimeout)
	}
	se.bytes += len(out)
	if se.bytes > cfg.MaxBytes {
		return failed(p.Identifier, ErrLimit)
	}
	if finished && herr != nil {
		r := failed(p.Identifier, fmt.Errorf("%w: %w", ErrHandshake, herr))
		if v := se.verifyErr(); v != nil {
			r.Err = v
		}
		r.Identity, r.Peer = se.identity, se.peerChain()
		return r
	}
	if len(out) > 0 {
		se.out, se.outLen, se.outSent = out, len(out), false
		return se.sendNext(cfg)
	}
	if !finished {
		// The peer sent nothing TLS could use and TLS has nothing to say.
		return failed(p.Identifier, ErrBadPacket)
	}
	// Everything is sent and acknowledged: the handshake is over.
	cs := se.tls.ConnectionState()
	label, context := "client EAP encryption", []byte(nil) // RFC 5216 §2.3: no context
	if cs.Version == tls.VersionTLS13 {
		label, context = "EXPORTER_EAP_TLS_Key_Material", []byte{TypeTLS} // RFC 9190 §2.3
	}
	km, err := cs.ExportKeyingMaterial(label, context, 128)
	if err != nil {
		return failed(p.Identifier, ErrNoKeys)
	}
	return Reply{Status: Done, ID: p.Identifier, Identity: se.identity, Peer: se.peerChain(), Version: cs.Version, MSK: km[:64]}
}

// sendNext sends the next fragment of se.out.
func (se *session) sendNext(cfg Config) Reply {
	n := min(len(se.out), cfg.FragmentSize)
	f := tlsFragment{data: se.out[:n]}
	if !se.outSent && len(se.out) > n {
		f.flags |= flagLength
		f.total = uint32(se.outLen)
	}
	if len(se.out) > n {
		f.flags |= flagMore
	}
	se.out = se.out[n:]
	se.outSent = true
	se.id++
	req := &Packet{Code: CodeRequest, Identifier: se.id, Type: TypeTLS, Data: f.marshal()}
	return Reply{Status: Continue, EAP: req.Marshal()}
}

// pipe is the net.Conn crypto/tls runs over: what the peer sent is fed
// in, what TLS writes collects until the round sends it.
type pipe struct {
	mu       sync.Mutex
	cond     *sync.Cond
	in, out  []byte
	waiting  bool // Read is blocked for want of input
	finished bool // the handshake goroutine is done
	err      error
	closed   bool
	timedOut bool
	gen      int // which await a timer belongs to
}

func newPipe() *pipe {
	p := &pipe{}
	p.cond = sync.NewCond(&p.mu)
	return p
}

func (p *pipe) Read(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.in) == 0 {
		if p.closed {
			return 0, io.EOF
		}
		p.waiting = true
		p.cond.Broadcast()
		p.cond.Wait()
	}
	p.waiting = false
	n := copy(b, p.in)
	p.in = p.in[n:]
	return n, nil
}

func (p *pipe) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return 0, net.ErrClosed
	}
	p.out = append(p.out, b...)
	return len(b), nil
}

func (p *pipe) feed(b []byte) {
	p.mu.Lock()
	p.in = append(p.in, b...)
	p.waiting = false
	p.cond.Broadcast()
	p.mu.Unlock()
}

func (p *pipe) finish(err error) {
	p.mu.Lock()
	p.finished, p.err = true, err
	p.cond.Broadcast()
	p.mu.Unlock()
}

// await waits until TLS wants more input or is done, and returns what it
// wrote meanwhile; ok is false on timeout.
func (p *pipe) await(timeout time.Duration) (out []byte, finished bool, err error, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.gen++
	gen := p.gen
	p.timedOut = false
	t := time.AfterFunc(timeout, func() {
		p.mu.Lock()
		if p.gen == gen { // not a timer left over from an earlier round
			p.timedOut = true
			p.cond.Broadcast()
		}
		p.mu.Unlock()
	})
	defer t.Stop()
	for !(p.waiting && len(p.in) == 0) && !p.finished && !p.timedOut {
		p.cond.Wait()
	}
	if p.timedOut && !(p.waiting && len(p.in) == 0) && !p.finished {
		return nil, false, nil, false
	}
	out, p.out = p.out, nil
	return out, p.finished, p.err, true
}

func (p *pipe) Close() error {
	p.mu.Lock()
	p.closed = true
	p.cond.Broadcast()
	p.mu.Unlock()
	return nil
}

func (p *pipe) LocalAddr() net.Addr                { return eapAddr{} }
func (p *pipe) RemoteAddr() net.Addr               { return eapAddr{} }
func (p *pipe) SetDeadline(t time.Time) error      { return nil }
func (p *pipe) SetReadDeadline(t time.Time) error  { return nil }
func (p *pipe) SetWriteDeadline(t time.Time) error { return nil }

type eapAddr struct{}

func (eapAddr) Network() string { return "eap" }
func (eapAddr) String() string  { return "eap" }
