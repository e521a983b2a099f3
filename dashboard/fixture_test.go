package dashboard_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/duckdb"
)

// clientCtx is a connection's context.
type clientCtx struct{ pipeline, app, os, net, device string }

var (
	wifiIOS   = clientCtx{"csv_import", "3.4.0", "iOS 18.2", "wifi", "iPhone15,2"}
	cellAndr  = clientCtx{"csv_import", "3.3.1", "Android 14", "cellular", "Pixel 8"}
	wifiAndr  = clientCtx{"ai_scan", "3.4.0", "Android 14", "wifi", "Pixel 8"}
	cellOldOS = clientCtx{"ai_scan", "3.2.0", "Android 12", "cellular", "SM-A515F"} // the problem segment
)

// fixture returns telemetry events in the hour before end: 24 sessions
// over four client kinds, with heartbeats, disconnects, reconnects, failed
// connections, errors and job summaries. The Android 12 clients fail and
// err far more often than the others, so they are a problem segment.
func fixture(end time.Time) []jobcast.Event {
	var evs []jobcast.Event
	at := func(min float64) time.Time { return end.Add(-time.Hour + time.Duration(min*float64(time.Minute))) }
	kinds := []clientCtx{wifiIOS, cellAndr, wifiAndr, cellOldOS}
	for i := range 24 {
		c := kinds[i%4]
		job := fmt.Sprintf("job-%02d", i)
		start := float64(i*2) + 1
		conn := func(min float64, event string) jobcast.Event {
			return jobcast.Event{TS: at(min), Event: event, Node: "n1", JobID: job, Pipeline: c.pipeline,
				ConnID: job + "-c", AppVersion: c.app, OSVersion: c.os, NetworkType: c.net, DeviceModel: c.device,
				SampleInterval: 1}
		}
		jobEv := func(min float64, event string) jobcast.Event {
			return jobcast.Event{TS: at(min), Event: event, Node: "n1", JobID: job, Pipeline: c.pipeline, SampleInterval: 1}
		}
		evs = append(evs, jobEv(start, jobcast.EventJobStarted), conn(start+0.1, jobcast.EventConnected))
		for k := range 3 {
			hb := conn(start+0.5+float64(k)*0.5, jobcast.EventHeartbeat)
			hb.RTTMs = float64(40 + 30*(i%4) + 7*k)
			if c == cellOldOS {
				hb.RTTMs *= 8
			}
			evs = append(evs, hb)
		}
		d := conn(start+2, jobcast.EventDisconnected)
		d.DurationMs, d.CloseCode, d.MessagesSent, d.BytesSent = int64(110_000+1000*i), 1000, int64(20+i), int64(20+i)*240
		d.ProgressSent, d.ThrottledCount = int64(15+i), int64(i%5)
		evs = append(evs, d)
		if c == cellAndr || c == cellOldOS {
			r := conn(start+2.2, jobcast.EventReconnected)
			r.ReconnectCount = 1
			evs = append(evs, r)
		}
		if c == cellOldOS {
			f := conn(start+2.1, jobcast.EventConnectFailed)
			f.ConnID, f.Reason, f.ErrorCode, f.Retryable = "", jobcast.ReasonTokenExpired, "E_TOKEN_EXPIRED", true
			e := conn(start+2.3, jobcast.EventError)
			e.ErrorCode, e.Provider, e.Retryable = "E_GEMINI_TIMEOUT", "gemini", true
			evs = append(evs, f, e, jobEv(start+3, jobcast.EventJobFailed))
		} else {
			done := jobEv(start+3, jobcast.EventJobCompleted)
			done.SuccessCount = 100
			evs = append(evs, done)
		}
	}
	// A producer error with no client context, and an event outside the
	// hour that no figure may count.
	pe := jobcast.Event{TS: at(30), Event: jobcast.EventError, Node: "n1", JobID: "job-01", Pipeline: "csv_import",
		ErrorCode: "E_ROW_INVALID", Provider: "csv", SampleInterval: 1}
	old := jobcast.Event{TS: end.Add(-2 * time.Hour), Event: jobcast.EventConnected, Node: "n1", JobID: "job-old",
		Pipeline: "csv_import", NetworkType: "wifi", SampleInterval: 1}
	return append(evs, pe, old)
}

// openStore opens a DuckDB store in a temporary directory holding events.
func openStore(t testing.TB, events []jobcast.Event) jobcast.TelemetryStore {
	t.Helper()
	ctx := context.Background()
	store, err := duckdb.Open(ctx, filepath.Join(t.TempDir(), "telemetry.duckdb"), duckdb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := store.Close(); err != nil {
			t.Error(err)
		}
	})
	if len(events) > 0 {
		if err := store.Write(ctx, events); err != nil {
			t.Fatal(err)
		}
	}
	return store
}
