package protocol_test

import (
	"encoding/json"
	"testing"

	"github.com/jobcast/jobcast/protocol"
)

// progressEnvelope is a typical job_progress frame: the producer's payload
// with a current item and a message.
func progressEnvelope() *protocol.Envelope {
	return &protocol.Envelope{
		V: protocol.Version, Type: protocol.TypeJobProgress, JobID: "job_0192f3a4b5c6d7e8f9a0b1c2",
		Pipeline: "enrichment", Seq: 4711, TS: 1735689600123,
		Payload: json.RawMessage(`{"processedCount":4711,"totalCount":10000,"currentItem":"items/4711.json","message":"enriching"}`),
	}
}

func BenchmarkEnvelopeEncode(b *testing.B) {
	env := progressEnvelope()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := env.Encode(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeServerFrame(b *testing.B) {
	frame, err := progressEnvelope().Encode()
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := protocol.DecodeServerFrame(frame); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeClientFrame decodes the frames a server reads most: pongs,
// one per heartbeat per connection, and the occasional hello.
func BenchmarkDecodeClientFrame(b *testing.B) {
	for _, tc := range []struct{ name, frame string }{
		{"pong", `{"v":2,"type":"pong","payload":{"serverTime":1735689600123}}`},
		{"hello", `{"v":2,"type":"hello","payload":{"appVersion":"3.14.0","osVersion":"iOS 18.2","networkType":"cellular","deviceModel":"iPhone15,2","lastSeq":42,"reconnectAttempt":1}}`},
	} {
		b.Run(tc.name, func(b *testing.B) {
			frame := []byte(tc.frame)
			b.SetBytes(int64(len(frame)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := protocol.DecodeClientFrame(frame); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkParseProducerEvents(b *testing.B) {
	one := `{"type":"progress","payload":{"processedCount":4711,"totalCount":10000,"currentItem":"items/4711.json"}}`
	batch := "["
	for i := range 100 {
		if i > 0 {
			batch += ","
		}
		batch += one
	}
	batch += "]"
	for _, tc := range []struct {
		name   string
		body   string
		events int
	}{{"single", one, 1}, {"batch100", batch, 100}} {
		b.Run(tc.name, func(b *testing.B) {
			body := []byte(tc.body)
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := protocol.ParseProducerEvents(body); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*tc.events), "ns/event")
		})
	}
}
