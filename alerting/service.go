package alerting

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"math"
	"math/big"
	"net/http"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/internal/periodic"
	"github.com/jobcast/jobcast/metrics"
	"github.com/jobcast/jobcast/protocol"
)

// Options are a Service's dependencies.
type Options struct {
	// Config is the configuration when no File is set, and the overlay
	// (receivers from the environment, the interval) laid on the file's
	// content at every load.
	Config Config
	// File is the YAML alerting file; it is read at New and again whenever
	// it changes (checked at each evaluation), so rules and receivers
	// change without a restart. A file that fails to load keeps the
	// previous configuration in force and reports the error.
	File      string
	Store     jobcast.AlertStore
	Metrics   *metrics.Library
	Telemetry jobcast.TelemetryStore
	Clock     jobcast.Clock
	Log       *slog.Logger
	// QueryTimeout bounds one rule's query (default 20s).
	QueryTimeout time.Duration
	// HTTPClient sends webhook notifications (default: a client of its
	// own; timeouts come from each receiver's Timeout).
	HTTPClient *http.Client
	// Leader, in a cluster, says whether this node evaluates and notifies
	// (leader.go); nil always does.
	Leader jobcast.Leader
}

// Service evaluates the rules and notifies the receivers. It has the
// Start/Stop shape of every jobcast background service.
type Service struct {
	opt   Options
	clock jobcast.Clock
	log   *slog.Logger
	store jobcast.AlertStore

	evalMu sync.Mutex // one evaluation at a time

	mu          sync.Mutex
	cc          *compiled
	fileCfg     Config
	fileStamp   string
	reloadErr   string
	apiRules    []Rule
	alerts      map[string]*jobcast.AlertInstance
	silences    []*activeSilence
	health      map[string]RuleHealth
	lastEval    time.Time
	lastSweep   time.Time
	workers     map[string]*worker
	runner      *periodic.Runner
	stopped     bool
	interval    time.Duration
	workersDone sync.WaitGroup
	// leading and apiDoc are the cluster state of leader.go, under evalMu.
	leading bool
	apiDoc  string
}

// RuleHealth is how a rule's last evaluation went.
type RuleHealth struct {
	LastEvaluation time.Time `json:"lastEvaluation,omitzero"`
	DurationMs     float64   `json:"durationMs"`
	// LastError is a user-safe description of the last failure.
	LastError string `json:"lastError,omitempty"`
}

