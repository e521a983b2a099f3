package hub

import (
	"testing"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/protocol"
)

// BenchmarkThrottleOffer measures the per-frame throttle decision every
// progress message takes on every connection, under the lock of that
// connection.
func BenchmarkThrottleOffer(b *testing.B) {
	msg := &jobcast.Message{Envelope: protocol.Envelope{Type: protocol.TypeJobProgress, Seq: 1}}
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name   string
		window time.Duration
		step   time.Duration // time between offers
	}{
		{"disabled", 0, time.Millisecond},
		{"send", 500 * time.Millisecond, time.Second},          // every offer goes out at once
		{"coalesce", 500 * time.Millisecond, time.Microsecond}, // offers pile up behind the window
	} {
		b.Run(tc.name, func(b *testing.B) {
			t := throttle{window: tc.window}
			now := start
			b.ReportAllocs()
			for b.Loop() {
				now = now.Add(tc.step)
				if send, arm, _ := t.offer(msg, now); !send && !arm && t.pending == nil {
					b.Fatal("offer neither sent nor held the message")
				}
				if t.armed && now.Sub(t.lastSent) >= t.window {
					t.fire(now)
				}
			}
		})
	}
}
