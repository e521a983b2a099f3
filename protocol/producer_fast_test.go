package protocol

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// fastSeeds are bodies near the fast parser's edges: what it must take, and
// what it must leave to the general path.
var fastSeeds = []string{
	`{"type":"progress","payload":{"processedCount":10}}`,
	`[{"type":"progress","payload":{"processedCount":1,"sentNs":1764133200123456789}},{"type":"progress","payload":{"processedCount":2,"sentNs":1764133200123456790}}]`,
	`[ {"payload" : {"totalCount":5, "processedCount":0} , "type" : "progress"} ]`,
	`{"type":"progress","payload":{"processedCount":10,"totalCount":500,"currentItem":"row","message":"m","eta":[1,{"x":"]"}],"ok":true,"n":null,"f":-1.5e+3}}`,
	`{"type":"progress","payload":{"processedCount":1,"totalCount":null}}`,
	`{"type":"progress","payload":{"processedCount":1,"currentItem":null,"message":"caf\u00e9 ✓"}}`,
	`{"type":"progress","payload":{"processedCount":1,"currentItem":"a\"b\\c\/\u00e9"}}`,
	`{"type":"started"}`,
	`{"type":"started","payload":null}`,
	`{"type":"started","payload":{}}`,
	`{"type":"started","payload":{"totalCount":500,"processedCount":"x"}}`,
	`[{"type":"started","payload":{"totalCount":9}},{"type":"progress","payload":{"processedCount":1}}]`,
	// Each of these goes to the general path.
	`{"type":"progress","payload":{}}`,
	`{"type":"progress"}`,
	`{"type":"progress","payload":{"processedCount":null}}`,
	`{"type":"progress","payload":{"processedCount":-1}}`,
	`{"type":"progress","payload":{"processedCount":-0}}`,
	`{"type":"progress","payload":{"processedCount":1.0}}`,
	`{"type":"progress","payload":{"processedCount":1e2}}`,
	`{"type":"progress","payload":{"processedCount":99999999999999999999}}`,
	`{"type":"progress","payload":{"processedCount":"1"}}`,
	`{"type":"progress","payload":{"processedCount":1,"processedCount":2}}`,
	`{"type":"progress","payload":{"processedCount":1,"totalCount":null,"totalCount":3}}`,
	`{"type":"progress","payload":{"processedCount":1,"ProcessedCount":2}}`,
	`{"type":"progress","payload":{"processedCount":1,"mesſage":"x"}}`,
	`{"type":"progress","payload":{"processedCount":1,"\u0074otalCount":2}}`,
	`{"type":"progress","payload":{"processedCount":1,"currentItem":5}}`,
	`{"type":"progress","payload":{"processedCount":1,"currentItem":"` + strings.Repeat("i", 513) + `"}}`,
	`{"type":"progress","payload":{"processedCount":1,"currentItem":"` + strings.Repeat("\\u00e9", 200) + `"}}`,
	"{\"type\":\"progress\",\"payload\":{\"processedCount\":1,\"message\":\"\xff\"}}",
	`{"type":"progress","payload":[1]}`,
	`{"type":"progress","payload":"x"}`,
	`{"type":"Progress","payload":{"processedCount":1}}`,
	`{"Type":"progress","payload":{"processedCount":1}}`,
	`{"type":"progress","type":"started"}`,
	`{"type":"progr\u0065ss","payload":{"processedCount":1}}`,
	`{"type":"progress","payload":{"processedCount":1},"extra":1}`,
	`{"type":"completed"}`,
	`{"type":"error","payload":{"code":"E_X"}}`,
	`[{"type":"progress","payload":{"processedCount":1}},{"type":"completed"}]`,
	`{"type":"progress","payload":{"processedCount":1}}]`,
	`[{"type":"progress","payload":{"processedCount":1}},]`,
	`[{"type":"progress","payload":{"processedCount":1}}`,
	`{"type":"progress","payload":{"processedCount":1,"x":[1,]}}`,
	`{"type":"progress","payload":{"processedCount":1,"x":01}}`,
	`{"type":"progress","payload":{"processedCount":1,"x":tru}}`,
	"{\"type\":\"progress\",\"payload\":{\"processedCount\":1,\"x\":\"\t\"}}",
	`{"type":"progress","payload":{"processedCount":1,"x":"\x"}}`,
	`{"type":"progress","payload":{"processedCount":1,"x":` + strings.Repeat(`[`, 14) + strings.Repeat(`]`, 14) + `}}`,
	`{"type":"progress","payload":{"processedCount":1,"x":` + strings.Repeat(`[`, 15) + strings.Repeat(`]`, 15) + `}}`,
	`[]`,
	`[{}]`,
	`[null]`,
	`{}`,
	`null`,
}