// New loads the configuration (the file, the API rules in the store) and
// the persisted alerts and silences. It does not evaluate: Start does.
func New(ctx context.Context, opt Options) (*Service, error) {
	if opt.Clock == nil {
		opt.Clock = jobcast.SystemClock{}
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	if opt.QueryTimeout == 0 {
		opt.QueryTimeout = 20 * time.Second
	}
	if opt.Store == nil {
		return nil, errors.New("alerting: a Store is required")
	}
	if opt.HTTPClient == nil {
		// A transport of its own, so that Stop can close its idle
		// connections.
		opt.HTTPClient = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	s := &Service{
		opt: opt, clock: opt.Clock, log: opt.Log, store: opt.Store,
		alerts: map[string]*jobcast.AlertInstance{}, health: map[string]RuleHealth{},
		workers: map[string]*worker{},
	}
	doc, err := opt.Store.APIRules(ctx)
	if err != nil {
		return nil, err
	}
	if doc != "" {
		rules, err := parseRulesDoc([]byte(doc))
		if err != nil {
			return nil, fmt.Errorf("alerting: rules stored through the API: %w", err)
		}
		s.apiRules = rules
	}
	fileCfg := Config{}
	if opt.File != "" {
		data, stamp, err := readStamped(opt.File)
		if err != nil {
			return nil, fmt.Errorf("alerting: %w", err)
		}
		fileCfg, err = ParseConfig(data)
		if err != nil {
			return nil, fmt.Errorf("alerting: %s: %w", opt.File, err)
		}
		s.fileStamp = stamp
	}
	cc, err := compile(fileCfg.Merge(opt.Config), s.apiRules)
	if err != nil && len(s.apiRules) > 0 {
		// Rules stored through the API that this version refuses (a metric
		// renamed, say) must not keep the node from starting: run without
		// them and say so.
		if cc2, err2 := compile(fileCfg.Merge(opt.Config), nil); err2 == nil {
			opt.Log.Error("alerting: the rules set through the API are not valid and not in force; PUT /v1/alerts/rules to fix them", "err", err)
			s.reloadErr = "the rules set through the API are not in force: " + err.Error()
			s.apiRules, cc, err = nil, cc2, nil
		}
	}
	if err != nil {
		if opt.File != "" {
			return nil, fmt.Errorf("alerting: %s: %w", opt.File, err)
		}
		return nil, fmt.Errorf("alerting: %w", err)
	}
	s.fileCfg = fileCfg
	s.cc = cc
	s.interval = cc.cfg.EvalInterval.D()
	alerts, err := opt.Store.LoadAlerts(ctx)
	if err != nil {
		return nil, err
	}
	for i := range alerts {
		a := alerts[i]
		s.alerts[a.Fingerprint] = &a
	}
	if err := s.loadSilences(ctx); err != nil {
		return nil, err
	}
	s.syncWorkers()
	return s, nil
}

func readStamped(path string) ([]byte, string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, "", fmt.Errorf("alerting file: %w", err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, "", fmt.Errorf("alerting file: %w", err)
	}
	return data, fmt.Sprintf("%d/%d", fi.ModTime().UnixNano(), fi.Size()), nil
}

func (s *Service) loadSilences(ctx context.Context) error {
	sils, err := s.store.ListSilences(ctx)
	if err != nil {
		return err
	}
	var out []*activeSilence
	for _, sil := range sils {
		as, err := compileSilence(sil)
		if err != nil {
			s.log.Warn("alerting: skipping a stored silence", "id", sil.ID, "err", err)
			continue
		}
		out = append(out, as)
	}
	s.mu.Lock()
	s.silences = out
	s.mu.Unlock()
	return nil
}

// Interval is the evaluation interval in force.
func (s *Service) Interval() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.interval
}

// Start evaluates now and then every interval. The interval is the one in
// force at Start; a reload changes the rules and receivers, not the timer.
func (s *Service) Start() {
	s.mu.Lock()
	if s.runner == nil {
		s.runner = periodic.New(s.clock, s.interval, s.Evaluate)
	}
	r := s.runner
	s.mu.Unlock()
	r.Start()
}

// Stop ends evaluation and the receivers' goroutines; notifications still
// queued are dropped. Idempotent; waits.
func (s *Service) Stop() {
	s.mu.Lock()
	r := s.runner
	s.mu.Unlock()
	if r != nil {
		r.Stop()
	}
	s.evalMu.Lock()
	s.mu.Lock()
	s.stopped = true
	ws := s.workers
	s.workers = map[string]*worker{}
	s.mu.Unlock()
	s.evalMu.Unlock()
	for _, w := range ws {
		w.close()
	}
	s.workersDone.Wait()
	s.opt.HTTPClient.CloseIdleConnections()
}

// maybeReload reads the file again when it changed.
func (s *Service) maybeReload() {
	if s.opt.File == "" {
		return
	}
	fi, err := os.Stat(s.opt.File)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.reloadErr = fmt.Sprintf("cannot read %s: %v", s.opt.File, errors.Unwrap(err))
		return
	}
	if fmt.Sprintf("%d/%d", fi.ModTime().UnixNano(), fi.Size()) == s.fileStamp {
		return
	}
	data, stamp, err := readStamped(s.opt.File)
	if err != nil {
		s.reloadErr = err.Error()
		return
	}
	s.fileStamp = stamp
	cfg, err := ParseConfig(data)
	if err == nil {
		var cc *compiled
		cc, err = compile(cfg.Merge(s.opt.Config), s.apiRules)
		if err == nil {
			s.fileCfg, s.cc, s.reloadErr = cfg, cc, ""
			s.log.Info("alerting: reloaded", "file", s.opt.File, "rules", len(cc.rules), "receivers", len(cc.receivers))
			s.syncWorkersLocked()
			return
		}
	}
	s.reloadErr = err.Error()
	s.log.Error("alerting: file not reloaded; the previous configuration stays in force", "file", s.opt.File, "err", err)
}

// sample is one value of a rule's query: a label set and a number.
type sample struct {
	labels map[string]string
	value  float64
}

