package loadgen

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/jobcast/jobcast/netsim"
)

// Report is the outcome of a run. Durations are in milliseconds or
// seconds as their names say, so the JSON needs no unit parsing.
type Report struct {
	Config    Config `json:"config"`
	Processes int    `json:"processes"`
	Jobs      int    `json:"jobs"`

	// Connection phase: each client's first connection.
	Attempted    int64   `json:"connectionsAttempted"` // TCP dials, retries included
	Established  int64   `json:"connectionsEstablished"`
	Failed       int64   `json:"connectionsFailed"`
	SetupSeconds float64 `json:"setupSeconds"`
	SetupRate    float64 `json:"setupPerSec"` // established / setupSeconds

	// Measured phase.
	WindowSeconds float64 `json:"windowSeconds"`
	Published     int64   `json:"eventsPublished"`
	PublishErrors int64   `json:"publishErrors"`
	// PublishRequests is the batch requests that carried them: when the
	// producers cannot keep up, batches grow and per-job delivery thins.
	PublishRequests int64 `json:"publishRequests"`
	// RequestP50Ms and RequestP99Ms are the producers' request latency,
	// from stamping the events to the server's answer.
	RequestP50Ms    float64 `json:"requestP50Ms,omitempty"`
	RequestP99Ms    float64 `json:"requestP99Ms,omitempty"`
	Delivered       int64   `json:"framesDelivered"` // job_progress frames the clients got
	DeliveredPerSec float64 `json:"framesDeliveredPerSec"`
	ChurnConns      int64   `json:"churnConnections"` // new connections during the window (churn)
	ChurnPerSec     float64 `json:"churnPerSec"`

	// Publish→deliver latency of progress frames (µs resolution, bucket
	// upper bounds, under 0.8 %).
	LatencySamples uint64  `json:"latencySamples"`
	LatencyP50Ms   float64 `json:"latencyP50Ms"`
	LatencyP99Ms   float64 `json:"latencyP99Ms"`
	LatencyP999Ms  float64 `json:"latencyP999Ms"`
	LatencyMaxMs   float64 `json:"latencyMaxMs"`

	// Correctness, checked against the server's final state of each job.
	Connects   int64 `json:"connects"` // ready frames, reconnects included
	Resumes    int64 `json:"resumes"`
	Duplicates int64 `json:"duplicates"`
	// SeqGaps counts seq numbers a client never saw; with throttling on,
	// or after a resume, skipped progress is expected.
	SeqGaps int64 `json:"seqGaps"`
	// FramesLost is seq numbers the server has that the client did not
	// reach at the end: must be 0.
	FramesLost int64 `json:"framesLost"`
	// Mismatched counts clients whose final status or count differs from
	// the server's: must be 0.
	Mismatched int64 `json:"mismatched"`
	// Unfinished counts clients still waiting at the drain timeout.
	Unfinished int64            `json:"unfinished"`
	Errors     map[string]int64 `json:"errors,omitempty"`

	Server ServerReport  `json:"server"`
	Proxy  *netsim.Stats `json:"proxy,omitempty"`
}

// ServerReport is what the run cost the server.
type ServerReport struct {
	// Source is "proc" (the server is local: /proc/<pid>), "metrics" (its
	// /metrics) or "" (neither: give -admin-token or -server-pid).
	Source string `json:"source"`
	PID    int    `json:"pid,omitempty"`

	BaselineRSSBytes int64   `json:"baselineRssBytes"`  // jobs created, no connections yet
	ConnectedRSS     int64   `json:"connectedRssBytes"` // after the connection phase
	RSSPerConnBytes  float64 `json:"rssPerConnBytes"`   // (connected − baseline) / established
	// After the measured window: for an idle run, what the connections
	// settle at once the runtime has returned the handshakes' garbage.
	EndRSSBytes        int64   `json:"endRssBytes"`
	EndRSSPerConnBytes float64 `json:"endRssPerConnBytes"`
	// CPU over the measured window.
	CPUSeconds         float64 `json:"cpuSeconds"`
	CPUCoreShare       float64 `json:"cpuCoreShare"`       // cpuSeconds / window: 1 = one core busy
	FramesSent         int64   `json:"framesSent"`         // the server's count in the window (/metrics)
	CPUPer1000FramesMs float64 `json:"cpuPer1000FramesMs"` // per frame sent (or delivered, without /metrics)
	CPUPerEventUs      float64 `json:"cpuPerEventUs"`      // per producer event published
	CPUPerNewConnUs    float64 `json:"cpuPerNewConnUs"`    // churn: per connection opened in the window
	SetupCPUPerConnUs  float64 `json:"setupCpuPerConnUs"`  // connection phase: handshake, auth, ready
	// From /v1/debug/runtime (admin token), after a GC, baseline → connected.
	HeapPerConnBytes  float64 `json:"heapPerConnBytes"`
	StackPerConnBytes float64 `json:"stackPerConnBytes"`
	Goroutines        int64   `json:"goroutines"`
	GoroutinesPerConn float64 `json:"goroutinesPerConn"`
	HeapInuseBytes    int64   `json:"heapInuseBytes"`
}