// TestParseFastTakesCommonShapes keeps the fast path in use for what
// producers send at high rates: losing it would cost nothing in
// correctness, only the CPU it saves.
func TestParseFastTakesCommonShapes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		body          string
		wantProcessed []int64
		wantTotal     []int64 // -1: no total
	}{
		{name: "one progress", body: fastSeeds[0], wantProcessed: []int64{10}, wantTotal: []int64{-1}},
		{name: "loadgen batch", body: fastSeeds[1], wantProcessed: []int64{1, 2}, wantTotal: []int64{-1, -1}},
		{name: "whitespace and key order", body: fastSeeds[2], wantProcessed: []int64{0}, wantTotal: []int64{5}},
		{name: "other fields of any kind", body: fastSeeds[3], wantProcessed: []int64{10}, wantTotal: []int64{500}},
		{name: "null total", body: fastSeeds[4], wantProcessed: []int64{1}, wantTotal: []int64{-1}},
		{name: "non-ASCII message", body: fastSeeds[5], wantProcessed: []int64{1}, wantTotal: []int64{-1}},
		{name: "escapes in a value", body: fastSeeds[6], wantProcessed: []int64{1}, wantTotal: []int64{-1}},
		{name: "started without payload", body: fastSeeds[7], wantProcessed: []int64{0}, wantTotal: []int64{-1}},
		{name: "started with total", body: fastSeeds[11], wantProcessed: []int64{0, 1}, wantTotal: []int64{9, -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			events, ok := parseFast([]byte(tt.body))
			if !ok {
				t.Fatalf("parseFast declined %s", tt.body)
			}
			if len(events) != len(tt.wantProcessed) {
				t.Fatalf("got %d events, want %d", len(events), len(tt.wantProcessed))
			}
			for i := range events {
				processed, total, hasTotal, ok := events[i].Counts()
				if !ok {
					t.Fatalf("event %d: no counts recorded", i)
				}
				if !hasTotal {
					total = -1
				}
				if processed != tt.wantProcessed[i] || total != tt.wantTotal[i] {
					t.Errorf("event %d: counts %d, %d, want %d, %d", i, processed, total, tt.wantProcessed[i], tt.wantTotal[i])
				}
			}
		})
	}
}

func TestCountsForgetReplacedPayload(t *testing.T) {
	t.Parallel()
	events, err := ParseProducerEvents([]byte(`{"type":"progress","payload":{"processedCount":7}}`))
	if err != nil {
		t.Fatal(err)
	}
	ev := events[0]
	if p, _, _, ok := ev.Counts(); !ok || p != 7 {
		t.Fatalf("Counts() = %d, %v, want 7, true", p, ok)
	}
	ev.Payload = json.RawMessage(`{"processedCount":8}`)
	if _, _, _, ok := ev.Counts(); ok {
		t.Fatal("Counts() still answers for a replaced payload")
	}
}

func TestParseFastDoesNotAliasBody(t *testing.T) {
	t.Parallel()
	body := []byte(`[{"type":"progress","payload":{"processedCount":1}}]`)
	events, err := ParseProducerEvents(body)
	if err != nil {
		t.Fatal(err)
	}
	for i := range body {
		body[i] = ' '
	}
	if got := string(events[0].Payload); got != `{"processedCount":1}` {
		t.Fatalf("payload %q changed with the caller's buffer", got)
	}
}

// FuzzParseFastAgrees checks that the fast parser accepts only what the
// general path accepts, with the same events, and records the counts that
// decoding the payload gives.
func FuzzParseFastAgrees(f *testing.F) {
	for _, s := range fastSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		body = bytes.TrimSpace(body)
		if len(body) == 0 {
			return
		}
		fast, ok := parseFast(body)
		if !ok {
			return // the general path decides, and writes any error
		}
		slow, err := parseGeneral(body)
		if err != nil {
			t.Fatalf("fast path accepted what the general path rejects (%v): %q", err, body)
		}
		if len(fast) != len(slow) {
			t.Fatalf("fast path read %d events, general path %d", len(fast), len(slow))
		}
		for i := range fast {
			if fast[i].Type != slow[i].Type || !bytes.Equal(fast[i].Payload, slow[i].Payload) {
				t.Fatalf("event %d: fast %s %s, general %s %s", i, fast[i].Type, fast[i].Payload, slow[i].Type, slow[i].Payload)
			}
			var want struct {
				ProcessedCount int64  `json:"processedCount"`
				TotalCount     *int64 `json:"totalCount"`
			}
			if fast[i].Type == EventProgress {
				if err := json.Unmarshal(slow[i].Payload, &want); err != nil {
					t.Fatalf("event %d: %v", i, err)
				}
			} else {
				// started has no processedCount: another field may use
				// the name.
				var started struct {
					TotalCount *int64 `json:"totalCount"`
				}
				if err := json.Unmarshal(slow[i].Payload, &started); err != nil {
					t.Fatalf("event %d: %v", i, err)
				}
				want.TotalCount = started.TotalCount
			}
			processed, total, hasTotal, ok := fast[i].Counts()
			if !ok {
				t.Fatalf("event %d: fast path recorded no counts", i)
			}
			if processed != want.ProcessedCount || hasTotal != (want.TotalCount != nil) || (hasTotal && total != *want.TotalCount) {
				t.Fatalf("event %d: counts %d, %d (%v), decoded %d, %v", i, processed, total, hasTotal, want.ProcessedCount, want.TotalCount)
			}
		}
	})
}
