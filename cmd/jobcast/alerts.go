package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/alerting"
	"github.com/jobcast/jobcast/metrics"
)

// alertSettings are the alerting parts of serve's configuration: the rules
// file and what the environment sets (receivers, interval).
type alertSettings struct {
	file    string
	overlay alerting.Config
}

// alertsFileName is the rules file serve reads from the data dir when no
// -alerts-config is given.
const alertsFileName = "alerts.yaml"

// loadAlertSettings reads -alerts-config (else JOBCAST_ALERTS_CONFIG, else
// the data dir's alerts.yaml when it exists) and the receivers and
// interval of the environment, which win over the file.
func loadAlertSettings(flagFile string, cfg jobcast.Config, env envLookup) (alertSettings, error) {
	var as alertSettings
	get := func(name string) string {
		v, _ := env(name)
		return strings.TrimSpace(v)
	}
	as.file = flagFile
	if as.file == "" {
		as.file = get("JOBCAST_ALERTS_CONFIG")
	}
	if as.file == "" {
		p := filepath.Join(cfg.DataDir, alertsFileName)
		if _, err := os.Stat(p); err == nil {
			as.file = p
		}
	}
	if v := get("JOBCAST_ALERT_EVAL_INTERVAL"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Second {
			return as, fmt.Errorf("JOBCAST_ALERT_EVAL_INTERVAL must be a duration of at least 1s, such as 30s, got %q", v)
		}
		as.overlay.EvalInterval = alerting.Duration(d)
	}
	as.overlay.DashboardURL = dashboardBase(cfg)
	if v := get("JOBCAST_SLACK_WEBHOOK_URL"); v != "" {
		as.overlay.Receivers = append(as.overlay.Receivers, alerting.Receiver{Name: "slack", Type: alerting.TypeSlack, URL: v})
	}
	if v := get("JOBCAST_PAGERDUTY_ROUTING_KEY"); v != "" {
		as.overlay.Receivers = append(as.overlay.Receivers, alerting.Receiver{Name: "pagerduty", Type: alerting.TypePagerDuty, RoutingKey: v, URL: get("JOBCAST_PAGERDUTY_URL")})
	} else if get("JOBCAST_PAGERDUTY_URL") != "" {
		return as, errors.New("JOBCAST_PAGERDUTY_URL is set without JOBCAST_PAGERDUTY_ROUTING_KEY")
	}
	smtpURL, to, from := get("JOBCAST_SMTP_URL"), get("JOBCAST_ALERT_EMAIL_TO"), get("JOBCAST_ALERT_EMAIL_FROM")
	if smtpURL != "" || to != "" || from != "" {
		if smtpURL == "" || to == "" || from == "" {
			return as, errors.New("email alerts need JOBCAST_SMTP_URL, JOBCAST_ALERT_EMAIL_TO and JOBCAST_ALERT_EMAIL_FROM together")
		}
		as.overlay.Receivers = append(as.overlay.Receivers, alerting.Receiver{Name: "email", Type: alerting.TypeEmail, URL: smtpURL, To: splitList(to), From: from})
	}
	if v := get("JOBCAST_ALERT_WEBHOOK_URL"); v != "" {
		as.overlay.Receivers = append(as.overlay.Receivers, alerting.Receiver{Name: "webhook", Type: alerting.TypeWebhook, URL: v})
	}
	return as, nil
}

// dashboardBase is where notifications link to: the public URL, else this
// node's listen address on localhost.
func dashboardBase(cfg jobcast.Config) string {
	if cfg.PublicURL != "" {
		return strings.TrimRight(cfg.PublicURL, "/")
	}
	host, port, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return "http://localhost:8080"
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}

