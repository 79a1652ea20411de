// Package audit writes one JSON record per authentication decision
// (DESIGN §2 step 14). Records carry who, from where, the outcome and a
// stable reason code; they never carry a password, a code or a secret,
// because no field exists to hold one.
package audit

import (
	"io"
	"sync"
	"time"
)

// Outcomes.
const (
	Accept    = "accept"
	Reject    = "reject"
	Challenge = "challenge"
	// Change is what a user did to their own account in the portal.
	Change = "change"
)

// Record is one decision.
type Record struct {
	Time           time.Time `json:"time"`
	Client         string    `json:"client"`          // configured client name
	ClientAddress  string    `json:"client_addr"`     // source IP of the request
	User           string    `json:"user"`            // the user's canonical name; the normalised login name when no entry matched; "" when unusable
	Login          string    `json:"login,omitempty"` // the normalised login name, when it is not User
	CallingStation string    `json:"calling_station,omitempty"`
	NASIP          string    `json:"nas_ip,omitempty"`         // NAS-IP-Address, as a proxy passes it on
	NASIdentifier  string    `json:"nas_identifier,omitempty"` // NAS-Identifier
	Outcome        string    `json:"outcome"`
	Reason         Reason    `json:"reason"`
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
//
// Write returns once its record has been written to w, as one whole line.
// Records that arrive while a write is under way are gathered and written
// together by the next: under load one write call carries several
// records, and no request waits behind another's encoding.
type Log struct {
	w io.Writer

	mu      sync.Mutex
	idle    *sync.Cond // signalled when a write ends
	pending []byte     // encoded records waiting for the next write
	spare   []byte     // the last write's buffer, for reuse
	writing bool       // a write is under way (mu not held during it)
	next    uint64     // the number of the write pending will go out in
	done    uint64     // the number of the last write finished
	err     error
}

// New returns a Log writing to w.
func New(w io.Writer) *Log {
	l := &Log{w: w, next: 1}
	l.idle = sync.NewCond(&l.mu)
	return l
}

// Write records r; the first write error is kept and returned by Err.
func (l *Log) Write(r Record) {
	if l == nil {
		return
	}
	line := r.appendJSON(make([]byte, 0, 256))
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pending = append(l.pending, line...)
	mine := l.next
	for l.done < mine {
		if l.writing {
			l.idle.Wait()
			continue
		}
		// Write everything pending, this record included.
		buf, n := l.pending, l.next
		l.pending, l.spare = l.spare[:0], nil
		l.next++
		l.writing = true
		l.mu.Unlock()
		_, err := l.w.Write(buf)
		l.mu.Lock()
		l.writing, l.done = false, n
		l.keep(err)
		if cap(buf) <= maxSpare {
			l.spare = buf
		}
		l.idle.Broadcast()
	}
}

// maxSpare bounds the buffer kept between writes.
const maxSpare = 64 << 10

func (l *Log) keep(err error) {
	if err != nil && l.err == nil {
		l.err = err
	}
}

// Err returns the first write error, if any.
func (l *Log) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}
