// Package alertstoretest is the conformance suite of jobcast.AlertStore:
// every implementation (SQLite embedded, NATS KV in cluster mode) runs it,
// so that alerting keeps and restores the same state on both. The
// behaviours come from the SQLite store's first test.
package alertstoretest

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/jobcast/jobcast"
)

// Open returns another handle on one backend's data: a restarted process
// on the same SQLite file, another node on the same NATS server. Handles
// are closed by the test's cleanup.
type Open func(t *testing.T) jobcast.AlertStore

// Run runs the suite. newBackend returns an opener on fresh, empty data;
// it is called once per subtest.
func Run(t *testing.T, newBackend func(t *testing.T) Open) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, open Open)
	}{
		{"Alerts", testAlerts},
		{"Silences", testSilences},
		{"History", testHistory},
		{"APIRules", testAPIRules},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newBackend(t))
		})
	}
}

var t0 = time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)

// testAlerts: upserts and deletes, and another handle (a restart, the next
// leader) loads exactly what was saved.
func testAlerts(t *testing.T, open Open) {
	ctx := context.Background()
	s := open(t)
	if got, err := s.LoadAlerts(ctx); err != nil || len(got) != 0 {
		t.Fatalf("empty store loads %+v %v", got, err)
	}
	a := jobcast.AlertInstance{
		Fingerprint: "f1", Rule: "r", Labels: map[string]string{"alertname": "r", "pipeline": "p"}, State: jobcast.AlertFiring,
		Annotations: map[string]string{"summary": "50% of sessions fail"},
		Value:       0.5, ActiveAt: t0, FiredAt: t0, LastTrueAt: t0, Sent: map[string]time.Time{"slack": t0},
	}
	b := a
	b.Fingerprint, b.State, b.FiredAt, b.Sent = "f2", jobcast.AlertPending, time.Time{}, nil
	c := a
	c.Fingerprint, c.State, c.ResolvedAt, c.ResolvedSent = "f0", jobcast.AlertResolved, t0.Add(time.Minute), map[string]bool{"slack": true}
	if err := s.SaveAlerts(ctx, []jobcast.AlertInstance{a, b, c}, nil); err != nil {
		t.Fatal(err)
	}
	a.Value = 0.7
	if err := s.SaveAlerts(ctx, []jobcast.AlertInstance{a}, []string{"f2", "never-saved"}); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveAlerts(ctx, nil, nil); err != nil {
		t.Fatal(err)
	}
	got, err := open(t).LoadAlerts(ctx)
	if want := []jobcast.AlertInstance{c, a}; err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("alerts %+v (%v), want %+v (by fingerprint)", got, err, want)
	}
}

func testSilences(t *testing.T, open Open) {
	ctx := context.Background()
	s := open(t)
	sil := jobcast.Silence{ID: "s1", Matchers: []jobcast.Matcher{{Name: "alertname", Value: "r", IsEqual: true}},
		StartsAt: t0, EndsAt: t0.Add(time.Hour), CreatedBy: "ops", Comment: "deploy", CreatedAt: t0}
	later := sil
	later.ID, later.EndsAt = "s2", t0.Add(2*time.Hour)
	old := sil
	old.ID, old.EndsAt = "s0", t0.Add(-10*24*time.Hour)
	for _, x := range []jobcast.Silence{sil, later, old} {
		if err := s.PutSilence(ctx, x); err != nil {
			t.Fatal(err)
		}
	}
	// Expiring replaces: the end moves to now.
	expired := later
	expired.EndsAt = t0.Add(30 * time.Minute)
	if err := s.PutSilence(ctx, expired); err != nil {
		t.Fatal(err)
	}
	got, err := open(t).ListSilences(ctx)
	if want := []jobcast.Silence{sil, expired, old}; err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("silences %+v (%v), want %+v (latest end first)", got, err, want)
	}
	if n, err := s.DeleteSilencesEndedBefore(ctx, t0.Add(-5*24*time.Hour)); err != nil || n != 1 {
		t.Fatalf("delete old silences: %d %v, want 1", n, err)
	}
	got, err = s.ListSilences(ctx)
	if want := []jobcast.Silence{sil, expired}; err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("silences after retention %+v (%v), want %+v", got, err, want)
	}
}

// testHistory: IDs grow in append order across handles, the list is newest
// first and limited, and retention deletes by time.
func testHistory(t *testing.T, open Open) {
	ctx := context.Background()
	s, other := open(t), open(t)
	if got, err := s.ListNotifications(ctx, 10); err != nil || got == nil || len(got) != 0 {
		t.Fatalf("empty history %#v %v, want an empty list", got, err)
	}
	var ids []int64
	for i := range 5 {
		st := s
		if i%2 == 1 {
			st = other
		}
		r := jobcast.NotificationRecord{ID: 99, At: t0.Add(time.Duration(i) * time.Hour), Receiver: "slack", Type: "slack",
			Status: "firing", GroupKey: "g", Outcome: jobcast.NotifySent, Attempts: 1,
			Alerts: []jobcast.NotifiedAlert{{Fingerprint: "f1", Rule: "r", Labels: map[string]string{"alertname": "r"}, State: jobcast.AlertFiring, Value: float64(i)}}}
		if i == 4 {
			r.Outcome, r.Attempts, r.Error = jobcast.NotifyFailed, 3, "HTTP 500"
		}
		id, err := st.AppendNotification(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		if len(ids) > 0 && id <= ids[len(ids)-1] {
			t.Fatalf("IDs %v then %d: not increasing", ids, id)
		}
		ids = append(ids, id)
	}
	hist, err := other.ListNotifications(ctx, 3)
	if err != nil || len(hist) != 3 {
		t.Fatalf("history %+v (%v), want 3 records", hist, err)
	}
	for i, r := range hist {
		want := 4 - i
		if r.ID != ids[want] || !r.At.Equal(t0.Add(time.Duration(want)*time.Hour)) || r.Alerts[0].Value != float64(want) {
			t.Fatalf("record %d: %+v, want the one appended %d-th (ID %d)", i, r, want, ids[want])
		}
	}
	if hist[0].Outcome != jobcast.NotifyFailed || hist[0].Error != "HTTP 500" || hist[0].Attempts != 3 {
		t.Fatalf("newest record %+v", hist[0])
	}
	if n, err := s.DeleteNotificationsBefore(ctx, t0.Add(90*time.Minute)); err != nil || n != 2 {
		t.Fatalf("history retention: %d %v, want 2", n, err)
	}
	hist, err = s.ListNotifications(ctx, 10)
	if err != nil || len(hist) != 3 || hist[0].ID != ids[4] || hist[2].ID != ids[2] {
		t.Fatalf("history after retention %+v (%v), want IDs %v newest first", hist, err, ids[2:])
	}
	if n, err := s.DeleteNotificationsBefore(ctx, t0); err != nil || n != 0 {
		t.Fatalf("retention with nothing old: %d %v", n, err)
	}
}

func testAPIRules(t *testing.T, open Open) {
	ctx := context.Background()
	s := open(t)
	if doc, err := s.APIRules(ctx); err != nil || doc != "" {
		t.Fatalf("no API rules: %q %v", doc, err)
	}
	for _, doc := range []string{"rules: []\n", "rules:\n  - name: r\n"} {
		if err := s.SetAPIRules(ctx, doc); err != nil {
			t.Fatal(err)
		}
		if got, err := open(t).APIRules(ctx); err != nil || got != doc {
			t.Fatalf("API rules %q %v, want %q", got, err, doc)
		}
	}
}
