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
