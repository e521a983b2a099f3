package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/jobcast/jobcast/loadgen"
	"github.com/jobcast/jobcast/netsim"
)

const loadgenUsage = `Usage: jobcast loadgen [flags]

Drives a running jobcast server on this machine with simulated mobile
clients (the Go SDK) and producers, then prints what the clients saw and
what it cost the server. It stops by itself: connections, -duration of load,
then every job is completed and each client's final state is checked
against the server's. Exit status 1 when a client lost frames or ended with
a state other than the server's. See docs/loadgen.md.

Flags:
`

// runLoadgen is `jobcast loadgen`.
func runLoadgen(ctx context.Context, args []string, env envLookup, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, loadgenUsage)
		fs.PrintDefaults()
	}
	var cfg loadgen.Config
	qf := &queryFlags{}
	var network, jsonOut string
	var asJSON, worker bool
	fs.StringVar(&cfg.URL, "url", "http://127.0.0.1:8080", "base URL of the server (loopback only)")
	clientURLs := fs.String("client-urls", "", "comma-separated base URLs of the nodes the clients connect to (default -url): producers use -url, so a cluster run delivers across nodes")
	fs.StringVar(&cfg.APIKey, "api-key", "", "producer API key (default: the first of $JOBCAST_API_KEYS)")
	fs.StringVar(&qf.token, "admin-token", "", "admin token, for /metrics and /v1/debug/runtime (default $JOBCAST_ADMIN_TOKEN, else the data dir's admin-token file; optional)")
	fs.StringVar(&qf.dataDir, "data-dir", "", "data dir whose admin-token file to read (default $JOBCAST_DATA_DIR, else ./jobcast-data)")
	fs.IntVar(&cfg.Conns, "conns", 100, "client connections to hold")
	fs.IntVar(&cfg.WatchersPerJob, "watchers-per-job", 1, "connections watching each job")
	fs.Float64Var(&cfg.ConnectRate, "connect-rate", 500, "new connections per second")
	fs.IntVar(&cfg.SourceIPs, "source-ips", 16, "spread connections over 127.0.0.1..127.0.0.N")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "measured phase, after every client connected")
	fs.Float64Var(&cfg.Rate, "rate", 0, "progress events per second per job (0: idle connections)")
	fs.DurationVar(&cfg.BatchInterval, "batch-interval", 100*time.Millisecond, "a producer posts each job's due events as one batch this often")
	fs.IntVar(&cfg.Producers, "producers", 8, "producer goroutines")
	fs.BoolVar(&cfg.Churn, "churn", false, "each client closes after ready and a new one connects, at -connect-rate, during -duration")
	fs.StringVar(&network, "network", "", "network profile through a loopback proxy: a preset (wifi, cellular, cgnat, flaky) and/or latency=,jitter=,drop=,drop-within=,idle=")
	fs.IntVar(&cfg.ServerPID, "server-pid", 0, "server process for /proc CPU and memory (0: the process listening on -url's port; -1: read /metrics)")
	fs.IntVar(&cfg.ConnsPerProcess, "conns-per-process", 0, "connections per client process; more run in worker processes (default 15000, 6000 with -network)")
	fs.DurationVar(&cfg.DrainTimeout, "drain-timeout", 60*time.Second, "how long to wait for every client to see its job end")
	fs.Uint64Var(&cfg.Seed, "seed", 0, "seed of the client mix and job ids (0: random)")
	fs.BoolVar(&asJSON, "json", false, "print the report as JSON instead of text")
	fs.StringVar(&jsonOut, "json-out", "", "also write the JSON report to this file")
	fs.BoolVar(&worker, "worker", false, "run as a worker process of another loadgen (internal)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if worker {
		return loadgen.WorkerMain(ctx, stdin, stdout)
	}
	for _, u := range strings.Split(*clientURLs, ",") {
		if u = strings.TrimSpace(u); u != "" {
			cfg.ClientURLs = append(cfg.ClientURLs, u)
		}
	}
	if cfg.APIKey == "" {
		if v, ok := env("JOBCAST_API_KEYS"); ok {
			cfg.APIKey = strings.TrimSpace(strings.Split(v, ",")[0])
		}
	}
	if cfg.APIKey == "" {
		return errors.New("loadgen: no API key: pass -api-key or set JOBCAST_API_KEYS")
	}
	if tok, err := qf.adminToken(env); err == nil {
		cfg.AdminToken = tok
	}
	if network != "" {
		p, err := netsim.ParseProfile(network)
		if err != nil {
			return err
		}
		cfg.Network = p
	}
	cfg.Out = stderr
	log, err := newLogger(stderr, "warn")
	if err != nil {
		return err
	}
	cfg.Log = log
	if cfg.AdminToken == "" {
		fmt.Fprintln(stderr, "loadgen: no admin token: no server heap, goroutine or frame counts (pass -admin-token)")
	}
	rep, err := loadgen.Run(ctx, cfg)
	if rep == nil {
		return err
	}
	if jsonOut != "" {
		data, jerr := json.MarshalIndent(rep, "", "  ")
		if jerr == nil {
			jerr = os.WriteFile(jsonOut, append(data, '\n'), 0o644)
		}
		if jerr != nil {
			return fmt.Errorf("write report: %w", jerr)
		}
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if jerr := enc.Encode(rep); jerr != nil {
			return jerr
		}
	} else {
		rep.WriteText(stdout)
	}
	if err != nil {
		return err
	}
	if !rep.OK() {
		return errors.New("loadgen: some clients did not end with the server's final state")
	}
	return nil
}
