package server

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"

	"partnerd/notify"
	"partnerd/store"
)

// metrics are the server's Prometheus instruments.
type metrics struct {
	gqlRequests *prometheus.CounterVec
	gqlLatency  *prometheus.HistogramVec
	httpLatency *prometheus.HistogramVec
	// compiled counts the queries answered by resolvers.AnswerTree.
	compiled prometheus.Counter
}

func newMetrics(reg *prometheus.Registry, st *store.Store, queue asynq.RedisConnOpt, ns *notify.Service) *metrics {
	m := &metrics{
		gqlRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "partnerd_graphql_requests_total", Help: "GraphQL operations by operation name and result code.",
		}, []string{"operation", "code"}),
		gqlLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "partnerd_graphql_request_duration_seconds", Help: "GraphQL operation latency by operation name.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"operation"}),
		httpLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "partnerd_http_request_duration_seconds", Help: "HTTP request latency by route and status.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"route", "status"}),
		compiled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "partnerd_graphql_compiled_answers_total", Help: "GraphQL queries of account trees answered without gqlgen's field-by-field execution.",
		}),
	}
	if reg == nil {
		return m
	}
	reg.MustRegister(m.gqlRequests, m.gqlLatency, m.httpLatency, m.compiled)
	reg.MustRegister(&backlogCollector{st: st})
	if queue != nil {
		reg.MustRegister(&queueCollector{inspector: asynq.NewInspector(queue)})
	}
	if ns != nil {
		reg.MustRegister(&deliveryCollector{ns: ns})
	}
	return m
}

func (m *metrics) observeGraphQL(ctx context.Context, resp *graphql.Response, d time.Duration) {
	op := "unknown"
	if graphql.HasOperationContext(ctx) {
		oc := graphql.GetOperationContext(ctx)
		switch {
		case oc.OperationName != "" && len(oc.OperationName) <= 64:
			op = oc.OperationName
		case oc.Operation != nil && oc.Operation.Name != "" && len(oc.Operation.Name) <= 64:
			op = oc.Operation.Name
		default:
			op = "anonymous"
		}
	}
	code := "OK"
	if resp != nil && len(resp.Errors) > 0 {
		if c, ok := resp.Errors[0].Extensions["code"].(string); ok {
			code = c
		} else {
			code = "ERROR"
		}
	}
	m.gqlRequests.WithLabelValues(op, code).Inc()
	m.gqlLatency.WithLabelValues(op).Observe(d.Seconds())
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(s int) { w.status = s; w.ResponseWriter.WriteHeader(s) }

// Unwrap lets http.ResponseController reach the connection (WebSocket hijack).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (m *metrics) instrumentHTTP(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "" {
			next.ServeHTTP(w, r)
			return
		}
		sw := &statusWriter{ResponseWriter: w, status: 200}
		start := time.Now()
		next.ServeHTTP(sw, r)
		m.httpLatency.WithLabelValues(route(r.URL.Path), strconv.Itoa(sw.status)).Observe(time.Since(start).Seconds())
	})
}

func route(p string) string {
	switch p {
	case "/graphql", "/healthz", "/readyz", "/metrics", "/":
		return p
	}
	if len(p) >= 12 && p[:12] == "/monitoring/" {
		return "/monitoring/"
	}
	return "other"
}

// backlogCollector reports the outbox rows waiting for the relay.
type backlogCollector struct{ st *store.Store }

var (
	backlogDesc = prometheus.NewDesc("partnerd_outbox_backlog", "Outbox rows not yet relayed to the task queue.", nil, nil)
	ageDesc     = prometheus.NewDesc("partnerd_outbox_oldest_age_seconds", "Age of the oldest outbox row not yet relayed.", nil, nil)
	queueDesc   = prometheus.NewDesc("partnerd_queue_tasks", "Tasks in each asynq queue by state.", []string{"queue", "state"}, nil)
)

func (c *backlogCollector) Describe(ch chan<- *prometheus.Desc) { ch <- backlogDesc; ch <- ageDesc }

func (c *backlogCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	n, age, err := c.st.OutboxBacklog(ctx)
	if err != nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(backlogDesc, prometheus.GaugeValue, float64(n))
	ch <- prometheus.MustNewConstMetric(ageDesc, prometheus.GaugeValue, age.Seconds())
}

// queueCollector reports asynq queue sizes.
type queueCollector struct{ inspector *asynq.Inspector }

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) { ch <- queueDesc }

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	queues, err := c.inspector.Queues()
	if err != nil {
		return
	}
	for _, q := range queues {
		info, err := c.inspector.GetQueueInfo(q)
		if err != nil {
			continue
		}
		for state, n := range map[string]int{"pending": info.Pending, "active": info.Active, "scheduled": info.Scheduled,
			"retry": info.Retry, "archived": info.Archived, "completed": info.Completed} {
			ch <- prometheus.MustNewConstMetric(queueDesc, prometheus.GaugeValue, float64(n), q, state)
		}
	}
}

// deliveryCollector reports the notification deliveries not yet final.
type deliveryCollector struct{ ns *notify.Service }

var openDeliveriesDesc = prometheus.NewDesc("partnerd_deliveries_open",
	"Notification deliveries waiting to be sent (PENDING) or in flight (SENDING), by channel.", []string{"channel", "status"}, nil)

func (c *deliveryCollector) Describe(ch chan<- *prometheus.Desc) { ch <- openDeliveriesDesc }

func (c *deliveryCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	counts, err := c.ns.OpenCount(ctx)
	if err != nil {
		return
	}
	for channel, byStatus := range counts {
		for status, n := range byStatus {
			ch <- prometheus.MustNewConstMetric(openDeliveriesDesc, prometheus.GaugeValue, float64(n), string(channel), string(status))
		}
	}
}
