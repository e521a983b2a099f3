package alerting_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/alerting"
)

// TestCheck: `jobcast alerts check` errors name the rule, receiver or
// route at fault and say what is expected; secrets are never echoed.
func TestCheck(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, doc string
		want      []string // substrings of the error; none: valid
		rules     int
	}{
		{name: "empty file: the seven defaults", doc: "", rules: 7},
		{name: "disable one default", doc: "rules:\n  - name: throttle_rate_high\n    disabled: true\n", rules: 6},
		{name: "override a default", doc: "rules:\n  - {name: error_rate_high, metric: error_rate, window: 5m, op: '>', threshold: 0.1, severity: critical, for: 2m}\n", rules: 7},
		{name: "unknown key", doc: "rulez: []\n", want: []string{"field rulez not found"}},
		{name: "unknown metric", doc: "rules:\n  - {name: x, metric: nope, window: 1m, op: '>', threshold: 1, severity: critical}\n",
			want: []string{`rule "x": unknown metric "nope"; known: connection_success_rate`}},
		{name: "several problems at once", doc: "rules:\n  - {name: x, metric: error_rate, op: '=>', severity: high, groupBy: [job_id]}\n",
			want: []string{`rule "x": window is required`, `rule "x": op "=>" must be one of > >= < <= == !=`, `rule "x": severity "high" must be one of critical, warning, info`, `rule "x": groupBy "job_id" is not a dimension`}},
		{name: "metric and sql", doc: "rules:\n  - {name: x, metric: error_rate, sql: 'SELECT 1 AS value', window: 1m, op: '>', threshold: 1, severity: info}\n",
			want: []string{`rule "x": set metric or sql, not both`}},
		{name: "sql without value", doc: "rules:\n  - {name: x, sql: 'SELECT count(*) AS n FROM events', window: 1m, op: '>', threshold: 1, severity: info}\n",
			want: []string{`rule "x": sql must return a column named value`}},
		{name: "bad duration", doc: "rules:\n  - {name: x, metric: error_rate, window: ten minutes, op: '>', threshold: 1, severity: info}\n",
			want: []string{`"ten minutes" is not a duration such as 30s, 10m, 1h or 7d`}},
		{name: "duplicate rule", doc: "rules:\n  - {name: x, metric: error_rate, window: 1m, op: '>', threshold: 1, severity: info}\n  - {name: x, metric: error_rate, window: 1m, op: '>', threshold: 1, severity: info}\n",
			want: []string{`file rule "x": defined twice`}},
		{name: "bad template", doc: "rules:\n  - {name: x, metric: error_rate, window: 1m, op: '>', threshold: 1, severity: info, annotations: {summary: '{{ .Value'}}\n",
			want: []string{`rule "x": annotation summary:`}},
		{name: "reserved label", doc: "rules:\n  - {name: x, metric: error_rate, window: 1m, op: '>', threshold: 1, severity: info, labels: {severity: low}}\n",
			want: []string{`label severity is set from the rule's name and severity`}},
		{name: "receiver problems", doc: "receivers:\n  - {name: s, type: slack, url: 'ftp://hooks.example/secret-token'}\n  - {name: p, type: pagerduty}\n  - {name: m, type: email, url: 'smtp://u:hunter2@mail.example:587'}\n  - {name: w, type: carrier-pigeon}\n",
			want: []string{`receiver "s": url (the Slack incoming webhook) must be a http or https URL with a host`, `receiver "p": routingKey is required`,
				`receiver "m": to is required`, `receiver "m": from is required`, `receiver "w": type "carrier-pigeon" must be one of slack`}},
		{name: "a misplaced secret is not echoed", doc: "receivers:\n  - {name: m, type: email, url: x, to: 'smtp://u:hunter2@mail.example', from: a}\n",
			want: []string{"cannot unmarshal !!str a value into []string"}},
		{name: "route to an unknown receiver", doc: "routes:\n  - {receiver: nobody, matchers: ['severity=critical']}\n", want: []string{`route #1: unknown receiver "nobody"`}},
		{name: "bad matcher", doc: "receivers: [{name: w, type: webhook, url: 'http://x.example'}]\nroutes:\n  - {receiver: w, matchers: ['severity']}\n",
			want: []string{`route #1: matcher "severity" must be name=value`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			n, err := alerting.Check([]byte(tc.doc))
			if len(tc.want) == 0 {
				if err != nil || n != tc.rules {
					t.Fatalf("Check = %d, %v; want %d rules", n, err, tc.rules)
				}
				return
			}
			if err == nil {
				t.Fatalf("Check accepted it")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			for _, secret := range []string{"secret-token", "hunter2"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error shows a secret: %v", err)
				}
			}
		})
	}
}

