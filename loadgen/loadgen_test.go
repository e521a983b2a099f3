package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/internal/jobcasttest"
	"github.com/jobcast/jobcast/netsim"
)

// workerEnv makes the test binary act as a worker process.
const workerEnv = "JOBCAST_LOADGEN_TEST_WORKER"

func TestMain(m *testing.M) {
	if os.Getenv(workerEnv) == "1" {
		if err := WorkerMain(context.Background(), os.Stdin, os.Stdout); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

func startServer(t *testing.T, throttle bool) *jobcasttest.Server {
	t.Helper()
	cfg := jobcast.Config{
		MaxConnsPerIP:       10000,
		MaxConnsPerJob:      1000,
		NewConnsPerSecPerIP: 10000,
		RequestsPerSecPerIP: 100000,
		ThrottleDisabled:    !throttle,
	}
	if throttle {
		cfg.Throttle = 200 * time.Millisecond
	}
	return jobcasttest.Start(t, jobcasttest.Options{Config: cfg})
}

func TestRunDeliversEverything(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		throttle bool
		network  netsim.Profile
		procs    int
	}{
		{name: "direct"},
		{name: "throttled", throttle: true},
		{name: "latency", network: netsim.Profile{Latency: 2 * time.Millisecond, Jitter: 2 * time.Millisecond}},
		{name: "workers", procs: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t, tt.throttle)
			var out bytes.Buffer
			cfg := Config{
				URL:            srv.URL,
				APIKey:         jobcasttest.APIKey,
				AdminToken:     jobcasttest.AdminToken,
				Conns:          12,
				WatchersPerJob: 3,
				ConnectRate:    200,
				SourceIPs:      4,
				Duration:       time.Second,
				Rate:           20,
				BatchInterval:  50 * time.Millisecond,
				Producers:      2,
				Network:        tt.network,
				DrainTimeout:   20 * time.Second,
				Seed:           7,
				Out:            &out,
			}
			if tt.procs > 1 {
				cfg.ConnsPerProcess = cfg.Conns / tt.procs
				cfg.WorkerCommand = []string{"env", workerEnv + "=1", os.Args[0]}
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			rep, err := Run(ctx, cfg)
			if err != nil {
				t.Fatalf("Run: %v\n%s", err, out.String())
			}
			if rep.Processes != max(tt.procs, 1) || rep.Jobs != 4 {
				t.Fatalf("processes %d jobs %d", rep.Processes, rep.Jobs)
			}
			if rep.Established != 12 || rep.Failed != 0 || rep.Attempted < 12 {
				t.Fatalf("connections: %d attempted, %d established, %d failed", rep.Attempted, rep.Established, rep.Failed)
			}
			if !rep.OK() || rep.FramesLost != 0 || rep.Mismatched != 0 {
				t.Fatalf("not every client ended with the server's state: %+v", rep)
			}
			if rep.Published == 0 || rep.PublishErrors != 0 {
				t.Fatalf("published %d, %d errors", rep.Published, rep.PublishErrors)
			}
			if rep.RequestP50Ms <= 0 || rep.RequestP99Ms < rep.RequestP50Ms {
				t.Fatalf("producer requests: p50 %v p99 %v", rep.RequestP50Ms, rep.RequestP99Ms)
			}
			if rep.LatencySamples == 0 || rep.LatencyP50Ms <= 0 || rep.LatencyP99Ms < rep.LatencyP50Ms {
				t.Fatalf("latency: %d samples, p50 %v p99 %v", rep.LatencySamples, rep.LatencyP50Ms, rep.LatencyP99Ms)
			}
			if !tt.throttle {
				// Every progress event reaches each of its job's 3
				// watchers, in order, none skipped.
				if rep.Delivered != 3*rep.Published || rep.SeqGaps != 0 {
					t.Fatalf("delivered %d frames for %d events × 3 watchers, %d seq gaps", rep.Delivered, rep.Published, rep.SeqGaps)
				}
			} else if rep.Delivered == 0 || rep.Delivered >= 3*rep.Published {
				t.Fatalf("throttled: delivered %d frames for %d events × 3", rep.Delivered, rep.Published)
			}
			if rep.Server.Goroutines == 0 {
				t.Fatalf("no runtime figures from /v1/debug/runtime: %+v", rep.Server)
			}
			if !tt.network.IsZero() && (rep.Proxy == nil || rep.Proxy.Accepted < 12) {
				t.Fatalf("proxy stats %+v", rep.Proxy)
			}
			var text bytes.Buffer
			rep.WriteText(&text)
			if !strings.Contains(text.String(), "OK: every client") || !strings.Contains(text.String(), "latency") {
				t.Fatalf("text report:\n%s", text.String())
			}
			data, err := json.Marshal(rep)
			if err != nil || !bytes.Contains(data, []byte(`"framesLost":0`)) || bytes.Contains(data, []byte(jobcasttest.APIKey)) {
				t.Fatalf("JSON report (%v): %s", err, data)
			}
		})
	}
}

