// Command jobcast is the jobcast server, demo and admin tool.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/jobcast/jobcast/auth"
)

const usage = `jobcast delivers live job progress over WebSockets and watches the delivery.

Usage:
  jobcast serve [flags]        run a node (embedded mode: SQLite in the data dir)
  jobcast demo [flags]         run a node with simulated producers and mobile clients
  jobcast keys rotate          add a new token signing key to the data dir's key ring
  jobcast query <sub> [flags]  query a running server's telemetry: sql, metric, metrics
  jobcast alerts <sub> [flags] alerts of a running server: list, rules, history, test, silence; check a rules file
  jobcast experiments <sub>     manage a running server's A/B tests: list, create, update, start, stop, results
  jobcast users <sub>          a running server's named users: create (viewer or admin), list, revoke
  jobcast loadgen [flags]      drive a local server with simulated clients and report the cost
  jobcast version              print the version

Run 'jobcast <command> -h' for a command's flags.
`

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// loadgenGCPercent is the load generator's GOGC unless the environment
// sets one: with 10,000 watchers its collections came every 3 s and marked
// for a third of a second, delaying the frames it was timing. A larger
// heap for fewer collections is the right trade for a measuring tool.
const loadgenGCPercent = 400

func main() {
	if len(os.Args) > 1 && os.Args[1] == "loadgen" {
		if _, set := os.LookupEnv("GOGC"); !set {
			debug.SetGCPercent(loadgenGCPercent)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(Main(ctx, os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr))
}

// Main runs the jobcast command line and returns the exit code. Tests call it
// directly.
func Main(ctx context.Context, args []string, env envLookup, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = runServe(ctx, args[1:], env, stdout, stderr)
	case "demo":
		err = runDemo(ctx, args[1:], env, stdout, stderr)
	case "keys":
		err = runKeys(args[1:], env, stdout)
	case "experiments":
		err = runExperiments(ctx, args[1:], env, stdout, stderr)
	case "query":
		err = runQuery(ctx, args[1:], env, stdout, stderr)
	case "alerts":
		err = runAlerts(ctx, args[1:], env, stdout, stderr)
	case "users":
		err = runUsers(ctx, args[1:], env, stdout, stderr)
	case "loadgen":
		err = runLoadgen(ctx, args[1:], env, os.Stdin, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "jobcast", version)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "jobcast: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "jobcast:", err)
		return 1
	}
	return 0
}

func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if level != "" {
		if err := l.UnmarshalText([]byte(level)); err != nil {
			return nil, fmt.Errorf("log level %q: use debug, info, warn or error", level)
		}
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

func runServe(ctx context.Context, args []string, env envLookup, stdout, stderr io.Writer) error {
	f := newServeFlags("serve")
	f.fs.SetOutput(stderr)
	if err := f.fs.Parse(args); err != nil {
		return err
	}
	cfg, level, err := f.load(env)
	if err != nil {
		return err
	}
	log, err := newLogger(stderr, level)
	if err != nil {
		return err
	}
	as, err := loadAlertSettings(f.alertsFile, cfg, env)
	if err != nil {
		return err
	}
	n, err := startNode(ctx, cfg, log, stdout, withAlerts(as))
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "jobcast %s serving on %s (embedded mode, data dir %s)\n", version, n.URL(), cfg.DataDir)
	log.Info("serving", "addr", n.ln.Addr().String(), "node", n.cfg.NodeID, "dataDir", cfg.DataDir)
	select {
	case <-ctx.Done():
	case err := <-n.serveErr:
		return fmt.Errorf("serve: %w", err)
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownDelay+10*time.Second)
	defer cancel()
	return n.shutdown(sctx)
}

func runKeys(args []string, env envLookup, stdout io.Writer) error {
	if len(args) == 0 || args[0] != "rotate" {
		return errors.New("usage: jobcast keys rotate [-data-dir DIR]")
	}
	fs := flag.NewFlagSet("keys rotate", flag.ContinueOnError)
	dir := fs.String("data-dir", "", "data directory (env JOBCAST_DATA_DIR, default ./jobcast-data)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *dir == "" {
		*dir = "./jobcast-data"
		if v, ok := env("JOBCAST_DATA_DIR"); ok && strings.TrimSpace(v) != "" {
			*dir = v
		}
	}
	kid, err := auth.RotateKeyring(*dir, time.Now())
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "added signing key %s; restart nodes to sign with it (older keys keep verifying)\n", kid)
	if v, ok := env("JOBCAST_JWT_SECRET"); ok && v != "" {
		fmt.Fprintln(stdout, "note: JOBCAST_JWT_SECRET is set, and nodes sign with it, not with the key ring; the new key only verifies")
	}
	return nil
}
