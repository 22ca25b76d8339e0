package gateway

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the gateway's Prometheus metrics, served at /metrics. Labels
// hold procedures and codes only, never a request's data.
type metrics struct {
	registry      *prometheus.Registry
	calls         *prometheus.CounterVec
	latency       *prometheus.HistogramVec
	auditFailures prometheus.Counter
	// Fair sharing (ratelimit.go).
	rateLimited *prometheus.CounterVec
	shed        prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		auditFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "plinth",
			Name:      "audit_append_failures_total",
			Help:      "Capability calls whose audit record could not be appended.",
		}),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "plinth",
			Name:      "capability_calls_total",
			Help:      "Capability calls, by capability (Connect procedure) and outcome code.",
		}, []string{"capability", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "plinth",
			Name:      "capability_duration_seconds",
			Help:      "Time to answer a capability call, by capability.",
			Buckets:   []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"capability"}),
	}
	m.rateLimited = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "plinth",
		Name:      "rate_limited_total",
		Help:      "Capability calls refused because their principal was over its rate limit, by class (read or write).",
	}, []string{"class"})
	m.shed = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "plinth",
		Name:      "shed_total",
		Help:      "Capability calls refused unstarted because limits.max_in_flight calls were running (load shedding).",
	})
	for _, class := range []string{classRead, classWrite} {
		m.rateLimited.WithLabelValues(class) // shown as 0 before the first refusal
	}
	m.registry.MustRegister(m.rateLimited, m.shed)
	m.registry.MustRegister(m.calls, m.latency, m.auditFailures,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) observe(capability, code string, elapsed time.Duration) {
	m.calls.WithLabelValues(capability, code).Inc()
	m.latency.WithLabelValues(capability).Observe(elapsed.Seconds())
}

// inFlight registers the gauge of capability calls in flight, read from
// running when scraped.
func (m *metrics) inFlight(running func() float64) {
	m.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "plinth",
		Name:      "capability_calls_in_flight",
		Help:      "Capability calls running now (at most limits.max_in_flight).",
	}, running))
}
