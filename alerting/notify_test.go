package alerting_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/alerting"
)

const dash = "http://jobcast.example"

// errorBurst writes 4 sessions, 1 with an error (25%), a second ago.
func (h *harness) errorBurst(pipeline string) {
	h.write(sessions(h.clock.Now().Add(-time.Second), pipeline, 3, 1)...)
}

// TestSlackAndPagerDutyPayloads runs the default error-rate rule through
// real HTTP fake receivers and checks the exact Slack and PagerDuty
// bodies, for firing and for resolved, and that PagerDuty's resolve uses
// the trigger's dedup_key.
func TestSlackAndPagerDutyPayloads(t *testing.T) {
	t.Parallel()
	slack := newRecorder(t, 200, false)
	pd := newRecorder(t, 202, false)
	h := newHarness(t, alerting.Config{
		DashboardURL: dash,
		Receivers: []alerting.Receiver{
			{Name: "slack", Type: alerting.TypeSlack, URL: slack.srv.URL + "/services/T000/B000/XXXX"},
			{Name: "pagerduty", Type: alerting.TypePagerDuty, URL: pd.srv.URL + "/v2/enqueue", RoutingKey: "pd-routing-key"},
		},
	})
	h.errorBurst("csv_import")
	h.eval(0)

	jsonEqual(t, "Slack firing", slack.wait(t, 0), `{
	  "text": "[FIRING:1] error_rate_high\nFIRING Error rate 25% over 10m (threshold 5%)",
	  "blocks": [
	    {"type": "header", "text": {"type": "plain_text", "text": "[FIRING:1] error_rate_high"}},
	    {"type": "section",
	     "text": {"type": "mrkdwn", "text": "*FIRING* Error rate 25% over 10m (threshold 5%)\nShare of sessions (jobs) with at least one error or failed connection."},
	     "fields": [
	       {"type": "mrkdwn", "text": "*Value*\n0.25"},
	       {"type": "mrkdwn", "text": "*Threshold*\n> 0.05"},
	       {"type": "mrkdwn", "text": "*Window*\n10m"},
	       {"type": "mrkdwn", "text": "*Severity*\ncritical"}
	     ]},
	    {"type": "actions", "elements": [
	      {"type": "button", "text": {"type": "plain_text", "text": "Open dashboard"}, "url": "http://jobcast.example/dashboard?range=1h"}
	    ]}
	  ]
	}`)
	trigger := pd.wait(t, 0)
	var ev struct {
		DedupKey string `json:"dedup_key"`
	}
	if err := json.Unmarshal(trigger, &ev); err != nil || !strings.HasPrefix(ev.DedupKey, "jobcast-") || len(ev.DedupKey) != len("jobcast-")+32 {
		t.Fatalf("dedup_key %q (%v)", ev.DedupKey, err)
	}
	jsonEqual(t, "PagerDuty trigger", trigger, `{
	  "routing_key": "pd-routing-key",
	  "dedup_key": "`+ev.DedupKey+`",
	  "event_action": "trigger",
	  "payload": {
	    "summary": "[FIRING:1] error_rate_high: Error rate 25% over 10m (threshold 5%)",
	    "source": "jobcast",
	    "severity": "critical",
	    "timestamp": "2026-11-26T09:00:00Z",
	    "class": "jobcast alert",
	    "group": "error_rate_high",
	    "custom_details": {"error_rate_high": "value 0.25 > 0.05 over 10m"}
	  },
	  "client": "jobcast",
	  "client_url": "http://jobcast.example/dashboard?range=1h",
	  "links": [{"href": "http://jobcast.example/dashboard?range=1h", "text": "jobcast dashboard"}]
	}`)
	if p := pd.paths[0]; p != "/v2/enqueue" {
		t.Errorf("PagerDuty path %s", p)
	}

	// Still firing 30 s later: deduplicated, nothing is sent.
	h.eval(30 * time.Second)
	// The window passes without events: resolved.
	h.eval(10 * time.Minute)
	jsonEqual(t, "Slack resolved", slack.wait(t, 1), `{
	  "text": "[RESOLVED:1] error_rate_high\nRESOLVED Error rate 25% over 10m (threshold 5%)",
	  "blocks": [
	    {"type": "header", "text": {"type": "plain_text", "text": "[RESOLVED:1] error_rate_high"}},
	    {"type": "section",
	     "text": {"type": "mrkdwn", "text": "*RESOLVED* Error rate 25% over 10m (threshold 5%)\nShare of sessions (jobs) with at least one error or failed connection."},
	     "fields": [
	       {"type": "mrkdwn", "text": "*Value*\n0.25"},
	       {"type": "mrkdwn", "text": "*Threshold*\n> 0.05"},
	       {"type": "mrkdwn", "text": "*Window*\n10m"},
	       {"type": "mrkdwn", "text": "*Severity*\ncritical"}
	     ]},
	    {"type": "actions", "elements": [
	      {"type": "button", "text": {"type": "plain_text", "text": "Open dashboard"}, "url": "http://jobcast.example/dashboard?range=1h"}
	    ]}
	  ]
	}`)
	jsonEqual(t, "PagerDuty resolve", pd.wait(t, 1), `{"routing_key": "pd-routing-key", "dedup_key": "`+ev.DedupKey+`", "event_action": "resolve"}`)
	h.eval(time.Minute)
	recs := h.history(4)
	if slack.count() != 2 || pd.count() != 2 || len(recs) != 4 {
		t.Fatalf("slack got %d, pagerduty %d, history %d; want 2, 2, 4", slack.count(), pd.count(), len(recs))
	}
	for _, r := range recs {
		if r.Outcome != jobcast.NotifySent || r.Attempts != 1 || len(r.Alerts) != 1 || r.Alerts[0].Rule != alerting.RuleErrorRate {
			t.Errorf("history record %+v", r)
		}
	}
}

