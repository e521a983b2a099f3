package netsim

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Profile describes a simulated network. The zero Profile forwards bytes
// unchanged.
type Profile struct {
	// Latency is the one-way delay added to every chunk of bytes, in both
	// directions, so a round trip gains twice this.
	Latency time.Duration `json:"latency,omitempty"`
	// Jitter adds a delay drawn uniformly from [0, Jitter] to each chunk.
	// Bytes are never reordered: a chunk waits for the one before it, as
	// on a TCP connection.
	Jitter time.Duration `json:"jitter,omitempty"`
	// DropShare is the share of connections (0..1) cut at a random moment
	// within DropWithin of being opened, as when a phone loses signal.
	DropShare float64 `json:"dropShare,omitempty"`
	// DropWithin bounds when a doomed connection is cut (default 10s).
	DropWithin time.Duration `json:"dropWithin,omitempty"`
	// IdleTimeout cuts a connection after this long without a byte in
	// either direction, as a carrier-grade NAT forgets an idle mapping
	// (0: never).
	IdleTimeout time.Duration `json:"idleTimeout,omitempty"`
	// Seed makes the drop decisions and jitter repeatable (0: random).
	Seed uint64 `json:"seed,omitempty"`
}

// Presets are named profiles for ParseProfile; the figures are typical of
// each network, not measurements.
var Presets = map[string]Profile{
	"none":     {},
	"wifi":     {Latency: 10 * time.Millisecond, Jitter: 20 * time.Millisecond},
	"cellular": {Latency: 60 * time.Millisecond, Jitter: 120 * time.Millisecond},
	// cgnat is cellular behind a NAT that forgets mappings idle for 20 s:
	// with the default 30 s heartbeat, idle connections die.
	"cgnat": {Latency: 60 * time.Millisecond, Jitter: 120 * time.Millisecond, IdleTimeout: 20 * time.Second},
	// flaky is cellular where a fifth of connections break.
	"flaky": {Latency: 60 * time.Millisecond, Jitter: 120 * time.Millisecond, DropShare: 0.2},
}

// ParseProfile reads a profile written as a preset name, a comma-separated
// list of key=value settings, or both ("cellular,drop=0.2"): latency,
// jitter, drop (share), drop-within, idle (timeout), seed. Durations use Go
// syntax (50ms, 20s).
func ParseProfile(s string) (Profile, error) {
	var p Profile
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			pre, found := Presets[part]
			if !found {
				return p, fmt.Errorf("network profile: unknown preset %q (have none, wifi, cellular, cgnat, flaky)", part)
			}
			p = pre
			continue
		}
		var err error
		switch k {
		case "latency":
			p.Latency, err = time.ParseDuration(v)
		case "jitter":
			p.Jitter, err = time.ParseDuration(v)
		case "drop":
			p.DropShare, err = strconv.ParseFloat(v, 64)
		case "drop-within":
			p.DropWithin, err = time.ParseDuration(v)
		case "idle":
			p.IdleTimeout, err = time.ParseDuration(v)
		case "seed":
			p.Seed, err = strconv.ParseUint(v, 10, 64)
		default:
			return p, fmt.Errorf("network profile: unknown setting %q (have latency, jitter, drop, drop-within, idle, seed)", k)
		}
		if err != nil {
			return p, fmt.Errorf("network profile: %s: %w", k, err)
		}
	}
	return p, p.Validate()
}

// Validate reports a profile that cannot be applied.
func (p Profile) Validate() error {
	switch {
	case p.Latency < 0 || p.Jitter < 0 || p.DropWithin < 0 || p.IdleTimeout < 0:
		return errors.New("network profile: durations must not be negative")
	case p.DropShare < 0 || p.DropShare > 1:
		return errors.New("network profile: drop share must be within 0..1")
	}
	return nil
}

