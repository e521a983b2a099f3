package promexport

import (
	"net/http"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/hub"
	"github.com/jobcast/jobcast/jobs"
	"github.com/jobcast/jobcast/telemetry"
)

var _ jobcast.EventRecorder = (*Exporter)(nil)

// maxLabelValues caps the distinct values of a free-form label (error
// codes, pipelines); later values are counted as "other".
const maxLabelValues = 64

// Exporter counts telemetry events as they are recorded and passes them on
// to the next recorder; it also reads the hub's and the recorder's counters
// at scrape time.
type Exporter struct {
	next jobcast.EventRecorder
	reg  *prometheus.Registry

	connEvents   *prometheus.CounterVec
	connFailures *prometheus.CounterVec
	disconnects  *prometheus.CounterVec
	errors       *prometheus.CounterVec
	jobs         *prometheus.CounterVec
	rtt          *prometheus.HistogramVec

	codes, pipelines *capped
}

// New returns an exporter that forwards events to next. Watch the hub and
// the recorder with WatchHub and WatchRecorder.
func New(next jobcast.EventRecorder) *Exporter {
	if next == nil {
		next = jobcast.NopRecorder{}
	}
	e := &Exporter{
		next: next,
		reg:  prometheus.NewRegistry(),
		connEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jobcast_connection_events_total",
			Help: "Connection events: connected, reconnected, disconnected, connect_failed.",
		}, []string{"event", "network_type"}),
		connFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jobcast_connect_failures_total",
			Help: "Failed connection attempts by reason (token_expired, job_not_found, rate_limited, ...).",
		}, []string{"reason"}),
		disconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jobcast_disconnects_total",
			Help: "Closed connections by WebSocket close code.",
		}, []string{"close_code"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jobcast_errors_total",
			Help: "Error messages clients saw, by error code (at most 64 codes, then other).",
		}, []string{"code"}),
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jobcast_jobs_total",
			Help: "Job lifecycle events (started, completed, failed) by pipeline (at most 64, then other).",
		}, []string{"event", "pipeline"}),
		rtt: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "jobcast_heartbeat_rtt_seconds",
			Help:    "Heartbeat round trip on the server's clock; sampled heartbeats count their sample interval times.",
			Buckets: []float64{.01, .025, .05, .1, .2, .4, .8, 1.5, 3, 6, 12},
		}, []string{"network_type"}),
		codes:     &capped{seen: map[string]bool{}},
		pipelines: &capped{seen: map[string]bool{}},
	}
	e.reg.MustRegister(e.connEvents, e.connFailures, e.disconnects, e.errors, e.jobs, e.rtt,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return e
}

// WatchHub exports the hub's live gauge and counters.
func (e *Exporter) WatchHub(h *hub.Hub) {
	e.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "jobcast_connections", Help: "Open client connections."},
			func() float64 { return float64(h.ConnCount()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "jobcast_frames_sent_total", Help: "WebSocket frames written to clients."},
			func() float64 { return float64(h.Totals().FramesSent) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "jobcast_bytes_sent_total", Help: "Bytes of frames written to clients."},
			func() float64 { return float64(h.Totals().BytesSent) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "jobcast_progress_throttled_total", Help: "Progress frames coalesced away by throttling."},
			func() float64 { return float64(h.Totals().ProgressThrottled) }),
	)
}

// WatchSpool exports the job store spool's queue (embedded mode): writes
// held in memory while the store refuses them, and what became of them.
func (e *Exporter) WatchSpool(s *jobs.Spool) {
	e.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "jobcast_job_writes_queued",
			Help: "Job store writes held in memory because the store refuses writes (disk full, read-only data dir); lost if the process dies."},
			func() float64 { return float64(s.Stats().Queued) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "jobcast_job_writes_flushed_late_total",
			Help: "Queued job store writes written once the store took writes again."},
			func() float64 { return float64(s.Stats().FlushedLate) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "jobcast_job_writes_refused_total",
			Help: "Job writes refused with 503 because the store refused them and the in-memory queue was full."},
			func() float64 { return float64(s.Stats().Refused) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "jobcast_job_writes_dropped_total",
			Help: "Queued job store writes the store rejected for good (their job was deleted meanwhile), and so lost."},
			func() float64 { return float64(s.Stats().Dropped) }),
	)
}

