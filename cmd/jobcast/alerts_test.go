package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/client"
	"github.com/jobcast/jobcast/protocol"
)

// TestAlertsCLI runs serve with a Slack receiver from the environment and
// drives `jobcast alerts` against it: rules, test, silences, history, list,
// set-rules; and `jobcast alerts check` on files.
func TestAlertsCLI(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var slackBodies []string
	slack := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		slackBodies = append(slackBodies, string(b))
		mu.Unlock()
	}))
	t.Cleanup(slack.Close)
	dir := t.TempDir()
	const admin = "alerts-cli-admin-token-0123456789"
	stdout, stderr, _ := runMain(t, []string{"serve", "-addr", "127.0.0.1:0", "-data-dir", dir}, map[string]string{
		"JOBCAST_ADMIN_TOKEN":         admin,
		"JOBCAST_API_KEYS":            "alerts-cli-api-key-0123456789",
		"JOBCAST_SLACK_WEBHOOK_URL":   slack.URL + "/services/T0/B0/very-secret",
		"JOBCAST_ALERT_EVAL_INTERVAL": "1s",
	})
	base := stdout.waitFor(t, servingRE)[1]
	env := map[string]string{"JOBCAST_ADMIN_TOKEN": admin}
	run := func(args ...string) (int, string, string) {
		t.Helper()
		var out, errb strings.Builder
		rc := Main(context.Background(), append([]string{"alerts"}, args...), mapEnv(env), &out, &errb)
		return rc, out.String(), errb.String()
	}
	server := "-server=" + base

	rc, out, errOut := run("rules", server)
	if rc != 0 || !strings.Contains(out, "error_rate_high") || !strings.Contains(out, "job_hang") || !strings.Contains(out, "receivers: slack (slack)") ||
		!strings.Contains(out, "evaluated every 1s") {
		t.Fatalf("alerts rules: %d\n%s\n%s", rc, out, errOut)
	}
	if rc, out, errOut = run("test", server, "slack"); rc != 0 || !strings.Contains(out, "test notification sent to slack") {
		t.Fatalf("alerts test: %d %s %s", rc, out, errOut)
	}
	mu.Lock()
	if len(slackBodies) != 1 || !strings.Contains(slackBodies[0], "[TEST") {
		t.Fatalf("slack got %v", slackBodies)
	}
	mu.Unlock()
	if rc, _, errOut = run("test", server, "nope"); rc != 1 || !strings.Contains(errOut, `no receiver "nope" (configured: slack)`) {
		t.Fatalf("alerts test nope: %d %s", rc, errOut)
	}

	rc, out, errOut = run("silence", "add", server, "-for", "2h", "-comment", "deploy", "alertname=error_rate_high", "pipeline=~csv.*")
	m := regexp.MustCompile(`silence ([0-9a-f]+) until`).FindStringSubmatch(out)
	if rc != 0 || m == nil {
		t.Fatalf("silence add: %d %s %s", rc, out, errOut)
	}
	if rc, out, _ = run("silence", "list", server); rc != 0 || !strings.Contains(out, m[1]) || !strings.Contains(out, `alertname="error_rate_high",pipeline=~"csv.*"`) || !strings.Contains(out, "active") {
		t.Fatalf("silence list: %d %s", rc, out)
	}
	if rc, out, _ = run("silence", "expire", server, m[1]); rc != 0 || !strings.Contains(out, "expired") {
		t.Fatalf("silence expire: %d %s", rc, out)
	}
	if rc, _, errOut = run("silence", "add", server, "severity"); rc != 1 || !strings.Contains(errOut, "must be name=value") {
		t.Fatalf("bad matcher: %d %s", rc, errOut)
	}

	if rc, out, _ = run("history", server); rc != 0 || !strings.Contains(out, "slack") || !strings.Contains(out, "test") || strings.Contains(out, "very-secret") {
		t.Fatalf("history: %d %s", rc, out)
	}
	if rc, out, _ = run("list", server); rc != 0 {
		t.Fatalf("list: %d %s", rc, out)
	}
	if rc, out, _ = run("list", server, "-json"); rc != 0 || !json.Valid([]byte(out)) {
		t.Fatalf("list -json: %d %s", rc, out)
	}

	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(good, []byte("rules:\n  - {name: busy, metric: connections, window: 5m, op: '>', threshold: 1000, severity: warning}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("rules:\n  - {name: busy, metric: connectoins, window: 5m, op: '>', threshold: 1000, severity: warning}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if rc, out, _ = run("check", good); rc != 0 || !strings.Contains(out, "OK, 8 rules") {
		t.Fatalf("check good: %d %s", rc, out)
	}
	if rc, _, errOut = run("check", bad); rc != 1 || !strings.Contains(errOut, `rule "busy": unknown metric "connectoins"`) {
		t.Fatalf("check bad: %d %s", rc, errOut)
	}
	if rc, out, errOut = run("set-rules", server, good); rc != 0 || !strings.Contains(out, "8 rules in force") {
		t.Fatalf("set-rules: %d %s %s", rc, out, errOut)
	}
	if rc, _, errOut = run("set-rules", server, bad); rc != 1 || !strings.Contains(errOut, "unknown metric") {
		t.Fatalf("set-rules bad: %d %s", rc, errOut)
	}
	if rc, out, _ = run("rules", server); rc != 0 || !regexp.MustCompile(`busy\s+api\s+enabled`).MatchString(out) {
		t.Fatalf("rules after set-rules: %d %s", rc, out)
	}
	// The admin token guards the API.
	if status, body := call(t, "GET", base+"/v1/alerts", "", ""); status != 401 {
		t.Fatalf("GET /v1/alerts without a token: %d %s", status, body)
	}
	if strings.Contains(stderr.String(), "very-secret") {
		t.Fatalf("the log shows the Slack webhook URL:\n%s", stderr.String())
	}
}

func TestAlertSettingsFromEnv(t *testing.T) {
	t.Parallel()
	cfg := jobcast.Config{}.WithDefaults()
	as, err := loadAlertSettings("", cfg, mapEnv(map[string]string{
		"JOBCAST_PAGERDUTY_ROUTING_KEY": "rk", "JOBCAST_PAGERDUTY_URL": "http://pd.example/enqueue",
		"JOBCAST_SMTP_URL": "smtp://u:p@mail.example:587", "JOBCAST_ALERT_EMAIL_TO": "a@example.com, b@example.com",
		"JOBCAST_ALERT_EMAIL_FROM": "jobcast@example.com", "JOBCAST_ALERT_WEBHOOK_URL": "http://hook.example",
		"JOBCAST_ALERT_EVAL_INTERVAL": "15s",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if len(as.overlay.Receivers) != 3 || as.overlay.EvalInterval.String() != "15s" || as.overlay.Receivers[1].To[1] != "b@example.com" ||
		as.overlay.DashboardURL != "http://localhost:8080" {
		t.Fatalf("settings %+v", as)
	}
	for _, bad := range []map[string]string{
		{"JOBCAST_ALERT_EVAL_INTERVAL": "fast"},
		{"JOBCAST_SMTP_URL": "smtp://mail.example"},
		{"JOBCAST_PAGERDUTY_URL": "http://pd.example"},
	} {
		if _, err := loadAlertSettings("", cfg, mapEnv(bad)); err == nil {
			t.Errorf("accepted %v", bad)
		}
	}
}

// TestServeAlertSurvivesRestart runs the real serve: a job's error fires the
// default error-rate rule to a webhook from JOBCAST_ALERT_WEBHOOK_URL; after
// a restart the alert is still firing and nothing is sent again.
func TestServeAlertSurvivesRestart(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var bodies []string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, string(b))
		mu.Unlock()
	}))
	t.Cleanup(hook.Close)
	sent := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), bodies...)
	}
	dir := t.TempDir()
	env := map[string]string{
		"JOBCAST_ADMIN_TOKEN":         "restart-admin-token-0123456789",
		"JOBCAST_API_KEYS":            "restart-api-key-0123456789",
		"JOBCAST_ALERT_WEBHOOK_URL":   hook.URL,
		"JOBCAST_ALERT_EVAL_INTERVAL": "1s",
	}
	stdout, stderr, stop := runMain(t, []string{"serve", "-addr", "127.0.0.1:0", "-data-dir", dir}, env)
	base := stdout.waitFor(t, servingRE)[1]
	p := client.NewProducer(base, env["JOBCAST_API_KEYS"])
	tk, err := p.CreateJob(context.Background(), client.CreateJobRequest{Pipeline: "ai_scan", TotalCount: 3})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.SendEvents(context.Background(), tk.JobID, []protocol.ProducerEvent{
		client.NewEvent("started", map[string]any{"totalCount": 3}),
		client.NewEvent("error", map[string]any{"code": "E_GEMINI_TIMEOUT"}),
	}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for len(sent()) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no notification; stderr:\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if b := sent()[0]; !strings.Contains(b, `"status":"firing"`) || !strings.Contains(b, "error_rate_high") {
		t.Fatalf("webhook got %s", b)
	}
	if rc := stop(); rc != 0 {
		t.Fatalf("serve exited %d: %s", rc, stderr.String())
	}

	stdout2, stderr2, _ := runMain(t, []string{"serve", "-addr", "127.0.0.1:0", "-data-dir", dir}, env)
	base = stdout2.waitFor(t, servingRE)[1]
	// Wait for three evaluations after the restart.
	var evals []string
	deadline = time.Now().Add(15 * time.Second)
	for len(evals) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("evaluations after restart: %v; stderr:\n%s", evals, stderr2.String())
		}
		status, body := call(t, "GET", base+"/v1/alerts", env["JOBCAST_ADMIN_TOKEN"], "")
		var out struct {
			EvaluatedAt string `json:"evaluatedAt"`
			Alerts      []struct {
				Rule, State string
			} `json:"alerts"`
		}
		if status != 200 || json.Unmarshal([]byte(body), &out) != nil {
			t.Fatalf("GET /v1/alerts: %d %s", status, body)
		}
		firing := false
		for _, a := range out.Alerts {
			firing = firing || (a.Rule == "error_rate_high" && a.State == "firing")
		}
		if !firing {
			t.Fatalf("after restart error_rate_high is not firing: %s", body)
		}
		if out.EvaluatedAt != "" && (len(evals) == 0 || evals[len(evals)-1] != out.EvaluatedAt) {
			evals = append(evals, out.EvaluatedAt)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := len(sent()); n != 1 {
		t.Fatalf("%d notifications after the restart, want the 1 from before: %v", n, sent())
	}
}
