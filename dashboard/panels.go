package dashboard

import (
	"context"
	"fmt"
	"math"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/alerting"
	"github.com/jobcast/jobcast/experiment"
	"github.com/jobcast/jobcast/internal/metricq"
	"github.com/jobcast/jobcast/metrics"
)

// Alerts gives the alerts panel its data: *alerting.Service is one. The
// panel reads the evaluator's state, never evaluates, so it shows exactly
// what `jobcast alerts list` and the notifications say.
type Alerts interface {
	// Snapshot is the alerts now and the last historyLimit notifications.
	Snapshot(ctx context.Context, historyLimit int) (alerting.Snapshot, error)
	// Rules gives each rule's comparison, threshold, window and filters,
	// which the alerts themselves do not carry.
	Rules() alerting.RulesView
}

// Experiments gives the experiments panel its data: *experiment.Service is
// one.
type Experiments interface {
	List(ctx context.Context) ([]jobcast.Experiment, error)
	Results(ctx context.Context, id string) (*experiment.Results, error)
}

// Panel sizes: the page shows recent things, the API has the rest.
const (
	alertHistoryLimit = 10
	maxExperiments    = 4
)

// experimentsCacheFor is the least time between two computations of the
// experiments' results: each one is several statements over every
// exposure of the experiment, and its figures move slowly. A computation
// that took d is reused for 2d when that is longer.
const experimentsCacheFor = 5 * time.Second

// AlertsPanel is the alerts panel: the evaluator's state, with each rule's
// threshold beside the value.
type AlertsPanel struct {
	// Configured is false when the node runs no alerting; the page then
	// says so instead of showing an empty, reassuring panel.
	Configured  bool       `json:"configured"`
	EvaluatedAt time.Time  `json:"evaluatedAt,omitzero"`
	Rules       int        `json:"rules"`
	Firing      []AlertRow `json:"firing"`
	Pending     []AlertRow `json:"pending"`
	Silenced    []AlertRow `json:"silenced"`
	// Resolved are alerts resolved recently (kept until their resolved
	// notification went out).
	Resolved []AlertRow   `json:"resolved"`
	History  []HistoryRow `json:"history"`
	// Problem says why the panel could not be filled ("" when it was).
	Problem string `json:"problem,omitempty"`
}

// AlertRow is one alert instance.
type AlertRow struct {
	Rule     string            `json:"rule"`
	Severity string            `json:"severity"`
	State    string            `json:"state"`
	Labels   map[string]string `json:"labels"`
	Summary  string            `json:"summary,omitempty"`
	// Value is null when the evaluation gave no number (NaN), which JSON
	// cannot carry.
	Value Value `json:"value"`
	// Op, Threshold and Window are the rule's; Unit is its metric's
	// (ratio, ms, count…; "" for a SQL rule).
	Op        string  `json:"op,omitempty"`
	Threshold float64 `json:"threshold"`
	Window    string  `json:"window,omitempty"`
	Unit      string  `json:"unit,omitempty"`
	// Since is when the alert entered its state: firing since, pending
	// since, resolved at.
	Since      time.Time `json:"since,omitzero"`
	SilencedBy []string  `json:"silencedBy,omitempty"`
	// Link is the dashboard filtered to the alert (the rule's filters and
	// the alert's dimension labels, over a range covering the rule's
	// window); "" when the rule has neither filters nor such labels.
	Link string `json:"link,omitempty"`
}

// HistoryRow is one notification of the history.
type HistoryRow struct {
	At       time.Time `json:"at"`
	Receiver string    `json:"receiver"`
	Type     string    `json:"type"`
	Status   string    `json:"status"`
	Outcome  string    `json:"outcome"`
	Attempts int       `json:"attempts"`
	Error    string    `json:"error,omitempty"`
	// Alerts names the alerts notified: rule, and labels in braces.
	Alerts []string `json:"alerts"`
}

// ExperimentsPanel is the experiments panel: the running and stopped
// experiments with their results.
type ExperimentsPanel struct {
	Configured  bool            `json:"configured"`
	ComputedAt  time.Time       `json:"computedAt,omitzero"`
	Experiments []ExperimentRow `json:"experiments"`
	Problem     string          `json:"problem,omitempty"`
}

// ExperimentRow is one experiment and its analysis (the shape of GET
// /v1/experiments/{id}/results for arms, SRM and metrics).
type ExperimentRow struct {
	ID          string    `json:"id"`
	Description string    `json:"description,omitempty"`
	Parameter   string    `json:"parameter"`
	Status      string    `json:"status"`
	StartedAt   time.Time `json:"startedAt,omitzero"`
	StoppedAt   time.Time `json:"stoppedAt,omitzero"`
	// Control is the arm the others are compared with.
	Control        string                    `json:"control"`
	Arms           []experiment.ArmResult    `json:"arms"`
	SRM            experiment.SRMResult      `json:"srm"`
	MinUnitsPerArm int                       `json:"minUnitsPerArm"`
	EnoughUnits    bool                      `json:"enoughUnits"`
	Metrics        []experiment.MetricResult `json:"metrics"`
	Warnings       []string                  `json:"warnings,omitempty"`
	// Verdict is the one line a reader wants first; VerdictKind (waiting,
	// srm, significant, none, error) styles it.
	Verdict     string `json:"verdict"`
	VerdictKind string `json:"verdictKind"`
}