// Evaluate runs every rule once at the clock's now, moves the alerts
// between states, persists them and queues the notifications. Tests call
// it directly instead of waiting for the interval.
func (s *Service) Evaluate(ctx context.Context) {
	s.evalMu.Lock()
	defer s.evalMu.Unlock()
	s.maybeReload()
	s.mu.Lock()
	stopped := s.stopped
	s.mu.Unlock()
	if stopped || !s.lead(ctx) {
		return
	}
	s.mu.Lock()
	cc := s.cc
	s.mu.Unlock()
	now := s.clock.Now()
	results := make([][]sample, len(cc.rules))
	errs := make([]error, len(cc.rules))
	durs := make([]time.Duration, len(cc.rules))
	for i, r := range cc.rules {
		start := time.Now()
		results[i], errs[i] = s.query(ctx, r, now)
		durs[i] = time.Since(start)
		if errs[i] != nil {
			s.log.Warn("alerting: rule evaluation failed", "rule", r.Name, "err", errs[i])
		}
	}

	s.mu.Lock()
	var deleted []string
	live := map[string]bool{}
	for i, r := range cc.rules {
		live[r.Name] = true
		h := RuleHealth{LastEvaluation: now, DurationMs: float64(durs[i].Microseconds()) / 1000}
		if errs[i] != nil {
			h.LastError = jobcast.ErrorMessage(errs[i])
			if jobcast.ErrorCode(errs[i]) == protocol.ErrInternal {
				h.LastError = "query failed; see the server log"
			}
			s.health[r.Name] = h
			continue // keep the rule's alerts as they are
		}
		s.health[r.Name] = h
		deleted = append(deleted, s.apply(r, results[i], now)...)
	}
	// Alerts of rules that are gone or disabled resolve.
	for fp, a := range s.alerts {
		if live[a.Rule] {
			continue
		}
		switch a.State {
		case jobcast.AlertPending:
			delete(s.alerts, fp)
			deleted = append(deleted, fp)
		case jobcast.AlertFiring:
			a.State, a.ResolvedAt = jobcast.AlertResolved, now
		case jobcast.AlertResolved:
			if now.Sub(a.ResolvedAt) > resolvedRetention {
				delete(s.alerts, fp)
				deleted = append(deleted, fp)
			}
		}
	}
	notes := s.dispatch(cc, now)
	put := make([]jobcast.AlertInstance, 0, len(s.alerts))
	for _, a := range s.alerts {
		put = append(put, cloneAlert(a))
	}
	s.lastEval = now
	sweep := now.Sub(s.lastSweep) >= time.Hour
	if sweep {
		s.lastSweep = now
	}
	s.mu.Unlock()

	if !s.stillLeading() {
		return
	}
	if err := s.store.SaveAlerts(ctx, put, deleted); err != nil {
		s.log.Error("alerting: saving alert state failed", "err", err)
	}
	for _, n := range notes {
		s.enqueue(n)
	}
	if sweep {
		s.sweep(ctx, cc, now)
	}
}

// sweep applies the history and silence retention.
func (s *Service) sweep(ctx context.Context, cc *compiled, now time.Time) {
	if _, err := s.store.DeleteNotificationsBefore(ctx, now.Add(-cc.cfg.HistoryRetention.D())); err != nil {
		s.log.Warn("alerting: history retention failed", "err", err)
	}
	if n, err := s.store.DeleteSilencesEndedBefore(ctx, now.Add(-silenceRetention)); err != nil {
		s.log.Warn("alerting: silence retention failed", "err", err)
	} else if n > 0 {
		_ = s.loadSilences(ctx)
	}
}

// apply moves rule r's alerts given its samples; it returns the
// fingerprints of alerts it forgot. s.mu is held.
func (s *Service) apply(r *compiledRule, samples []sample, now time.Time) []string {
	holds := map[string]bool{}
	values := map[string]float64{}
	for _, sm := range samples {
		labels := alertLabels(r, sm.labels)
		fp := fingerprint(labels)
		values[fp] = sm.value
		if !compare(sm.value, r.Op, r.Threshold) {
			continue
		}
		holds[fp] = true
		a := s.alerts[fp]
		if a == nil || a.State == jobcast.AlertResolved {
			a = &jobcast.AlertInstance{Fingerprint: fp, Rule: r.Name, State: jobcast.AlertPending, ActiveAt: now}
			s.alerts[fp] = a
		}
		a.Labels, a.Value, a.LastTrueAt = labels, sm.value, now
		if a.State == jobcast.AlertPending && now.Sub(a.ActiveAt) >= r.For.D() {
			a.State, a.FiredAt = jobcast.AlertFiring, now
		}
		a.Annotations = r.render(a.Value, labels)
	}
	var deleted []string
	for fp, a := range s.alerts {
		if a.Rule != r.Name || holds[fp] {
			continue
		}
		if v, ok := values[fp]; ok {
			a.Value = v
		}
		switch a.State {
		case jobcast.AlertPending:
			delete(s.alerts, fp)
			deleted = append(deleted, fp)
		case jobcast.AlertFiring:
			if r.KeepFiringFor > 0 && now.Sub(a.LastTrueAt) < r.KeepFiringFor.D() {
				continue
			}
			a.State, a.ResolvedAt = jobcast.AlertResolved, now
			a.Annotations = r.render(a.Value, a.Labels)
		case jobcast.AlertResolved:
			if now.Sub(a.ResolvedAt) > resolvedRetention {
				delete(s.alerts, fp)
				deleted = append(deleted, fp)
			}
		}
	}
	return deleted
}

