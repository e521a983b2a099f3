package hub

import (
	"container/heap"
	"sync"
	"time"

	"github.com/jobcast/jobcast"
)

// heartbeatGap is the least time between two passes of the heartbeat
// scheduler: a ping or a pong deadline is late by at most this much (less
// for short heartbeat intervals, see newHeartbeats), and the pings that
// fall due meanwhile go out together. A timer per connection woke an idle
// server for every ping and every pong deadline, 1,300 times a second at
// 19,000 connections, and each wake-up cost more than the ping's write.
const heartbeatGap = 100 * time.Millisecond

// heartbeats is a hub's heartbeat scheduler: every connection's next
// ping, or the deadline of its unanswered one, in one heap on one timer of
// the hub's clock (so that tests drive it with theirs). A pass sends the
// due pings and closes the connections whose pong is late.
type heartbeats struct {
	clock jobcast.Clock
	gap   time.Duration

	mu      sync.Mutex
	due     beatHeap      // by conn.hbDue
	timer   jobcast.Timer // the next pass, when armed
	armedAt int64         // when the timer fires, Unix nanoseconds; 0 when not armed
	lastRun int64         // when the last pass ran, Unix nanoseconds
}

// newHeartbeats returns the scheduler of a hub whose connections ping
// every interval by default: the gap between passes is at most a quarter
// of it, so that short intervals (tests, experiments) keep their rhythm.
func newHeartbeats(clock jobcast.Clock, interval time.Duration) *heartbeats {
	gap := heartbeatGap
	if interval > 0 {
		gap = min(gap, interval/4)
	}
	return &heartbeats{clock: clock, gap: gap}
}

// set schedules c's next heartbeat action at at: a ping, or the close of
// a connection whose ping is unanswered. Call with c.mu held: hbDue
// changes only under both locks, so either one suffices to read it.
func (s *heartbeats) set(c *conn, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c.hbDue = at.UnixNano()
	if c.hbIndex == 0 {
		heap.Push(&s.due, c)
	} else {
		heap.Fix(&s.due, int(c.hbIndex-1))
	}
	s.armLocked()
}

// remove unschedules c. Call with c.mu held.
func (s *heartbeats) remove(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.hbIndex == 0 {
		return
	}
	heap.Remove(&s.due, int(c.hbIndex-1))
	if len(s.due) == 0 && s.timer != nil {
		// Nothing left: no pass, and no timer outliving the hub.
		s.timer.Stop()
		s.timer, s.armedAt = nil, 0
	}
}

// armLocked makes sure a pass runs when the earliest action falls due, but
// not sooner than gap after the last one. Call with s.mu held.
func (s *heartbeats) armLocked() {
	if len(s.due) == 0 {
		return
	}
	at := max(s.due[0].hbDue, s.lastRun+int64(s.gap))
	if s.armedAt != 0 && s.armedAt <= at {
		return // the armed pass comes first and arms the next one
	}
	if s.timer != nil {
		s.timer.Stop()
	}
	s.armedAt = at
	s.timer = s.clock.AfterFunc(time.Duration(at-s.clock.Now().UnixNano()), s.run)
}

// run is a pass: it takes the connections whose action is due and acts on
// each, outside the scheduler's lock.
func (s *heartbeats) run() {
	now := s.clock.Now().UnixNano()
	s.mu.Lock()
	s.armedAt, s.lastRun = 0, now
	var due []*conn
	for len(s.due) > 0 && s.due[0].hbDue <= now {
		due = append(due, heap.Pop(&s.due).(*conn))
	}
	s.armLocked()
	s.mu.Unlock()
	for _, c := range due {
		c.onHeartbeat(now)
	}
}

// beatHeap is a min-heap of connections by their next heartbeat action;
// each knows its place (hbIndex, 1-based), so that it can be moved or
// taken out when it is rescheduled or closed.
type beatHeap []*conn

func (q beatHeap) Len() int           { return len(q) }
func (q beatHeap) Less(i, j int) bool { return q[i].hbDue < q[j].hbDue }
func (q beatHeap) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].hbIndex, q[j].hbIndex = int32(i+1), int32(j+1)
}

func (q *beatHeap) Push(x any) {
	c := x.(*conn)
	c.hbIndex = int32(len(*q) + 1)
	*q = append(*q, c)
}

func (q *beatHeap) Pop() any {
	old := *q
	c := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	c.hbIndex = 0
	return c
}