func TestRunChurn(t *testing.T) {
	t.Parallel()
	srv := startServer(t, false)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, err := Run(ctx, Config{
		URL: srv.URL, APIKey: jobcasttest.APIKey, AdminToken: jobcasttest.AdminToken,
		Conns: 5, ConnectRate: 100, Duration: 500 * time.Millisecond, Churn: true, SourceIPs: 2,
		DrainTimeout: 20 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.ChurnConns < 5 || rep.Connects != rep.ChurnConns+5+rep.Resumes || !rep.OK() {
		t.Fatalf("churn: %d new connections, %d connects, %d resumes, ok %v", rep.ChurnConns, rep.Connects, rep.Resumes, rep.OK())
	}
	if rep.Server.Source != "proc" || rep.Server.CPUPerNewConnUs <= 0 {
		t.Fatalf("server figures: %+v", rep.Server)
	}
}

func TestRunRefusesNonLoopback(t *testing.T) {
	t.Parallel()
	tests := []string{"http://10.0.0.1:8080", "http://example.com", "ftp://127.0.0.1", "127.0.0.1:8080"}
	for _, u := range tests {
		if _, err := Run(context.Background(), Config{URL: u, APIKey: "k"}); err == nil || !strings.Contains(err.Error(), "loadgen") {
			t.Errorf("%s: err = %v, want a refusal", u, err)
		}
	}
	for _, u := range []string{"http://127.0.0.1:1", "http://localhost:8080", "http://[::1]:80", "http://127.0.0.5:1"} {
		if err := CheckLoopback(u); err != nil {
			t.Errorf("%s refused: %v", u, err)
		}
	}
}

func TestHistogramQuantiles(t *testing.T) {
	t.Parallel()
	var h Histogram
	for i := 1; i <= 1000; i++ {
		h.Add(time.Duration(i) * time.Millisecond)
	}
	tests := []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Millisecond}, {0.99, 990 * time.Millisecond}, {0.999, 999 * time.Millisecond}}
	for _, tt := range tests {
		got := h.Quantile(tt.q)
		if got < tt.want || float64(got) > 1.008*float64(tt.want) {
			t.Errorf("q%v = %v, want %v within +0.8%%", tt.q, got, tt.want)
		}
	}
	// Merging through the wire form keeps every count.
	var m Histogram
	m.merge(h.wire())
	m.merge(h.wire())
	if m.Count() != 2000 || m.Quantile(0.5) != h.Quantile(0.5) || m.Max() != time.Second {
		t.Fatalf("merged: %d values, p50 %v, max %v", m.Count(), m.Quantile(0.5), m.Max())
	}
	for us := int64(0); us < 1<<22; us = us*5/4 + 1 {
		if b := binOf(us); binUpper(b) < us || (b > 0 && binUpper(b-1) >= us) {
			t.Fatalf("%d µs in bin %d with upper bound %d", us, b, binUpper(b))
		}
	}
}

func TestParseMetrics(t *testing.T) {
	t.Parallel()
	m := parseMetrics([]byte("# HELP x\nprocess_cpu_seconds_total 1.5\nprocess_resident_memory_bytes 2.5e+07\njobcast_errors_total{code=\"x\"} 3\n"))
	if m["process_cpu_seconds_total"] != 1.5 || m["process_resident_memory_bytes"] != 2.5e7 || len(m) != 2 {
		t.Fatalf("%v", m)
	}
}

func TestProcStatSelf(t *testing.T) {
	t.Parallel()
	cpu, rss, err := procStat(os.Getpid())
	if err != nil || rss <= 0 || cpu < 0 {
		t.Fatalf("cpu %v rss %d err %v", cpu, rss, err)
	}
}

// A client the server keeps refusing (here: one watcher too many for the
// job) retries forever; the run gives up instead of waiting with it.
func TestRunFailsWhenClientsCannotConnect(t *testing.T) {
	t.Parallel()
	srv := jobcasttest.Start(t, jobcasttest.Options{Config: jobcast.Config{MaxConnsPerJob: 1, NewConnsPerSecPerIP: 1000}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	_, err := Run(ctx, Config{
		URL: srv.URL, APIKey: jobcasttest.APIKey, Conns: 2, WatchersPerJob: 2, ConnectRate: 100,
		Duration: time.Second, DrainTimeout: time.Second, ServerPID: -1,
	})
	if err == nil || !strings.Contains(err.Error(), "not connected") {
		t.Fatalf("err = %v, want a connect timeout", err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Fatalf("gave up after %v", d)
	}
}