const alertsUsage = `Usage:
  jobcast alerts list [flags]                   pending and firing alerts (GET /v1/alerts)
  jobcast alerts rules [flags]                  the rules in force, their health and the receivers
  jobcast alerts set-rules [flags] FILE         replace the rules set through the API (PUT /v1/alerts/rules)
  jobcast alerts history [flags] [-limit N]     the notification history, newest first
  jobcast alerts test [flags] RECEIVER          send a test notification to a receiver
  jobcast alerts silence add [flags] -for 2h [-comment TEXT] [-author NAME] MATCHER...
                                                silence alerts matching every MATCHER (name=value, name!=value, name=~re, name!~re)
  jobcast alerts silence list [flags]           silences
  jobcast alerts silence expire [flags] ID      end a silence now
  jobcast alerts check FILE                     validate an alerting YAML file (no server needed)

All but check talk to a running server with the admin token. Flags:
`

// alertFlags are the flags of the alerts subcommands; the connection flags
// are query's.
type alertFlags struct {
	queryFlags
	limit   int
	dur     time.Duration
	comment string
	author  string
}

func newAlertFlags(name string, stderr io.Writer) *alertFlags {
	f := &alertFlags{}
	f.fs = flag.NewFlagSet("alerts "+name, flag.ContinueOnError)
	f.fs.SetOutput(stderr)
	f.fs.Usage = func() {
		fmt.Fprint(stderr, alertsUsage)
		f.fs.PrintDefaults()
	}
	f.fs.StringVar(&f.server, "server", "http://127.0.0.1:8080", "base URL of the jobcast server")
	f.fs.StringVar(&f.token, "admin-token", "", "admin token (default $JOBCAST_ADMIN_TOKEN, else the data dir's admin-token file)")
	f.fs.StringVar(&f.dataDir, "data-dir", "", "data dir whose admin-token file to read (default $JOBCAST_DATA_DIR, else ./jobcast-data)")
	f.fs.BoolVar(&f.json, "json", false, "print the server's JSON answer instead of a table")
	switch name {
	case "history":
		f.fs.IntVar(&f.limit, "limit", 50, "records to show, newest first (1 to 1000)")
	case "silence add":
		f.fs.DurationVar(&f.dur, "for", time.Hour, "how long the silence lasts")
		f.fs.StringVar(&f.comment, "comment", "", "why (shown in the silence list)")
		f.fs.StringVar(&f.author, "author", "", "who silenced (shown in the silence list)")
	}
	return f
}