// TestGroupingRoutingAndRepeat: a rule grouped by pipeline, routes by
// severity, one webhook notification per group, a repeat after the
// repeat interval and not before.
func TestGroupingRoutingAndRepeat(t *testing.T) {
	t.Parallel()
	crit := newRecorder(t, 200, false)
	warn := newRecorder(t, 200, false)
	am := newRecorder(t, 200, false)
	h := newHarness(t, alerting.Config{
		DashboardURL:    dash,
		DisableDefaults: true,
		Rules: []alerting.Rule{
			errorRateRule(func(r *alerting.Rule) { r.GroupBy = []string{"pipeline"} }),
			{Name: "busy", Metric: "connections", Window: alerting.Duration(time.Minute), Op: ">", Threshold: 1, Severity: "warning", GroupBy: []string{"pipeline"}},
		},
		Receivers: []alerting.Receiver{
			{Name: "oncall", Type: alerting.TypeWebhook, URL: crit.srv.URL},
			{Name: "team", Type: alerting.TypeWebhook, URL: warn.srv.URL},
			{Name: "am", Type: alerting.TypeAlertmanager, URL: am.srv.URL + "/"},
		},
		Routes: []alerting.Route{
			{Receiver: "am", Continue: true, GroupBy: []string{"alertname", "pipeline"}},
			{Receiver: "oncall", Matchers: []string{"severity=critical"}, GroupBy: []string{"alertname"}, RepeatInterval: alerting.Duration(5 * time.Minute)},
			{Receiver: "team"},
		},
	})
	now := h.clock.Now().Add(-time.Second)
	h.write(append(sessions(now, "csv_import", 1, 1), sessions(now, "ai_scan", 0, 2)...)...)
	h.eval(0)
	var msg alerting.WebhookMessage
	if err := json.Unmarshal(crit.wait(t, 0), &msg); err != nil {
		t.Fatal(err)
	}
	if msg.Status != "firing" || len(msg.Alerts) != 2 || msg.GroupLabels["alertname"] != "errors" || msg.CommonLabels["severity"] != "critical" {
		t.Fatalf("critical webhook got %+v", msg)
	}
	if err := json.Unmarshal(warn.wait(t, 0), &msg); err != nil {
		t.Fatal(err)
	}
	if msg.Status != "firing" || len(msg.Alerts) != 2 || msg.Alerts[0].Rule != "busy" {
		t.Fatalf("warning webhook got %+v", msg)
	}
	// Alertmanager: one POST per group (alertname, pipeline): 4 groups.
	am.wait(t, 3)
	var amAlerts []map[string]any
	if err := json.Unmarshal(am.wait(t, 0), &amAlerts); err != nil || len(amAlerts) != 1 || am.paths[0] != "/api/v2/alerts" {
		t.Fatalf("alertmanager got %s at %s (%v)", am.bodies[0], am.paths[0], err)
	}
	for _, k := range []string{"labels", "annotations", "startsAt", "endsAt", "generatorURL"} {
		if _, ok := amAlerts[0][k]; !ok {
			t.Errorf("alertmanager alert lacks %s: %v", k, amAlerts[0])
		}
	}

	// Keep the errors coming; within the repeat interval nothing repeats.
	h.clock.Advance(2 * time.Minute)
	h.write(sessions(h.clock.Now().Add(-time.Second), "csv_import", 0, 1)...)
	h.svc.Evaluate(t.Context())
	h.clock.Advance(3 * time.Minute)
	h.write(sessions(h.clock.Now().Add(-time.Second), "csv_import", 0, 1)...)
	h.svc.Evaluate(t.Context())
	if err := json.Unmarshal(crit.wait(t, 1), &msg); err != nil {
		t.Fatal(err)
	}
	if msg.Status != "firing" || len(msg.Alerts) != 2 {
		t.Fatalf("repeat got %+v", msg)
	}
	waitFor(t, "the repeat in the history", func() bool {
		recs, err := h.svc.History(t.Context(), 100)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, r := range recs {
			if r.Receiver == "oncall" {
				n++
			}
		}
		return n == 2
	})
	if n := crit.count(); n != 2 {
		t.Fatalf("oncall notified %d times in 5 minutes, want 2 (first and one repeat)", n)
	}
}

