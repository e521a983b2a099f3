package demo

import (
	"context"
	"math/rand/v2"
	"net"
	"net/http"
	"time"

	"github.com/gorilla/websocket"
)

// latency is a simulated network's one-way delay for what a client sends:
// loopback has none, so without it every heartbeat would show a round trip
// of a fraction of a millisecond.
type latency struct {
	base, jitter time.Duration
}

// networkLatency gives each network type a plausible delay.
func networkLatency(networkType string) latency {
	switch networkType {
	case "cellular":
		return latency{base: 60 * time.Millisecond, jitter: 240 * time.Millisecond}
	case "wifi":
		return latency{base: 10 * time.Millisecond, jitter: 40 * time.Millisecond}
	default:
		return latency{base: 2 * time.Millisecond, jitter: 8 * time.Millisecond}
	}
}

// dialer returns a WebSocket dialer whose connections delay every write by
// the network's latency, so the server measures a realistic heartbeat RTT.
func (l latency) dialer(speed float64) *websocket.Dialer {
	var d net.Dialer
	return &websocket.Dialer{
		HandshakeTimeout: 10 * time.Second,
		Proxy:            http.ProxyFromEnvironment,
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &slowConn{Conn: c, l: l, speed: speed}, nil
		},
	}
}

type slowConn struct {
	net.Conn
	l     latency
	speed float64
}

func (c *slowConn) Write(p []byte) (int, error) {
	d := c.l.base + time.Duration(rand.Float64()*float64(c.l.jitter))
	time.Sleep(time.Duration(float64(d) / c.speed))
	return c.Conn.Write(p)
}