func runAlerts(ctx context.Context, args []string, env envLookup, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, alertsUsage)
		newAlertFlags("", stderr).fs.PrintDefaults()
		if len(args) == 0 {
			return errors.New("name a subcommand: list, rules, set-rules, history, test, silence or check")
		}
		return flag.ErrHelp
	}
	sub, rest := args[0], args[1:]
	if sub == "check" {
		if len(rest) != 1 {
			return errors.New("usage: jobcast alerts check FILE")
		}
		data, err := os.ReadFile(rest[0])
		if err != nil {
			return err
		}
		n, err := alerting.Check(data)
		if err != nil {
			return fmt.Errorf("%s: %w", rest[0], err)
		}
		fmt.Fprintf(stdout, "%s: OK, %d rules in force (the defaults included)\n", rest[0], n)
		return nil
	}
	if sub == "silence" {
		if len(rest) == 0 {
			return errors.New("usage: jobcast alerts silence add|list|expire")
		}
		sub, rest = "silence "+rest[0], rest[1:]
	}
	switch sub {
	case "list", "rules", "set-rules", "history", "test", "silence add", "silence list", "silence expire":
	default:
		return fmt.Errorf("unknown alerts subcommand %q: use list, rules, set-rules, history, test, silence add|list|expire or check", sub)
	}
	f := newAlertFlags(sub, stderr)
	pos, err := f.parse(rest)
	if err != nil {
		return err
	}
	c, err := f.client(env)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	want := func(n int, what string) error {
		if len(pos) != n {
			return fmt.Errorf("usage: jobcast alerts %s %s", sub, what)
		}
		return nil
	}
	var data []byte
	switch sub {
	case "list":
		if data, err = c.do(ctx, "GET", "/v1/alerts", nil, ""); err == nil && !f.json {
			return printAlerts(stdout, data)
		}
	case "rules":
		if data, err = c.do(ctx, "GET", "/v1/alerts/rules", nil, ""); err == nil && !f.json {
			return printRules(stdout, data)
		}
	case "set-rules":
		if err := want(1, "FILE"); err != nil {
			return err
		}
		doc, rerr := os.ReadFile(pos[0])
		if rerr != nil {
			return rerr
		}
		if data, err = c.do(ctx, "PUT", "/v1/alerts/rules", bytes.NewReader(doc), "application/yaml"); err == nil && !f.json {
			var out struct {
				RulesInForce int `json:"rulesInForce"`
			}
			_ = json.Unmarshal(data, &out)
			fmt.Fprintf(stdout, "rules set; %d rules in force\n", out.RulesInForce)
			return nil
		}
	case "history":
		if data, err = c.do(ctx, "GET", fmt.Sprintf("/v1/alerts/history?limit=%d", f.limit), nil, ""); err == nil && !f.json {
			return printHistory(stdout, data)
		}
	case "test":
		if err := want(1, "RECEIVER"); err != nil {
			return err
		}
		if data, err = c.do(ctx, "POST", "/v1/alerts/test?receiver="+url.QueryEscape(pos[0]), nil, ""); err == nil && !f.json {
			fmt.Fprintf(stdout, "test notification sent to %s\n", pos[0])
			return nil
		}
	case "silence add":
		if len(pos) == 0 {
			return errors.New("usage: jobcast alerts silence add -for 2h MATCHER... (such as alertname=error_rate_high pipeline=csv_import)")
		}
		for _, m := range pos {
			if _, perr := alerting.ParseMatcher(m); perr != nil {
				return perr
			}
		}
		body, _ := json.Marshal(map[string]any{"matchers": pos, "duration": f.dur.String(), "comment": f.comment, "createdBy": f.author})
		if data, err = c.do(ctx, "POST", "/v1/alerts/silences", bytes.NewReader(body), "application/json"); err == nil && !f.json {
			var s jobcast.Silence
			_ = json.Unmarshal(data, &s)
			fmt.Fprintf(stdout, "silence %s until %s\n", s.ID, s.EndsAt.UTC().Format(time.RFC3339))
			return nil
		}
	case "silence list":
		if data, err = c.do(ctx, "GET", "/v1/alerts/silences", nil, ""); err == nil && !f.json {
			return printSilences(stdout, data)
		}
	case "silence expire":
		if err := want(1, "ID"); err != nil {
			return err
		}
		if data, err = c.do(ctx, "DELETE", "/v1/alerts/silences/"+url.PathEscape(pos[0]), nil, ""); err == nil && !f.json {
			fmt.Fprintf(stdout, "silence %s expired\n", pos[0])
			return nil
		}
	}
	if err != nil {
		return err
	}
	return printJSON(stdout, data)
}

