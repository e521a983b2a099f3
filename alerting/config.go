package alerting

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"text/template"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/jobcast/jobcast/metrics"
)

// Defaults of a zero Config field.
const (
	DefaultEvalInterval     = 30 * time.Second
	DefaultRepeatInterval   = 4 * time.Hour
	DefaultHistoryRetention = 30 * 24 * time.Hour
	DefaultReceiverTimeout  = 10 * time.Second
	DefaultRateLimit        = 30 // notifications per minute and receiver
	DefaultMaxAttempts      = 5
	// DefaultResendInterval is how often an Alertmanager receiver is sent
	// the firing alerts again: Alertmanager resolves an alert it stops
	// hearing about, so clients re-send, as Prometheus does every minute.
	DefaultResendInterval = time.Minute
	// resolvedRetention keeps a resolved alert listed (and its state
	// remembered) this long before it is forgotten, as Prometheus keeps
	// resolved alerts for 15 minutes.
	resolvedRetention = 15 * time.Minute
	// silenceRetention keeps expired silences listed this long.
	silenceRetention = 5 * 24 * time.Hour
)

// Severities a rule may have.
var severities = []string{"critical", "warning", "info"}

// Receiver types.
const (
	TypeSlack        = "slack"
	TypePagerDuty    = "pagerduty"
	TypeEmail        = "email"
	TypeWebhook      = "webhook"
	TypeAlertmanager = "alertmanager"
)

var receiverTypes = []string{TypeSlack, TypePagerDuty, TypeEmail, TypeWebhook, TypeAlertmanager}