// IsZero reports whether p changes nothing, so no proxy is needed.
func (p Profile) IsZero() bool { return p == Profile{} || p == Profile{Seed: p.Seed} }

// String writes p in the form ParseProfile reads.
func (p Profile) String() string {
	var parts []string
	add := func(k string, d time.Duration) {
		if d > 0 {
			parts = append(parts, k+"="+d.String())
		}
	}
	add("latency", p.Latency)
	add("jitter", p.Jitter)
	if p.DropShare > 0 {
		parts = append(parts, "drop="+strconv.FormatFloat(p.DropShare, 'g', -1, 64))
		add("drop-within", p.DropWithin)
	}
	add("idle", p.IdleTimeout)
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ",")
}

// Stats count what a proxy did.
type Stats struct {
	Accepted   int64 `json:"accepted"`
	Active     int64 `json:"active"`
	Doomed     int64 `json:"doomed"`     // chosen by DropShare to be cut
	Dropped    int64 `json:"dropped"`    // cut by DropShare so far
	IdleKilled int64 `json:"idleKilled"` // cut by IdleTimeout
	DialFailed int64 `json:"dialFailed"` // the target refused
}

// Proxy forwards loopback TCP connections to a target through a Profile.
type Proxy struct {
	ln     net.Listener
	target string
	prof   Profile

	rngMu sync.Mutex
	rng   *rand.Rand

	accepted, active, doomed, dropped, idleKilled, dialFailed atomic.Int64

	mu     sync.Mutex
	conns  map[*link]struct{}
	closed bool
	wg     sync.WaitGroup
}

