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
	}
	m.Registry.MustRegister(m.Logins, m.Registrations, m.MailsSent, m.HTTPDuration, m.SSO,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{})
}

// ForwardStats is a snapshot of the mail forwarder's counters.
type ForwardStats struct {
	Accepted                             uint64            // messages handed to the queue
	Refused                              map[string]uint64 // by reason
	Queued, Delivered, Deferred, Bounced uint64            // queue events, per recipient
	Depth                                int               // messages in the queue
}

// RegisterForward exposes the forwarder's counters, read from snapshot at
// each scrape: idbridge_forward_messages_total{result},
// idbridge_forward_queue_events_total{event} and idbridge_forward_queue_depth.
func (m *Metrics) RegisterForward(snapshot func() ForwardStats) {
	m.Registry.MustRegister(forwardCollector(snapshot))
}

type forwardCollector func() ForwardStats

var (
	fwdMessages = prometheus.NewDesc("idbridge_forward_messages_total", "Inbound messages to virtual addresses: accepted, or refused by reason.", []string{"result"}, nil)
	fwdEvents   = prometheus.NewDesc("idbridge_forward_queue_events_total", "Forwarding queue events per recipient: queued, delivered, deferred, bounced.", []string{"event"}, nil)
	fwdDepth    = prometheus.NewDesc("idbridge_forward_queue_depth", "Messages waiting in the local forwarding queue.", nil, nil)
)

func (f forwardCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- fwdMessages
	ch <- fwdEvents
	ch <- fwdDepth
}

func (f forwardCollector) Collect(ch chan<- prometheus.Metric) {
	s := f()
	ch <- prometheus.MustNewConstMetric(fwdMessages, prometheus.CounterValue, float64(s.Accepted), "accepted")
	for reason, n := range s.Refused {
		ch <- prometheus.MustNewConstMetric(fwdMessages, prometheus.CounterValue, float64(n), "refused_"+reason)
	}
	for ev, n := range map[string]uint64{"queued": s.Queued, "delivered": s.Delivered, "deferred": s.Deferred, "bounced": s.Bounced} {
		ch <- prometheus.MustNewConstMetric(fwdEvents, prometheus.CounterValue, float64(n), ev)
	}
	ch <- prometheus.MustNewConstMetric(fwdDepth, prometheus.GaugeValue, float64(s.Depth))
}
