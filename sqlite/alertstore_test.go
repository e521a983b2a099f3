package sqlite_test

import (
	"context"
	"errors"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/sqlite"
)

// TestAlertStore round-trips alerts, silences, the history and the API
// rules, across a reopen of the same file that the job tables share.
func TestAlertStore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "jobcast.db")
	jobs, err := sqlite.OpenJobStore(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer jobs.Close()
	s, err := sqlite.OpenAlertStore(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	a := jobcast.AlertInstance{
		Fingerprint: "f1", Rule: "r", Labels: map[string]string{"alertname": "r", "pipeline": "p"}, State: jobcast.AlertFiring,
		Value: 0.5, ActiveAt: t0, FiredAt: t0, LastTrueAt: t0, Sent: map[string]time.Time{"slack": t0},
	}
	b := a
	b.Fingerprint, b.State = "f2", jobcast.AlertPending
	if err := s.SaveAlerts(ctx, []jobcast.AlertInstance{a, b}, nil); err != nil {
		t.Fatal(err)
	}
	a.Value = 0.7
	if err := s.SaveAlerts(ctx, []jobcast.AlertInstance{a}, []string{"f2"}); err != nil {
		t.Fatal(err)
	}
	sil := jobcast.Silence{ID: "s1", Matchers: []jobcast.Matcher{{Name: "alertname", Value: "r", IsEqual: true}}, StartsAt: t0, EndsAt: t0.Add(time.Hour), CreatedAt: t0}
	if err := s.PutSilence(ctx, sil); err != nil {
		t.Fatal(err)
	}
	old := sil
	old.ID, old.EndsAt = "s0", t0.Add(-10*24*time.Hour)
	if err := s.PutSilence(ctx, old); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := s.AppendNotification(ctx, jobcast.NotificationRecord{At: t0.Add(time.Duration(i) * time.Hour), Receiver: "slack", Status: "firing", Outcome: jobcast.NotifySent, Attempts: 1}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetAPIRules(ctx, "rules: []\n"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = sqlite.OpenAlertStore(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	alerts, err := s.LoadAlerts(ctx)
	if err != nil || len(alerts) != 1 || !reflect.DeepEqual(alerts[0], a) {
		t.Fatalf("alerts %+v (%v), want [%+v]", alerts, err, a)
	}
	if n, err := s.DeleteSilencesEndedBefore(ctx, t0.Add(-5*24*time.Hour)); err != nil || n != 1 {
		t.Fatalf("delete old silences: %d %v", n, err)
	}
	sils, err := s.ListSilences(ctx)
	if err != nil || len(sils) != 1 || !reflect.DeepEqual(sils[0], sil) {
		t.Fatalf("silences %+v (%v)", sils, err)
	}
	if n, err := s.DeleteNotificationsBefore(ctx, t0.Add(30*time.Minute)); err != nil || n != 1 {
		t.Fatalf("history retention: %d %v", n, err)
	}
	hist, err := s.ListNotifications(ctx, 10)
	if err != nil || len(hist) != 2 || !hist[0].At.Equal(t0.Add(2*time.Hour)) || hist[0].ID <= hist[1].ID {
		t.Fatalf("history %+v (%v)", hist, err)
	}
	if doc, err := s.APIRules(ctx); err != nil || doc != "rules: []\n" {
		t.Fatalf("API rules %q %v", doc, err)
	}
	// The job tables are untouched by the alert migration.
	if _, err := jobs.GetJob(ctx, "nope"); !errors.Is(err, jobcast.ErrJobNotFound) {
		t.Fatalf("job store after the alert migration: %v", err)
	}
}
