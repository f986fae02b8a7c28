// Package metrics declares idbridge's Prometheus metrics (the text exposition
// format served at /metrics). Every package that counts something takes its
// collector from here, so that names stay consistent and one registry serves
// them all.
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics holds every collector. Create one with New per process (tests may
// create as many as they like: nothing is registered globally).
type Metrics struct {
	Registry *prometheus.Registry

	Logins        *prometheus.CounterVec   // result: success, failure, throttled, locked, unverified
	Registrations *prometheus.CounterVec   // result: accepted, refused, spam
	MailsSent     *prometheus.CounterVec   // template, result: queued, sent, retry, failed, rate_limited
	HTTPDuration  *prometheus.HistogramVec // route, code
	SSO           *prometheus.CounterVec   // protocol, client, result

	ForwardSessions *prometheus.CounterVec // result: accepted, refused_<reason>
	ForwardQueue    *prometheus.CounterVec // event: queued, delivered, deferred, bounced
	QueueDepth      prometheus.Gauge
}

// New returns a fresh set of collectors registered on their own registry,
// together with the Go runtime and process collectors.
func New() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		Logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "idbridge_logins_total", Help: "Password logins by result.",
		}, []string{"result"}),
		Registrations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "idbridge_registrations_total", Help: "Registration attempts by result.",
		}, []string{"result"}),
		MailsSent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "idbridge_mail_out_total", Help: "Mails idbridge writes itself, by template and result.",
		}, []string{"template", "result"}),
		HTTPDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "idbridge_http_request_duration_seconds", Help: "HTTP request latency by route and status code.",
			Buckets: prometheus.DefBuckets,
		}, []string{"route", "code"}),
		SSO: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "idbridge_sso_total", Help: "Single sign-on responses by protocol, client and result.",
		}, []string{"protocol", "client", "result"}),
		ForwardSessions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "idbridge_forward_messages_total", Help: "Inbound messages to virtual addresses by result.",
		}, []string{"result"}),
		ForwardQueue: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "idbridge_forward_queue_events_total", Help: "Forwarding queue events.",
		}, []string{"event"}),
		QueueDepth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "idbridge_forward_queue_depth", Help: "Messages waiting in the local forwarding queue.",
		}),
	}
	m.Registry.MustRegister(m.Logins, m.Registrations, m.MailsSent, m.HTTPDuration, m.SSO,
		m.ForwardSessions, m.ForwardQueue, m.QueueDepth,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{})
}
