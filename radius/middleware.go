package radius

import (
	"context"
	"log/slog"
	"net/netip"
	"runtime/debug"
	"sync"
	"time"

	"layeh.com/radius"

	"github.com/mfabridge/mfabridge/config"
)

// recoverPanics turns a panic in a handler into a dropped, counted packet
// and an error log; the server keeps running.
func recoverPanics(m *Metrics, log *slog.Logger) middleware {
	return func(next radius.Handler) radius.Handler {
		return radius.HandlerFunc(func(w radius.ResponseWriter, r *radius.Request) {
			defer func() {
				if v := recover(); v != nil {
					m.Dropped.WithLabelValues(DropPanic).Inc()
					log.Error("request handler panicked", "panic", v, "stack", string(debug.Stack()))
				}
			}()
			next.ServeRADIUS(w, r)
		})
	}
}

// recorder remembers the code of the response a handler wrote.
type recorder struct {
	radius.ResponseWriter
	wrote bool
	code  radius.Code
}

func (r *recorder) Write(p *radius.Packet) error {
	r.wrote, r.code = true, p.Code
	return r.ResponseWriter.Write(p)
}

func (r *recorder) writeSealed(b []byte) error {
	r.wrote, r.code = true, radius.Code(b[0])
	return r.ResponseWriter.(sealedWriter).writeSealed(b)
}

// observe counts requests and responses and logs each exchange at debug.
func observe(m *Metrics, log *slog.Logger, now func() time.Time) middleware {
	return func(next radius.Handler) radius.Handler {
		return radius.HandlerFunc(func(w radius.ResponseWriter, r *radius.Request) {
			info := infoFrom(r.Context())
			m.Requests.WithLabelValues(info.client.Name, r.Code.String()).Inc()
			rec := &recorder{ResponseWriter: w}
			next.ServeRADIUS(rec, r)
			took := now().Sub(info.received)
			m.Duration.WithLabelValues("total").Observe(took.Seconds())
			answer := "none"
			if rec.wrote {
				answer = rec.code.String()
				m.Responses.WithLabelValues(info.client.Name, answer).Inc()
			}
			if log.Enabled(r.Context(), slog.LevelDebug) {
				log.Debug("radius exchange", "client", info.client.Name, "from", info.from.String(),
					"id", r.Identifier, "code", r.Code.String(), "answer", answer, "took_ms", float64(took.Microseconds())/1000)
			}
		})
	}
}

// signers remembers which client addresses have sent a valid
// Message-Authenticator, for the auto rule: once a NAS has signed, an
// unsigned request claiming to be from it is a forgery attempt. It is keyed
// by client name and address, bounded, and survives a client table reload.
type signers struct {
	mu   sync.Mutex
	seen map[signerKey]struct{}
	warn map[signerKey]struct{} // unsigned clients already warned about
}

type signerKey struct {
	client string
	addr   netip.Addr
}

// maxSigners bounds both maps; past it, new addresses are not remembered
// (a /8 client range cannot make the bridge grow without bound).
const maxSigners = 65536

func newSigners() *signers {
	return &signers{seen: map[signerKey]struct{}{}, warn: map[signerKey]struct{}{}}
}

func (s *signers) mark(k signerKey) {
	s.mu.Lock()
	if len(s.seen) < maxSigners {
		s.seen[k] = struct{}{}
	}
	s.mu.Unlock()
}

func (s *signers) has(k signerKey) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.seen[k]
	return ok
}

// firstWarning reports whether an unsigned client has not been warned
// about yet, and remembers it.
func (s *signers) firstWarning(k signerKey) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.warn[k]; ok || len(s.warn) >= maxSigners {
		return false
	}
	s.warn[k] = struct{}{}
	return true
}

// checkPacket applies the Message-Authenticator rules of RFC 3579 §3.2,
// RFC 5997 and the Blast-RADIUS guidance to each request:
//   - an invalid or duplicated Message-Authenticator: drop;
//   - none, where the client requires one (true, or auto after it has
//     signed once), on Status-Server, or with EAP-Message: drop;
//   - none, with Proxy-State, from a client that is not a proxy: drop
//     (an attacker can hide the Blast-RADIUS collision bytes there);
//   - otherwise accepted; an unsigned client is warned about once and
//     counted.
func checkPacket(sg *signers, m *Metrics, log *slog.Logger, lim *logLimiter, warn *sourceWarnings, now func() time.Time) middleware {
	return func(next radius.Handler) radius.Handler {
		return radius.HandlerFunc(func(w radius.ResponseWriter, r *radius.Request) {
			info := infoFrom(r.Context())
			c := info.client
			key := signerKey{c.Name, info.from.Addr()}
			present, err := checkMessageAuthenticator(info.raw, c.Secret)
			drop := func(cause string, why string) {
				m.Dropped.WithLabelValues(cause).Inc()
				if ok, suppressed := lim.allow(now()); ok {
					log.Debug("packet dropped", "cause", cause, "why", why, "client", c.Name, "from", info.from.String(),
						"suppressed_before", suppressed)
				}
			}
			switch {
			case err != nil:
				drop(DropBadAuthenticator, err.Error())
				warn.note(now(), DropBadAuthenticator, info.from.Addr().Unmap(), c.Name,
					"Message-Authenticator is invalid: the shared secret is probably wrong; dropped (check clients[].secret and the NAS's secret)")
				return
			case present:
				info.signed = true
				sg.mark(key)
			case r.Code == radius.CodeStatusServer:
				drop(DropMissingAuth, "Status-Server without Message-Authenticator (RFC 5997 §3)")
				return
			case r.Attributes.Get(typeEAPMessage) != nil:
				drop(DropMissingAuth, "EAP-Message without Message-Authenticator (RFC 3579 §3.2)")
				return
			case c.RequireMA == config.MATrue:
				drop(DropMissingAuth, "client requires Message-Authenticator")
				warn.note(now(), DropMissingAuth, info.from.Addr().Unmap(), c.Name,
					"request without Message-Authenticator from a client that must send one; dropped (set the NAS to send it, or require_message_authenticator: auto)")
				return
			case c.RequireMA == config.MAAuto && sg.has(key):
				drop(DropMissingAuth, "client has signed before (auto), this request is unsigned")
				return
			case r.Attributes.Get(typeProxyState) != nil && !c.Proxy:
				drop(DropUnsignedProxy, "Proxy-State without Message-Authenticator from a client that is not a proxy")
				return
			default:
				m.Unsigned.WithLabelValues(c.Name).Inc()
				if c.RequireMA == config.MAAuto && sg.firstWarning(key) {
					log.Warn("client does not sign its requests with Message-Authenticator; it stays exposed to Blast-RADIUS (CVE-2024-3596) until it does",
						"client", c.Name, "from", info.from.Addr().String())
				}
			}
			next.ServeRADIUS(w, r)
		})
	}
}

// statusServer answers Status-Server (RFC 5997 §4: Access-Accept on an
// authentication port). Only signed ones get here.
func statusServer(next radius.Handler) radius.Handler {
	return radius.HandlerFunc(func(w radius.ResponseWriter, r *radius.Request) {
		if r.Code == radius.CodeStatusServer {
			w.Write(r.Response(radius.CodeAccessAccept))
			return
		}
		next.ServeRADIUS(w, r)
	})
}

// ClientFrom returns the client a request came from, for handlers.
func ClientFrom(ctx context.Context) *Client {
	if info := infoFrom(ctx); info != nil {
		return info.client
	}
	return nil
}
