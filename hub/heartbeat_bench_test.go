package hub

import (
	"testing"
	"time"

	"github.com/jobcast/jobcast"
)

// BenchmarkHeartbeatReschedule is what a pong costs the scheduler at
// 19,000 connections: moving one connection's entry to its next ping.
// BenchmarkHeartbeatTimer is the same with a runtime timer per connection,
// as before the scheduler: stop the pong deadline, arm the next ping.
func BenchmarkHeartbeatReschedule(b *testing.B) {
	const conns = 19000
	s := newHeartbeats(jobcast.SystemClock{}, 30*time.Second)
	start := time.Now().Add(time.Hour) // no pass runs during the benchmark
	cs := make([]*conn, conns)
	for i := range cs {
		cs[i] = &conn{}
		s.set(cs[i], start.Add(time.Duration(i)*time.Millisecond))
	}
	b.ResetTimer()
	for i := range b.N {
		c := cs[i%conns]
		s.set(c, start.Add(30*time.Second+time.Duration(i)*time.Microsecond))
	}
	b.StopTimer()
	for _, c := range cs {
		s.remove(c)
	}
}

func BenchmarkHeartbeatTimer(b *testing.B) {
	const conns = 19000
	timers := make([]*time.Timer, conns)
	f := func() {}
	for i := range timers {
		timers[i] = time.AfterFunc(time.Hour+time.Duration(i)*time.Millisecond, f)
	}
	b.ResetTimer()
	for i := range b.N {
		j := i % conns
		timers[j].Stop()
		timers[j] = time.AfterFunc(time.Hour+30*time.Second, f)
	}
	b.StopTimer()
	for _, t := range timers {
		t.Stop()
	}
}
