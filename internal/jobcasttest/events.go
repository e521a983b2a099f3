package jobcasttest

import (
	"sync"
	"testing"
	"time"

	"github.com/jobcast/jobcast"
)

// Events is an EventRecorder that keeps every event, for tests that check
// what a server recorded.
type Events struct {
	mu     sync.Mutex
	events []jobcast.Event
}

// Record implements jobcast.EventRecorder.
func (e *Events) Record(ev jobcast.Event) {
	e.mu.Lock()
	e.events = append(e.events, ev)
	e.mu.Unlock()
}

// All returns the events so far, in recording order.
func (e *Events) All() []jobcast.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]jobcast.Event(nil), e.events...)
}

// Named returns the events with the given name.
func (e *Events) Named(name string) []jobcast.Event {
	var out []jobcast.Event
	for _, ev := range e.All() {
		if ev.Event == name {
			out = append(out, ev)
		}
	}
	return out
}

// Wait polls until n events named name were recorded, and returns them.
func (e *Events) Wait(tb testing.TB, name string, n int) []jobcast.Event {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := e.Named(name)
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			tb.Fatalf("waited for %d %q events, have %d: %+v", n, name, len(got), e.All())
		}
		time.Sleep(2 * time.Millisecond)
	}
}
