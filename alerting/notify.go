package alerting

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jobcast/jobcast"
)

// queueLen bounds a receiver's queue; a full queue drops (and records) the
// notification rather than block evaluation.
const queueLen = 64

// Notification is one message to one receiver: the alerts of one group,
// firing first, then the ones that resolved since the last message.
type Notification struct {
	Receiver string
	// Status is firing when any alert fires, else resolved; test for
	// `jobcast alerts test`.
	Status      string
	GroupKey    string
	GroupLabels map[string]string
	Alerts      []AlertView
	// DashboardURL is the dashboard filtered to the group.
	DashboardURL string
	At           time.Time
}

// AlertView is an alert as receivers show it.
type AlertView struct {
	Fingerprint  string            `json:"fingerprint"`
	Status       string            `json:"status"`
	Rule         string            `json:"rule"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	Value        float64           `json:"value"`
	Op           string            `json:"op"`
	Threshold    float64           `json:"threshold"`
	Window       Duration          `json:"window"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt,omitzero"`
	DashboardURL string            `json:"dashboardURL"`
}

// Firing returns the firing alerts.
func (n *Notification) Firing() []AlertView { return n.with(jobcast.AlertFiring) }

// Resolved returns the resolved alerts.
func (n *Notification) Resolved() []AlertView { return n.with(jobcast.AlertResolved) }

func (n *Notification) with(status string) []AlertView {
	var out []AlertView
	for _, a := range n.Alerts {
		if a.Status == status {
			out = append(out, a)
		}
	}
	return out
}

// title is the one-line subject: "[FIRING:2] error_rate_high", as
// Alertmanager's default templates write it.
func (n *Notification) title() string {
	names := map[string]bool{}
	var list []string
	for _, a := range n.Alerts {
		if !names[a.Rule] {
			names[a.Rule] = true
			list = append(list, a.Rule)
		}
	}
	status := strings.ToUpper(n.Status)
	count := len(n.Firing())
	if n.Status == jobcast.AlertResolved {
		count = len(n.Resolved())
	}
	return fmt.Sprintf("[%s:%d] %s", status, count, strings.Join(list, ", "))
}

// group collects the alerts of one notification while dispatch runs.
type group struct {
	route    *compiledRoute
	receiver string
	key      string
	labels   map[string]string
	firing   []*jobcast.AlertInstance
	resolved []*jobcast.AlertInstance
	need     bool
}

// dispatch decides what to send after an evaluation: per route and group,
// a notification when an alert started firing, when the repeat interval of
// one passed, or when one resolved; every firing alert of the group rides
// along. It records what it hands out in the alerts (Sent, ResolvedSent),
// so a restart does not send it again. s.mu is held.
func (s *Service) dispatch(cc *compiled, now time.Time) []*Notification {
	fps := make([]string, 0, len(s.alerts))
	for fp := range s.alerts {
		fps = append(fps, fp)
	}
	sort.Strings(fps)
	groups := map[string]*group{}
	var order []string
	for _, fp := range fps {
		a := s.alerts[fp]
		if a.State == jobcast.AlertPending {
			continue
		}
		silenced := len(s.silencedBy(a.Labels, now)) > 0
		for i := range cc.routes {
			rt := &cc.routes[i]
			if !matchAll(rt.matchers, a.Labels) {
				continue
			}
			rc := cc.receivers[rt.Receiver]
			gl := map[string]string{}
			for _, l := range rt.GroupBy {
				gl[l] = a.Labels[l]
			}
			key := rt.Receiver + ":" + formatLabels(gl)
			g := groups[key]
			if g == nil {
				g = &group{route: rt, receiver: rt.Receiver, key: key, labels: gl}
				groups[key] = g
				order = append(order, key)
			}
			repeat := rt.repeatInterval
			if rc.Type == TypeAlertmanager {
				repeat = min(repeat, DefaultResendInterval)
			}
			switch a.State {
			case jobcast.AlertFiring:
				if silenced {
					break
				}
				g.firing = append(g.firing, a)
				if last, ok := a.Sent[rt.Receiver]; !ok || now.Sub(last) >= repeat {
					g.need = true
				}
			case jobcast.AlertResolved:
				if _, ok := a.Sent[rt.Receiver]; ok && !a.ResolvedSent[rt.Receiver] && sendResolved(rc) {
					g.resolved = append(g.resolved, a)
					g.need = true
				}
			}
			if !rt.Continue {
				break
			}
		}
	}
	var out []*Notification
	for _, key := range order {
		g := groups[key]
		if !g.need {
			continue
		}
		n := &Notification{Receiver: g.receiver, GroupKey: g.key, GroupLabels: g.labels, At: now, Status: jobcast.AlertResolved}
		if len(g.firing) > 0 {
			n.Status = jobcast.AlertFiring
		}
		var window time.Duration
		for _, a := range append(g.firing, g.resolved...) {
			v := s.view(cc, a)
			window = max(window, v.Window.D())
			n.Alerts = append(n.Alerts, v)
		}
		n.DashboardURL = dashboardLink(cc.cfg.DashboardURL, window, g.labels)
		for _, a := range g.firing {
			if a.Sent == nil {
				a.Sent = map[string]time.Time{}
			}
			a.Sent[g.receiver] = now
		}
		for _, a := range g.resolved {
			if a.ResolvedSent == nil {
				a.ResolvedSent = map[string]bool{}
			}
			a.ResolvedSent[g.receiver] = true
		}
		out = append(out, n)
	}
	return out
}