// smtpBackend is an in-process SMTP server (emersion/go-smtp) that keeps
// what it receives and checks PLAIN auth.
type smtpBackend struct {
	mu   sync.Mutex
	msgs []smtpMsg
	got  chan struct{}
}

type smtpMsg struct {
	from string
	to   []string
	data string
	user string
}

type smtpSession struct {
	b   *smtpBackend
	msg smtpMsg
}

func (b *smtpBackend) NewSession(*smtp.Conn) (smtp.Session, error) { return &smtpSession{b: b}, nil }

func (s *smtpSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *smtpSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, user, pass string) error {
		if user != "alerts" || pass != "s3cret" {
			return errors.New("bad credentials")
		}
		s.msg.user = user
		return nil
	}), nil
}

func (s *smtpSession) Mail(from string, _ *smtp.MailOptions) error {
	s.msg.from = from
	return nil
}

func (s *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.msg.to = append(s.msg.to, to)
	return nil
}

func (s *smtpSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.msg.data = string(b)
	s.b.mu.Lock()
	s.b.msgs = append(s.b.msgs, s.msg)
	s.b.mu.Unlock()
	s.b.got <- struct{}{}
	return nil
}

func (s *smtpSession) Reset()        { s.msg = smtpMsg{user: s.msg.user} }
func (s *smtpSession) Logout() error { return nil }

func startSMTP(t *testing.T) (*smtpBackend, string) {
	t.Helper()
	be := &smtpBackend{got: make(chan struct{}, 10)}
	srv := smtp.NewServer(be)
	srv.Domain = "localhost"
	srv.AllowInsecureAuth = true
	srv.ErrorLog = log.New(io.Discard, "", 0)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return be, ln.Addr().String()
}

func (b *smtpBackend) wait(t *testing.T, i int) smtpMsg {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		b.mu.Lock()
		if len(b.msgs) > i {
			m := b.msgs[i]
			b.mu.Unlock()
			return m
		}
		b.mu.Unlock()
		select {
		case <-b.got:
		case <-deadline:
			t.Fatalf("SMTP server got no message #%d", i+1)
		}
	}
}

