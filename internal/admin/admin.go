// Package admin serves the operator's HTTP endpoints on admin_listen:
// /metrics (Prometheus), /healthz (the process is alive) and /readyz
// (every readiness check passes).
package admin

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Check is one readiness condition; nil means ready.
type Check struct {
	Name string
	Func func(ctx context.Context) error
}

// Handler returns the admin endpoints. Extra routes (webhooks) may be
// added to the returned mux.
func Handler(g prometheus.Gatherer, checks func() []Check) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		status, body := http.StatusOK, ""
		for _, c := range checks() {
			if err := c.Func(ctx); err != nil {
				status = http.StatusServiceUnavailable
				body += fmt.Sprintf("%s: not ready: %v\n", c.Name, err)
			} else {
				body += c.Name + ": ok\n"
			}
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(status)
		fmt.Fprint(w, body)
	})
	return mux
}
