package gql_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/duckdb"
	"github.com/jobcast/jobcast/metrics"
)

// The fixture: 21 hand-written events in the hour [t0, t0+1h) and two just
// outside it, in the spirit of the metrics package's fixture but small
// enough that every answer below is computed by hand in the test that
// checks it. Event numbers (#n) are referred to there; change the list only
// together with those tests.
//
// Buckets of 30 min split the hour into B1 = [10:00, 10:30) and B2 =
// [10:30, 11:00).
var t0 = time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)

// client is a connection's context.
type client struct{ pipeline, app, os, net, device string }

var (
	cA = client{"csv_import", "2.0", "iOS 17.4", "wifi", "iPhone15,2"}    // job j1
	cB = client{"csv_import", "1.0", "Android 14", "cellular", "Pixel 8"} // job j2
	cC = client{"ai_scan", "2.0", "Android 14", "wifi", "Pixel 8"}        // job j3
	// cX is a client whose job does not exist (or that sent none): the
	// pipeline is unknown.
	cX = client{"", "1.0", "Android 14", "cellular", "Pixel 8"}
)

func mins(m int) time.Duration { return time.Duration(m) * time.Minute }

func conn(d time.Duration, event, job string, c client) jobcast.Event {
	return jobcast.Event{TS: t0.Add(d), Event: event, Node: "n1", JobID: job, Pipeline: c.pipeline,
		ConnID: "c-" + job, AppVersion: c.app, OSVersion: c.os, NetworkType: c.net, DeviceModel: c.device,
		SampleInterval: 1}
}

func hb(d time.Duration, job string, c client, rtt float64, sample int64) jobcast.Event {
	e := conn(d, jobcast.EventHeartbeat, job, c)
	e.RTTMs, e.SampleInterval = rtt, sample
	return e
}

func disc(d time.Duration, job string, c client, durMs int64) jobcast.Event {
	e := conn(d, jobcast.EventDisconnected, job, c)
	e.DurationMs, e.CloseCode = durMs, 1000
	return e
}

func failed(d time.Duration, job string, c client, reason, code string, retryable bool) jobcast.Event {
	e := conn(d, jobcast.EventConnectFailed, job, c)
	e.ConnID, e.Reason, e.ErrorCode, e.Retryable = "", reason, code, retryable
	return e
}

// jobErr is a job-level event: the pipeline, no client context.
func jobErr(d time.Duration, event, job, pipeline, code, provider string, retryable bool) jobcast.Event {
	return jobcast.Event{TS: t0.Add(d), Event: event, Node: "n1", JobID: job, Pipeline: pipeline,
		ErrorCode: code, Provider: provider, Retryable: retryable, SampleInterval: 1}
}

func fixture() []jobcast.Event {
	const gemini = "E_GEMINI_TIMEOUT"
	protoErr := conn(mins(35), jobcast.EventError, "j3", cC) // a connection-level error frame
	protoErr.ErrorCode, protoErr.Reason = "E_PROTOCOL", "unknown_type"
	return []jobcast.Event{
		// j1, wifi: one connection, a retryable producer error.
		conn(mins(1), jobcast.EventConnected, "j1", cA),                                  // #1
		hb(mins(5), "j1", cA, 40, 1),                                                     // #2
		hb(mins(6), "j1", cA, 60, 1),                                                     // #3
		disc(mins(20), "j1", cA, 1_140_000),                                              // #4
		jobErr(mins(25), jobcast.EventError, "j1", "csv_import", gemini, "gemini", true), // #5
		// j2, cellular: sampled heartbeats, a reconnect, fails.
		conn(mins(3), jobcast.EventConnected, "j2", cB),                                      // #6
		hb(mins(10), "j2", cB, 200, 10),                                                      // #7
		disc(mins(12), "j2", cB, 540_000),                                                    // #8
		conn(mins(13), jobcast.EventReconnected, "j2", cB),                                   // #9
		hb(mins(14), "j2", cB, 300, 10),                                                      // #10
		jobErr(mins(38), jobcast.EventError, "j2", "csv_import", gemini, "gemini", true),     // #11
		disc(mins(40), "j2", cB, 1_620_000),                                                  // #12
		jobErr(mins(40), jobcast.EventJobFailed, "j2", "csv_import", gemini, "gemini", true), // #13
		// j3, wifi: an expired token first, then a connection at exactly
		// the bucket boundary.
		failed(mins(29), "j3", cC, jobcast.ReasonTokenExpired, "E_TOKEN_EXPIRED", true), // #14
		conn(mins(30), jobcast.EventConnected, "j3", cC),                                // #15
		hb(mins(31), "j3", cC, 20, 1),                                                   // #16
		hb(mins(33), "j3", cC, 100, 10),                                                 // #17
		protoErr,                                                                        // #18
		disc(mins(45), "j3", cC, 900_000),                                               // #19
		// Refused handshakes: an unknown job, and one without a job id or
		// an error code (listed under its reason).
		failed(mins(50), "j4", cX, jobcast.ReasonJobNotFound, "E_JOB_NOT_FOUND", false), // #20
		failed(mins(52), "", cX, jobcast.ReasonRateLimited, "", true),                   // #21
		// Outside [t0, t0+1h).
		conn(-time.Millisecond, jobcast.EventConnected, "j5", cA), // #22
		hb(mins(60), "j1", cA, 9999, 1),                           // #23
	}
}

// openFixture opens a DuckDB store in a temporary directory holding the
// fixture and returns a Library on it and the store.
func openFixture(t *testing.T) (*metrics.Library, jobcast.TelemetryStore) {
	t.Helper()
	ctx := context.Background()
	store, err := duckdb.Open(ctx, filepath.Join(t.TempDir(), "events.duckdb"), duckdb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := store.Close(); err != nil {
			t.Error(err)
		}
	})
	if err := store.Write(ctx, fixture()); err != nil {
		t.Fatal(err)
	}
	return metrics.New(store), store
}