func compare(v float64, op string, t float64) bool {
	switch op {
	case ">":
		return v > t
	case ">=":
		return v >= t
	case "<":
		return v < t
	case "<=":
		return v <= t
	case "==":
		return v == t
	case "!=":
		return v != t
	}
	return false
}

// alertLabels are an alert's identity: alertname, severity, the rule's
// labels and the sample's group labels.
func alertLabels(r *compiledRule, group map[string]string) map[string]string {
	l := make(map[string]string, len(group)+len(r.Labels)+2)
	for k, v := range r.Labels {
		l[k] = v
	}
	for k, v := range group {
		l[k] = v
	}
	l["alertname"] = r.Name
	l["severity"] = r.Severity
	return l
}

// fingerprint hashes a label set: its identity across evaluations.
func fingerprint(labels map[string]string) string {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h := fnv.New64a()
	for _, k := range keys {
		h.Write([]byte(k))
		h.Write([]byte{0xff})
		h.Write([]byte(labels[k]))
		h.Write([]byte{0xff})
	}
	return fmt.Sprintf("%016x", h.Sum64())
}

func (r *compiledRule) render(v float64, labels map[string]string) map[string]string {
	if len(r.annotations) == 0 {
		return nil
	}
	out := make(map[string]string, len(r.annotations))
	data := map[string]any{"Value": v, "Threshold": r.Threshold, "Labels": labels, "Window": r.Window.String()}
	for k, t := range r.annotations {
		var b bytes.Buffer
		if err := t.Execute(&b, data); err != nil {
			out[k] = r.Annotations[k]
			continue
		}
		out[k] = b.String()
	}
	return out
}

// query computes rule r's samples at now.
func (s *Service) query(ctx context.Context, r *compiledRule, now time.Time) ([]sample, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opt.QueryTimeout)
	defer cancel()
	from := now.Add(-r.Window.D())
	if r.Metric != "" {
		if s.opt.Metrics == nil {
			return nil, jobcast.Errorf(protocol.ErrUnavailable, "no metrics library")
		}
		res, err := s.opt.Metrics.Compute(ctx, metrics.Query{Metric: r.Metric, From: from, To: now, Filters: r.Filters, GroupBy: r.GroupBy})
		if err != nil {
			return nil, err
		}
		out := make([]sample, 0, len(res.Points))
		for _, p := range res.Points {
			if math.IsNaN(p.Value) {
				continue
			}
			out = append(out, sample{labels: p.Group, value: p.Value})
		}
		return out, nil
	}
	if s.opt.Telemetry == nil {
		return nil, jobcast.Errorf(protocol.ErrUnavailable, "no telemetry store")
	}
	q := expandSQL(r.SQL, s.opt.Telemetry.Dialect(), from, now)
	rows, err := s.opt.Telemetry.QueryUntrusted(ctx, q, jobcast.QueryLimits{Timeout: s.opt.QueryTimeout, MaxRows: 1000})
	if err != nil {
		return nil, err
	}
	return sqlSamples(rows)
}

// boundRE matches a window bound in custom SQL: {{from}} or {{to}},
// optionally minus a Go duration ({{to-5m}}).
var boundRE = regexp.MustCompile(`\{\{\s*(from|to)\s*(?:-\s*([0-9][0-9a-zµ.]*)\s*)?\}\}`)

// expandSQL replaces {{from}} and {{to}}, and {{to-5m}}-style offsets of
// them, with timestamp literals of the dialect (the sandbox takes no
// parameters). The offsets exist because ClickHouse's ts (Decimal64(3),
// Unix seconds, as on 18.16, which has no DateTime64) cannot take
// `- INTERVAL 5 MINUTE`, so SQL that subtracts an interval from a bound
// works on DuckDB only. On ClickHouse a literal is the one the store binds
// for a time.Time argument, and the metrics library's clickhouse dialect
// with it (clickhouse.tsLiteral): a Decimal64(3), which compares with ts
// on 18.16 and on current servers. A bound whose offset is no duration is
// left as written, for the server to refuse.
func expandSQL(q, dialect string, from, to time.Time) string {
	lit := func(t time.Time) string {
		if dialect == "clickhouse" {
			ms := t.UnixMilli()
			sec, frac := ms/1000, ms%1000
			if frac < 0 {
				sec, frac = sec-1, frac+1000
			}
			return fmt.Sprintf("toDecimal64('%d.%03d', 3)", sec, frac)
		}
		return "TIMESTAMP '" + t.UTC().Format("2006-01-02 15:04:05.000000") + "'"
	}
	return boundRE.ReplaceAllStringFunc(q, func(m string) string {
		sub := boundRE.FindStringSubmatch(m)
		t := from
		if sub[1] == "to" {
			t = to
		}
		if sub[2] != "" {
			d, err := time.ParseDuration(sub[2])
			if err != nil {
				return m
			}
			t = t.Add(-d)
		}
		return lit(t)
	})
}

