package hub

import (
	"time"

	"github.com/jobcast/jobcast"
)

// throttle coalesces one connection's progress frames: the first goes at
// once, later ones at most one per window, always the latest, and none is
// held longer than window. It is pure state; the connection owns the timer.
type throttle struct {
	window    time.Duration
	lastSent  time.Time
	pending   *jobcast.Message
	armed     bool
	throttled int64 // progress frames replaced before they were sent
}

// offer decides about a progress message arriving at now. When send is true
// the caller sends msg at once. Otherwise msg is held, and when arm is true
// the caller must call fire after delay.
func (t *throttle) offer(msg *jobcast.Message, now time.Time) (send bool, arm bool, delay time.Duration) {
	if t.window <= 0 || (t.pending == nil && !t.armed && now.Sub(t.lastSent) >= t.window) {
		t.lastSent = now
		return true, false, 0
	}
	if t.pending != nil {
		t.throttled++
	}
	t.pending = msg
	if t.armed {
		return false, false, 0
	}
	t.armed = true
	delay = t.lastSent.Add(t.window).Sub(now)
	if delay < 0 {
		delay = 0
	}
	return false, true, delay
}

// fire is the timer: it returns the held message to send now, if any. When
// a flush sent a frame after the timer was armed, the held message must wait
// out that frame's window: fire then returns the delay after which the
// caller calls fire again.
func (t *throttle) fire(now time.Time) (*jobcast.Message, time.Duration) {
	if t.pending != nil && now.Sub(t.lastSent) < t.window {
		return nil, t.lastSent.Add(t.window).Sub(now)
	}
	t.armed = false
	m := t.pending
	t.pending = nil
	if m != nil {
		t.lastSent = now
	}
	return m, 0
}

// flush returns the held message, if any, so that a terminal or error frame
// can go right after it. The timer, if armed, will find nothing to send.
func (t *throttle) flush(now time.Time) *jobcast.Message {
	m := t.pending
	t.pending = nil
	if m != nil {
		t.lastSent = now
	}
	return m
}