func formatLabelSet(l map[string]string, skip ...string) string {
	keys := make([]string, 0, len(l))
	for k := range l {
		keep := true
		for _, s := range skip {
			keep = keep && k != s
		}
		if keep {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + l[k]
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ",")
}

func printAlerts(w io.Writer, data []byte) error {
	var out struct {
		Alerts []alerting.AlertStatus `json:"alerts"`
	}
	if err := json.Unmarshal(data, &out); err != nil {
		return fmt.Errorf("the server's answer is not an alert list: %w", err)
	}
	if len(out.Alerts) == 0 {
		fmt.Fprintln(w, "no pending or firing alerts")
		return nil
	}
	rows := make([][]string, 0, len(out.Alerts))
	for _, a := range out.Alerts {
		since := a.ActiveAt
		if !a.FiredAt.IsZero() {
			since = a.FiredAt
		}
		sil := "-"
		if len(a.SilencedBy) > 0 {
			sil = strings.Join(a.SilencedBy, ",")
		}
		rows = append(rows, []string{a.State, a.Severity, a.Rule, formatLabelSet(a.Labels, "alertname", "severity"),
			strconv.FormatFloat(math.Round(a.Value*1e4)/1e4, 'f', -1, 64), since.UTC().Format(time.RFC3339), sil, a.Summary})
	}
	return printTable(w, []string{"STATE", "SEVERITY", "RULE", "LABELS", "VALUE", "SINCE", "SILENCED BY", "SUMMARY"}, rows)
}

func printRules(w io.Writer, data []byte) error {
	var out alerting.RulesView
	if err := json.Unmarshal(data, &out); err != nil {
		return fmt.Errorf("the server's answer is not a rule list: %w", err)
	}
	rows := make([][]string, 0, len(out.Rules))
	for _, r := range out.Rules {
		what := r.Metric
		if what == "" {
			what = "sql"
		}
		state := "enabled"
		if r.Disabled {
			state = "disabled"
		}
		health := "ok"
		if r.Health.LastError != "" {
			health = r.Health.LastError
		} else if r.Health.LastEvaluation.IsZero() {
			health = "not evaluated yet"
		}
		rows = append(rows, []string{r.Name, r.Source, state, r.Severity,
			fmt.Sprintf("%s %s %s over %s", what, r.Op, number(r.Threshold), r.Window), r.For.String(), health})
	}
	if err := printTable(w, []string{"RULE", "SOURCE", "STATE", "SEVERITY", "CONDITION", "FOR", "HEALTH"}, rows); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nevaluated every %s", out.EvalInterval)
	if out.File != "" {
		fmt.Fprintf(w, "; file %s", out.File)
	}
	fmt.Fprintln(w)
	if out.ReloadError != "" {
		fmt.Fprintf(w, "the file did not reload (the previous rules stay in force): %s\n", out.ReloadError)
	}
	if len(out.Receivers) == 0 {
		fmt.Fprintln(w, "no receivers: alerts are evaluated and listed but not sent (see docs/alerts.md)")
		return nil
	}
	var recv []string
	for _, r := range out.Receivers {
		recv = append(recv, r.Name+" ("+r.Type+")")
	}
	fmt.Fprintf(w, "receivers: %s\n", strings.Join(recv, ", "))
	return nil
}

func printHistory(w io.Writer, data []byte) error {
	var out struct {
		History []jobcast.NotificationRecord `json:"history"`
	}
	if err := json.Unmarshal(data, &out); err != nil {
		return fmt.Errorf("the server's answer is not a history: %w", err)
	}
	if len(out.History) == 0 {
		fmt.Fprintln(w, "no notifications yet")
		return nil
	}
	rows := make([][]string, 0, len(out.History))
	for _, r := range out.History {
		var names []string
		for _, a := range r.Alerts {
			names = append(names, a.Rule+"{"+formatLabelSet(a.Labels, "alertname", "severity")+"}")
		}
		e := r.Error
		if e == "" {
			e = "-"
		}
		rows = append(rows, []string{r.At.UTC().Format(time.RFC3339), r.Receiver, r.Status, r.Outcome, fmt.Sprint(r.Attempts), strings.Join(names, " "), e})
	}
	return printTable(w, []string{"AT", "RECEIVER", "STATUS", "OUTCOME", "ATTEMPTS", "ALERTS", "ERROR"}, rows)
}

func printSilences(w io.Writer, data []byte) error {
	var out struct {
		Silences []struct {
			jobcast.Silence
			State string `json:"state"`
		} `json:"silences"`
	}
	if err := json.Unmarshal(data, &out); err != nil {
		return fmt.Errorf("the server's answer is not a silence list: %w", err)
	}
	if len(out.Silences) == 0 {
		fmt.Fprintln(w, "no silences")
		return nil
	}
	rows := make([][]string, 0, len(out.Silences))
	for _, s := range out.Silences {
		var ms []string
		for _, m := range s.Matchers {
			ms = append(ms, alerting.FormatMatcher(m))
		}
		rows = append(rows, []string{s.ID, s.State, strings.Join(ms, ","), s.EndsAt.UTC().Format(time.RFC3339), s.CreatedBy, s.Comment})
	}
	return printTable(w, []string{"ID", "STATE", "MATCHERS", "ENDS", "BY", "COMMENT"}, rows)
}

// nodeOption sets up optional parts of a node.
type nodeOption func(*nodeOptions)

type nodeOptions struct {
	alerts alertSettings
}

// withAlerts gives the node its alerting settings (the rules file and the
// receivers of the environment).
func withAlerts(as alertSettings) nodeOption {
	return func(o *nodeOptions) { o.alerts = as }
}

// startAlerting opens the alert store (tables in the node's jobcast.db) and
// the alerting service; the caller starts it once the node serves.
func startAlerting(ctx context.Context, cfg jobcast.Config, opts []nodeOption, eng *jobEngines, leader jobcast.Leader, events jobcast.TelemetryStore, lib *metrics.Library, clock jobcast.Clock, log *slog.Logger) (*alerting.Service, jobcast.AlertStore, error) {
	var o nodeOptions
	o.alerts.overlay.DashboardURL = dashboardBase(cfg)
	for _, f := range opts {
		f(&o)
	}
	store, err := eng.openAlertStore(ctx, cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("alert store: %w", err)
	}
	svc, err := alerting.New(ctx, alerting.Options{
		Config: o.alerts.overlay, File: o.alerts.file, Store: store,
		Metrics: lib, Telemetry: events, Clock: clock, Log: log, Leader: leader,
	})
	if err != nil {
		store.Close()
		return nil, nil, err
	}
	return svc, store, nil
}

// demoInjection is the trouble `jobcast demo -inject` injects.
type demoInjection struct {
	clean      bool
	after, dur time.Duration
	start      time.Time
}

// burst returns the demo's ErrorBurst: true between after and after+dur
// from the demo's start. It says so on out when the burst starts and ends.
func (d demoInjection) burst(out io.Writer) func() bool {
	if !d.clean {
		return nil
	}
	var mu sync.Mutex
	phase := 0
	return func() bool {
		el := time.Since(d.start)
		on := el >= d.after && el < d.after+d.dur
		mu.Lock()
		defer mu.Unlock()
		switch {
		case on && phase == 0:
			phase = 1
			fmt.Fprintf(out, "injecting errors for %s: every new job posts an error (watch: jobcast alerts list)\n", d.dur)
		case !on && phase == 1:
			phase = 2
			fmt.Fprintln(out, "error burst over: the error rate falls as the 10-minute window moves past it")
		}
		return on
	}
}

// demoAlerts are the demo's alerting settings: serve's, evaluated every
// 10 s unless JOBCAST_ALERT_EVAL_INTERVAL says otherwise, plus the
// injection that -inject asks for.
func demoAlerts(flagFile string, cfg jobcast.Config, env envLookup, inject string, after, dur time.Duration) (alertSettings, demoInjection, error) {
	inj := demoInjection{after: after, dur: dur, start: time.Now()}
	switch inject {
	case "":
	case "errors":
		if after < 0 || dur <= 0 {
			return alertSettings{}, inj, errors.New("-inject-after must be >= 0 and -inject-for > 0")
		}
		inj.clean = true
	default:
		return alertSettings{}, inj, fmt.Errorf("-inject %q: the demo can inject errors", inject)
	}
	as, err := loadAlertSettings(flagFile, cfg, env)
	if err != nil {
		return as, inj, err
	}
	if as.overlay.EvalInterval == 0 {
		as.overlay.EvalInterval = alerting.Duration(10 * time.Second)
	}
	return as, inj, nil
}
