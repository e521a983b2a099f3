package hub

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/internal/clocktest"
	"github.com/jobcast/jobcast/protocol"
)

// TestReadyFrameMatchesJSON checks the hand-built ready payload against
// encoding/json's, including the values it leaves to encoding/json.
func TestReadyFrameMatchesJSON(t *testing.T) {
	t.Parallel()
	ts := time.Date(2025, 11, 26, 12, 0, 0, 123456789, time.UTC)
	plus := time.FixedZone("plus", 5*3600+30*60)
	tests := []struct {
		name   string
		state  protocol.JobState
		wantOK bool
	}{
		{name: "zero", wantOK: true},
		{name: "running", wantOK: true, state: protocol.JobState{JobID: "load-1a2b3c-17", Pipeline: "csv_import",
			Status: protocol.StatusRunning, Seq: 42, ProcessedCount: 1234, TotalCount: 1 << 40, CreatedAt: ts, UpdatedAt: ts.Add(time.Second)}},
		{name: "awkward strings", wantOK: true, state: protocol.JobState{JobID: `we"ird<&>\`, Pipeline: "pipe\u2028line", Status: "ünï\tcode"}},
		{name: "raw json and error", wantOK: true, state: protocol.JobState{Status: protocol.StatusFailed,
			Metadata: []byte(`{ "a" : "<b>&" , "n": [1, 2] }`), Result: []byte(`{"u":"\u2028 ` + "\u2029" + `"}`),
			LastError: &protocol.ErrorPayload{Code: "E_X", Message: "a\tb", Retryable: true, Details: []byte(`{"provider":"gemini"}`)}}},
		{name: "zone offset", wantOK: true, state: protocol.JobState{CreatedAt: ts.In(plus), UpdatedAt: ts.In(time.FixedZone("minus", -8*3600))}},
		{name: "invalid metadata", state: protocol.JobState{Metadata: []byte(`{"a":`)}},
		{name: "year 10000", state: protocol.JobState{UpdatedAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}},
		{name: "negative year", state: protocol.JobState{CreatedAt: time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)}},
		{name: "offset of 24 hours", state: protocol.JobState{CreatedAt: ts.In(time.FixedZone("far", 24*3600))}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for _, resumed := range []bool{false, true} {
				r := &protocol.Ready{ConnectionID: "node-1f", HeartbeatIntervalMs: 30000, PongTimeoutMs: 10000,
					ThrottleMs: 500, Resumed: resumed, LastSeq: 41, ServerTime: 1764133200123, State: tt.state}
				got, ok := appendReady(nil, r)
				want, err := json.Marshal(r)
				if ok != tt.wantOK || ok != (err == nil) {
					t.Fatalf("ok %v, encoding/json error %v; want ok %v", ok, err, tt.wantOK)
				}
				if ok && !bytes.Equal(got, want) {
					t.Errorf("\n got %s\nwant %s", got, want)
				}
				// The whole frame, the fallback included.
				c := &conn{h: &Hub{opt: Options{Clock: clocktest.New(time.UnixMilli(1764133200123))}},
					jobID: "job-1", pipeline: "csv_import"}
				if got, want := c.readyFrame(r), c.envelope(protocol.TypeReady, r); !bytes.Equal(got, want) {
					t.Errorf("frame:\n got %s\nwant %s", got, want)
				}
			}
		})
	}
}

// BenchmarkReadyFrame is the ready payload of a new connection, as the hub
// builds it; BenchmarkReadyEnvelope's "wrap" is the encoding/json way.
func BenchmarkReadyFrame(b *testing.B) {
	c := &conn{h: &Hub{opt: Options{Clock: jobcast.SystemClock{}}}, jobID: "load-1a2b3c-17", pipeline: "csv_import"}
	payload := &protocol.Ready{ConnectionID: "node-1f", HeartbeatIntervalMs: 30000, PongTimeoutMs: 10000, ThrottleMs: 500,
		State: protocol.JobState{JobID: "load-1a2b3c-17", Pipeline: "csv_import", Status: protocol.StatusRunning,
			Seq: 42, ProcessedCount: 1234, TotalCount: 1 << 40, CreatedAt: time.Now(), UpdatedAt: time.Now()}}
	for _, meta := range []bool{false, true} {
		name := "plain"
		if meta {
			name = "metadata"
			payload.State.Metadata = []byte(`{"source":"s3://bucket/file.csv"}`)
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = c.readyFrame(payload)
			}
		})
		b.Run(name+"/json", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				raw, _ := json.Marshal(payload)
				_ = c.wrap(protocol.TypeReady, 1764133200123, raw)
			}
		})
	}
}