// TestEmailOverSMTP sends the firing and the resolved email to an
// in-process SMTP server, with PLAIN auth.
func TestEmailOverSMTP(t *testing.T) {
	t.Parallel()
	be, addr := startSMTP(t)
	h := newHarness(t, alerting.Config{
		DashboardURL: dash, DisableDefaults: true,
		Rules: []alerting.Rule{errorRateRule(func(r *alerting.Rule) {
			r.GroupBy = []string{"pipeline"}
			r.Annotations = map[string]string{"summary": "{{ .Labels.pipeline }} error rate {{ pct .Value }}", "runbook_url": "https://runbooks.example/errors"}
		})},
		Receivers: []alerting.Receiver{{
			Name: "mail", Type: alerting.TypeEmail, URL: "smtp://alerts:s3cret@" + addr,
			From: "jobcast@example.com", To: []string{"oncall@example.com", "team@example.com"},
		}},
	})
	now := h.clock.Now().Add(-time.Second)
	h.write(append(sessions(now, "csv_import", 1, 1), sessions(now, "ai_scan", 3, 1)...)...)
	h.eval(0)
	m := be.wait(t, 0)
	if m.user != "alerts" || m.from != "jobcast@example.com" || strings.Join(m.to, ",") != "oncall@example.com,team@example.com" {
		t.Fatalf("envelope %+v", m)
	}
	for _, want := range []string{
		"Subject: jobcast [FIRING:2] errors\r\n",
		"From: jobcast@example.com\r\n",
		"To: oncall@example.com, team@example.com\r\n",
		"Firing (2)\r\n",
		"- ai_scan error rate 25%\r\n",
		"- csv_import error rate 50%\r\n",
		"  rule errors, value 0.5, threshold > 0.05, window 10m\r\n",
		"  labels {pipeline=\"csv_import\"}\r\n",
		"  runbook https://runbooks.example/errors\r\n",
		"Dashboard: http://jobcast.example/dashboard?range=1h\r\n",
	} {
		if !strings.Contains(m.data, want) {
			t.Errorf("email lacks %q:\n%s", want, m.data)
		}
	}
	if strings.Contains(m.data, "Resolved") {
		t.Errorf("firing email has a resolved section:\n%s", m.data)
	}
	// csv_import clears; ai_scan keeps firing: the group's next email has
	// both sections.
	h.clock.Advance(time.Minute)
	h.write(sessions(h.clock.Now().Add(-time.Second), "csv_import", 100, 0)...)
	h.svc.Evaluate(t.Context())
	m = be.wait(t, 1)
	for _, want := range []string{"Subject: jobcast [FIRING:1] errors\r\n", "Firing (1)\r\n\r\n- ai_scan", "Resolved (1)\r\n\r\n- csv_import"} {
		if !strings.Contains(m.data, want) {
			t.Errorf("second email lacks %q:\n%s", want, m.data)
		}
	}
	if strings.Contains(m.data, "s3cret") {
		t.Error("email holds the SMTP password")
	}
}

