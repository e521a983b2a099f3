package netsim

import (
	"bufio"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// echoServer answers every line with the same line, until the test ends.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

func startProxy(t *testing.T, p Profile) *Proxy {
	t.Helper()
	px, err := Start("127.0.0.1:0", echoServer(t), p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { px.Close() })
	return px
}

func dial(t *testing.T, px *Proxy) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", px.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip sends a line and returns how long its echo took.
func roundTrip(t *testing.T, c net.Conn, r *bufio.Reader) time.Duration {
	t.Helper()
	start := time.Now()
	if _, err := c.Write([]byte("ping\n")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := r.ReadString('\n')
	if err != nil || line != "ping\n" {
		t.Fatalf("echo: %q, %v", line, err)
	}
	return time.Since(start)
}

func TestLatencyWithinBounds(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name            string
		latency, jitter time.Duration
	}{
		{"fixed", 20 * time.Millisecond, 0},
		{"jitter", 10 * time.Millisecond, 30 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			px := startProxy(t, Profile{Latency: tt.latency, Jitter: tt.jitter, Seed: 1})
			c := dial(t, px)
			r := bufio.NewReader(c)
			lo := 2 * tt.latency
			// Scheduling on a busy machine adds to the upper bound.
			hi := 2*(tt.latency+tt.jitter) + time.Second
			for range 5 {
				if d := roundTrip(t, c, r); d < lo || d > hi {
					t.Fatalf("round trip %v, want within [%v, %v]", d, lo, hi)
				}
			}
		})
	}
}

func TestNoProfileForwards(t *testing.T) {
	t.Parallel()
	px := startProxy(t, Profile{})
	c := dial(t, px)
	roundTrip(t, c, bufio.NewReader(c))
	if s := px.Stats(); s.Accepted != 1 || s.Active != 1 {
		t.Fatalf("stats %+v", s)
	}
}

// waitClosed blocks until the peer cut c, or fails after a deadline.
func waitClosed(t *testing.T, c net.Conn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var buf [64]byte
	for {
		_, err := c.Read(buf[:])
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("connection still open after 10s")
		}
		return
	}
}

func TestDropShare(t *testing.T) {
	t.Parallel()
	const n = 200
	px := startProxy(t, Profile{DropShare: 0.25, DropWithin: 50 * time.Millisecond, Seed: 42})
	for range n {
		dial(t, px) // a doomed one may be cut at once: no round trip here
	}
	// Every doomed connection is cut within DropWithin of being accepted:
	// poll until all were accepted, cut, and their links torn down.
	deadline := time.Now().Add(10 * time.Second)
	s := px.Stats()
	for s.Accepted < n || s.Dropped < s.Doomed || s.Active != s.Accepted-s.Dropped {
		if time.Now().After(deadline) {
			t.Fatalf("did not settle: %+v", s)
		}
		time.Sleep(5 * time.Millisecond) // polling interval
		s = px.Stats()
	}
	if s.Doomed < n*15/100 || s.Doomed > n*35/100 {
		t.Fatalf("doomed %d of %d connections, want about 25%%", s.Doomed, n)
	}
}

func TestIdleTimeout(t *testing.T) {
	t.Parallel()
	const idle = 300 * time.Millisecond
	px := startProxy(t, Profile{IdleTimeout: idle})
	quiet := dial(t, px)
	busy := dial(t, px)
	busyR := bufio.NewReader(busy)
	start := time.Now()
	roundTrip(t, quiet, bufio.NewReader(quiet))
	// The busy connection talks every 20 ms while the quiet one is cut.
	done := make(chan struct{})
	go func() {
		defer close(done)
		waitClosed(t, quiet)
	}()
	for {
		select {
		case <-done:
			if d := time.Since(start); d < idle {
				t.Fatalf("idle connection cut after %v, before the %v timeout", d, idle)
			}
			roundTrip(t, busy, busyR) // still open
			if s := px.Stats(); s.IdleKilled != 1 {
				t.Fatalf("idle killed %d, want 1", s.IdleKilled)
			}
			return
		case <-time.After(20 * time.Millisecond):
			roundTrip(t, busy, busyR)
		}
	}
}

func TestCloseCutsConnections(t *testing.T) {
	t.Parallel()
	px := startProxy(t, Profile{Latency: time.Millisecond})
	c := dial(t, px)
	roundTrip(t, c, bufio.NewReader(c))
	if err := px.Close(); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, c)
	if err := px.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestParseProfile(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    Profile
		wantErr bool
	}{
		{in: "", want: Profile{}},
		{in: "none", want: Profile{}},
		{in: "cellular", want: Presets["cellular"]},
		{in: "cellular,drop=0.2", want: Profile{Latency: 60 * time.Millisecond, Jitter: 120 * time.Millisecond, DropShare: 0.2}},
		{in: "latency=5ms,jitter=1ms,idle=20s,drop=0.5,drop-within=3s,seed=7",
			want: Profile{Latency: 5 * time.Millisecond, Jitter: time.Millisecond, IdleTimeout: 20 * time.Second, DropShare: 0.5, DropWithin: 3 * time.Second, Seed: 7}},
		{in: "drop=1.5", wantErr: true},
		{in: "latency=-1s", wantErr: true},
		{in: "satellite", wantErr: true},
		{in: "speed=3", wantErr: true},
		{in: "latency=fast", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := ParseProfile(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil && got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			if err == nil {
				back, err := ParseProfile(got.String())
				if err != nil || back != (Profile{Latency: got.Latency, Jitter: got.Jitter, DropShare: got.DropShare, DropWithin: got.DropWithin, IdleTimeout: got.IdleTimeout}) {
					t.Fatalf("String %q does not parse back: %+v, %v", got.String(), back, err)
				}
			}
		})
	}
}

func TestStartRefusesNonLoopback(t *testing.T) {
	t.Parallel()
	if _, err := Start("0.0.0.0:0", "127.0.0.1:1", Profile{}); err == nil {
		t.Fatal("listening on 0.0.0.0 was accepted")
	}
}