// Duration is a time.Duration written as "10m" in YAML and JSON.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String formats d as Go does, without a trailing "0s" ("10m", "1h30m").
func (d Duration) String() string {
	s := time.Duration(d).String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

func parseDuration(s string) (Duration, error) {
	s = strings.TrimSpace(s)
	if s == "0" || s == "" {
		return 0, nil
	}
	if n, ok := strings.CutSuffix(s, "d"); ok {
		var days int
		if _, err := fmt.Sscanf(n, "%d", &days); err == nil && fmt.Sprint(days) == n {
			return Duration(time.Duration(days) * 24 * time.Hour), nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration such as 30s, 10m, 1h or 7d", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("duration %q is negative", s)
	}
	return Duration(d), nil
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := parseDuration(n.Value)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string such as \"10m\"")
	}
	v, err := parseDuration(s)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// Config is the alerting configuration: the YAML rules file, the receivers
// set by environment, and the rules set through the API all map onto it.
type Config struct {
	// EvalInterval is how often every rule is evaluated (default 30s).
	EvalInterval Duration `yaml:"evalInterval" json:"evalInterval"`
	// DashboardURL is the base of the links in notifications (default: the
	// node's public URL).
	DashboardURL string `yaml:"dashboardURL" json:"dashboardURL,omitempty"`
	// DisableDefaults drops the seven default rules of SPEC §6; one default
	// can be turned off with a rule of its name and `disabled: true`.
	DisableDefaults bool `yaml:"disableDefaults" json:"disableDefaults,omitempty"`
	// RepeatInterval re-sends a still-firing alert this long after its last
	// notification (default 4h); routes may override it.
	RepeatInterval Duration `yaml:"repeatInterval" json:"repeatInterval,omitempty"`
	// HistoryRetention keeps the notification history this long (30d).
	HistoryRetention Duration   `yaml:"historyRetention" json:"historyRetention,omitempty"`
	Rules            []Rule     `yaml:"rules" json:"rules"`
	Receivers        []Receiver `yaml:"receivers" json:"-"`
	// Routes send alerts to receivers by labels (severity is a label).
	// None: every receiver gets every alert, except PagerDuty, which gets
	// the critical ones.
	Routes []Route `yaml:"routes" json:"-"`
}

// Rule is an alerting rule: a metric from the metrics library or a custom
// SQL query, compared with a threshold over a window.
type Rule struct {
	// Name is the rule's alertname label; unique.
	Name string `yaml:"name" json:"name"`
	// Metric is a metrics library name (see GET /v1/metrics); or set SQL.
	Metric string `yaml:"metric,omitempty" json:"metric,omitempty"`
	// Filters keep only events whose dimension has the value (Metric only).
	Filters map[string]string `yaml:"filters,omitempty" json:"filters,omitempty"`
	// SQL is a read-only query on the events table returning a column
	// named value and, as labels, any other columns; {{from}} and {{to}}
	// are replaced by the window's bounds as timestamp literals, {{to-5m}}
	// by a bound minus a duration (ClickHouse's ts takes no INTERVAL).
	SQL string `yaml:"sql,omitempty" json:"sql,omitempty"`
	// Window is the time window the metric or query covers, ending now.
	Window Duration `yaml:"window" json:"window"`
	// Op compares the value with Threshold: >, >=, <, <=, ==, !=.
	Op        string  `yaml:"op" json:"op"`
	Threshold float64 `yaml:"threshold" json:"threshold"`
	// For is how long the condition must hold before the alert fires;
	// until then it is pending. 0 fires at the first evaluation.
	For Duration `yaml:"for" json:"for"`
	// KeepFiringFor keeps a firing alert firing this long after its
	// condition cleared, so that a flapping value does not page on every
	// swing.
	KeepFiringFor Duration `yaml:"keepFiringFor,omitempty" json:"keepFiringFor,omitempty"`
	// Severity is critical, warning or info; it becomes a label.
	Severity string `yaml:"severity" json:"severity"`
	// GroupBy makes one alert per value of these dimensions (Metric
	// rules; SQL rules group by their label columns).
	GroupBy []string `yaml:"groupBy,omitempty" json:"groupBy,omitempty"`
	// Labels are added to every alert of the rule.
	Labels map[string]string `yaml:"labels,omitempty" json:"labels,omitempty"`
	// Annotations (summary, description, runbook_url) are Go templates
	// over .Value, .Threshold, .Labels; `pct` formats a ratio as percent.
	Annotations map[string]string `yaml:"annotations,omitempty" json:"annotations,omitempty"`
	// Disabled turns the rule (or the default of that name) off.
	Disabled bool `yaml:"disabled,omitempty" json:"disabled,omitempty"`
}

// Receiver is where notifications go. Secrets (URL of a Slack webhook,
// RoutingKey, the SMTP URL's password, Headers) are never logged nor
// returned by the API.
type Receiver struct {
	Name string `yaml:"name"`
	Type string `yaml:"type"`
	// URL: the Slack incoming webhook; the PagerDuty Events API endpoint
	// (default https://events.pagerduty.com/v2/enqueue); the webhook's URL;
	// Alertmanager's base URL; smtp://user:pass@host:port (smtps:// for
	// implicit TLS) for email.
	URL        string   `yaml:"url"`
	RoutingKey string   `yaml:"routingKey"`
	To         []string `yaml:"to"`
	From       string   `yaml:"from"`
	// StartTLS is "" (use it when the server offers it), "require" or
	// "off" (email only).
	StartTLS string `yaml:"startTLS"`
	// InsecureSkipVerify accepts any TLS certificate (email; tests).
	InsecureSkipVerify bool              `yaml:"insecureSkipVerify"`
	Headers            map[string]string `yaml:"headers"`
	// Timeout bounds one attempt (default 10s).
	Timeout Duration `yaml:"timeout"`
	// RateLimit is the most notifications per minute (default 30); more
	// wait in the receiver's queue.
	RateLimit int `yaml:"rateLimit"`
	// MaxAttempts tries a failing notification this often, with
	// exponential backoff from 1s (default 5).
	MaxAttempts int `yaml:"maxAttempts"`
	// SendResolved tells the receiver when alerts resolve (default true).
	SendResolved *bool `yaml:"sendResolved"`
}

// Route sends matching alerts to a receiver. Routes are tried in order;
// the first match wins unless it sets continue.
type Route struct {
	Receiver string `yaml:"receiver"`
	// Matchers, all of which must match: name=value, name!=value,
	// name=~regex, name!~regex.
	Matchers []string `yaml:"matchers"`
	// GroupBy labels put alerts into one notification (default:
	// alertname).
	GroupBy        []string `yaml:"groupBy"`
	RepeatInterval Duration `yaml:"repeatInterval"`
	Continue       bool     `yaml:"continue"`
}

// ParseConfig decodes a YAML (or JSON) alerting document strictly: an
// unknown key is an error, so a typo does not silently drop a setting.
func ParseConfig(data []byte) (Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return c, yamlError(err)
	}
	return c, nil
}

// quoted matches the values yaml.v3 quotes in its errors ("cannot
// unmarshal !!str `smtp://u:pass@…` into …").
var quoted = regexp.MustCompile("`[^`]*`")

