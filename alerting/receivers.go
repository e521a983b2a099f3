package alerting

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/smtp"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/jobcast/jobcast"
)

// notifier sends one notification. Its errors never hold the receiver's
// URL, key or password: they go to the history and the log.
type notifier interface {
	Notify(ctx context.Context, n *Notification) error
}

func newNotifier(s *Service, rc Receiver) notifier {
	client := s.opt.HTTPClient
	switch rc.Type {
	case TypeSlack:
		return &slackNotifier{rc: rc, client: client}
	case TypePagerDuty:
		return &pagerDutyNotifier{rc: rc, client: client}
	case TypeEmail:
		return &emailNotifier{rc: rc}
	case TypeAlertmanager:
		return &alertmanagerNotifier{rc: rc, client: client, resend: DefaultResendInterval}
	default:
		return &webhookNotifier{rc: rc, client: client}
	}
}

// postJSON posts body and maps the answer: 2xx is success, 429 and 5xx are
// worth a retry, any other status is permanent.
func postJSON(ctx context.Context, client *http.Client, target string, headers map[string]string, body any) error {
	data, err := json.Marshal(body)
	if err != nil {
		return &permanentError{msg: "encode: " + err.Error()}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(data))
	if err != nil {
		return &permanentError{msg: "bad receiver URL"}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "jobcast-alerting")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		// *url.Error quotes the URL, which may hold a secret (a Slack
		// webhook's path): keep only the cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("request failed: %v", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	default:
		return &permanentError{msg: fmt.Sprintf("HTTP %d", resp.StatusCode)}
	}
}

// describe is an alert's one-line text: its summary, or rule, value and
// threshold.
func describe(a AlertView) string {
	if s := a.Annotations["summary"]; s != "" {
		return s
	}
	return fmt.Sprintf("%s: value %s %s %s", a.Rule, trimFloat(a.Value, 4), a.Op, trimFloat(a.Threshold, 4))
}

// otherLabels lists an alert's labels other than alertname and severity.
func otherLabels(a AlertView) string {
	l := maps.Clone(a.Labels)
	delete(l, "alertname")
	delete(l, "severity")
	if len(l) == 0 {
		return ""
	}
	return formatLabels(l)
}

// --- Slack ---

type slackNotifier struct {
	rc     Receiver
	client *http.Client
}

// slackMaxAlerts bounds the alerts a Slack message details; Slack caps a
// message at 50 blocks.
const slackMaxAlerts = 10

// slackPayload builds the incoming-webhook body: text is the fallback
// notifications and old clients show; blocks are the rich message: a
// header, one section per alert with its value, threshold and window, and
// a button to the dashboard filtered to the alert.
func slackPayload(n *Notification) map[string]any {
	title := n.title()
	if n.Status == "test" {
		title = "[TEST] jobcast_test"
	}
	var lines []string
	for _, a := range n.Alerts {
		lines = append(lines, fmt.Sprintf("%s %s", strings.ToUpper(a.Status), describe(a)))
	}
	text := title + "\n" + strings.Join(lines, "\n")
	blocks := []any{
		map[string]any{"type": "header", "text": map[string]any{"type": "plain_text", "text": title}},
	}
	for i, a := range n.Alerts {
		if i == slackMaxAlerts {
			blocks = append(blocks, map[string]any{"type": "context", "elements": []any{
				map[string]any{"type": "mrkdwn", "text": fmt.Sprintf("and %d more", len(n.Alerts)-slackMaxAlerts)},
			}})
			break
		}
		head := fmt.Sprintf("*%s* %s", strings.ToUpper(a.Status), describe(a))
		if d := a.Annotations["description"]; d != "" {
			head += "\n" + d
		}
		if lb := otherLabels(a); lb != "" {
			head += "\n`" + lb + "`"
		}
		fields := []any{
			map[string]any{"type": "mrkdwn", "text": "*Value*\n" + trimFloat(a.Value, 4)},
			map[string]any{"type": "mrkdwn", "text": "*Threshold*\n" + a.Op + " " + trimFloat(a.Threshold, 4)},
			map[string]any{"type": "mrkdwn", "text": "*Window*\n" + a.Window.String()},
			map[string]any{"type": "mrkdwn", "text": "*Severity*\n" + a.Labels["severity"]},
		}
		blocks = append(blocks, map[string]any{"type": "section", "text": map[string]any{"type": "mrkdwn", "text": head}, "fields": fields})
		if rb := a.Annotations["runbook_url"]; rb != "" {
			blocks = append(blocks, map[string]any{"type": "context", "elements": []any{
				map[string]any{"type": "mrkdwn", "text": "<" + rb + "|Runbook>"},
			}})
		}
	}
	blocks = append(blocks, map[string]any{"type": "actions", "elements": []any{
		map[string]any{"type": "button", "text": map[string]any{"type": "plain_text", "text": "Open dashboard"}, "url": n.DashboardURL},
	}})
	return map[string]any{"text": text, "blocks": blocks}
}

