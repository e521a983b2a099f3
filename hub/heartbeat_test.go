package hub_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/protocol"
)

// expectPing reads a server ping and returns its serverTime.
func (c *ws) expectPing() int64 {
	c.t.Helper()
	f := c.expect(protocol.TypePing)
	var p protocol.Ping
	if err := json.Unmarshal(f.Payload, &p); err != nil {
		c.t.Fatal(err)
	}
	if p.ServerTime == 0 {
		c.t.Fatalf("ping without serverTime: %s", f.data)
	}
	return p.ServerTime
}

func TestHeartbeat(t *testing.T) {
	t.Parallel()
	const interval, timeout = 30 * time.Second, 10 * time.Second
	e := newEnv(t, jobcast.Config{HeartbeatInterval: interval, PongTimeout: timeout})
	tk := e.createJob(t)
	c, _ := e.open(t, tk)

	// No ping before the interval is up.
	e.clock.Advance(interval - time.Millisecond)
	c.expectNothing()
	e.clock.Advance(time.Millisecond)
	st := c.expectPing()
	if st != e.clock.Now().UnixMilli() {
		t.Errorf("ping serverTime = %d, want the server clock %d", st, e.clock.Now().UnixMilli())
	}

	// A pong 40ms later (server clock) records an RTT of 40ms.
	e.clock.Advance(40 * time.Millisecond)
	c.send(protocol.TypePong, protocol.Pong{ServerTime: st})
	c.expectNothing() // the pong has been read
	info := e.connection(t, tk.JobID)
	if info.LastRTTMs != 40 || info.AvgRTTMs != 40 || info.Heartbeats != 1 {
		t.Errorf("after one pong: lastRttMs=%v avgRttMs=%v heartbeats=%d, want 40 40 1", info.LastRTTMs, info.AvgRTTMs, info.Heartbeats)
	}

	// A stale or unsolicited pong changes nothing.
	c.send(protocol.TypePong, protocol.Pong{ServerTime: st - 1})
	c.send(protocol.TypePong, protocol.Pong{ServerTime: st})
	c.expectNothing()
	if info := e.connection(t, tk.JobID); info.Heartbeats != 1 {
		t.Errorf("stale pongs counted: heartbeats=%d", info.Heartbeats)
	}

	// The next ping comes one interval after the previous one.
	e.clock.Advance(interval - 40*time.Millisecond - time.Millisecond)
	c.expectNothing()
	e.clock.Advance(time.Millisecond)
	st2 := c.expectPing()
	e.clock.Advance(100 * time.Millisecond)
	c.send(protocol.TypePong, protocol.Pong{ServerTime: st2})
	c.expectNothing()
	info = e.connection(t, tk.JobID)
	if info.LastRTTMs != 100 || info.AvgRTTMs != 70 || info.Heartbeats != 2 {
		t.Errorf("after two pongs: lastRttMs=%v avgRttMs=%v heartbeats=%d, want 100 70 2", info.LastRTTMs, info.AvgRTTMs, info.Heartbeats)
	}

	// An unanswered ping closes the connection with 4008 after the timeout.
	e.clock.Advance(interval - 100*time.Millisecond)
	c.expectPing()
	e.clock.Advance(timeout - time.Millisecond)
	c.expectNothing()
	e.clock.Advance(time.Millisecond)
	c.expectClose(protocol.CloseHeartbeatTimeout)
}

func TestClientPing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, jobcast.Config{})
	tk := e.createJob(t)
	c, _ := e.open(t, tk)
	e.clock.Advance(1234 * time.Millisecond)
	c.send(protocol.TypePing, protocol.Ping{ClientTime: 42})
	f := c.expect(protocol.TypePong)
	var p protocol.Pong
	if err := json.Unmarshal(f.Payload, &p); err != nil {
		t.Fatal(err)
	}
	if p.ClientTime != 42 || p.ServerTime != e.clock.Now().UnixMilli() {
		t.Errorf("pong = %+v, want clientTime 42 and serverTime %d", p, e.clock.Now().UnixMilli())
	}
	// A ping without payload is answered too.
	c.sendRaw(`{"v":2,"type":"ping"}`)
	c.expect(protocol.TypePong)
}

// TestHeartbeatsShareAPass: the heartbeat scheduler runs at most one pass
// per gap (100 ms at this interval), so a ping that falls due soon after
// another waits for the next pass, never more than the gap, and never
// goes out early; its pong deadline counts from when it went out.
func TestHeartbeatsShareAPass(t *testing.T) {
	t.Parallel()
	const interval, timeout, gap = 30 * time.Second, 10 * time.Second, 100 * time.Millisecond
	e := newEnv(t, jobcast.Config{HeartbeatInterval: interval, PongTimeout: timeout})
	tkA := e.createJob(t)
	a, _ := e.open(t, tkA)
	e.clock.Advance(40 * time.Millisecond)
	b, _ := e.open(t, e.createJob(t))

	e.clock.Advance(interval - 40*time.Millisecond)
	stA := a.expectPing()
	e.clock.Advance(40 * time.Millisecond) // b's ping is due, the next pass is not
	b.expectNothing()
	e.clock.Advance(gap - 40*time.Millisecond - time.Millisecond)
	b.expectNothing()
	e.clock.Advance(time.Millisecond)
	if st := b.expectPing(); st != e.clock.Now().UnixMilli() {
		t.Errorf("b's ping serverTime = %d, want the pass's time %d", st, e.clock.Now().UnixMilli())
	}

	// a answers; b does not, and is closed when its timeout from the
	// ping's actual send is up.
	a.send(protocol.TypePong, protocol.Pong{ServerTime: stA})
	a.expectNothing()
	e.clock.Advance(timeout - time.Millisecond)
	b.expectNothing()
	e.clock.Advance(time.Millisecond)
	b.expectClose(protocol.CloseHeartbeatTimeout)
	if info := e.connection(t, tkA.JobID); info.Heartbeats != 1 {
		t.Errorf("a: heartbeats=%d, want 1", info.Heartbeats)
	}
}

// TestHeartbeatsIdleWithoutConnections: a closed connection leaves the
// scheduler, and with none left no timer stays armed.
func TestHeartbeatsIdleWithoutConnections(t *testing.T) {
	t.Parallel()
	e := newEnv(t, jobcast.Config{HeartbeatInterval: 30 * time.Second})
	before := e.clock.Pending()
	a, _ := e.open(t, e.createJob(t))
	b, _ := e.open(t, e.createJob(t))
	if n := e.clock.Pending(); n != before+1 {
		t.Errorf("%d timers armed with two connections, want %d (one for both)", n, before+1)
	}
	a.c.Close()
	b.c.Close()
	waitFor(t, "the connections to go", func() bool { return e.srv.Hub.ConnCount() == 0 })
	if n := e.clock.Pending(); n != before {
		t.Errorf("%d timers armed after the connections closed, want %d", n, before)
	}
}
