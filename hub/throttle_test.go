package hub

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/protocol"
)

var t0 = time.Date(2025, 11, 26, 12, 0, 0, 0, time.UTC)

func msg(seq int64) *jobcast.Message {
	return &jobcast.Message{Envelope: protocol.Envelope{Type: protocol.TypeJobProgress, Seq: seq}}
}

// throttleSim drives a throttle with explicit times and a simulated timer,
// as a connection does with its clock, and records what was sent when.
type throttleSim struct {
	t       *testing.T
	thr     throttle
	timerAt *time.Time
	now     time.Time
	arrived map[int64]time.Time
	offered []int64 // seqs in offer order
	sent    []sentMsg
}

type sentMsg struct {
	seq int64
	at  time.Time
	how string // "offer", "fire" or "flush"
}

func newSim(t *testing.T, window time.Duration) *throttleSim {
	return &throttleSim{t: t, thr: throttle{window: window}, now: t0, arrived: map[int64]time.Time{}}
}

// advance moves time to at, firing the timer if it falls due.
func (s *throttleSim) advance(at time.Time) {
	s.t.Helper()
	if at.Before(s.now) {
		s.t.Fatalf("time going back: %v -> %v", s.now, at)
	}
	if s.timerAt != nil && !s.timerAt.After(at) {
		due := *s.timerAt
		s.timerAt = nil
		s.now = due
		m, again := s.thr.fire(due)
		if m != nil {
			s.sent = append(s.sent, sentMsg{m.Seq, due, "fire"})
		}
		if again < 0 || again > s.thr.window || m != nil && again != 0 {
			s.t.Fatalf("fire at %v: message %v and re-arm after %v", due.Sub(t0), m != nil, again)
		}
		if again > 0 {
			next := due.Add(again)
			s.timerAt = &next
			s.advance(at) // the re-armed timer may fall due too
			return
		}
	}
	s.now = at
}

func (s *throttleSim) offer(seq int64, at time.Time) {
	s.t.Helper()
	s.advance(at)
	s.arrived[seq] = at
	s.offered = append(s.offered, seq)
	send, arm, delay := s.thr.offer(msg(seq), at)
	if send && arm {
		s.t.Fatalf("offer %d: both send and arm", seq)
	}
	if send {
		s.sent = append(s.sent, sentMsg{seq, at, "offer"})
	}
	if arm {
		if s.timerAt != nil {
			s.t.Fatalf("offer %d: armed while a timer is pending", seq)
		}
		if delay < 0 || delay > s.thr.window {
			s.t.Fatalf("offer %d: delay %v outside [0, %v]", seq, delay, s.thr.window)
		}
		due := at.Add(delay)
		s.timerAt = &due
	}
}

func (s *throttleSim) flush(at time.Time) {
	s.t.Helper()
	s.advance(at)
	if m := s.thr.flush(at); m != nil {
		s.sent = append(s.sent, sentMsg{m.Seq, at, "flush"})
	}
}

// settle runs the timer until none is armed.
func (s *throttleSim) settle() {
	s.t.Helper()
	for s.timerAt != nil {
		s.advance(*s.timerAt)
	}
}

func TestThrottleFirstFrameImmediate(t *testing.T) {
	t.Parallel()
	s := newSim(t, 500*time.Millisecond)
	s.offer(1, t0)
	if len(s.sent) != 1 || s.sent[0].how != "offer" {
		t.Fatalf("first frame not sent at once: %+v", s.sent)
	}
	if s.timerAt != nil {
		t.Fatal("a timer was armed for nothing")
	}
}