func (s *slackNotifier) Notify(ctx context.Context, n *Notification) error {
	return postJSON(ctx, s.client, s.rc.URL, s.rc.Headers, slackPayload(n))
}

// --- PagerDuty Events API v2 ---

type pagerDutyNotifier struct {
	rc     Receiver
	client *http.Client
}

// pagerDutySeverity maps a rule severity onto the Events API's: critical,
// error, warning or info.
func pagerDutySeverity(s string) string {
	switch s {
	case "critical", "warning", "info", "error":
		return s
	}
	return "error"
}

// pagerDutyDedupKey is the same for a group's trigger and its resolve, so
// that PagerDuty resolves the incident the trigger opened.
func pagerDutyDedupKey(groupKey string) string {
	h := sha256.Sum256([]byte(groupKey))
	return "jobcast-" + hex.EncodeToString(h[:16])
}

// pagerDutyEvent builds the Events API v2 body for n.
func pagerDutyEvent(routingKey string, n *Notification) map[string]any {
	ev := map[string]any{
		"routing_key": routingKey,
		"dedup_key":   pagerDutyDedupKey(n.GroupKey),
	}
	if n.Status == jobcast.AlertResolved {
		ev["event_action"] = "resolve"
		return ev
	}
	ev["event_action"] = "trigger"
	firing := n.Firing()
	sev := "info"
	rank := map[string]int{"info": 0, "warning": 1, "error": 2, "critical": 3}
	details := map[string]any{}
	for _, a := range firing {
		if s := pagerDutySeverity(a.Labels["severity"]); rank[s] > rank[sev] {
			sev = s
		}
		key := a.Rule
		if lb := otherLabels(a); lb != "" {
			key += " " + lb
		}
		details[key] = fmt.Sprintf("value %s %s %s over %s", trimFloat(a.Value, 4), a.Op, trimFloat(a.Threshold, 4), a.Window)
	}
	summary := n.title()
	if len(firing) > 0 {
		summary += ": " + describe(firing[0])
	}
	if len(summary) > 1024 {
		summary = summary[:1024]
	}
	payload := map[string]any{
		"summary":        summary,
		"source":         "jobcast",
		"severity":       sev,
		"timestamp":      n.At.UTC().Format(time.RFC3339),
		"class":          "jobcast alert",
		"custom_details": details,
	}
	if len(firing) > 0 {
		payload["group"] = firing[0].Rule
		if p := firing[0].Labels["pipeline"]; p != "" {
			payload["component"] = p
		}
	}
	ev["payload"] = payload
	ev["client"] = "jobcast"
	ev["client_url"] = n.DashboardURL
	ev["links"] = []any{map[string]any{"href": n.DashboardURL, "text": "jobcast dashboard"}}
	return ev
}

func (p *pagerDutyNotifier) Notify(ctx context.Context, n *Notification) error {
	if err := postJSON(ctx, p.client, p.rc.URL, p.rc.Headers, pagerDutyEvent(p.rc.RoutingKey, n)); err != nil {
		return err
	}
	if n.Status == "test" {
		// A test must not leave an incident open: resolve what it opened.
		return postJSON(ctx, p.client, p.rc.URL, p.rc.Headers, map[string]any{
			"routing_key": p.rc.RoutingKey, "dedup_key": pagerDutyDedupKey(n.GroupKey), "event_action": "resolve",
		})
	}
	return nil
}

// --- generic webhook ---

type webhookNotifier struct {
	rc     Receiver
	client *http.Client
}