// WatchRecorder exports the telemetry recorder's counters (drops included).
func (e *Exporter) WatchRecorder(r *telemetry.Recorder) {
	e.reg.MustRegister(&recorderCollector{r: r})
}

// Record implements jobcast.EventRecorder: it counts, then forwards.
func (e *Exporter) Record(ev jobcast.Event) {
	switch ev.Event {
	case jobcast.EventConnected, jobcast.EventReconnected:
		e.connEvents.WithLabelValues(ev.Event, network(ev.NetworkType)).Inc()
	case jobcast.EventDisconnected:
		e.connEvents.WithLabelValues(ev.Event, network(ev.NetworkType)).Inc()
		e.disconnects.WithLabelValues(strconv.Itoa(ev.CloseCode)).Inc()
	case jobcast.EventConnectFailed:
		e.connEvents.WithLabelValues(ev.Event, network(ev.NetworkType)).Inc()
		e.connFailures.WithLabelValues(ev.Reason).Inc()
	case jobcast.EventError:
		e.errors.WithLabelValues(e.codes.value(ev.ErrorCode)).Inc()
	case jobcast.EventJobStarted, jobcast.EventJobCompleted, jobcast.EventJobFailed:
		e.jobs.WithLabelValues(ev.Event, e.pipelines.value(ev.Pipeline)).Inc()
	case jobcast.EventHeartbeat:
		o := e.rtt.WithLabelValues(network(ev.NetworkType))
		for i := int64(0); i < max(ev.SampleInterval, 1); i++ {
			o.Observe(ev.RTTMs / 1000)
		}
	}
	e.next.Record(ev)
}

// Handler serves the exposition.
func (e *Exporter) Handler() http.Handler {
	return promhttp.HandlerFor(e.reg, promhttp.HandlerOpts{})
}

func network(n string) string {
	switch n {
	case "wifi", "cellular", "ethernet":
		return n
	}
	return "unknown"
}

// capped keeps a label's distinct values bounded.
type capped struct {
	mu   sync.Mutex
	seen map[string]bool
}

func (c *capped) value(v string) string {
	if v == "" {
		return "none"
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen[v] {
		return v
	}
	if len(c.seen) >= maxLabelValues {
		return "other"
	}
	c.seen[v] = true
	return v
}

// recorderCollector exports the telemetry recorder's counters.
type recorderCollector struct{ r *telemetry.Recorder }

var (
	telemetryEvents = prometheus.NewDesc("jobcast_telemetry_events_total",
		"Telemetry events by outcome: recorded (buffered), dropped (buffer full), written (stored), lost (write failed).",
		[]string{"outcome"}, nil)
	telemetryBuffered = prometheus.NewDesc("jobcast_telemetry_buffered",
		"Telemetry events waiting to be written.", nil, nil)
	telemetryWriteErrors = prometheus.NewDesc("jobcast_telemetry_write_errors_total",
		"Failed writes to the telemetry store.", nil, nil)
)

func (c *recorderCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- telemetryEvents
	ch <- telemetryBuffered
	ch <- telemetryWriteErrors
}

func (c *recorderCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.r.Stats()
	for outcome, v := range map[string]uint64{"recorded": st.Recorded, "dropped": st.Dropped, "written": st.Written, "lost": st.Lost} {
		ch <- prometheus.MustNewConstMetric(telemetryEvents, prometheus.CounterValue, float64(v), outcome)
	}
	ch <- prometheus.MustNewConstMetric(telemetryBuffered, prometheus.GaugeValue, float64(st.Buffered))
	ch <- prometheus.MustNewConstMetric(telemetryWriteErrors, prometheus.CounterValue, float64(st.WriteErrors))
}
