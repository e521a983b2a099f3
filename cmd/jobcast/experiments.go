package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/experiment"
	"github.com/jobcast/jobcast/internal/httputil"
)

const experimentsUsage = `Usage:
  jobcast experiments list [flags]
  jobcast experiments create [flags] '{"id":"…","parameter":"heartbeat_interval_ms","control":30000,"variant":45000,…}'
  jobcast experiments create [flags] -f experiments.yaml      (every experiment of a YAML file)
  jobcast experiments update [flags] ID '{"coverage":0.5}'     (any subset of the fields)
  jobcast experiments start|stop [flags] ID
  jobcast experiments results [flags] ID

It talks to a running server's /v1/experiments with the admin token. Flags:
`

var experimentsGroup = adminGroup{
	name:  "experiments",
	usage: experimentsUsage,
	args:  map[string]int{"list": 0, "create": 1, "update": 2, "start": 1, "stop": 1, "results": 1},
	list:  "list, create, update, start, stop or results",
}

func runExperiments(ctx context.Context, args []string, env envLookup, stdout, stderr io.Writer) error {
	file := ""
	sub, f, pos, err := experimentsGroup.parse(args, stderr, func(sub string, fs *flag.FlagSet) {
		if sub == "create" {
			fs.StringVar(&file, "f", "", "create every experiment of this YAML file")
		}
	})
	if err != nil {
		return err
	}
	n := experimentsGroup.args[sub]
	if sub == "create" && file != "" {
		n = 0
	}
	if err := experimentsGroup.want(sub, pos, n); err != nil {
		return err
	}
	c, err := f.client(env)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	var data []byte
	switch sub {
	case "list":
		if data, err = expCall(ctx, c, http.MethodGet, "/v1/experiments", nil); err == nil && !f.json {
			return printExperiments(stdout, data)
		}
	case "create":
		if file != "" {
			list, err := experiment.LoadFile(file)
			if err != nil {
				return err
			}
			for _, e := range list {
				body, _ := json.Marshal(&e)
				if _, err := expCall(ctx, c, http.MethodPost, "/v1/experiments", body); err != nil {
					return fmt.Errorf("create %s: %w", e.ID, err)
				}
				fmt.Fprintf(stdout, "created %s (%s)\n", e.ID, e.Status)
			}
			return nil
		}
		data, err = expCall(ctx, c, http.MethodPost, "/v1/experiments", []byte(pos[0]))
	case "update":
		data, err = expCall(ctx, c, http.MethodPut, "/v1/experiments/"+url.PathEscape(pos[0]), []byte(pos[1]))
	case "start", "stop":
		data, err = expCall(ctx, c, http.MethodPost, "/v1/experiments/"+url.PathEscape(pos[0])+"/"+sub, nil)
	case "results":
		if data, err = expCall(ctx, c, http.MethodGet, "/v1/experiments/"+url.PathEscape(pos[0])+"/results", nil); err == nil && !f.json {
			return printResults(stdout, data)
		}
	}
	if err != nil {
		return err
	}
	return printJSON(stdout, data)
}

// expCall is queryClient.do for the experiments API, whose create answers
// 201.
func expCall(ctx context.Context, c *queryClient, method, path string, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("cannot reach the jobcast server at %s: %v (is `jobcast serve` running there? -server sets the address)", c.base, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("read the answer of %s: %w", c.base, err)
	}
	if resp.StatusCode/100 == 2 {
		return data, nil
	}
	var eb httputil.ErrorBody
	if json.Unmarshal(data, &eb) != nil || eb.Error.Message == "" {
		return nil, fmt.Errorf("%s answered %s (is it a jobcast server?)", c.base, resp.Status)
	}
	return nil, fmt.Errorf("%s (%d %s)", eb.Error.Message, resp.StatusCode, eb.Error.Code)
}

func printExperiments(w io.Writer, data []byte) error {
	var list struct {
		Experiments []jobcast.Experiment `json:"experiments"`
	}
	if err := json.Unmarshal(data, &list); err != nil {
		return fmt.Errorf("the server's answer is not an experiment list: %w", err)
	}
	rows := make([][]string, 0, len(list.Experiments))
	for _, e := range list.Experiments {
		var arms []string
		for _, v := range e.Variants {
			arms = append(arms, fmt.Sprintf("%s=%d (%.0f%%)", v.Name, v.Value, 100*v.Weight))
		}
		seg, _ := json.Marshal(e.Segment)
		rows = append(rows, []string{e.ID, e.Status, e.Parameter, strings.Join(arms, " "), number(e.Coverage), string(seg)})
	}
	return printTable(w, []string{"ID", "STATUS", "PARAMETER", "ARMS", "COVERAGE", "SEGMENT"}, rows)
}

// fmtNum writes an estimate; "-" when unknown.
func fmtNum(v experiment.Num, pct bool) string {
	f := float64(v)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return "-"
	}
	if pct {
		return strconv.FormatFloat(100*f, 'f', 1, 64) + "%"
	}
	return strconv.FormatFloat(f, 'g', 4, 64)
}