// WebhookMessage is the generic webhook's body, close to Alertmanager's
// webhook format so that existing consumers read it.
type WebhookMessage struct {
	Version      string            `json:"version"`
	Receiver     string            `json:"receiver"`
	Status       string            `json:"status"`
	GroupKey     string            `json:"groupKey"`
	GroupLabels  map[string]string `json:"groupLabels"`
	CommonLabels map[string]string `json:"commonLabels"`
	Title        string            `json:"title"`
	DashboardURL string            `json:"dashboardURL"`
	Alerts       []AlertView       `json:"alerts"`
}

func webhookMessage(n *Notification) WebhookMessage {
	common := map[string]string{}
	for i, a := range n.Alerts {
		if i == 0 {
			maps.Copy(common, a.Labels)
			continue
		}
		for k, v := range common {
			if a.Labels[k] != v {
				delete(common, k)
			}
		}
	}
	return WebhookMessage{
		Version: "1", Receiver: n.Receiver, Status: n.Status, GroupKey: n.GroupKey,
		GroupLabels: n.GroupLabels, CommonLabels: common, Title: n.title(),
		DashboardURL: n.DashboardURL, Alerts: n.Alerts,
	}
}

func (w *webhookNotifier) Notify(ctx context.Context, n *Notification) error {
	return postJSON(ctx, w.client, w.rc.URL, w.rc.Headers, webhookMessage(n))
}

// --- Alertmanager API v2 ---

type alertmanagerNotifier struct {
	rc     Receiver
	client *http.Client
	resend time.Duration
}

// alertmanagerAlerts builds the body of POST /api/v2/alerts. A firing
// alert's endsAt lies four resend intervals ahead, as Prometheus sets it:
// if jobcast stops re-sending, Alertmanager resolves the alert by itself.
func alertmanagerAlerts(n *Notification, resend time.Duration) []any {
	var out []any
	for _, a := range n.Alerts {
		ends := a.EndsAt
		if a.Status == jobcast.AlertFiring {
			ends = n.At.Add(4 * resend)
		}
		ann := maps.Clone(a.Annotations)
		if ann == nil {
			ann = map[string]string{}
		}
		ann["value"] = trimFloat(a.Value, 6)
		out = append(out, map[string]any{
			"labels":       a.Labels,
			"annotations":  ann,
			"startsAt":     a.StartsAt.UTC().Format(time.RFC3339),
			"endsAt":       ends.UTC().Format(time.RFC3339),
			"generatorURL": a.DashboardURL,
		})
	}
	return out
}

func (m *alertmanagerNotifier) Notify(ctx context.Context, n *Notification) error {
	return postJSON(ctx, m.client, strings.TrimRight(m.rc.URL, "/")+"/api/v2/alerts", m.rc.Headers, alertmanagerAlerts(n, m.resend))
}

// --- email (SMTP) ---

type emailNotifier struct {
	rc Receiver
}

// emailSubject carries the status and the count: "[FIRING:2] error_rate_high".
func emailSubject(n *Notification) string {
	if n.Status == "test" {
		return "[TEST] jobcast test notification"
	}
	return "jobcast " + n.title()
}

// emailBody has a firing section, a resolved section and the dashboard
// link, in plain text.
func emailBody(n *Notification) string {
	var b strings.Builder
	section := func(title string, alerts []AlertView) {
		if len(alerts) == 0 {
			return
		}
		fmt.Fprintf(&b, "%s (%d)\n\n", title, len(alerts))
		for _, a := range alerts {
			fmt.Fprintf(&b, "- %s\n", describe(a))
			fmt.Fprintf(&b, "  rule %s, value %s, threshold %s %s, window %s\n", a.Rule, trimFloat(a.Value, 4), a.Op, trimFloat(a.Threshold, 4), a.Window)
			if lb := otherLabels(a); lb != "" {
				fmt.Fprintf(&b, "  labels %s\n", lb)
			}
			if d := a.Annotations["description"]; d != "" {
				fmt.Fprintf(&b, "  %s\n", d)
			}
			if rb := a.Annotations["runbook_url"]; rb != "" {
				fmt.Fprintf(&b, "  runbook %s\n", rb)
			}
			fmt.Fprintf(&b, "  since %s\n", a.StartsAt.UTC().Format(time.RFC3339))
		}
		b.WriteString("\n")
	}
	section("Firing", n.Firing())
	section("Resolved", n.Resolved())
	fmt.Fprintf(&b, "Dashboard: %s\n", n.DashboardURL)
	return b.String()
}