// TestFailingAndHangingReceivers: a receiver answering 500 is retried with
// exponential backoff on the clock, a hanging one times out, and neither
// delays evaluation or the healthy receiver.
func TestFailingAndHangingReceivers(t *testing.T) {
	t.Parallel()
	failing := newRecorder(t, 500, false)
	hanging := newRecorder(t, 0, true)
	good := newRecorder(t, 200, false)
	h := newHarness(t, alerting.Config{
		DashboardURL: dash,
		Receivers: []alerting.Receiver{
			{Name: "failing", Type: alerting.TypeWebhook, URL: failing.srv.URL, MaxAttempts: 3},
			{Name: "hanging", Type: alerting.TypeSlack, URL: hanging.srv.URL, MaxAttempts: 1, Timeout: alerting.Duration(100 * time.Millisecond)},
			{Name: "good", Type: alerting.TypeSlack, URL: good.srv.URL},
		},
	})
	h.errorBurst("csv_import")
	start := time.Now()
	h.eval(0)
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("evaluation took %s with a hanging receiver", d)
	}
	good.wait(t, 0)
	hanging.wait(t, 0)
	failing.wait(t, 0)
	// The failing receiver waits 1 s (on the clock) before its 2nd try,
	// then 2 s before its 3rd.
	waitFor(t, "the first backoff timer", func() bool { return h.clock.Pending() == 1 })
	h.clock.Advance(999 * time.Millisecond)
	if n := failing.count(); n != 1 {
		t.Fatalf("%d attempts before the 1 s backoff passed", n)
	}
	h.clock.Advance(time.Millisecond)
	failing.wait(t, 1)
	waitFor(t, "the second backoff timer", func() bool { return h.clock.Pending() == 1 })
	h.clock.Advance(1999 * time.Millisecond)
	if n := failing.count(); n != 2 {
		t.Fatalf("%d attempts before the 2 s backoff passed", n)
	}
	h.clock.Advance(time.Millisecond)
	failing.wait(t, 2)
	recs := h.history(3)
	by := map[string]jobcast.NotificationRecord{}
	for _, r := range recs {
		by[r.Receiver] = r
	}
	if r := by["good"]; r.Outcome != jobcast.NotifySent || r.Attempts != 1 {
		t.Errorf("good: %+v", r)
	}
	if r := by["hanging"]; r.Outcome != jobcast.NotifyFailed || r.Error != "timed out after 100ms" {
		t.Errorf("hanging: %+v", r)
	}
	if r := by["failing"]; r.Outcome != jobcast.NotifyFailed || r.Attempts != 3 || r.Error != "HTTP 500" {
		t.Errorf("failing: %+v", r)
	}
	// Evaluation went on meanwhile, and the next one is not held up either.
	start = time.Now()
	h.eval(30 * time.Second)
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("evaluation took %s", d)
	}
}

// TestRateLimit: a receiver limited to 2 notifications a minute holds the
// third until the minute passed on the clock.
func TestRateLimit(t *testing.T) {
	t.Parallel()
	rec := newRecorder(t, 200, false)
	h := newHarness(t, alerting.Config{
		DisableDefaults: true,
		Rules:           []alerting.Rule{errorRateRule(func(r *alerting.Rule) { r.GroupBy = []string{"pipeline"} })},
		Receivers:       []alerting.Receiver{{Name: "hook", Type: alerting.TypeWebhook, URL: rec.srv.URL, RateLimit: 2}},
		Routes:          []alerting.Route{{Receiver: "hook", GroupBy: []string{"pipeline"}}},
	})
	now := h.clock.Now().Add(-time.Second)
	h.write(append(append(sessions(now, "a", 0, 1), sessions(now, "b", 0, 1)...), sessions(now, "c", 0, 1)...)...)
	h.eval(0)
	rec.wait(t, 1)
	waitFor(t, "the rate limit timer", func() bool { return h.clock.Pending() == 1 })
	if n := rec.count(); n != 2 {
		t.Fatalf("%d notifications within the limit of 2", n)
	}
	h.clock.Advance(time.Minute)
	rec.wait(t, 2)
}

// TestSilence: a matching silence mutes the notification (the alert still
// fires and shows as silenced); expiring it lets the notification out.
func TestSilence(t *testing.T) {
	t.Parallel()
	rec := newRecorder(t, 200, false)
	h := newHarness(t, alerting.Config{Receivers: []alerting.Receiver{{Name: "hook", Type: alerting.TypeWebhook, URL: rec.srv.URL}}})
	m, err := alerting.ParseMatcher(`alertname="error_rate_high"`)
	if err != nil {
		t.Fatal(err)
	}
	sil, err := h.svc.AddSilence(t.Context(), jobcast.Silence{Matchers: []jobcast.Matcher{m}, EndsAt: h.clock.Now().Add(time.Hour), CreatedBy: "test", Comment: "deploy"})
	if err != nil {
		t.Fatal(err)
	}
	h.errorBurst("csv_import")
	h.eval(0)
	snap, err := h.svc.Snapshot(t.Context(), 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Silenced) != 1 || len(snap.Firing) != 0 || snap.Silenced[0].SilencedBy[0] != sil.ID || snap.Silenced[0].State != jobcast.AlertFiring {
		t.Fatalf("snapshot %+v", snap)
	}
	h.eval(30 * time.Second)
	if _, err := h.svc.ExpireSilence(t.Context(), sil.ID); err != nil {
		t.Fatal(err)
	}
	h.eval(30 * time.Second)
	var msg alerting.WebhookMessage
	if err := json.Unmarshal(rec.wait(t, 0), &msg); err != nil || msg.Status != "firing" {
		t.Fatalf("after expiry: %+v (%v)", msg, err)
	}
	if recs := h.history(1); len(recs) != 1 {
		t.Fatalf("history %+v: the silenced evaluations sent something", recs)
	}
	// Silences persist.
	sils, err := h.store.ListSilences(t.Context())
	if err != nil || len(sils) != 1 || !sils[0].EndsAt.Equal(h.clock.Now().Add(-30*time.Second)) {
		t.Fatalf("stored silences %+v (%v)", sils, err)
	}
	if _, err := h.svc.ExpireSilence(t.Context(), "nope"); !errors.Is(err, alerting.ErrSilenceNotFound) {
		t.Fatalf("expire unknown: %v", err)
	}
}

