package metrics_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/duckdb"
	"github.com/jobcast/jobcast/metrics"
)

// The fixture: 40 hand-written events over one hour, [t0, t0+1h), plus four
// just outside it. The metric tests check numbers computed by hand from this
// list, so change it only together with them.
//
// Job-level events (job_*, the producer's error events) carry the pipeline
// but no client context, as the job service records them; connection events
// carry the client's. Buckets of 30 min split the hour into B1 = [10:00,
// 10:30) and B2 = [10:30, 11:00); events at exactly 10:30 fall in B2, one at
// 10:29:59.999 in B1.
var t0 = time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)

// client is a connection's context.
type client struct{ pipeline, app, os, net, device string }

var (
	c1    = client{"csv_import", "2.0", "iOS 17.4", "wifi", "iPhone15,2"}      // job j1
	c2    = client{"csv_import", "1.0", "Android 14", "cellular", "Pixel 8"}   // job j2
	c3    = client{"ai_scan", "2.0", "Android 14", "wifi", "Pixel 8"}          // job j3
	c4    = client{"ai_scan", "1.1", "iOS 17.4", "cellular", "iPhone15,2"}     // job j4
	c5    = client{"csv_import", "2.0", "iOS 17.4", "wifi", "iPhone15,2"}      // job j5
	c6    = client{"csv_import", "2.0", "macOS 14", "ethernet", "MacBook18,1"} // job j6
	cAnon = client{"", "1.0", "Android 14", "cellular", "Pixel 8"}             // no job id
	c7    = client{"csv_import", "2.0", "iOS 17.4", "wifi", "iPhone15,2"}      // job j7, outside
)

func mins(m int) time.Duration { return time.Duration(m) * time.Minute }

// cl is a connection event of job at t0+d.
func cl(d time.Duration, event, job string, c client) jobcast.Event {
	return jobcast.Event{TS: t0.Add(d), Event: event, Node: "n1", JobID: job, Pipeline: c.pipeline,
		ConnID: "c-" + job, AppVersion: c.app, OSVersion: c.os, NetworkType: c.net, DeviceModel: c.device,
		SampleInterval: 1}
}

func hb(d time.Duration, job string, c client, rtt float64, sample int64) jobcast.Event {
	e := cl(d, jobcast.EventHeartbeat, job, c)
	e.RTTMs, e.SampleInterval = rtt, sample
	return e
}

func disc(d time.Duration, job string, c client, durMs, msgs, bytes, progress, throttled int64) jobcast.Event {
	e := cl(d, jobcast.EventDisconnected, job, c)
	e.DurationMs, e.MessagesSent, e.BytesSent, e.ProgressSent, e.ThrottledCount = durMs, msgs, bytes, progress, throttled
	e.CloseCode = 1000
	return e
}

func cf(d time.Duration, job string, c client, reason, code string, retryable bool) jobcast.Event {
	e := cl(d, jobcast.EventConnectFailed, job, c)
	e.ConnID, e.Reason, e.ErrorCode, e.Retryable = "", reason, code, retryable
	return e
}

// job is a job-level event: pipeline, no client context.
func job(d time.Duration, event, id, pipeline string) jobcast.Event {
	return jobcast.Event{TS: t0.Add(d), Event: event, Node: "n1", JobID: id, Pipeline: pipeline, SampleInterval: 1}
}

func jobErr(d time.Duration, event, id, pipeline, code, provider string, retryable bool) jobcast.Event {
	e := job(d, event, id, pipeline)
	e.ErrorCode, e.Provider, e.Retryable = code, provider, retryable
	return e
}