func TestParseMatcher(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in           string
		want         jobcast.Matcher
		match, other map[string]string
	}{
		{`severity=critical`, jobcast.Matcher{Name: "severity", Value: "critical", IsEqual: true}, map[string]string{"severity": "critical"}, map[string]string{"severity": "warning"}},
		{`pipeline!="csv_import"`, jobcast.Matcher{Name: "pipeline", Value: "csv_import"}, map[string]string{"pipeline": "ai"}, map[string]string{"pipeline": "csv_import"}},
		{`pipeline=~csv.*`, jobcast.Matcher{Name: "pipeline", Value: "csv.*", IsEqual: true, IsRegex: true}, map[string]string{"pipeline": "csv_import"}, map[string]string{"pipeline": "xcsv"}},
		{`alertname!~"rtt.*|job.*"`, jobcast.Matcher{Name: "alertname", Value: "rtt.*|job.*", IsRegex: true}, map[string]string{"alertname": "errors"}, map[string]string{"alertname": "rtt_high"}},
	}
	for _, tc := range cases {
		m, err := alerting.ParseMatcher(tc.in)
		if err != nil || m != tc.want {
			t.Errorf("ParseMatcher(%q) = %+v, %v; want %+v", tc.in, m, err, tc.want)
		}
		back, err := alerting.ParseMatcher(alerting.FormatMatcher(m))
		if err != nil || back != m {
			t.Errorf("FormatMatcher(%+v) = %q does not read back", m, alerting.FormatMatcher(m))
		}
	}
	for _, bad := range []string{"", "severity", "=x", "a b=c", "x=~("} {
		if _, err := alerting.ParseMatcher(bad); err == nil {
			t.Errorf("ParseMatcher(%q) accepted", bad)
		}
	}
}

// TestHotReload: the rules file is read again when it changes; a broken
// file keeps the previous rules and reports why.
func TestHotReload(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "alerts.yaml")
	write := func(doc string, mtime time.Time) {
		if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(file, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	write("disableDefaults: true\nrules:\n  - {name: a, metric: connections, window: 1m, op: '>', threshold: 100, severity: info}\n", t0)
	h := newHarness(t, alerting.Config{}, func(o *alerting.Options) { o.File = file })
	names := func() []string {
		var out []string
		for _, r := range h.svc.Rules().Rules {
			out = append(out, r.Name)
		}
		return out
	}
	if got := names(); strings.Join(got, ",") != "a" {
		t.Fatalf("rules %v", got)
	}
	write("disableDefaults: true\nrules:\n  - {name: b, metric: connections, window: 1m, op: '<', threshold: 100, severity: info}\n", t0.Add(time.Second))
	h.eval(30 * time.Second)
	if got := names(); strings.Join(got, ",") != "b" {
		t.Fatalf("after reload: rules %v", got)
	}
	if got := h.states("b"); got["{}"] != jobcast.AlertFiring {
		t.Fatalf("new rule not evaluated: %v", got)
	}
	write("rules:\n  - {name: c, metric: nope}\n", t0.Add(2*time.Second))
	h.eval(30 * time.Second)
	v := h.svc.Rules()
	if got := names(); strings.Join(got, ",") != "b" || !strings.Contains(v.ReloadError, `unknown metric "nope"`) {
		t.Fatalf("broken file: rules %v, reload error %q", got, v.ReloadError)
	}
	// A missing file at start is an error.
	if _, err := alerting.New(t.Context(), alerting.Options{File: filepath.Join(t.TempDir(), "nope.yaml"), Store: h.store}); err == nil {
		t.Fatal("New accepted a missing file")
	}
}

// TestAPI drives the alerts API handler.
func TestAPI(t *testing.T) {
	t.Parallel()
	rec := newRecorder(t, 200, false)
	h := newHarness(t, alerting.Config{Receivers: []alerting.Receiver{{Name: "hook", Type: alerting.TypeWebhook, URL: rec.srv.URL + "/secret"}}})
	srv := httptest.NewServer(h.svc.Handler())
	t.Cleanup(srv.Close)
	do := func(method, path, body string, wantStatus int) map[string]any {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), method, srv.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		if resp.StatusCode != wantStatus {
			t.Fatalf("%s %s: status %d, want %d: %v", method, path, resp.StatusCode, wantStatus, out)
		}
		return out
	}
	errMsg := func(out map[string]any) string { return out["error"].(map[string]any)["message"].(string) }

	h.errorBurst("csv_import")
	h.eval(0)
	out := do("GET", "/v1/alerts", "", 200)
	if alerts := out["alerts"].([]any); len(alerts) != 1 || alerts[0].(map[string]any)["state"] != "firing" {
		t.Fatalf("alerts %v", out)
	}
	out = do("GET", "/v1/alerts/rules", "", 200)
	if rules := out["rules"].([]any); len(rules) != 7 || out["evalInterval"] != "30s" {
		t.Fatalf("rules %v", out)
	}
	if b, _ := json.Marshal(out); strings.Contains(string(b), "secret") {
		t.Fatalf("rules answer shows the receiver's URL: %s", b)
	}

	out = do("PUT", "/v1/alerts/rules", `{"rules":[{"name":"x","metric":"nope","window":"1m","op":">","threshold":1,"severity":"info"}]}`, 400)
	if !strings.Contains(errMsg(out), `rule "x": unknown metric "nope"`) {
		t.Fatalf("bad rule: %v", out)
	}
	out = do("PUT", "/v1/alerts/rules", "rules:\n  - {name: x, sql: 'SELECT 1 AS value FROM read_csv(''/etc/passwd'')', window: 1m, op: '>', threshold: 1, severity: info}\n", 400)
	if !strings.Contains(errMsg(out), `rule "x":`) {
		t.Fatalf("refused SQL: %v", out)
	}
	out = do("PUT", "/v1/alerts/rules", "rules:\n  - {name: many_connections, metric: connections, window: 5m, op: '>', threshold: 2, severity: warning, groupBy: [pipeline]}\n  - {name: rtt_high, disabled: true}\n", 200)
	if out["rulesInForce"] != float64(7) {
		t.Fatalf("put rules: %v", out)
	}
	h.eval(time.Second)
	if got := h.states("many_connections"); got["{pipeline=csv_import}"] != "firing" {
		t.Fatalf("API rule not evaluated: %v", got)
	}
	if doc, err := h.store.APIRules(t.Context()); err != nil || !strings.Contains(doc, "many_connections") {
		t.Fatalf("API rules not stored: %q %v", doc, err)
	}

	out = do("POST", "/v1/alerts/silences", `{"matchers":["alertname=many_connections", {"name":"pipeline","value":"csv.*","isRegex":true,"isEqual":true}],"duration":"2h","comment":"known"}`, 200)
	id := out["id"].(string)
	if ends := out["endsAt"].(string); ends != h.clock.Now().Add(2*time.Hour).Format(time.RFC3339) {
		t.Fatalf("silence %v", out)
	}
	do("POST", "/v1/alerts/silences", `{"matchers":[],"duration":"1h"}`, 400)
	do("POST", "/v1/alerts/silences", `{"matchers":["a=b"],"endsAt":"2020-01-01T00:00:00Z"}`, 400)
	out = do("GET", "/v1/alerts/silences", "", 200)
	if sils := out["silences"].([]any); len(sils) != 1 || sils[0].(map[string]any)["state"] != "active" {
		t.Fatalf("silences %v", out)
	}
	out = do("GET", "/v1/alerts", "", 200)
	for _, a := range out["alerts"].([]any) {
		m := a.(map[string]any)
		if m["rule"] == "many_connections" && m["silencedBy"] == nil {
			t.Fatalf("silenced alert not flagged: %v", m)
		}
	}
	do("DELETE", "/v1/alerts/silences/"+id, "", 200)
	do("DELETE", "/v1/alerts/silences/nope", "", 404)

	do("POST", "/v1/alerts/test?receiver=hook", "", 200)
	do("POST", "/v1/alerts/test?receiver=nope", "", 404)
	do("POST", "/v1/alerts/test", "", 400)
	out = do("GET", "/v1/alerts/history?limit=5", "", 200)
	if hist := out["history"].([]any); len(hist) == 0 {
		t.Fatalf("history %v", out)
	}
	do("GET", "/v1/alerts/history?limit=0", "", 400)
	do("GET", "/v1/alerts/nope", "", 404)
}

