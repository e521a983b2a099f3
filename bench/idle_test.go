package bench_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jobcast/jobcast/bench"
	"github.com/jobcast/jobcast/client"
	"github.com/jobcast/jobcast/httpapi"
)

// Settings of BenchmarkIdleConnections, from the environment.
const (
	idleEnv       = "JOBCAST_BENCH_IDLE"         // must be 1 to run
	idleConnsEnv  = "JOBCAST_BENCH_IDLE_CONNS"   // connections (default 10000)
	idlePerJobEnv = "JOBCAST_BENCH_IDLE_PER_JOB" // connections per job (default 1)
	idleHoldEnv   = "JOBCAST_BENCH_IDLE_HOLD"    // keep idle this long, then measure again (e.g. 40s, past a heartbeat)
	binEnv        = "JOBCAST_BIN"                // a built jobcast binary (default: go build one)
)

const (
	idleAPIKey     = "bench-api-key-0123456789"
	idleAdminToken = "bench-admin-token-0123456789"
)

// BenchmarkIdleConnections measures what an idle client connection costs the
// server: the jobcast binary runs as its own process (10,000 connections
// need 20,000 sockets on loopback, one process may hold 20,000 files), this
// process opens the connections, and the server's VmRSS and
// /v1/debug/runtime figures before and after are divided by the number of
// connections. One op opens every connection; run it with -benchtime=1x.
func BenchmarkIdleConnections(b *testing.B) {
	if os.Getenv(idleEnv) != "1" {
		b.Skip("opens 10,000 connections to a jobcast server process; set " + idleEnv + "=1 to run (make bench-idle)")
	}
	n := envInt(b, idleConnsEnv, 10000)
	perJob := envInt(b, idlePerJobEnv, 1)
	var hold time.Duration
	if v := os.Getenv(idleHoldEnv); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatalf("%s: %v", idleHoldEnv, err)
		}
		hold = d
	}

	srv := startServerProcess(b)
	ctx := context.Background()
	tickets := srv.createJobs(b, (n+perJob-1)/perJob, perJob)[:n]

	base := srv.sample(b)
	var after sample
	var ws []*bench.Watcher
	for b.Loop() {
		if ws != nil {
			b.Fatal("one iteration only: run with -benchtime=1x")
		}
		var err error
		ws, err = bench.DialAll(ctx, bench.DialOptions{URL: srv.wsURL, SourceIPs: 8, Concurrency: 32}, tickets)
		if err != nil {
			b.Fatal(err)
		}
	}
	b.Cleanup(func() { bench.CloseAll(ws) })
	after = srv.sample(b)
	report := func(suffix string, s sample) {
		per := func(a, b uint64) float64 { return (float64(a) - float64(b)) / float64(n) }
		b.ReportMetric(per(s.rss, base.rss), "rss-B/conn"+suffix)
		b.ReportMetric(per(s.HeapInuseBytes, base.HeapInuseBytes), "heap-B/conn"+suffix)
		b.ReportMetric(per(s.StackInuseBytes, base.StackInuseBytes), "stack-B/conn"+suffix)
		b.ReportMetric(float64(s.Goroutines-base.Goroutines)/float64(n), "goroutines/conn"+suffix)
	}
	report("", after)
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "conns/s")
	b.Logf("server before: %s", base)
	b.Logf("server with %d connections: %s", n, after)
	if hold > 0 {
		time.Sleep(hold) // the point is to stay idle: heartbeats run meanwhile
		for _, w := range ws {
			if w.Err() != nil {
				b.Fatalf("connection of job %s ended while idle: %v", w.JobID, w.Err())
			}
		}
		held := srv.sample(b)
		b.Logf("server after %s idle: %s", hold, held)
		report("-held", held)
	}
}

func envInt(tb testing.TB, name string, def int) int {
	tb.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		tb.Fatalf("%s must be a positive integer, got %q", name, v)
	}
	return n
}

// serverProcess is a jobcast serve process.
type serverProcess struct {
	cmd      *exec.Cmd
	baseURL  string
	wsURL    string
	producer *client.Producer
}