func fixture() []jobcast.Event {
	const (
		ai, csv = "ai_scan", "csv_import"
		gemini  = "E_GEMINI_TIMEOUT"
	)
	e21 := cl(mins(35), jobcast.EventError, "j3", c3) // a connection-level error frame
	e21.ErrorCode, e21.Reason = "E_PROTOCOL", "unknown_type"
	e34 := cl(mins(15), jobcast.EventExposure, "j6", c6)
	e34.ExperimentID, e34.Variant, e34.Param, e34.Value = "hb-v1", "treatment", "heartbeat_interval_ms", "45000"
	return []jobcast.Event{
		// j1: wifi, completes; a retryable producer error on the way.
		job(mins(0), jobcast.EventJobStarted, "j1", csv),                        // #1
		cl(mins(1), jobcast.EventConnected, "j1", c1),                           // #2
		hb(mins(5), "j1", c1, 40, 1),                                            // #3
		hb(mins(6), "j1", c1, 60, 1),                                            // #4
		disc(mins(20), "j1", c1, 1_140_000, 100, 20_000, 80, 20),                // #5
		job(mins(20), jobcast.EventJobCompleted, "j1", csv),                     // #6
		jobErr(mins(25), jobcast.EventError, "j1", csv, gemini, "gemini", true), // #45
		// j2: cellular, sampled heartbeats, reconnects, fails.
		job(mins(2), jobcast.EventJobStarted, "j2", csv),                            // #7
		cl(mins(3), jobcast.EventConnected, "j2", c2),                               // #8
		hb(mins(10), "j2", c2, 200, 10),                                             // #9
		disc(mins(12), "j2", c2, 540_000, 30, 9_000, 20, 30),                        // #10
		cl(mins(13), jobcast.EventReconnected, "j2", c2),                            // #11
		hb(mins(14), "j2", c2, 300, 10),                                             // #12
		jobErr(mins(38), jobcast.EventError, "j2", csv, gemini, "gemini", true),     // #13
		disc(mins(40), "j2", c2, 1_620_000, 50, 10_000, 40, 10),                     // #14
		jobErr(mins(40), jobcast.EventJobFailed, "j2", csv, gemini, "gemini", true), // #15
		// j3: wifi, starts exactly at the bucket boundary, reconnects.
		job(mins(30), jobcast.EventJobStarted, "j3", ai),    // #16
		cl(mins(30), jobcast.EventConnected, "j3", c3),      // #17
		hb(mins(31), "j3", c3, 20, 1),                       // #18
		hb(mins(32), "j3", c3, 80, 1),                       // #19
		hb(mins(33), "j3", c3, 100, 10),                     // #20
		e21,                                                 // #21
		disc(mins(45), "j3", c3, 900_000, 40, 6_000, 10, 0), // #22
		cl(mins(46), jobcast.EventReconnected, "j3", c3),    // #23
		disc(mins(50), "j3", c3, 240_000, 10, 2_000, 5, 5),  // #24
		job(mins(55), jobcast.EventJobCompleted, "j3", ai),  // #25
		// j4: cellular, two expired tokens first, fails.
		cf(mins(4), "j4", c4, jobcast.ReasonTokenExpired, "E_TOKEN_EXPIRED", true),           // #26
		cf(mins(5), "j4", c4, jobcast.ReasonTokenExpired, "E_TOKEN_EXPIRED", true),           // #27
		cl(mins(6), jobcast.EventConnected, "j4", c4),                                        // #28
		job(mins(7), jobcast.EventJobStarted, "j4", ai),                                      // #29
		hb(mins(25), "j4", c4, 500, 1),                                                       // #30
		disc(mins(30)-time.Millisecond, "j4", c4, 1_380_000, 20, 4_000, 20, 0),               // #31
		jobErr(mins(35), jobcast.EventJobFailed, "j4", ai, "E_ENRICHMENT_FAILED", "", false), // #32
		// j5: wifi, never connects.
		cf(mins(50), "j5", c5, jobcast.ReasonJobNotFound, "E_JOB_NOT_FOUND", false), // #33
		// j6: ethernet, in an experiment, completes.
		e34, // #34
		cl(mins(16), jobcast.EventConnected, "j6", c6),      // #35
		hb(mins(17), "j6", c6, 10, 1),                       // #36
		job(mins(18), jobcast.EventJobStarted, "j6", csv),   // #37
		job(mins(58), jobcast.EventJobCompleted, "j6", csv), // #44
		// A refused handshake without a job id and without an error code.
		cf(mins(52), "", cAnon, jobcast.ReasonBadRequest, "", false), // #42
		// Outside the window [t0, t0+1h).
		cl(-time.Millisecond, jobcast.EventConnected, "j7", c7),                      // #38
		hb(mins(60), "j1", c1, 9999, 1),                                              // #39
		cf(mins(60), "j7", c7, jobcast.ReasonTokenInvalid, "E_TOKEN_INVALID", false), // #40
		jobErr(-mins(60), jobcast.EventError, "j7", csv, gemini, "gemini", true),     // #41
	}
}

// openFixture opens a DuckDB store in a temporary directory holding the
// fixture and returns a Library on it.
func openFixture(t *testing.T) *metrics.Library {
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
	return metrics.New(store)
}
