package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/jobcast/jobcast/auth"
	"github.com/jobcast/jobcast/demo"
)

// runDemo starts an embedded node plus simulated producers and mobile
// clients, and prints where to look. It runs until interrupted (or for
// -duration).
func runDemo(ctx context.Context, args []string, env envLookup, stdout, stderr io.Writer) error {
	f := newServeFlags("demo")
	f.fs.SetOutput(stderr)
	duration := f.fs.Duration("duration", 0, "stop after this long (default: run until interrupted)")
	perPipeline := f.fs.Int("jobs", 3, "jobs running at once per pipeline")
	speed := f.fs.Float64("speed", 1, "simulation speed factor (2 = twice as fast)")
	statusEvery := f.fs.Duration("status-every", 5*time.Second, "print a status line this often")
	inject := f.fs.String("inject", "", "inject trouble: errors (a clean run with an error burst that fires the error-rate alert, then resolves)")
	injectAfter := f.fs.Duration("inject-after", time.Minute, "start the injected burst this long after the demo starts")
	injectFor := f.fs.Duration("inject-for", 2*time.Minute, "how long the injected burst lasts")
	if err := f.fs.Parse(args); err != nil {
		return err
	}
	explicitAddr := f.addr != ""
	if _, ok := env("JOBCAST_ADDR"); ok {
		explicitAddr = true
	}
	if f.dataDir == "" {
		if _, ok := env("JOBCAST_DATA_DIR"); !ok {
			f.dataDir = defaultDemoDir
			_ = f.fs.Set("data-dir", f.dataDir)
			removed, err := freshDemoDir(f.dataDir)
			if err != nil {
				return err
			}
			if removed {
				fmt.Fprintf(stdout, "removed the previous demo's jobs and telemetry in %s: each demo starts fresh\n", f.dataDir)
			}
		}
	}
	if !explicitAddr {
		_ = f.fs.Set("addr", "127.0.0.1:8080")
	}
	cfg, level, err := f.load(env)
	if err != nil {
		return err
	}
	// Heartbeats every 5 s, unless configured, so that RTT telemetry
	// shows up within the demo's first minute.
	if _, ok := env("JOBCAST_HEARTBEAT_INTERVAL_MS"); !ok && f.heartbeat == 0 && f.configPath == "" {
		cfg.HeartbeatInterval = 5 * time.Second
	}
	if level == "" {
		level = "warn" // the status lines are the demo's output
	}
	log, err := newLogger(stderr, level)
	if err != nil {
		return err
	}
	// The demo's producers use a key of their own, valid for this run only.
	key, err := auth.RandomSecret("jc_demo_")
	if err != nil {
		return err
	}
	cfg.APIKeys = append(cfg.APIKeys, key)

	as, injection, err := demoAlerts(f.alertsFile, cfg, env, *inject, *injectAfter, *injectFor)
	if err != nil {
		return err
	}
	n, err := startNode(ctx, cfg, log, io.Discard, withAlerts(as))
	if err != nil && !explicitAddr && errors.Is(err, syscall.EADDRINUSE) {
		fmt.Fprintf(stdout, "port 8080 is busy; using a free port instead\n")
		cfg.Addr = "127.0.0.1:0"
		n, err = startNode(ctx, cfg, log, io.Discard, withAlerts(as))
	}
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = n.shutdown(sctx)
	}()
	if err := startDemoExperiment(ctx, n, stdout); err != nil {
		return err
	}
	admin := n.cfg.AdminToken
	base := n.URL()
	fmt.Fprintf(stdout, `jobcast demo: an embedded node with simulated producers and mobile clients.

  server       %s   (data dir %s)
  API key      %s   (valid while the demo runs)
  admin token  %s
  dashboard    %s/dashboard   (log in with the admin token)

  Pipelines csv_import, batch_enrichment and ai_scan run %d jobs each; their
  clients use mixed app/OS versions, wifi and cellular, and some lose their
  connection and resume. The traffic is healthy: no default alert fires on
  it (jobcast demo -inject errors raises the error rate to see one).

  Look around:
    curl -s -H 'Authorization: Bearer %s' %s/v1/connections
    curl -s -H 'Authorization: Bearer %s' %s/v1/jobs/<jobId>
    websocat '%s/ws/progress?jobId=<jobId>&token=<token from POST /v1/jobs/<jobId>/token>'

Press Ctrl-C to stop.
`, base, cfg.DataDir, key, admin, base, *perPipeline, admin, base, key, base, "ws"+base[len("http"):])

	dctx := ctx
	if *duration > 0 {
		var cancel context.CancelFunc
		dctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	stats, err := demo.Run(dctx, demo.Options{
		BaseURL:         base,
		APIKey:          key,
		JobsPerPipeline: *perPipeline,
		Speed:           *speed,
		StatusEvery:     *statusEvery,
		Out:             stdout,
		Log:             log,
		Clean:           injection.clean,
		ErrorBurst:      injection.burst(stdout),
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "demo stopped: %d jobs completed, %d failed, %d client drops, %d resumes, %d messages delivered, %d lost, %d mismatched\n",
		stats.JobsCompleted, stats.JobsFailed, stats.Drops, stats.Resumes, stats.Messages, stats.Lost, stats.Mismatches)
	if stats.Lost > 0 || stats.Mismatches > 0 {
		return fmt.Errorf("demo saw %d lost messages and %d clients with a wrong final state", stats.Lost, stats.Mismatches)
	}
	return nil
}

// defaultDemoDir is the demo's own data dir, used when no data dir is
// configured.
const defaultDemoDir = "./jobcast-demo-data"

// demoMarker marks a data dir as the demo's scratch space.
const demoMarker = ".jobcast-demo"

// freshDemoDir deletes the job and telemetry stores of dir when an earlier
// demo made it (it holds the marker), and marks dir for the next run. The
// demo's data is scratch: a run that reused it would start with the previous
// run's stopped jobs (failed with E_CANCELLED when it ended) inside the alert
// windows, and page on them. Everything else (alerts.yaml, keys) stays. A dir
// without the marker is kept as it is (and marked): call it only with
// defaultDemoDir, never with a dir the user named.
func freshDemoDir(dir string) (removed bool, err error) {
	if _, err := os.Stat(filepath.Join(dir, demoMarker)); err == nil {
		for _, pattern := range []string{"jobcast.db*", "telemetry.duckdb*"} {
			files, _ := filepath.Glob(filepath.Join(dir, pattern))
			for _, f := range files {
				if err := os.Remove(f); err != nil {
					return removed, fmt.Errorf("remove the previous demo's data: %w", err)
				}
				removed = true
			}
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return removed, fmt.Errorf("demo data dir: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, demoMarker), []byte("jobcast demo scratch data: its stores are removed by the next `jobcast demo`\n"), 0o600); err != nil {
		return removed, fmt.Errorf("demo data dir: %w", err)
	}
	return removed, nil
}