// TestDocsExamples loads every YAML example of docs/alerts.md and checks
// it, so the documentation's examples stay valid.
func TestDocsExamples(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("../docs/alerts.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(string(data), -1)
	if len(blocks) < 3 {
		t.Fatalf("docs/alerts.md has %d YAML examples", len(blocks))
	}
	for i, b := range blocks {
		if _, err := alerting.Check([]byte(b[1])); err != nil {
			t.Errorf("docs/alerts.md YAML example #%d: %v\n%s", i+1, err, b[1])
		}
	}
	// The defaults table lists every default rule.
	for _, r := range alerting.DefaultRules() {
		if !strings.Contains(string(data), "`"+r.Name+"`") {
			t.Errorf("docs/alerts.md does not list the default rule %s", r.Name)
		}
	}
}

// TestInvalidStoredAPIRules: rules stored through the API that no longer
// validate do not keep the service from starting; they are reported.
func TestInvalidStoredAPIRules(t *testing.T) {
	t.Parallel()
	h := newHarness(t, alerting.Config{})
	if err := h.store.SetAPIRules(t.Context(), "rules:\n  - {name: x, metric: renamed_metric, window: 1m, op: '>', threshold: 1, severity: info}\n"); err != nil {
		t.Fatal(err)
	}
	h.close()
	h.open()
	v := h.svc.Rules()
	if len(v.Rules) != 7 || !strings.Contains(v.ReloadError, `unknown metric "renamed_metric"`) {
		t.Fatalf("rules %d, reload error %q", len(v.Rules), v.ReloadError)
	}
}
