package jobcast

import (
	"context"
	"time"
)

// Alert states (SPEC §6), as Prometheus names them: a rule whose condition
// holds is pending until it has held for the rule's `for`, then firing; a
// firing alert whose condition clears is resolved (kept a while so that the
// resolved notification goes out and the history shows it), then forgotten.
const (
	AlertPending  = "pending"
	AlertFiring   = "firing"
	AlertResolved = "resolved"
)

// Notification outcomes in the history.
const (
	NotifySent    = "sent"
	NotifyFailed  = "failed"
	NotifyDropped = "dropped"
)

// AlertInstance is one alert: a rule and one label set (one per group-by
// value). Its Fingerprint, a hash of Labels, is its identity across
// evaluations and restarts.
type AlertInstance struct {
	Fingerprint string            `json:"fingerprint"`
	Rule        string            `json:"rule"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations,omitempty"`
	State       string            `json:"state"`
	Value       float64           `json:"value"`
	// ActiveAt is when the condition started to hold (pending since).
	ActiveAt time.Time `json:"activeAt"`
	// FiredAt is when the alert started firing; zero while pending.
	FiredAt time.Time `json:"firedAt,omitzero"`
	// ResolvedAt is when a firing alert's condition cleared.
	ResolvedAt time.Time `json:"resolvedAt,omitzero"`
	// LastTrueAt is the last evaluation at which the condition held; it
	// drives keepFiringFor.
	LastTrueAt time.Time `json:"lastTrueAt"`
	// Sent records, per receiver, when the last firing notification of
	// this firing episode was handed to it; empty until one was. It is what
	// dedup and the repeat interval look at, and what a restart reloads so
	// that it does not notify again.
	Sent map[string]time.Time `json:"sent,omitempty"`
	// ResolvedSent lists the receivers told of the resolution.
	ResolvedSent map[string]bool `json:"resolvedSent,omitempty"`
}

// Matcher selects alerts by one label, as Alertmanager's matchers do:
// `name=value`, `name!=value`, `name=~regex`, `name!~regex`.
type Matcher struct {
	Name    string `json:"name" yaml:"name"`
	Value   string `json:"value" yaml:"value"`
	IsRegex bool   `json:"isRegex,omitempty" yaml:"isRegex"`
	IsEqual bool   `json:"isEqual" yaml:"isEqual"`
}

// Silence mutes the notifications of every alert its matchers all match,
// between StartsAt and EndsAt. Silenced alerts are still evaluated and
// listed (flagged silenced); expiring a silence sets EndsAt to now.
type Silence struct {
	ID        string    `json:"id"`
	Matchers  []Matcher `json:"matchers"`
	StartsAt  time.Time `json:"startsAt"`
	EndsAt    time.Time `json:"endsAt"`
	CreatedBy string    `json:"createdBy,omitempty"`
	Comment   string    `json:"comment,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
}

// Active reports whether s mutes alerts at t.
func (s *Silence) Active(t time.Time) bool {
	return !t.Before(s.StartsAt) && t.Before(s.EndsAt)
}

// NotificationRecord is one line of the notification history: what was
// sent to which receiver, when, and how it went. Error is a short,
// secret-free description of the last failure.
type NotificationRecord struct {
	ID       int64     `json:"id"`
	At       time.Time `json:"at"`
	Receiver string    `json:"receiver"`
	Type     string    `json:"type"`
	// Status is firing, resolved or test.
	Status   string `json:"status"`
	GroupKey string `json:"groupKey"`
	// Alerts names the alerts in the notification: rule and labels.
	Alerts   []NotifiedAlert `json:"alerts"`
	Outcome  string          `json:"outcome"`
	Attempts int             `json:"attempts"`
	Error    string          `json:"error,omitempty"`
}

// NotifiedAlert is an alert as the history remembers it.
type NotifiedAlert struct {
	Fingerprint string            `json:"fingerprint"`
	Rule        string            `json:"rule"`
	Labels      map[string]string `json:"labels"`
	State       string            `json:"state"`
	Value       float64           `json:"value"`
}

// Leader says whether this node is the one that evaluates the alert rules
// and sends notifications. In a cluster every node shares the alert store
// and the telemetry, and only the lease holder (nats.Lease) may act on
// them, or each alert would be sent once per node. A nil Leader (embedded
// mode) always leads.
type Leader interface {
	IsLeader() bool
}

// AlertStore persists the alerting state that must survive a restart:
// alert instances (so a restart neither re-notifies nor forgets a firing
// alert), silences, the notification history, and the rules set through
// the API. Implementations: sqlite (embedded).
type AlertStore interface {
	LoadAlerts(ctx context.Context) ([]AlertInstance, error)
	// SaveAlerts upserts put and deletes the alerts whose fingerprints are
	// in del, in one transaction.
	SaveAlerts(ctx context.Context, put []AlertInstance, del []string) error

	ListSilences(ctx context.Context) ([]Silence, error)
	// PutSilence creates or replaces the silence with s.ID.
	PutSilence(ctx context.Context, s Silence) error
	// DeleteSilencesEndedBefore removes silences that ended before t.
	DeleteSilencesEndedBefore(ctx context.Context, t time.Time) (int64, error)

	// AppendNotification stores r and returns its ID.
	AppendNotification(ctx context.Context, r NotificationRecord) (int64, error)
	// ListNotifications returns up to limit records, newest first.
	ListNotifications(ctx context.Context, limit int) ([]NotificationRecord, error)
	// DeleteNotificationsBefore removes records older than t (retention).
	DeleteNotificationsBefore(ctx context.Context, t time.Time) (int64, error)

	// APIRules returns the rule document set through the API ("" if none).
	APIRules(ctx context.Context) (string, error)
	// SetAPIRules replaces it.
	SetAPIRules(ctx context.Context, doc string) error

	Close() error
}