// alertsPanel reads the alerting state.
func (h *Handler) alertsPanel(ctx context.Context) *AlertsPanel {
	p := &AlertsPanel{Firing: []AlertRow{}, Pending: []AlertRow{}, Silenced: []AlertRow{}, Resolved: []AlertRow{}, History: []HistoryRow{}}
	if h.opt.Alerts == nil {
		return p
	}
	p.Configured = true
	snap, err := h.opt.Alerts.Snapshot(ctx, alertHistoryLimit)
	if err != nil {
		// The alerts themselves come from memory; only the history failed.
		h.opt.Log.Error("dashboard: alert history", "err", err)
		p.Problem = "the notification history could not be read"
	}
	return fillAlerts(p, snap, h.opt.Alerts.Rules())
}

// fillAlerts turns a snapshot and the rules into the panel.
func fillAlerts(p *AlertsPanel, snap alerting.Snapshot, rules alerting.RulesView) *AlertsPanel {
	byName := map[string]alerting.Rule{}
	for _, r := range rules.Rules {
		byName[r.Name] = r.Rule
	}
	units := map[string]string{}
	for _, d := range metrics.Definitions() {
		units[d.Name] = d.Unit
	}
	p.EvaluatedAt, p.Rules = snap.EvaluatedAt, snap.Rules
	row := func(a alerting.AlertStatus) AlertRow {
		r := AlertRow{
			Rule: a.Rule, Severity: a.Severity, State: a.State, Labels: a.Labels, Summary: a.Summary,
			SilencedBy: a.SilencedBy,
		}
		if !math.IsNaN(a.Value) && !math.IsInf(a.Value, 0) {
			v := a.Value
			r.Value = &v
		}
		if r.Labels == nil {
			r.Labels = map[string]string{}
		}
		switch a.State {
		case jobcast.AlertFiring:
			r.Since = a.FiredAt
		case jobcast.AlertResolved:
			r.Since = a.ResolvedAt
		default:
			r.Since = a.ActiveAt
		}
		if rule, ok := byName[a.Rule]; ok {
			r.Op, r.Threshold, r.Unit = rule.Op, rule.Threshold, units[rule.Metric]
			r.Window = shortDuration(rule.Window.D())
			r.Link = alertLink(rule, a.Labels)
		}
		return r
	}
	for dst, src := range map[*[]AlertRow][]alerting.AlertStatus{&p.Firing: snap.Firing, &p.Pending: snap.Pending, &p.Silenced: snap.Silenced, &p.Resolved: snap.Resolved} {
		for _, a := range src {
			*dst = append(*dst, row(a))
		}
	}
	for _, n := range snap.History {
		hr := HistoryRow{At: n.At, Receiver: n.Receiver, Type: n.Type, Status: n.Status, Outcome: n.Outcome,
			Attempts: n.Attempts, Error: n.Error, Alerts: []string{}}
		for _, a := range n.Alerts {
			hr.Alerts = append(hr.Alerts, a.Rule+labelString(a.Labels))
		}
		p.History = append(p.History, hr)
	}
	return p
}

// alertLink is the dashboard filtered to what an alert is about: the
// rule's filters and the alert's labels that are event dimensions (a
// group-by rule's pipeline, say), over the shortest range that covers the
// rule's window. It is "" when there is nothing to filter by: the
// unfiltered dashboard is one click away anyway.
func alertLink(rule alerting.Rule, labels map[string]string) string {
	q := url.Values{}
	for d, v := range rule.Filters {
		if dim, err := metricq.Dimension(d); err == nil {
			q.Set(metricq.Param(dim), v)
		}
	}
	for _, d := range metrics.Dimensions() {
		if v, ok := labels[d]; ok && v != "" {
			q.Set(metricq.Param(d), v)
		}
	}
	if len(q) == 0 {
		return ""
	}
	rng := Ranges[len(Ranges)-1].Name
	for _, r := range Ranges {
		if rule.Window.D() <= r.Span {
			rng = r.Name
			break
		}
	}
	q.Set("range", rng)
	return Prefix + "?" + q.Encode()
}

