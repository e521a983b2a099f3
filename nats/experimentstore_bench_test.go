package nats_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/nats"
	"github.com/jobcast/jobcast/nats/natstest"
)

// BenchmarkStickAssignments measures a connection's assignment read and
// write on NATS KV (embedded server, file buckets): "first" is a unit's
// first connection (a Get that finds nothing, then a Create), "reconnect"
// a later one (one Get). The experiment service caches decisions, so a
// node pays this once per unit and experiment.
//
//	go test -run '^$' -bench StickAssignments -benchtime 2000x ./nats/
func BenchmarkStickAssignments(b *testing.B) {
	ctx := context.Background()
	st, err := nats.NewExperimentStore(ctx, natstest.Connect(b, natstest.NewServer(b)), nats.KVConfig{})
	if err != nil {
		b.Fatal(err)
	}
	at := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	proposal := func() []jobcast.Assignment {
		return []jobcast.Assignment{{ExperimentID: "hb", Enrolled: true, Variant: "variant", AssignedAt: at}}
	}
	b.Run("first", func(b *testing.B) {
		i := 0
		for b.Loop() {
			i++
			if _, err := st.StickAssignments(ctx, "job-"+strconv.Itoa(i), proposal()); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("reconnect", func(b *testing.B) {
		if _, err := st.StickAssignments(ctx, "job-r", proposal()); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if _, err := st.StickAssignments(ctx, "job-r", proposal()); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkSaveAlerts measures one evaluation's save of 100 alerts (every
// alert is put at each evaluation) on NATS KV (embedded server, file
// bucket).
//
//	go test -run '^$' -bench SaveAlerts -benchtime 200x ./nats/
func BenchmarkSaveAlerts(b *testing.B) {
	ctx := context.Background()
	st, err := nats.NewAlertStore(ctx, natstest.Connect(b, natstest.NewServer(b)), nats.KVConfig{})
	if err != nil {
		b.Fatal(err)
	}
	at := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	alerts := make([]jobcast.AlertInstance, 100)
	for i := range alerts {
		alerts[i] = jobcast.AlertInstance{Fingerprint: strconv.Itoa(i), Rule: "error-rate", State: jobcast.AlertFiring,
			Labels: map[string]string{"alertname": "error-rate", "severity": "warning", "pipeline": "p" + strconv.Itoa(i)},
			Value:  0.25, ActiveAt: at, FiredAt: at, LastTrueAt: at, Sent: map[string]time.Time{"slack": at}}
	}
	for b.Loop() {
		if err := st.SaveAlerts(ctx, alerts, nil); err != nil {
			b.Fatal(err)
		}
	}
}