func sendResolved(rc *Receiver) bool { return rc.SendResolved == nil || *rc.SendResolved }

// view describes alert a with its rule's threshold and window.
func (s *Service) view(cc *compiled, a *jobcast.AlertInstance) AlertView {
	v := AlertView{
		Fingerprint: a.Fingerprint, Status: a.State, Rule: a.Rule,
		Labels: cloneMap(a.Labels), Annotations: cloneMap(a.Annotations),
		Value: a.Value, StartsAt: a.FiredAt, EndsAt: a.ResolvedAt,
	}
	if v.StartsAt.IsZero() {
		v.StartsAt = a.ActiveAt
	}
	for _, r := range cc.all {
		if r.Name == a.Rule {
			v.Op, v.Threshold, v.Window = r.Op, r.Threshold, r.Window
			break
		}
	}
	v.DashboardURL = dashboardLink(cc.cfg.DashboardURL, v.Window.D(), a.Labels)
	return v
}

// formatLabels writes a label set as {a="1", b="2"}, sorted.
func formatLabels(l map[string]string) string {
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%q", k, l[k])
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// enqueue hands n to its receiver's worker without waiting.
func (s *Service) enqueue(n *Notification) {
	s.mu.Lock()
	w := s.workers[n.Receiver]
	s.mu.Unlock()
	if w == nil {
		return
	}
	select {
	case w.q <- n:
	default:
		s.record(context.Background(), w.rc, n, jobcast.NotifyDropped, 0, errors.New("the receiver's queue is full"))
	}
}

// record appends one history line.
func (s *Service) record(ctx context.Context, rc Receiver, n *Notification, outcome string, attempts int, err error) {
	r := jobcast.NotificationRecord{
		At: s.clock.Now(), Receiver: rc.Name, Type: rc.Type, Status: n.Status, GroupKey: n.GroupKey,
		Outcome: outcome, Attempts: attempts,
	}
	for _, a := range n.Alerts {
		r.Alerts = append(r.Alerts, jobcast.NotifiedAlert{Fingerprint: a.Fingerprint, Rule: a.Rule, Labels: a.Labels, State: a.Status, Value: a.Value})
	}
	if err != nil {
		r.Error = safeError(err)
	}
	if _, err := s.store.AppendNotification(ctx, r); err != nil {
		s.log.Error("alerting: recording a notification failed", "receiver", rc.Name, "err", err)
	}
	level := s.log.Info
	if outcome != jobcast.NotifySent {
		level = s.log.Warn
	}
	level("alerting: notification", "receiver", rc.Name, "status", n.Status, "alerts", len(n.Alerts), "outcome", outcome, "attempts", attempts, "err", r.Error)
}

// worker delivers one receiver's notifications, one at a time, from its
// own queue: retries, backoff and the rate limit wait here and nowhere
// else.
type worker struct {
	s       *Service
	rc      Receiver
	n       notifier
	q       chan *Notification
	ctx     context.Context
	cancel  context.CancelFunc
	done    chan struct{}
	once    sync.Once
	recent  []time.Time // send times within the last minute (rate limit)
	backoff time.Duration
}

func newWorker(s *Service, rc Receiver) *worker {
	ctx, cancel := context.WithCancel(context.Background())
	return &worker{
		s: s, rc: rc, n: newNotifier(s, rc), q: make(chan *Notification, queueLen),
		ctx: ctx, cancel: cancel, done: make(chan struct{}), backoff: time.Second,
	}
}

func (w *worker) run() {
	defer close(w.done)
	for {
		select {
		case <-w.ctx.Done():
			return
		case n := <-w.q:
			w.deliver(n)
		}
	}
}

// close stops the worker, aborting a delivery in flight, and waits.
func (w *worker) close() {
	w.once.Do(w.cancel)
	<-w.done
}

// sleep waits d on the service's clock, or until the worker stops.
func (w *worker) sleep(d time.Duration) bool {
	ch := make(chan struct{})
	t := w.s.clock.AfterFunc(d, func() { close(ch) })
	select {
	case <-ch:
		return true
	case <-w.ctx.Done():
		t.Stop()
		return false
	}
}

// waitRate blocks until the receiver may send again within its limit.
func (w *worker) waitRate() bool {
	for {
		now := w.s.clock.Now()
		keep := w.recent[:0]
		for _, t := range w.recent {
			if now.Sub(t) < time.Minute {
				keep = append(keep, t)
			}
		}
		w.recent = keep
		if len(w.recent) < w.rc.RateLimit {
			w.recent = append(w.recent, now)
			return true
		}
		if !w.sleep(w.recent[0].Add(time.Minute).Sub(now)) {
			return false
		}
	}
}

func (w *worker) deliver(n *Notification) {
	if !w.waitRate() {
		return
	}
	backoff := w.backoff
	var err error
	attempts := 0
	for attempts < w.rc.MaxAttempts {
		attempts++
		ctx, cancel := context.WithTimeout(w.ctx, w.rc.Timeout.D())
		err = w.n.Notify(ctx, n)
		timedOut := ctx.Err() == context.DeadlineExceeded
		cancel()
		if err == nil {
			break
		}
		if timedOut {
			err = fmt.Errorf("timed out after %s", w.rc.Timeout)
		}
		var pe *permanentError
		if errors.As(err, &pe) || attempts == w.rc.MaxAttempts {
			break
		}
		// Each failed try is logged as it happens: with the default
		// 5 tries the history line comes only after about 15 s of
		// backoff, and a receiver that hangs takes a timeout per try.
		w.s.log.Warn("alerting: notification attempt failed; retrying", "receiver", w.rc.Name, "status", n.Status,
			"attempt", attempts, "of", w.rc.MaxAttempts, "retry_in", backoff, "err", safeError(err))
		if !w.sleep(backoff) {
			return // stopping
		}
		backoff = min(2*backoff, time.Minute)
	}
	outcome := jobcast.NotifySent
	if err != nil {
		outcome = jobcast.NotifyFailed
	}
	w.s.record(context.Background(), w.rc, n, outcome, attempts, err)
}

// permanentError is a failure a retry cannot fix (a 4xx answer).
type permanentError struct{ msg string }

func (e *permanentError) Error() string { return e.msg }

// safeError is the history's description of err: the notifiers build their
// errors without URLs, keys or passwords, so this only trims it.
func safeError(err error) string {
	s := err.Error()
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// Test sends a test notification to the receiver named name now, once,
// and records it in the history with status test.
func (s *Service) Test(ctx context.Context, name string) error {
	s.mu.Lock()
	cc := s.cc
	s.mu.Unlock()
	rc, ok := cc.receivers[name]
	if !ok {
		names := make([]string, 0, len(cc.receivers))
		for n := range cc.receivers {
			names = append(names, n)
		}
		sort.Strings(names)
		return jobcast.Errorf("E_NOT_FOUND", "no receiver %q (configured: %s)", name, strings.Join(names, ", "))
	}
	now := s.clock.Now()
	labels := map[string]string{"alertname": "jobcast_test", "severity": "info"}
	n := &Notification{
		Receiver: name, Status: "test", GroupKey: name + ":" + formatLabels(map[string]string{"alertname": "jobcast_test"}),
		GroupLabels: map[string]string{"alertname": "jobcast_test"}, At: now,
		DashboardURL: dashboardLink(cc.cfg.DashboardURL, time.Hour, nil),
		Alerts: []AlertView{{
			Fingerprint: fingerprint(labels), Status: jobcast.AlertFiring, Rule: "jobcast_test", Labels: labels,
			Annotations: map[string]string{"summary": "Test notification from jobcast: this receiver works."},
			Op:          ">", Window: Duration(time.Hour), StartsAt: now,
			DashboardURL: dashboardLink(cc.cfg.DashboardURL, time.Hour, nil),
		}},
	}
	nt := newNotifier(s, *rc)
	tctx, cancel := context.WithTimeout(ctx, rc.Timeout.D())
	err := nt.Notify(tctx, n)
	if err != nil && tctx.Err() == context.DeadlineExceeded {
		err = fmt.Errorf("timed out after %s", rc.Timeout)
	}
	cancel()
	outcome := jobcast.NotifySent
	if err != nil {
		outcome = jobcast.NotifyFailed
	}
	s.record(ctx, *rc, n, outcome, 1, err)
	if err != nil {
		return jobcast.Errorf("E_RECEIVER_FAILED", "receiver %s: %s", name, safeError(err))
	}
	return nil
}
