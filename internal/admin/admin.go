// Package admin serves the operator's HTTP endpoints on admin_listen:
// /metrics (Prometheus), /healthz (the process is alive) and /readyz
// (every readiness check passes).
package admin

import (
	"context"
	"fmt"
	"log/slog"
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

// Handler returns the admin endpoints. Extra routes may be added to the
// returned mux. A failed check is named in the /readyz body and its
// error goes to log only: it may name directory servers and accounts,
// which whoever can reach the listener has no need to see.
func Handler(g prometheus.Gatherer, checks func() []Check, log *slog.Logger) *http.ServeMux {
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
				body += c.Name + ": not ready\n"
				log.Warn("not ready", "check", c.Name, "err", err)
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