// sample is the server's memory at one moment.
type sample struct {
	httpapi.RuntimeStats
	rss uint64 // VmRSS
}

func (s sample) String() string {
	return fmt.Sprintf("VmRSS %.1f MiB, heap in use %.1f MiB, stacks %.1f MiB, %d goroutines",
		float64(s.rss)/(1<<20), float64(s.HeapInuseBytes)/(1<<20), float64(s.StackInuseBytes)/(1<<20), s.Goroutines)
}

// startServerProcess builds (unless JOBCAST_BIN names one) and starts jobcast
// serve on a free loopback port, with limits raised for one benchmark host.
func startServerProcess(tb testing.TB) *serverProcess {
	tb.Helper()
	dir := tb.TempDir()
	bin := os.Getenv(binEnv)
	if bin == "" {
		bin = filepath.Join(dir, "jobcast")
		out, err := exec.Command("go", "build", "-o", bin, "github.com/jobcast/jobcast/cmd/jobcast").CombinedOutput()
		if err != nil {
			tb.Fatalf("go build jobcast: %v\n%s", err, out)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	config := filepath.Join(dir, "jobcast.yaml")
	yaml := fmt.Sprintf(`addr: %q
dataDir: %q
apiKeys: [%q]
adminToken: %q
maxConnsPerIP: 20000
maxConnsPerJob: 20000
newConnsPerSecPerIP: 5000
requestsPerSecPerIP: 100000
`, addr, filepath.Join(dir, "data"), idleAPIKey, idleAdminToken)
	if err := os.WriteFile(config, []byte(yaml), 0o600); err != nil {
		tb.Fatal(err)
	}
	var stderr strings.Builder
	cmd := exec.Command(bin, "serve", "--config", config)
	cmd.Env = append(os.Environ(), "JOBCAST_LOG_LEVEL=warn")
	cmd.Stderr = &lockedWriter{w: &stderr}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	tb.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if s := stderr.String(); s != "" {
			tb.Logf("server stderr:\n%s", s)
		}
	})
	p := &serverProcess{cmd: cmd, baseURL: "http://" + addr, wsURL: "ws://" + addr + "/ws/progress"}
	p.producer = client.NewProducer(p.baseURL, idleAPIKey)
	p.producer.HTTP = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(p.baseURL + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case <-exited:
			tb.Fatalf("jobcast serve exited: %s", stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			tb.Fatalf("jobcast serve not healthy after 30s: %v", err)
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
	return p
}

// createJobs creates jobs through the producer API and returns perJob
// tickets for each.
func (p *serverProcess) createJobs(tb testing.TB, jobs, perJob int) []bench.Ticket {
	tb.Helper()
	tickets := make([]bench.Ticket, 0, jobs*perJob)
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	next := make(chan int)
	for range 8 {
		wg.Go(func() {
			for i := range next {
				t, err := p.producer.CreateJob(context.Background(), client.CreateJobRequest{JobID: fmt.Sprintf("idle-%05d", i), Pipeline: "bench"})
				if err != nil {
					select {
					case errs <- err:
					default:
					}
					continue
				}
				mu.Lock()
				for range perJob {
					tickets = append(tickets, bench.Ticket{JobID: t.JobID, Token: t.Token})
				}
				mu.Unlock()
			}
		})
	}
	for i := range jobs {
		next <- i
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errs:
		tb.Fatalf("create jobs: %v", err)
	default:
	}
	p.producer.HTTP.CloseIdleConnections()
	return tickets
}

// sample reads the server's runtime figures after a GC, and its VmRSS.
func (p *serverProcess) sample(tb testing.TB) sample {
	tb.Helper()
	req, err := http.NewRequest(http.MethodGet, p.baseURL+"/v1/debug/runtime?gc=1", nil)
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+idleAdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	var s sample
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("GET /v1/debug/runtime: %s", resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&s.RuntimeStats); err != nil {
		tb.Fatal(err)
	}
	s.rss, err = vmRSS(p.cmd.Process.Pid)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// vmRSS reads a process's resident set size from /proc.
func vmRSS(pid int) (uint64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmRSS in /proc status")
}

type lockedWriter struct {
	mu sync.Mutex
	w  *strings.Builder
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
