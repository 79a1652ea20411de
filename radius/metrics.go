package radius

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Drop causes, the values of the cause label of
// mfabridge_radius_dropped_total.
const (
	DropUnknownClient    = "unknown_client"
	DropMalformed        = "malformed"
	DropTooLarge         = "too_large"
	DropUnsupportedCode  = "unsupported_code"
	DropBadAuthenticator = "bad_message_authenticator"
	DropMissingAuth      = "missing_message_authenticator"
	DropUnsignedProxy    = "unsigned_proxy_state"
	DropOverload         = "overload"
	DropDuplicate        = "duplicate_in_progress"
	DropPanic            = "handler_panic"
	DropEncode           = "reply_encode_error"
	DropCacheFull        = "duplicate_cache_full"
)

// Metrics are the counters of the RADIUS front. Labels are bounded: client
// names come from the configuration, never from packets.
type Metrics struct {
	Requests  *prometheus.CounterVec   // client, code
	Responses *prometheus.CounterVec   // client, code
	Dropped   *prometheus.CounterVec   // cause
	Resent    *prometheus.CounterVec   // client: retransmissions answered from the cache
	Unsigned  *prometheus.CounterVec   // client: accepted without Message-Authenticator
	Decisions *prometheus.CounterVec   // outcome, reason
	Sends     *prometheus.CounterVec   // factor, result
	Duration  *prometheus.HistogramVec // stage
	InFlight  prometheus.Gauge
	// UnknownUsers counts logins by names no directory entry answers to,
	// by client: no per-user state is kept for them.
	UnknownUsers *prometheus.CounterVec // client
	// Lockouts counts users locked out, by limit (password, code).
	Lockouts *prometheus.CounterVec // limit
	// Throttled counts logins held for a delay during a lockout, from a
	// station the user logged in from before.
	Throttled prometheus.Counter
}

// NewMetrics registers the RADIUS metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mfabridge_radius_requests_total",
			Help: "RADIUS requests accepted for handling, by client and packet code."}, []string{"client", "code"}),
		Responses: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mfabridge_radius_responses_total",
			Help: "RADIUS responses sent, by client and packet code."}, []string{"client", "code"}),
		Dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mfabridge_radius_dropped_total",
			Help: "Packets dropped without a reply, by cause."}, []string{"cause"}),
		Resent: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mfabridge_radius_retransmissions_total",
			Help: "Retransmitted requests answered from the duplicate cache, by client."}, []string{"client"}),
		Unsigned: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mfabridge_radius_unsigned_requests_total",
			Help: "Access-Requests accepted without Message-Authenticator (legacy clients under auto or false), by client."}, []string{"client"}),
		Decisions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mfabridge_decisions_total",
			Help: "Authentication decisions, by outcome and reason."}, []string{"outcome", "reason"}),
		Sends: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mfabridge_factor_sends_total",
			Help: "Text messages and calls, by factor and result (sent, rate_limited, failed)."}, []string{"factor", "result"}),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "mfabridge_request_duration_seconds",
			Help:    "Time to handle a request, by stage.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}}, []string{"stage"}),
		InFlight: prometheus.NewGauge(prometheus.GaugeOpts{Name: "mfabridge_radius_in_flight",
			Help: "Requests being handled."}),
		UnknownUsers: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mfabridge_unknown_user_failures_total",
			Help: "Logins by names no directory entry answers to, by client."}, []string{"client"}),
		Lockouts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mfabridge_lockouts_total",
			Help: "Users locked out, by the limit reached (password, code): each is one user's lockout starting."}, []string{"limit"}),
		Throttled: prometheus.NewCounter(prometheus.CounterOpts{Name: "mfabridge_lockout_throttled_total",
			Help: "Logins of a locked-out user from a station they logged in from before, held for a delay instead of refused."}),
	}
	if reg != nil {
		reg.MustRegister(m.Requests, m.Responses, m.Dropped, m.Resent, m.Unsigned, m.Decisions, m.Sends, m.Duration, m.InFlight,
			m.UnknownUsers, m.Lockouts, m.Throttled)
	}
	return m
}
