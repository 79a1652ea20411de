// Package audit writes one JSON record per authentication decision
// (DESIGN §2 step 14). Records carry who, from where, the outcome and a
// stable reason code; they never carry a password, a code or a secret,
// because no field exists to hold one.
package audit

import (
	"encoding/json"
	"io"
	"sync"
	"time"
)

// Outcomes.
const (
	Accept    = "accept"
	Reject    = "reject"
	Challenge = "challenge"
)

// Record is one decision.
type Record struct {
	Time           time.Time `json:"time"`
	Client         string    `json:"client"`      // configured client name
	ClientAddress  string    `json:"client_addr"` // source IP of the request
	User           string    `json:"user"`        // normalised login name; "" when unusable
	CallingStation string    `json:"calling_station,omitempty"`
	Outcome        string    `json:"outcome"`
	Reason         string    `json:"reason"`
	Policy         string    `json:"policy,omitempty"`
	Factor         string    `json:"factor,omitempty"`
	Cert           *Cert     `json:"cert,omitempty"` // smartcard logins
	LatencyMS      float64   `json:"latency_ms"`
}

// Cert names the client certificate of a smartcard login.
type Cert struct {
	Subject string `json:"subject"`
	Serial  string `json:"serial"`
	Issuer  string `json:"issuer"`
	SHA256  string `json:"sha256"`
}

// Log writes records as JSON lines. It is safe for concurrent use.
type Log struct {
	mu  sync.Mutex
	enc *json.Encoder
	w   io.Writer
	err error
}

// New returns a Log writing to w.
func New(w io.Writer) *Log {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return &Log{enc: enc, w: w}
}

// Write records r; the first write error is kept and returned by Err.
func (l *Log) Write(r Record) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.enc.Encode(r); err != nil && l.err == nil {
		l.err = err
	}
}

// Err returns the first write error, if any.
func (l *Log) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}
