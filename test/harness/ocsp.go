package harness

import (
	"crypto"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"

	"golang.org/x/crypto/ocsp"
)

// OCSPResponder answers OCSP requests (RFC 6960) over HTTP on loopback
// for the certificates of one CA. It answers good unless a serial is
// marked revoked; ThisUpdate and NextUpdate are set relative to now by
// Age and Validity, so that a test can play a responder, or someone
// replaying an old answer of one.
type OCSPResponder struct {
	URL string

	issuer *CA
	srv    *httptest.Server

	mu       sync.Mutex
	age      time.Duration // ThisUpdate is now minus age
	validity time.Duration // NextUpdate is ThisUpdate plus validity; 0: none
	revoked  map[string]bool
	requests int
}

// StartOCSPResponder serves answers signed by issuer's own key, made a
// minute ago and valid for an hour.
func StartOCSPResponder(issuer *CA) (*OCSPResponder, error) {
	o := &OCSPResponder{issuer: issuer, age: time.Minute, validity: time.Hour, revoked: map[string]bool{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	o.srv = &httptest.Server{Listener: ln, Config: &http.Server{Handler: o}}
	o.srv.Start()
	o.URL = o.srv.URL
	return o, nil
}

// Close stops the responder.
func (o *OCSPResponder) Close() { o.srv.Close() }

// SetTimes sets how old answers are and how long they say they are
// valid (0: no NextUpdate).
func (o *OCSPResponder) SetTimes(age, validity time.Duration) {
	o.mu.Lock()
	o.age, o.validity = age, validity
	o.mu.Unlock()
}

// Revoke marks c revoked.
func (o *OCSPResponder) Revoke(c *x509.Certificate) {
	o.mu.Lock()
	o.revoked[c.SerialNumber.String()] = true
	o.mu.Unlock()
}

// Requests counts the requests answered.
func (o *OCSPResponder) Requests() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.requests
}

func (o *OCSPResponder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	req, err := ocsp.ParseRequest(body)
	if err != nil {
		w.Header().Set("Content-Type", "application/ocsp-response")
		w.Write(ocsp.MalformedRequestErrorResponse)
		return
	}
	o.mu.Lock()
	o.requests++
	now := time.Now()
	tmpl := ocsp.Response{Status: ocsp.Good, SerialNumber: req.SerialNumber, ThisUpdate: now.Add(-o.age)}
	if o.validity > 0 {
		tmpl.NextUpdate = tmpl.ThisUpdate.Add(o.validity)
	}
	if o.revoked[req.SerialNumber.String()] {
		tmpl.Status, tmpl.RevokedAt, tmpl.RevocationReason = ocsp.Revoked, now.Add(-2*time.Hour), ocsp.KeyCompromise
	}
	o.mu.Unlock()
	resp, err := ocsp.CreateResponse(o.issuer.Cert, o.issuer.Cert, tmpl, crypto.Signer(o.issuer.Key))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/ocsp-response")
	w.Write(resp)
}