// TestRestartWhileFiring: after a restart the alert is still firing (same
// FiredAt), nothing is sent again, and the resolution still reaches the
// receiver that got the firing notification.
func TestRestartWhileFiring(t *testing.T) {
	t.Parallel()
	rec := newRecorder(t, 200, false)
	h := newHarness(t, alerting.Config{Receivers: []alerting.Receiver{{Name: "hook", Type: alerting.TypeWebhook, URL: rec.srv.URL}}})
	h.errorBurst("csv_import")
	h.eval(0)
	rec.wait(t, 0)
	h.history(1)
	before := h.svc.Alerts()
	h.close()

	h.clock.Advance(time.Minute)
	h.open()
	if got := h.svc.Alerts(); len(got) != 1 || got[0].State != jobcast.AlertFiring || !got[0].FiredAt.Equal(before[0].FiredAt) {
		t.Fatalf("after restart, before evaluating: %+v", got)
	}
	h.errorBurst("csv_import")
	h.svc.Evaluate(t.Context())
	if got := h.svc.Alerts(); len(got) != 1 || got[0].State != jobcast.AlertFiring || !got[0].FiredAt.Equal(t0) {
		t.Fatalf("after restart: %+v", got)
	}
	h.eval(11 * time.Minute)
	var msg alerting.WebhookMessage
	if err := json.Unmarshal(rec.wait(t, 1), &msg); err != nil || msg.Status != "resolved" {
		t.Fatalf("second notification %+v (%v), want the resolution", msg, err)
	}
	if n := rec.count(); n != 2 {
		t.Fatalf("%d notifications, want 2", n)
	}
}

// TestReceiverTest sends `jobcast alerts test` notifications.
func TestReceiverTest(t *testing.T) {
	t.Parallel()
	ok := newRecorder(t, 200, false)
	broken := newRecorder(t, 403, false)
	h := newHarness(t, alerting.Config{Receivers: []alerting.Receiver{
		{Name: "slack", Type: alerting.TypeSlack, URL: ok.srv.URL + "/hook/secret-path"},
		{Name: "broken", Type: alerting.TypeSlack, URL: broken.srv.URL + "/hook/secret-path"},
	}})
	if err := h.svc.Test(t.Context(), "slack"); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(ok.wait(t, 0), []byte("[TEST")) {
		t.Fatalf("test payload %s", ok.bodies[0])
	}
	err := h.svc.Test(t.Context(), "broken")
	if err == nil || jobcast.ErrorMessage(err) != "receiver broken: HTTP 403" {
		t.Fatalf("broken receiver: %v", err)
	}
	if err := h.svc.Test(t.Context(), "nope"); jobcast.ErrorCode(err) != "E_NOT_FOUND" {
		t.Fatalf("unknown receiver: %v", err)
	}
	recs := h.history(2)
	if recs[0].Status != "test" || recs[1].Outcome != jobcast.NotifyFailed || strings.Contains(recs[1].Error, "secret") {
		t.Fatalf("history %+v", recs)
	}
}