// TestThrottleInvariants checks the throttle's promises on many arrival
// patterns: at most one frame per window, the latest wins, none is held
// longer than the window, and the last offered frame is always sent.
func TestThrottleInvariants(t *testing.T) {
	t.Parallel()
	const w = 500 * time.Millisecond
	every := func(gap time.Duration, n int) []time.Duration {
		out := make([]time.Duration, n)
		for i := range out {
			out[i] = time.Duration(i) * gap
		}
		return out
	}
	tests := []struct {
		name     string
		arrivals []time.Duration // offsets from t0, non-decreasing
	}{
		{"steady 10ms", every(10*time.Millisecond, 300)},
		{"steady 100ms", every(100*time.Millisecond, 40)},
		{"exactly the window", every(w, 10)},
		{"just under the window", every(w-time.Millisecond, 10)},
		{"just over the window", every(w+time.Millisecond, 10)},
		{"sparse", every(2*w, 5)},
		{"all at once", every(0, 20)},
		{"bursts", []time.Duration{0, 1, 2, 3, 700 * time.Millisecond, 701 * time.Millisecond, 702 * time.Millisecond,
			2 * time.Second, 2*time.Second + 499*time.Millisecond, 2*time.Second + 500*time.Millisecond, 5 * time.Second}},
		{"one after a held one fired", []time.Duration{0, 100 * time.Millisecond, 500 * time.Millisecond, 600 * time.Millisecond, 999 * time.Millisecond}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newSim(t, w)
			for i, d := range tt.arrivals {
				s.offer(int64(i+1), t0.Add(d))
			}
			s.settle()
			if len(s.sent) == 0 || s.sent[0].seq != 1 || !s.sent[0].at.Equal(t0) {
				t.Fatalf("first frame not sent at once: %+v", s.sent)
			}
			last := int64(len(tt.arrivals))
			if got := s.sent[len(s.sent)-1].seq; got != last {
				t.Errorf("last frame sent is %d, want the last offered %d", got, last)
			}
			for i, m := range s.sent {
				if i > 0 {
					prev := s.sent[i-1]
					if gap := m.at.Sub(prev.at); gap < w {
						t.Errorf("frames %d and %d sent %v apart, less than the window", prev.seq, m.seq, gap)
					}
					if m.seq <= prev.seq {
						t.Errorf("frame %d sent after %d", m.seq, prev.seq)
					}
				}
				if held := m.at.Sub(s.arrived[m.seq]); held > w {
					t.Errorf("frame %d held %v, longer than the window", m.seq, held)
				}
				if m.how == "fire" {
					// The latest wins: nothing newer had arrived by then.
					for seq, at := range s.arrived {
						if seq > m.seq && at.Before(m.at) {
							t.Errorf("timer sent %d at %v though %d had arrived at %v", m.seq, m.at.Sub(t0), seq, at.Sub(t0))
						}
					}
				}
			}
			// Every frame is either sent or replaced, and counted.
			if want := int64(len(tt.arrivals) - len(s.sent)); s.thr.throttled != want {
				t.Errorf("throttled = %d, want %d (offered %d, sent %d)", s.thr.throttled, want, len(tt.arrivals), len(s.sent))
			}
		})
	}
}

func TestThrottleLatestWins(t *testing.T) {
	t.Parallel()
	s := newSim(t, time.Second)
	s.offer(1, t0)
	s.offer(2, t0.Add(100*time.Millisecond))
	s.offer(3, t0.Add(200*time.Millisecond))
	s.offer(4, t0.Add(300*time.Millisecond))
	if len(s.sent) != 1 {
		t.Fatalf("sent %+v within the window", s.sent)
	}
	s.advance(t0.Add(999 * time.Millisecond))
	if len(s.sent) != 1 {
		t.Fatalf("sent %+v before the window ended", s.sent)
	}
	s.advance(t0.Add(time.Second))
	if len(s.sent) != 2 || s.sent[1].seq != 4 || !s.sent[1].at.Equal(t0.Add(time.Second)) {
		t.Fatalf("sent %+v, want 4 at the end of the window", s.sent)
	}
	if s.thr.throttled != 2 {
		t.Errorf("throttled = %d, want 2", s.thr.throttled)
	}
}

