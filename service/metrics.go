package service

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the service's Prometheus metrics, on a registry of its own.
type metrics struct {
	reg       *prometheus.Registry
	queuedN   prometheus.Counter
	startedN  prometheus.Counter
	finishedN *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	phases    *prometheus.HistogramVec
	pushBytes prometheus.Counter
	requests  *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	webhooks  *prometheus.CounterVec
	byWorker  *prometheus.CounterVec
}

func newMetrics(d *db) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		queuedN: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sailmaker_builds_queued_total", Help: "Builds queued (not counting requests that joined a queued or running build).",
		}),
		startedN: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sailmaker_build_attempts_total", Help: "Build attempts started.",
		}),
		finishedN: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sailmaker_builds_finished_total", Help: "Builds that reached a final state, by state.",
		}, []string{"state"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sailmaker_build_duration_seconds",
			Help:    "Time from a build's first start to its end, by final state.",
			Buckets: []float64{1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200},
		}, []string{"state"}),
		phases: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sailmaker_build_phase_duration_seconds",
			Help:    "Time the phases of successful builds took.",
			Buckets: []float64{0.1, 1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600},
		}, []string{"phase"}),
		pushBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sailmaker_push_bytes_total", Help: "Blob bytes uploaded to the registry by builds.",
		}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sailmaker_http_requests_total", Help: "HTTP requests, by method (other for a method HTTP does not define) and status code.",
		}, []string{"method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "sailmaker_http_request_duration_seconds",
			Help: "Time to answer HTTP requests, by method, route (the API's path pattern; web for the pages, unmatched for no route) and status class (2xx, 4xx, ...). " +
				"A followed build log counts until its stream ends.",
			Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300},
		}, []string{"method", "route", "class"}),
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sailmaker_webhook_deliveries_total", Help: "Webhook deliveries, by outcome.",
		}, []string{"outcome"}),
	}
	m.byWorker = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sailmaker_build_attempts_by_worker_total", Help: "Build attempts started, by the pool worker they ran on.",
	}, []string{"worker"})
	m.reg.MustRegister(m.byWorker, m.queuedN, m.startedN, m.finishedN, m.duration, m.phases, m.pushBytes, m.requests, m.latency, m.webhooks,
		&queueCollector{db: d}, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, st := range []State{StateSucceeded, StateFailed, StateCancelled} {
		m.finishedN.WithLabelValues(string(st))
	}
	return m
}

func (m *metrics) queued() { m.queuedN.Inc() }

func (m *metrics) onWorker(name string) { m.byWorker.WithLabelValues(name).Inc() }
func (m *metrics) started()             { m.startedN.Inc() }

func (m *metrics) finished(b *Build) {
	if !b.State.Final() {
		return
	}
	m.finishedN.WithLabelValues(string(b.State)).Inc()
	if b.Started != nil && b.Finished != nil {
		m.duration.WithLabelValues(string(b.State)).Observe(b.Finished.Sub(*b.Started).Seconds())
	}
	if t := b.Timings; t != nil && b.State == StateSucceeded && !b.UpToDate {
		m.phases.WithLabelValues("fetch").Observe(t.Fetch.Seconds())
		m.phases.WithLabelValues("solve").Observe(t.Solve.Seconds())
		m.phases.WithLabelValues("assemble").Observe(t.Assemble.Seconds())
		m.phases.WithLabelValues("push").Observe(t.Push.Seconds())
	}
	for _, im := range b.Images {
		m.pushBytes.Add(float64(im.BytesUploaded))
	}
}

// request counts a request. method and route must be bounded sets
// (methodLabel, the routes' patterns): a label value a client chooses
// would make a new series, held in memory and in /metrics, per value.
func (m *metrics) request(method, route string, code int, took time.Duration) {
	if code < 100 || code > 599 {
		code = 0
	}
	m.requests.WithLabelValues(method, strconv.Itoa(code)).Inc()
	class := "other"
	if code != 0 {
		class = strconv.Itoa(code/100) + "xx"
	}
	m.latency.WithLabelValues(method, route, class).Observe(took.Seconds())
}

// methodLabel is the request's method if HTTP defines it, else "other".
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "other"
}

func (m *metrics) webhook(outcome string) { m.webhooks.WithLabelValues(outcome).Inc() }

func (s *Service) metricsHandler(w http.ResponseWriter, r *http.Request, _ *principal) {
	promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}).ServeHTTP(w, r)
}

// queueCollector reads the number of builds in each state from the store at
// scrape time, so the gauges are right across restarts.
type queueCollector struct{ db *db }

var (
	buildsDesc = prometheus.NewDesc("sailmaker_builds", "Builds in the store, by state.", []string{"state"}, nil)
	depthDesc  = prometheus.NewDesc("sailmaker_queue_depth", "Builds waiting in the queue.", nil, nil)
)

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- buildsDesc
	ch <- depthDesc
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	counts, err := c.db.countByState(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(buildsDesc, err)
		return
	}
	for _, st := range States {
		ch <- prometheus.MustNewConstMetric(buildsDesc, prometheus.GaugeValue, float64(counts[st]), string(st))
	}
	ch <- prometheus.MustNewConstMetric(depthDesc, prometheus.GaugeValue, float64(counts[StateQueued]))
}
