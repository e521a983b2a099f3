package client

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/jobcast/jobcast/protocol"
)

// frameCases are server frames in the encoder's form and in forms only the
// full decoder handles; either way the result must equal encoding/json's.
var frameCases = []string{
	`{"v":2,"type":"job_progress","jobId":"load-1","pipeline":"csv_import","seq":7,"ts":1764000000000,"payload":{"processedCount":42,"totalCount":100,"sentNs":1764000000000000000}}`,
	`{"v":2,"type":"ready","ts":1,"payload":{"state":{"jobId":"j","status":"running"},"heartbeatIntervalMs":30000,"x":[1,2.5e3,-0.5,true,false,null,"a\"b\\"]}}`,
	`{"v":2,"type":"ping","ts":5,"payload":{"serverTime":5}}`,
	`{"v":2,"type":"job_completed","jobId":"j","seq":9,"ts":2,"payload":{"successCount":3,"failureCount":0,"result":{"url":"https://x/\u00e9"}}}`,
	` { "type" : "job_progress" , "seq" : 1 , "payload" : { "processedCount" : 1 } } `,
	`{"type":"job_progress","jobId":"j\u00e9","seq":1,"payload":{}}`,
	`{"type":"job_progress","jobId":"jé","seq":1}`,
	`{"type":"job_progress","seq":1.0,"payload":{}}`,
	`{"type":"job_progress","seq":-3,"payload":null}`,
	`{"Type":"job_progress","seq":1}`,
	`{"type":"job_progress","seq":1,"seq":2}`,
	`{"type":"job_progress","seq":99999999999999999999}`,
	`{"type":"job_progress","seq":01}`,
	`{"type":"","seq":1}`,
	`{"type":"job_progress","payload":{"a":}}`,
	`{"type":"job_progress","payload":{"a":1}`,
	`{"type":"job_progress"} x`,
	`{"type":"job_progress","payload":"line\nbreak"}`,
	`[]`,
	``,
}

// TestDecodeServerFrameMatchesJSON checks that the one-pass reader gives
// what protocol.DecodeServerFrame gives, or falls back to it.
func TestDecodeServerFrameMatchesJSON(t *testing.T) {
	t.Parallel()
	for _, in := range frameCases {
		t.Run(in, func(t *testing.T) {
			t.Parallel()
			checkFrame(t, []byte(in))
		})
	}
}

func checkFrame(t *testing.T, data []byte) {
	t.Helper()
	want, wantErr := protocol.DecodeServerFrame(data)
	var got protocol.Envelope
	gotErr := decodeServerFrame(data, &got)
	if (gotErr != nil) != (wantErr != nil) {
		t.Fatalf("%q: error %v, encoding/json's %v", data, gotErr, wantErr)
	}
	if wantErr != nil {
		return
	}
	if !bytes.Equal(got.Payload, want.Payload) {
		t.Fatalf("%q: payload %q, want %q", data, got.Payload, want.Payload)
	}
	got.Payload, want.Payload = nil, nil
	if !reflect.DeepEqual(got, *want) {
		t.Fatalf("%q: envelope %+v, want %+v", data, got, *want)
	}
}

func TestDecodeProgressMatchesJSON(t *testing.T) {
	t.Parallel()
	for _, in := range []string{
		`{"processedCount":42,"totalCount":100,"sentNs":1764000000000000000}`,
		`{"processedCount":42,"currentItem":"a\"b","message":"x"}`,
		`{"processedCount":4.5}`,
		`{"processedCount":-1,"totalCount":0}`,
		`{"processedCount":"7"}`,
		`{}`,
		`null`,
		``,
		`{"processedCount":1,"processedCount":2}`,
	} {
		t.Run(in, func(t *testing.T) {
			t.Parallel()
			var got, want protocol.Progress
			_ = json.Unmarshal([]byte(in), &want)
			decodeProgress([]byte(in), &got)
			// The watcher's state takes the counts only.
			if got.ProcessedCount != want.ProcessedCount || got.TotalCount != want.TotalCount {
				t.Fatalf("%q: %+v, want %+v", in, got, want)
			}
		})
	}
}

func FuzzDecodeServerFrame(f *testing.F) {
	for _, in := range frameCases {
		f.Add([]byte(in))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkFrame(t, data)
	})
}

// BenchmarkWatcherFrame is the watcher's per-frame decoding of a progress
// frame: before, protocol.DecodeServerFrame and json.Unmarshal of the payload.
func BenchmarkWatcherFrame(b *testing.B) {
	data := []byte(frameCases[0])
	b.Run("onepass", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var env protocol.Envelope
			var p protocol.Progress
			if decodeServerFrame(data, &env) != nil {
				b.Fatal("decode")
			}
			decodeProgress(env.Payload, &p)
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			env, err := protocol.DecodeServerFrame(data)
			if err != nil {
				b.Fatal(err)
			}
			var p protocol.Progress
			_ = json.Unmarshal(env.Payload, &p)
		}
	})
}