// sqlSamples reads a custom query's answer: the column named value is the
// number, every other column a label.
func sqlSamples(rows *jobcast.Rows) ([]sample, error) {
	vi := slices.IndexFunc(rows.Columns, func(c string) bool { return strings.EqualFold(c, "value") })
	if vi < 0 {
		return nil, jobcast.Errorf(protocol.ErrBadRequest, "the query returns no column named value (columns: %s)", strings.Join(rows.Columns, ", "))
	}
	out := make([]sample, 0, len(rows.Rows))
	for _, row := range rows.Rows {
		v, ok := toFloat(row[vi])
		if !ok {
			if row[vi] == nil {
				continue
			}
			return nil, jobcast.Errorf(protocol.ErrBadRequest, "column value holds %T, not a number", row[vi])
		}
		labels := map[string]string{}
		for i, c := range rows.Columns {
			if i == vi {
				continue
			}
			labels[c] = labelString(row[i])
		}
		out = append(out, sample{labels: labels, value: v})
	}
	return out, nil
}

func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case float32:
		return float64(x), true
	case int64:
		return float64(x), true
	case int32:
		return float64(x), true
	case int:
		return float64(x), true
	case uint64:
		return float64(x), true
	case uint32:
		return float64(x), true
	case int16:
		return float64(x), true
	case int8:
		return float64(x), true
	case *big.Int:
		f, _ := new(big.Float).SetInt(x).Float64()
		return f, true
	case bool:
		if x {
			return 1, true
		}
		return 0, true
	case string:
		f, err := strconv.ParseFloat(x, 64)
		return f, err == nil
	case interface{ Float64() (float64, error) }:
		f, err := x.Float64()
		return f, err == nil
	}
	return 0, false
}

func labelString(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case time.Time:
		return x.UTC().Format(time.RFC3339)
	case float64:
		return trimFloat(x, 6)
	}
	return fmt.Sprint(v)
}

// trimFloat formats v with at most prec decimals and no trailing zeros.
func trimFloat(v float64, prec int) string {
	s := strconv.FormatFloat(v, 'f', prec, 64)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}

func cloneAlert(a *jobcast.AlertInstance) jobcast.AlertInstance {
	c := *a
	c.Labels = cloneMap(a.Labels)
	c.Annotations = cloneMap(a.Annotations)
	if a.Sent != nil {
		c.Sent = make(map[string]time.Time, len(a.Sent))
		for k, v := range a.Sent {
			c.Sent[k] = v
		}
	}
	if a.ResolvedSent != nil {
		c.ResolvedSent = make(map[string]bool, len(a.ResolvedSent))
		for k, v := range a.ResolvedSent {
			c.ResolvedSent[k] = v
		}
	}
	return c
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// silencedBy returns the IDs of the silences muting labels at t. s.mu is
// held.
func (s *Service) silencedBy(labels map[string]string, t time.Time) []string {
	var ids []string
	for _, sil := range s.silences {
		if sil.Active(t) && matchAll(sil.matchers, labels) {
			ids = append(ids, sil.ID)
		}
	}
	return ids
}

// syncWorkers starts a worker per receiver and stops those whose receiver
// is gone or changed.
func (s *Service) syncWorkers() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.syncWorkersLocked()
}

func (s *Service) syncWorkersLocked() {
	if s.stopped {
		return
	}
	for name, w := range s.workers {
		rc, ok := s.cc.receivers[name]
		if !ok || !reflect.DeepEqual(*rc, w.rc) {
			delete(s.workers, name)
			go w.close()
		}
	}
	for name, rc := range s.cc.receivers {
		if _, ok := s.workers[name]; ok {
			continue
		}
		w := newWorker(s, *rc)
		s.workers[name] = w
		s.workersDone.Add(1)
		go func() {
			defer s.workersDone.Done()
			w.run()
		}()
	}
}

// parseRulesDoc reads the body of PUT /v1/alerts/rules: YAML or JSON
// {"rules": [...]}.
func parseRulesDoc(data []byte) ([]Rule, error) {
	var doc struct {
		Rules []Rule `yaml:"rules"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return nil, yamlError(err)
	}
	return doc.Rules, nil
}

func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