// Start listens on addr (a loopback address; "127.0.0.1:0" picks a port)
// and forwards every accepted connection to target through p.
func Start(addr, target string, p Profile) (*Proxy, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if p.DropShare > 0 && p.DropWithin == 0 {
		p.DropWithin = 10 * time.Second
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("netsim: listen address: %w", err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("netsim: listen address %s is not loopback", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("netsim: %w", err)
	}
	seed := p.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	px := &Proxy{
		ln: ln, target: target, prof: p,
		rng:   rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		conns: make(map[*link]struct{}),
	}
	px.wg.Add(1)
	go px.acceptLoop()
	return px, nil
}

// Addr is the address clients dial instead of the target.
func (px *Proxy) Addr() string { return px.ln.Addr().String() }

// Stats returns the counters so far.
func (px *Proxy) Stats() Stats {
	return Stats{
		Accepted: px.accepted.Load(), Active: px.active.Load(), Doomed: px.doomed.Load(), Dropped: px.dropped.Load(),
		IdleKilled: px.idleKilled.Load(), DialFailed: px.dialFailed.Load(),
	}
}

// Close stops accepting, cuts every connection and waits for them to end.
// It is idempotent.
func (px *Proxy) Close() error {
	px.mu.Lock()
	if px.closed {
		px.mu.Unlock()
		return nil
	}
	px.closed = true
	links := make([]*link, 0, len(px.conns))
	for l := range px.conns {
		links = append(links, l)
	}
	px.mu.Unlock()
	err := px.ln.Close()
	for _, l := range links {
		l.cut()
	}
	px.wg.Wait()
	return err
}

func (px *Proxy) float() float64 {
	px.rngMu.Lock()
	defer px.rngMu.Unlock()
	return px.rng.Float64()
}

func (px *Proxy) acceptLoop() {
	defer px.wg.Done()
	for {
		c, err := px.ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return // closed
		}
		px.accepted.Add(1)
		px.wg.Add(1)
		go px.serve(c)
	}
}

// link is one proxied connection.
type link struct {
	px           *Proxy
	down, up     net.Conn // client side, target side
	lastActive   atomic.Int64
	once         sync.Once
	timerMu      sync.Mutex
	idle, doomed *time.Timer // guarded by timerMu
}

func (px *Proxy) serve(down net.Conn) {
	defer px.wg.Done()
	up, err := net.Dial("tcp", px.target)
	if err != nil {
		px.dialFailed.Add(1)
		down.Close()
		return
	}
	l := &link{px: px, down: down, up: up}
	px.mu.Lock()
	if px.closed {
		px.mu.Unlock()
		down.Close()
		up.Close()
		return
	}
	px.conns[l] = struct{}{}
	px.mu.Unlock()
	px.active.Add(1)
	defer func() {
		px.active.Add(-1)
		px.mu.Lock()
		delete(px.conns, l)
		px.mu.Unlock()
	}()

	l.touch()
	l.timerMu.Lock()
	if t := px.prof.IdleTimeout; t > 0 {
		l.idle = time.AfterFunc(t, l.checkIdle)
	}
	if px.prof.DropShare > 0 && px.float() < px.prof.DropShare {
		px.doomed.Add(1)
		after := time.Duration(px.float() * float64(px.prof.DropWithin))
		l.doomed = time.AfterFunc(after, func() {
			px.dropped.Add(1)
			l.cut()
		})
	}
	l.timerMu.Unlock()
	var wg sync.WaitGroup
	wg.Go(func() { l.pipe(up, down) })
	wg.Go(func() { l.pipe(down, up) })
	wg.Wait()
	l.cut()
}

func (l *link) touch() { l.lastActive.Store(time.Now().UnixNano()) }

// checkIdle is the idle timer: it cuts the link when nothing moved for the
// timeout, else sleeps until the timeout counted from the last activity.
// One timer per link, re-armed only when it fires, costs less than
// resetting it for every chunk.
func (l *link) checkIdle() {
	t := l.px.prof.IdleTimeout
	since := time.Duration(time.Now().UnixNano() - l.lastActive.Load())
	if since >= t {
		l.px.idleKilled.Add(1)
		l.cut()
		return
	}
	l.timerMu.Lock()
	l.idle.Reset(t - since)
	l.timerMu.Unlock()
}

// cut closes both sides at once, without a close handshake of the protocol
// inside: the peers see the connection break.
func (l *link) cut() {
	l.once.Do(func() {
		l.timerMu.Lock()
		if l.idle != nil {
			l.idle.Stop()
		}
		if l.doomed != nil {
			l.doomed.Stop()
		}
		l.timerMu.Unlock()
		if tc, ok := l.down.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // a reset, as a lost route looks to the client
		}
		l.down.Close()
		l.up.Close()
	})
}

// chunk is bytes read at a time, due for writing at a later time.
type chunk struct {
	data []byte
	due  time.Time
}

// pipe copies src to dst, delayed by the profile; it cuts the link when
// either side ends, as a middlebox would.
func (l *link) pipe(dst, src net.Conn) {
	defer l.cut()
	p := l.px.prof
	if p.Latency == 0 && p.Jitter == 0 {
		buf := make([]byte, 16<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				l.touch()
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}
	// A bounded queue of chunks in flight: a slow reader on the far side
	// pushes back on the sender as a real link's buffers would.
	q := make(chan chunk, 64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTimer(0)
		defer t.Stop()
		<-t.C
		for c := range q {
			if d := time.Until(c.due); d > 0 {
				t.Reset(d)
				<-t.C
			}
			if _, err := dst.Write(c.data); err != nil {
				l.cut()
				for range q {
				}
				return
			}
		}
	}()
	var last time.Time
	for {
		buf := make([]byte, 16<<10)
		n, err := src.Read(buf)
		if n > 0 {
			l.touch()
			due := time.Now().Add(p.Latency)
			if p.Jitter > 0 {
				due = due.Add(time.Duration(l.px.float() * float64(p.Jitter)))
			}
			if due.Before(last) {
				due = last
			}
			last = due
			q <- chunk{data: buf[:n], due: due}
		}
		if err != nil {
			// What was read before the end still goes out, late.
			close(q)
			<-done
			return
		}
	}
}
