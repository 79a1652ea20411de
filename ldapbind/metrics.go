package ldapbind

import (
	"github.com/prometheus/client_golang/prometheus"
)

// PoolStats describes one connection pool.
type PoolStats struct {
	Idle, InUse                          int
	Dials, DialErrors, Discarded, Probes uint64
}

// Stats returns the state of the search and bind pools.
func (d *Directory) Stats() map[string]PoolStats {
	out := map[string]PoolStats{}
	for _, p := range []*pool{d.search, d.bind} {
		s, idle, inUse := p.Stats()
		out[p.name] = PoolStats{Idle: idle, InUse: inUse, Dials: s.Dials, DialErrors: s.DialErrors, Discarded: s.Discarded, Probes: s.Probes}
	}
	return out
}

var (
	descConns = prometheus.NewDesc("mfabridge_ldap_connections", "Directory connections, by pool and state (idle, in_use).",
		[]string{"pool", "state"}, nil)
	descDials = prometheus.NewDesc("mfabridge_ldap_dials_total", "Directory connections opened, by pool.",
		[]string{"pool"}, nil)
	descDialErrors = prometheus.NewDesc("mfabridge_ldap_dial_errors_total", "Failures to open a directory connection (every server tried), by pool.",
		[]string{"pool"}, nil)
	descDiscarded = prometheus.NewDesc("mfabridge_ldap_discarded_total", "Directory connections thrown away as broken or dead, by pool.",
		[]string{"pool"}, nil)
)

// collector reads the pools of the current directory at scrape time.
type collector struct{ current func() *Directory }

// NewCollector exports the pools of whatever directory current returns
// (a reload replaces it).
func NewCollector(current func() *Directory) prometheus.Collector { return collector{current} }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descConns
	ch <- descDials
	ch <- descDialErrors
	ch <- descDiscarded
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	d := c.current()
	if d == nil {
		return
	}
	for name, s := range d.Stats() {
		ch <- prometheus.MustNewConstMetric(descConns, prometheus.GaugeValue, float64(s.Idle), name, "idle")
		ch <- prometheus.MustNewConstMetric(descConns, prometheus.GaugeValue, float64(s.InUse), name, "in_use")
		ch <- prometheus.MustNewConstMetric(descDials, prometheus.CounterValue, float64(s.Dials), name)
		ch <- prometheus.MustNewConstMetric(descDialErrors, prometheus.CounterValue, float64(s.DialErrors), name)
		ch <- prometheus.MustNewConstMetric(descDiscarded, prometheus.CounterValue, float64(s.Discarded), name)
	}
}