func TestThrottleFlush(t *testing.T) {
	t.Parallel()
	s := newSim(t, time.Second)
	// Nothing held: flush has nothing to send.
	s.flush(t0)
	if len(s.sent) != 0 {
		t.Fatalf("flush sent %+v", s.sent)
	}
	s.offer(1, t0)
	s.offer(2, t0.Add(100*time.Millisecond))
	s.offer(3, t0.Add(200*time.Millisecond))
	// A terminal or error frame at 300ms flushes the held progress first.
	s.flush(t0.Add(300 * time.Millisecond))
	if len(s.sent) != 2 || s.sent[1].seq != 3 || s.sent[1].how != "flush" {
		t.Fatalf("flush sent %+v, want 3", s.sent)
	}
	// The armed timer finds nothing left to send.
	s.settle()
	if len(s.sent) != 2 {
		t.Fatalf("timer sent %+v after a flush", s.sent)
	}
	if s.thr.throttled != 1 {
		t.Errorf("throttled = %d, want 1", s.thr.throttled)
	}
	// A second flush has nothing either.
	if m := s.thr.flush(t0.Add(2 * time.Second)); m != nil {
		t.Errorf("second flush returned %d", m.Seq)
	}
}

func TestThrottleDisabledWindow(t *testing.T) {
	t.Parallel()
	s := newSim(t, 0)
	for i := int64(1); i <= 10; i++ {
		s.offer(i, t0)
	}
	if len(s.sent) != 10 || s.timerAt != nil || s.thr.throttled != 0 {
		t.Errorf("window 0: sent %d, timer %v, throttled %d", len(s.sent), s.timerAt, s.thr.throttled)
	}
}

// A flush does not open a gap in the window: progress held after it waits a
// full window from the flushed frame, not just until the earlier timer.
func TestThrottleWindowAfterFlush(t *testing.T) {
	t.Parallel()
	const w = 500 * time.Millisecond
	s := newSim(t, w)
	s.offer(1, t0)                              // sent
	s.offer(2, t0.Add(100*time.Millisecond))    // held; timer due at 500ms
	s.flush(t0.Add(200 * time.Millisecond))     // an error frame: 2 goes at 200ms
	s.offer(3, t0.Add(300*time.Millisecond))    // held
	s.advance(t0.Add(700*time.Millisecond - 1)) // the old timer's time passes
	if len(s.sent) != 2 {
		t.Fatalf("sent %+v, want 3 held until 700ms", s.sent)
	}
	s.settle()
	if len(s.sent) != 3 || s.sent[2].seq != 3 || !s.sent[2].at.Equal(t0.Add(700*time.Millisecond)) {
		t.Fatalf("sent %+v, want 3 at 700ms", s.sent)
	}
}

// TestThrottleInvariantsWithFlushes mixes flushes (error frames) into random
// progress streams: a frame the throttle sends on its own (at once or by the
// timer) is never less than a window after the previous one, none is held
// longer than a window, and the last progress always goes out.
func TestThrottleInvariantsWithFlushes(t *testing.T) {
	t.Parallel()
	const w = 500 * time.Millisecond
	for seed := uint64(1); seed <= 50; seed++ {
		rng := rand.New(rand.NewPCG(seed, 0))
		s := newSim(t, w)
		now := t0
		for seq := int64(1); seq <= 200; seq++ {
			now = now.Add(time.Duration(rng.IntN(300)) * time.Millisecond)
			if rng.IntN(10) == 0 {
				s.flush(now)
			}
			s.offer(seq, now)
		}
		s.settle()
		if last := s.sent[len(s.sent)-1]; last.seq != 200 {
			t.Fatalf("seed %d: last sent %d, want 200", seed, last.seq)
		}
		for i, m := range s.sent {
			if held := m.at.Sub(s.arrived[m.seq]); held > w {
				t.Errorf("seed %d: frame %d held %v", seed, m.seq, held)
			}
			if i > 0 && m.how != "flush" {
				if gap := m.at.Sub(s.sent[i-1].at); gap < w {
					t.Errorf("seed %d: frame %d (%s) sent %v after frame %d", seed, m.seq, m.how, gap, s.sent[i-1].seq)
				}
			}
		}
	}
}