// emailMessage is the RFC 5322 message.
func emailMessage(rc Receiver, n *Notification) []byte {
	var b bytes.Buffer
	h := func(k, v string) {
		fmt.Fprintf(&b, "%s: %s\r\n", k, strings.NewReplacer("\r", "", "\n", "").Replace(v))
	}
	h("From", rc.From)
	h("To", strings.Join(rc.To, ", "))
	h("Subject", emailSubject(n))
	h("Date", n.At.UTC().Format(time.RFC1123Z))
	h("MIME-Version", "1.0")
	h("Content-Type", "text/plain; charset=utf-8")
	h("Content-Transfer-Encoding", "8bit")
	b.WriteString("\r\n")
	b.WriteString(strings.ReplaceAll(emailBody(n), "\n", "\r\n"))
	return b.Bytes()
}

func (e *emailNotifier) Notify(ctx context.Context, n *Notification) error {
	u, err := url.Parse(e.rc.URL)
	if err != nil {
		return &permanentError{msg: "bad SMTP URL"}
	}
	host := u.Hostname()
	port := u.Port()
	if port == "" {
		port = map[string]string{"smtps": "465"}[u.Scheme]
		if port == "" {
			port = "587"
		}
	}
	addr := net.JoinHostPort(host, port)
	tlsCfg := &tls.Config{ServerName: host, InsecureSkipVerify: e.rc.InsecureSkipVerify, MinVersion: tls.VersionTLS12} //nolint:gosec // opt-in, for tests and private relays
	d := net.Dialer{}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("SMTP connect: %v", err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	var c *smtp.Client
	if u.Scheme == "smtps" {
		c, err = smtp.NewClient(tls.Client(conn, tlsCfg), host)
	} else {
		c, err = smtp.NewClient(conn, host)
	}
	if err != nil {
		conn.Close()
		return fmt.Errorf("SMTP greeting: %v", err)
	}
	defer c.Close()
	if err := c.Hello("jobcast"); err != nil {
		return fmt.Errorf("SMTP hello: %v", err)
	}
	if u.Scheme == "smtp" && e.rc.StartTLS != "off" {
		if ok, _ := c.Extension("STARTTLS"); ok {
			if err := c.StartTLS(tlsCfg); err != nil {
				return fmt.Errorf("SMTP STARTTLS: %v", err)
			}
		} else if e.rc.StartTLS == "require" {
			return &permanentError{msg: "SMTP server does not offer STARTTLS (startTLS: require)"}
		}
	}
	if u.User != nil {
		pass, _ := u.User.Password()
		// PlainAuth refuses to send the password over a connection without
		// TLS, except to localhost.
		if err := c.Auth(smtp.PlainAuth("", u.User.Username(), pass, host)); err != nil {
			return &permanentError{msg: "SMTP auth: " + err.Error()}
		}
	}
	if err := c.Mail(e.rc.From); err != nil {
		return fmt.Errorf("SMTP MAIL FROM: %v", err)
	}
	for _, to := range e.rc.To {
		if err := c.Rcpt(to); err != nil {
			return fmt.Errorf("SMTP RCPT TO: %v", err)
		}
	}
	wc, err := c.Data()
	if err != nil {
		return fmt.Errorf("SMTP DATA: %v", err)
	}
	if _, err := wc.Write(emailMessage(e.rc, n)); err != nil {
		return fmt.Errorf("SMTP DATA: %v", err)
	}
	if err := wc.Close(); err != nil {
		return fmt.Errorf("SMTP DATA: %v", err)
	}
	_ = c.Quit()
	return nil
}

// receiverInfo is a receiver as the API lists it: no URL, no key.
type receiverInfo struct {
	Name         string `json:"name"`
	Type         string `json:"type"`
	RateLimit    int    `json:"rateLimit"`
	MaxAttempts  int    `json:"maxAttempts"`
	Timeout      string `json:"timeout"`
	SendResolved bool   `json:"sendResolved"`
}

func receiverInfos(cc *compiled) []receiverInfo {
	names := slices.Sorted(maps.Keys(cc.receivers))
	out := make([]receiverInfo, 0, len(names))
	for _, n := range names {
		r := cc.receivers[n]
		out = append(out, receiverInfo{Name: r.Name, Type: r.Type, RateLimit: r.RateLimit, MaxAttempts: r.MaxAttempts, Timeout: r.Timeout.String(), SendResolved: sendResolved(r)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