// OK reports whether every client ended with the server's state.
func (r *Report) OK() bool {
	return r.FramesLost == 0 && r.Mismatched == 0 && r.Unfinished == 0 && r.Failed == 0
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func buildReport(cfg Config, procs, jobs int, conn, final clientReport, s0, s1, s2 serverSample, published, pubErrs int64) *Report {
	window := s2.At.Sub(s1.At).Seconds()
	var h Histogram
	h.merge(final.Latency)
	r := &Report{
		Config: cfg, Processes: procs, Jobs: jobs,
		Attempted: conn.Attempted, Established: conn.Established, Failed: conn.Failed,
		SetupSeconds:  conn.SetupSeconds,
		WindowSeconds: window,
		Published:     published, PublishErrors: pubErrs,
		Delivered:      final.Progress,
		ChurnConns:     final.ChurnConns,
		LatencySamples: h.Count(),
		LatencyP50Ms:   ms(h.Quantile(0.50)),
		LatencyP99Ms:   ms(h.Quantile(0.99)),
		LatencyP999Ms:  ms(h.Quantile(0.999)),
		LatencyMaxMs:   ms(h.Max()),
		Connects:       final.Connects, Resumes: final.Resumes, Duplicates: final.Duplicates,
		SeqGaps: final.SeqGaps, FramesLost: final.Lost, Mismatched: final.Mismatched,
		Unfinished: final.Unfinished, Errors: final.Errors, Proxy: final.Proxy,
	}
	if r.SetupSeconds > 0 {
		r.SetupRate = float64(r.Established) / r.SetupSeconds
	}
	if window > 0 {
		r.DeliveredPerSec = float64(r.Delivered) / window
		r.ChurnPerSec = float64(r.ChurnConns) / window
	}
	sv := &r.Server
	if s0.HasCPU && s1.HasCPU && s2.HasCPU {
		sv.Source = "metrics"
		if s0.fromProc {
			sv.Source = "proc"
		}
		sv.BaselineRSSBytes, sv.ConnectedRSS, sv.EndRSSBytes = s0.RSS, s1.RSS, s2.RSS
		if conn.Established > 0 {
			sv.RSSPerConnBytes = float64(s1.RSS-s0.RSS) / float64(conn.Established)
			sv.SetupCPUPerConnUs = float64((s1.CPU - s0.CPU).Microseconds()) / float64(conn.Established)
			sv.EndRSSPerConnBytes = float64(s2.RSS-s0.RSS) / float64(conn.Established)
		}
		cpu := (s2.CPU - s1.CPU).Seconds()
		sv.CPUSeconds = cpu
		if window > 0 {
			sv.CPUCoreShare = cpu / window
		}
		frames := r.Delivered
		if s1.HasFrames && s2.HasFrames {
			sv.FramesSent = s2.FramesSent - s1.FramesSent
			frames = sv.FramesSent
		}
		if frames > 0 && cfg.Rate > 0 {
			sv.CPUPer1000FramesMs = cpu * 1e6 / float64(frames)
		}
		if published > 0 {
			sv.CPUPerEventUs = cpu * 1e6 / float64(published)
		}
		if r.ChurnConns > 0 {
			sv.CPUPerNewConnUs = cpu * 1e6 / float64(r.ChurnConns)
		}
	}
	if s0.Runtime != nil && s1.Runtime != nil {
		n := float64(max(conn.Established, 1))
		sv.HeapPerConnBytes = float64(s1.Runtime.HeapInuseBytes-s0.Runtime.HeapInuseBytes) / n
		sv.StackPerConnBytes = float64(s1.Runtime.StackInuseBytes-s0.Runtime.StackInuseBytes) / n
		sv.GoroutinesPerConn = float64(s1.Runtime.Goroutines-s0.Runtime.Goroutines) / n
		sv.Goroutines = s1.Runtime.Goroutines
		sv.HeapInuseBytes = s1.Runtime.HeapInuseBytes
	}
	return r
}

// WriteText renders the report for people.
func (r *Report) WriteText(w io.Writer) {
	c := r.Config
	fmt.Fprintf(w, "jobcast loadgen: %s\n", c.URL)
	fmt.Fprintf(w, "  setup        %d conns (%d per job, %d jobs) at %.0f/s from %d source addresses, %d process(es), network %s\n",
		c.Conns, c.WatchersPerJob, r.Jobs, c.ConnectRate, c.SourceIPs, r.Processes, c.Network)
	fmt.Fprintf(w, "  connections  %d attempted, %d established, %d failed in %.2fs (%.0f/s)\n",
		r.Attempted, r.Established, r.Failed, r.SetupSeconds, r.SetupRate)
	fmt.Fprintf(w, "  window       %.1fs: %d events published in %d requests (%d errors), %d frames delivered (%.0f/s)",
		r.WindowSeconds, r.Published, r.PublishRequests, r.PublishErrors, r.Delivered, r.DeliveredPerSec)
	if c.Churn {
		fmt.Fprintf(w, ", %d new connections (%.0f/s)", r.ChurnConns, r.ChurnPerSec)
	}
	fmt.Fprintln(w)
	if r.PublishRequests > 0 {
		fmt.Fprintf(w, "  producers    %.1f events per request; request p50 %.2f ms, p99 %.2f ms (stamp to answer)\n",
			float64(r.Published)/float64(r.PublishRequests), r.RequestP50Ms, r.RequestP99Ms)
	}
	if r.LatencySamples > 0 {
		fmt.Fprintf(w, "  latency      p50 %.2f ms, p99 %.2f ms, p999 %.2f ms, max %.2f ms (%d frames, publish→deliver)\n",
			r.LatencyP50Ms, r.LatencyP99Ms, r.LatencyP999Ms, r.LatencyMaxMs, r.LatencySamples)
	}
	fmt.Fprintf(w, "  delivery     %d connects, %d resumes, %d duplicates, %d seq gaps; lost %d, mismatched %d, unfinished %d\n",
		r.Connects, r.Resumes, r.Duplicates, r.SeqGaps, r.FramesLost, r.Mismatched, r.Unfinished)
	sv := r.Server
	if sv.Source == "" {
		fmt.Fprintln(w, "  server       no figures: the server is not local and no admin token was given")
	} else {
		fmt.Fprintf(w, "  server (%s) RSS %.1f → %.1f MiB, %.2f KB per connection (%.2f KB at the end); setup CPU %.0f µs per connection\n",
			sv.Source, mib(sv.BaselineRSSBytes), mib(sv.ConnectedRSS), sv.RSSPerConnBytes/1000, sv.EndRSSPerConnBytes/1000, sv.SetupCPUPerConnUs)
		fmt.Fprintf(w, "               window CPU %.2fs = %.1f%% of a core", sv.CPUSeconds, 100*sv.CPUCoreShare)
		if sv.CPUPer1000FramesMs > 0 {
			fmt.Fprintf(w, "; %.2f ms per 1,000 frames", sv.CPUPer1000FramesMs)
		}
		if sv.CPUPerEventUs > 0 {
			fmt.Fprintf(w, "; %.1f µs per event", sv.CPUPerEventUs)
		}
		if sv.CPUPerNewConnUs > 0 {
			fmt.Fprintf(w, "; %.0f µs per new connection", sv.CPUPerNewConnUs)
		}
		fmt.Fprintln(w)
	}
	if sv.Goroutines > 0 {
		fmt.Fprintf(w, "  runtime      heap %.2f KB, stacks %.2f KB, %.2f goroutines per connection; %d goroutines, heap %.1f MiB\n",
			sv.HeapPerConnBytes/1000, sv.StackPerConnBytes/1000, sv.GoroutinesPerConn, sv.Goroutines, mib(sv.HeapInuseBytes))
	}
	if p := r.Proxy; p != nil {
		fmt.Fprintf(w, "  proxy        %d accepted, %d dropped of %d doomed, %d idle-killed, %d dial failures\n",
			p.Accepted, p.Dropped, p.Doomed, p.IdleKilled, p.DialFailed)
	}
	if len(r.Errors) > 0 {
		fmt.Fprintln(w, "  errors")
		for _, k := range slices.Sorted(maps.Keys(r.Errors)) {
			fmt.Fprintf(w, "    %6d  %s\n", r.Errors[k], strings.TrimSpace(k))
		}
	}
	verdict := "OK: every client ended with the server's final state"
	if !r.OK() {
		verdict = "FAILED: some clients did not end with the server's final state (see lost, mismatched, unfinished, failed)"
	}
	fmt.Fprintf(w, "  %s\n", verdict)
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