func printResults(w io.Writer, data []byte) error {
	var r experiment.Results
	if err := json.Unmarshal(data, &r); err != nil {
		return fmt.Errorf("the server's answer is not experiment results: %w", err)
	}
	fmt.Fprintf(w, "experiment %s (%s, %s), control arm %s\n\n", r.ExperimentID, r.Parameter, r.Status, r.Control)
	var rows [][]string
	for _, a := range r.Arms {
		rows = append(rows, []string{a.Name, strconv.FormatInt(a.Value, 10), strconv.FormatInt(a.Units, 10), fmtNum(a.ExpectedShare, true), fmtNum(a.ObservedShare, true)})
	}
	if err := printTable(w, []string{"ARM", "VALUE", "UNITS", "EXPECTED", "OBSERVED"}, rows); err != nil {
		return err
	}
	flag := "ok"
	if r.SRM.Flagged {
		flag = "MISMATCH"
	}
	fmt.Fprintf(w, "\nsample ratio: chi-square %s, p = %s (%s)\n\n", fmtNum(r.SRM.ChiSquare, false), fmtNum(r.SRM.P, false), flag)
	rows = rows[:0]
	for _, m := range r.Metrics {
		for _, c := range m.Comparisons {
			ctl, tr := m.Arms[0], m.Arms[0]
			for _, a := range m.Arms {
				if a.Name == c.Variant {
					tr = a
				}
			}
			verdict := "-"
			switch {
			case c.Significant && c.Diff > 0:
				verdict = "higher"
			case c.Significant && c.Diff < 0:
				verdict = "lower"
			case r.EnoughUnits && !r.SRM.Flagged:
				verdict = "no difference"
			}
			rows = append(rows, []string{m.Name, c.Variant,
				fmt.Sprintf("%s [%s, %s]", fmtNum(ctl.Value, false), fmtNum(ctl.Lo, false), fmtNum(ctl.Hi, false)),
				fmt.Sprintf("%s [%s, %s]", fmtNum(tr.Value, false), fmtNum(tr.Lo, false), fmtNum(tr.Hi, false)),
				fmt.Sprintf("%s [%s, %s]", fmtNum(c.Lift, true), fmtNum(c.LiftLo, true), fmtNum(c.LiftHi, true)),
				fmtNum(c.P, false), fmtNum(c.PAdjusted, false), verdict})
		}
	}
	if err := printTable(w, []string{"METRIC", "ARM", "CONTROL [95% CI]", "ARM [95% CI]", "LIFT [95% CI]", "P", "P (HOLM)", "VERDICT"}, rows); err != nil {
		return err
	}
	for _, warn := range r.Warnings {
		fmt.Fprintf(w, "\nnote: %s\n", warn)
	}
	return nil
}

// experimentsFileName is the experiments file serve reads from the data
// dir when none is configured.
const experimentsFileName = "experiments.yaml"

// startExperiments opens the experiment store (tables in the node's
// jobcast.db), starts the service and applies the experiments file.
func startExperiments(ctx context.Context, cfg jobcast.Config, eng *jobEngines, events jobcast.TelemetryStore, clock jobcast.Clock, log *slog.Logger) (*experiment.Service, experimentStore, error) {
	store, err := eng.openExperimentStore(ctx, cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("experiment store: %w", err)
	}
	svc, err := experiment.New(ctx, experiment.Options{Store: store, Telemetry: events, Clock: clock, Log: log})
	if err != nil {
		store.Close()
		return nil, nil, err
	}
	path := cfg.ExperimentsFile
	if path == "" {
		if p := filepath.Join(cfg.DataDir, experimentsFileName); fileExists(p) {
			path = p
		}
	}
	if path != "" {
		list, err := experiment.LoadFile(path)
		if err == nil {
			err = svc.Apply(ctx, list)
		}
		if err != nil {
			store.Close()
			return nil, nil, err
		}
		log.Info("experiments file applied", "path", path, "experiments", len(list))
	}
	return svc, store, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// demoExperiment is the heartbeat-on-cellular test of docs/experiments.md,
// scaled 10× faster (30 s against 45 s becomes 3 s against 4.5 s) as the
// demo's default heartbeat is, so that its results fill within minutes.
const demoExperiment = "heartbeat-cellular-demo"

// startDemoExperiment creates (or resets the settings of) the demo's
// experiment and says where to read its results.
func startDemoExperiment(ctx context.Context, n *node, out io.Writer) error {
	e := experiment.Defaults()
	control, variant := int64(3000), int64(4500)
	e.ID, e.Parameter, e.Control, e.Variant = demoExperiment, jobcast.ParamHeartbeatInterval, &control, &variant
	e.Description = "heartbeat 30 s vs 45 s on cellular, time-scaled 10x for the demo"
	e.Segment.NetworkType = jobcast.StringList{"cellular"}
	e.Status = jobcast.ExperimentRunning
	if _, err := n.experiments.Put(ctx, e); err != nil {
		// Another running experiment on the heartbeat (from an earlier
		// session in this data dir) takes precedence; the demo goes on.
		fmt.Fprintf(out, "demo experiment not started: %v\n\n", err)
		return nil
	}
	fmt.Fprintf(out, "experiment %s is running (cellular clients: heartbeat 3000 ms or 4500 ms); its results:\n"+
		"    jobcast experiments results %s -server %s -data-dir %s\n\n", demoExperiment, demoExperiment, n.URL(), n.cfg.DataDir)
	return nil
}