// yamlError is a YAML decoding error without the values it quotes: a
// value in the wrong place may be a secret, and the error reaches the log
// and the API.
func yamlError(err error) error {
	return errors.New(quoted.ReplaceAllString(strings.TrimPrefix(err.Error(), "yaml: "), "a value"))
}

// withDefaults fills zero fields.
func (c Config) withDefaults() Config {
	if c.EvalInterval == 0 {
		c.EvalInterval = Duration(DefaultEvalInterval)
	}
	if c.RepeatInterval == 0 {
		c.RepeatInterval = Duration(DefaultRepeatInterval)
	}
	if c.HistoryRetention == 0 {
		c.HistoryRetention = Duration(DefaultHistoryRetention)
	}
	for i := range c.Receivers {
		r := &c.Receivers[i]
		if r.Timeout == 0 {
			r.Timeout = Duration(DefaultReceiverTimeout)
		}
		if r.RateLimit == 0 {
			r.RateLimit = DefaultRateLimit
		}
		if r.MaxAttempts == 0 {
			r.MaxAttempts = DefaultMaxAttempts
		}
		if r.Type == TypePagerDuty && r.URL == "" {
			r.URL = "https://events.pagerduty.com/v2/enqueue"
		}
	}
	return c
}

// Merge returns c with over laid on top: receivers of over replace those of
// the same name, non-zero settings win. Environment variables are an
// overlay on the file.
func (c Config) Merge(over Config) Config {
	if over.EvalInterval != 0 {
		c.EvalInterval = over.EvalInterval
	}
	if over.DashboardURL != "" {
		c.DashboardURL = over.DashboardURL
	}
	if over.RepeatInterval != 0 {
		c.RepeatInterval = over.RepeatInterval
	}
	if over.HistoryRetention != 0 {
		c.HistoryRetention = over.HistoryRetention
	}
	c.DisableDefaults = c.DisableDefaults || over.DisableDefaults
	c.Receivers = slices.Clone(c.Receivers)
	for _, r := range over.Receivers {
		if i := slices.IndexFunc(c.Receivers, func(x Receiver) bool { return x.Name == r.Name }); i >= 0 {
			c.Receivers[i] = r
		} else {
			c.Receivers = append(c.Receivers, r)
		}
	}
	c.Rules = append(slices.Clone(c.Rules), over.Rules...)
	c.Routes = append(slices.Clone(c.Routes), over.Routes...)
	return c
}

// compiledRule is a validated rule ready to evaluate.
type compiledRule struct {
	Rule
	source      string // default, file, api
	annotations map[string]*template.Template
}

// compiled is a validated configuration.
type compiled struct {
	cfg       Config
	rules     []*compiledRule // enabled ones, in order
	all       []*compiledRule // including disabled, for listing
	receivers map[string]*Receiver
	routes    []compiledRoute
}

type compiledRoute struct {
	Route
	matchers       []matcher
	repeatInterval time.Duration
}

// ValidationError lists every problem of a configuration, one per line,
// each naming the rule or receiver it is about.
type ValidationError struct {
	Problems []string
}

func (e *ValidationError) Error() string {
	return "invalid alerting configuration:\n  " + strings.Join(e.Problems, "\n  ")
}

var nameRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_:.-]*$`)
var labelRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

var templateFuncs = template.FuncMap{
	"pct": func(v float64) string { return trimFloat(v*100, 2) + "%" },
	"num": func(v float64) string { return trimFloat(v, 2) },
}

// layer puts rules on top of base by name: a rule replaces the one of the
// same name.
func layer(base []*compiledRule, rules []Rule, source string) []*compiledRule {
	out := slices.Clone(base)
	for _, r := range rules {
		cr := &compiledRule{Rule: r, source: source}
		if i := slices.IndexFunc(out, func(x *compiledRule) bool { return x.Name == r.Name }); i >= 0 {
			out[i] = cr
		} else {
			out = append(out, cr)
		}
	}
	return out
}

// compile validates c (defaults applied) with the API rules on top.
func compile(c Config, apiRules []Rule) (*compiled, error) {
	c = c.withDefaults()
	var probs []string
	bad := func(format string, args ...any) { probs = append(probs, fmt.Sprintf(format, args...)) }

	for i, rules := range [][]Rule{c.Rules, apiRules} {
		src := []string{"file", "API"}[i]
		seen := map[string]bool{}
		for _, r := range rules {
			if seen[r.Name] && r.Name != "" {
				bad("%s rule %q: defined twice", src, r.Name)
			}
			seen[r.Name] = true
		}
	}
	var all []*compiledRule
	if !c.DisableDefaults {
		all = layer(nil, DefaultRules(), "default")
	}
	all = layer(all, c.Rules, "file")
	all = layer(all, apiRules, "api")
	var rules []*compiledRule
	for i, r := range all {
		where := fmt.Sprintf("rule %q", r.Name)
		if r.Name == "" {
			where = fmt.Sprintf("rule #%d", i+1)
		}
		n := len(probs)
		validateRule(&r.Rule, func(format string, args ...any) { bad(where+": "+format, args...) })
		if len(probs) == n {
			r.annotations = map[string]*template.Template{}
			for k, v := range r.Annotations {
				t, err := template.New(k).Funcs(templateFuncs).Option("missingkey=zero").Parse(v)
				if err != nil {
					bad("%s: annotation %s: %v", where, k, err)
					continue
				}
				r.annotations[k] = t
			}
		}
		if !r.Disabled {
			rules = append(rules, r)
		}
	}

	receivers := map[string]*Receiver{}
	for i := range c.Receivers {
		r := &c.Receivers[i]
		where := fmt.Sprintf("receiver %q", r.Name)
		if r.Name == "" {
			where = fmt.Sprintf("receiver #%d", i+1)
			bad("%s: name is required", where)
		} else if receivers[r.Name] != nil {
			bad("%s: defined twice", where)
		}
		receivers[r.Name] = r
		validateReceiver(r, func(format string, args ...any) { bad(where+": "+format, args...) })
	}

	routes := c.Routes
	if len(routes) == 0 {
		for _, r := range c.Receivers {
			rt := Route{Receiver: r.Name, Continue: true}
			if r.Type == TypePagerDuty {
				rt.Matchers = []string{"severity=critical"}
			}
			routes = append(routes, rt)
		}
	}
	var croutes []compiledRoute
	for i, rt := range routes {
		where := fmt.Sprintf("route #%d", i+1)
		cr := compiledRoute{Route: rt, repeatInterval: rt.RepeatInterval.D()}
		if cr.repeatInterval == 0 {
			cr.repeatInterval = c.RepeatInterval.D()
		}
		if len(cr.GroupBy) == 0 {
			cr.GroupBy = []string{"alertname"}
		}
		if receivers[rt.Receiver] == nil {
			bad("%s: unknown receiver %q", where, rt.Receiver)
		}
		for _, m := range rt.Matchers {
			pm, err := ParseMatcher(m)
			if err != nil {
				bad("%s: %v", where, err)
				continue
			}
			cm, _ := compileMatcher(pm)
			cr.matchers = append(cr.matchers, cm)
		}
		croutes = append(croutes, cr)
	}
	if c.DashboardURL != "" {
		if u, err := url.Parse(c.DashboardURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") {
			bad("dashboardURL %q must be an http or https URL", c.DashboardURL)
		}
	}
	if c.EvalInterval.D() < time.Second {
		bad("evalInterval %s is below 1s", c.EvalInterval)
	}
	if len(probs) > 0 {
		return nil, &ValidationError{Problems: probs}
	}
	return &compiled{cfg: c, rules: rules, all: all, receivers: receivers, routes: croutes}, nil
}

var ops = []string{">", ">=", "<", "<=", "==", "!="}

func validateRule(r *Rule, bad func(string, ...any)) {
	if r.Name == "" {
		bad("name is required")
	} else if !nameRE.MatchString(r.Name) {
		bad("name must be letters, digits and _ : . - (starting with a letter or _)")
	}
	if r.Disabled && r.Metric == "" && r.SQL == "" {
		return // turning a default off needs nothing else
	}
	switch {
	case r.Metric != "" && r.SQL != "":
		bad("set metric or sql, not both")
	case r.Metric == "" && r.SQL == "":
		bad("set metric (one of %s) or sql", strings.Join(metricNames(), ", "))
	case r.Metric != "":
		if !slices.Contains(metricNames(), r.Metric) {
			bad("unknown metric %q; known: %s", r.Metric, strings.Join(metricNames(), ", "))
		}
		for _, g := range r.GroupBy {
			if !slices.Contains(metrics.Dimensions(), g) {
				bad("groupBy %q is not a dimension (%s)", g, strings.Join(metrics.Dimensions(), ", "))
			}
		}
		for k := range r.Filters {
			if !slices.Contains(metrics.Dimensions(), k) {
				bad("filter %q is not a dimension (%s)", k, strings.Join(metrics.Dimensions(), ", "))
			}
		}
	default:
		if len(r.GroupBy) > 0 {
			bad("groupBy applies to metric rules; a sql rule groups by its label columns")
		}
		if len(r.Filters) > 0 {
			bad("filters apply to metric rules; put a WHERE in the sql")
		}
		if !strings.Contains(strings.ToLower(r.SQL), "value") {
			bad("sql must return a column named value")
		}
	}
	if r.Window <= 0 {
		bad("window is required (such as 10m)")
	} else if r.Window.D() > 31*24*time.Hour {
		bad("window %s is longer than 31 days", r.Window)
	}
	if !slices.Contains(ops, r.Op) {
		bad("op %q must be one of %s", r.Op, strings.Join(ops, " "))
	}
	if !slices.Contains(severities, r.Severity) {
		bad("severity %q must be one of %s", r.Severity, strings.Join(severities, ", "))
	}
	for k := range r.Labels {
		if !labelRE.MatchString(k) {
			bad("label name %q must be letters, digits and _", k)
		}
		if k == "alertname" || k == "severity" {
			bad("label %s is set from the rule's name and severity", k)
		}
	}
}

func validateReceiver(r *Receiver, bad func(string, ...any)) {
	if !slices.Contains(receiverTypes, r.Type) {
		bad("type %q must be one of %s", r.Type, strings.Join(receiverTypes, ", "))
		return
	}
	checkURL := func(what string, schemes ...string) {
		u, err := url.Parse(r.URL)
		if r.URL == "" {
			bad("%s is required", what)
		} else if err != nil || !slices.Contains(schemes, u.Scheme) || u.Host == "" {
			// The URL may hold a secret: never echo it.
			bad("%s must be a %s URL with a host", what, strings.Join(schemes, " or "))
		}
	}
	switch r.Type {
	case TypeSlack:
		checkURL("url (the Slack incoming webhook)", "http", "https")
	case TypePagerDuty:
		checkURL("url (the Events API v2 endpoint)", "http", "https")
		if r.RoutingKey == "" {
			bad("routingKey is required")
		}
	case TypeWebhook:
		checkURL("url", "http", "https")
	case TypeAlertmanager:
		checkURL("url (Alertmanager's base URL)", "http", "https")
	case TypeEmail:
		checkURL("url (smtp://user:pass@host:port)", "smtp", "smtps")
		if len(r.To) == 0 {
			bad("to is required (one or more addresses)")
		}
		if r.From == "" {
			bad("from is required")
		}
		if !slices.Contains([]string{"", "require", "off"}, r.StartTLS) {
			bad(`startTLS %q must be "", "require" or "off"`, r.StartTLS)
		}
	}
	if r.RateLimit < 0 || r.MaxAttempts < 0 || r.Timeout < 0 {
		bad("rateLimit, maxAttempts and timeout must not be negative")
	}
}

func metricNames() []string {
	var out []string
	for _, d := range metrics.Definitions() {
		out = append(out, d.Name)
	}
	return out
}

// Check validates an alerting document as `jobcast alerts check` does:
// parse strictly, then compile with the defaults, so that an error names
// the rule, receiver or route at fault.
func Check(data []byte) (rules int, err error) {
	c, err := ParseConfig(data)
	if err != nil {
		return 0, err
	}
	cc, err := compile(c, nil)
	if err != nil {
		return 0, err
	}
	return len(cc.rules), nil
}

// dashboardLink is the dashboard filtered to an alert: the time range that
// covers the rule's window and, when the alert is about one pipeline, that
// pipeline.
func dashboardLink(base string, window time.Duration, labels map[string]string) string {
	rng := "30d"
	switch {
	case window <= time.Hour:
		rng = "1h"
	case window <= 24*time.Hour:
		rng = "24h"
	case window <= 7*24*time.Hour:
		rng = "7d"
	}
	q := url.Values{"range": {rng}}
	if p := labels["pipeline"]; p != "" {
		q.Set("pipeline", p)
	}
	return strings.TrimRight(base, "/") + "/dashboard?" + q.Encode()
}