// labelString renders labels as {k="v", …}, sorted; "" for none.
func labelString(l map[string]string) string {
	keys := make([]string, 0, len(l))
	for k := range l {
		if k == "alertname" || k == "severity" {
			continue
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return ""
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%q", k, l[k])
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// shortDuration renders 10m0s as 10m and 24h0m0s as 24h.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// experimentsCache keeps the experiments panel for a few seconds; its
// mutex is held while computing, so concurrent streams compute it once.
type experimentsCache struct {
	mu    sync.Mutex
	at    time.Time
	keep  time.Duration
	panel *ExperimentsPanel
}

// experimentsPanel returns the experiments and their results, computed at
// most every experimentsCacheFor (or twice the last computation's time).
func (h *Handler) experimentsPanel(ctx context.Context) *ExperimentsPanel {
	if h.opt.Experiments == nil {
		return &ExperimentsPanel{Experiments: []ExperimentRow{}}
	}
	c := &h.expCache
	c.mu.Lock()
	defer c.mu.Unlock()
	now := h.opt.Clock.Now()
	if c.panel != nil && now.Sub(c.at) < c.keep && !now.Before(c.at) {
		return c.panel
	}
	start := time.Now()
	p := computeExperiments(ctx, h.opt.Experiments, now, h.opt.Log.Error)
	if ctx.Err() != nil {
		return p // a page went away: do not keep a cut-short answer
	}
	c.at, c.keep, c.panel = now, max(experimentsCacheFor, 2*time.Since(start)), p
	return p
}

// computeExperiments lists the running and stopped experiments (running
// first, then the most recently started) and analyses each.
func computeExperiments(ctx context.Context, exps Experiments, now time.Time, logError func(string, ...any)) *ExperimentsPanel {
	p := &ExperimentsPanel{Configured: true, ComputedAt: now, Experiments: []ExperimentRow{}}
	list, err := exps.List(ctx)
	if err != nil {
		logError("dashboard: list experiments", "err", err)
		p.Problem = "the experiments could not be listed"
		return p
	}
	list = slices.DeleteFunc(list, func(e jobcast.Experiment) bool {
		return e.Status != jobcast.ExperimentRunning && e.Status != jobcast.ExperimentStopped
	})
	sort.SliceStable(list, func(i, j int) bool {
		a, b := list[i], list[j]
		if (a.Status == jobcast.ExperimentRunning) != (b.Status == jobcast.ExperimentRunning) {
			return a.Status == jobcast.ExperimentRunning
		}
		if !a.StartedAt.Equal(b.StartedAt) {
			return a.StartedAt.After(b.StartedAt)
		}
		return a.ID < b.ID
	})
	if len(list) > maxExperiments {
		list = list[:maxExperiments]
	}
	for _, e := range list {
		row := ExperimentRow{
			ID: e.ID, Description: e.Description, Parameter: e.Parameter, Status: e.Status,
			StartedAt: e.StartedAt, StoppedAt: e.StoppedAt, MinUnitsPerArm: e.MinUnitsPerArm,
			Arms: []experiment.ArmResult{}, Metrics: []experiment.MetricResult{},
		}
		res, err := exps.Results(ctx, e.ID)
		if err != nil {
			if ctx.Err() != nil {
				return p
			}
			logError("dashboard: experiment results", "experiment", e.ID, "err", err)
			row.Verdict, row.VerdictKind = "results could not be computed", "error"
			p.Experiments = append(p.Experiments, row)
			continue
		}
		row.Control, row.Arms, row.SRM, row.Metrics, row.Warnings = res.Control, res.Arms, res.SRM, res.Metrics, res.Warnings
		row.MinUnitsPerArm, row.EnoughUnits = res.MinUnitsPerArm, res.EnoughUnits
		row.Verdict, row.VerdictKind = verdict(res)
		p.Experiments = append(p.Experiments, row)
	}
	return p
}

// verdict sums the results up in the order a reader must check them: too
// few units and a sample ratio mismatch both void any difference.
func verdict(res *experiment.Results) (text, kind string) {
	if !res.EnoughUnits {
		least := int64(-1)
		for _, a := range res.Arms {
			if least < 0 || a.Units < least {
				least = a.Units
			}
		}
		return fmt.Sprintf("not enough units: %d/%d", max(least, 0), res.MinUnitsPerArm), "waiting"
	}
	if res.SRM.Flagged {
		return fmt.Sprintf("sample ratio mismatch (p = %.2g): assignment or exposure logging is broken; do not trust these results", float64(res.SRM.P)), "srm"
	}
	var sig []string
	for _, m := range res.Metrics {
		for _, c := range m.Comparisons {
			if c.Significant {
				dir := "higher"
				if c.Lift < 0 {
					dir = "lower"
				}
				sig = append(sig, fmt.Sprintf("%s %s in %s", m.Name, dir, c.Variant))
			}
		}
	}
	if len(sig) == 0 {
		return "no significant difference (Holm-adjusted p ≥ 0.05 for every metric)", "none"
	}
	return "significant: " + strings.Join(sig, "; "), "significant"
}
