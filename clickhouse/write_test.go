package clickhouse_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/clickhouse"
	"github.com/jobcast/jobcast/clickhouse/chtest"
)

// holdProxy forwards TCP connections to a ClickHouse server. Once armed, it
// holds the server's answers back from the moment a client has sent more
// than threshold bytes (an insert's data block, not a query) until release
// is closed: a server that takes its time to acknowledge an insert whose
// data it already has.
type holdProxy struct {
	ln         net.Listener
	target     string
	threshold  int64
	armed      atomic.Bool
	sent       atomic.Int64
	release    chan struct{}
	held       chan struct{} // closed when an answer is first held back
	heldOnce   sync.Once
	unholdOnce sync.Once
	wg         sync.WaitGroup
	mu         sync.Mutex
	conns      []net.Conn
}

func newHoldProxy(t *testing.T, target string, threshold int64) *holdProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &holdProxy{ln: ln, target: target, threshold: threshold, release: make(chan struct{}), held: make(chan struct{})}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *holdProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(s, c, true)
		go p.pipe(c, s, false)
	}
}

// pipe copies src to dst; toServer counts what clients send, the other
// direction is held back as described on holdProxy.
func (p *holdProxy) pipe(dst, src net.Conn, toServer bool) {
	defer p.wg.Done()
	defer dst.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if toServer && p.armed.Load() {
				p.sent.Add(int64(n))
			}
			if !toServer && p.armed.Load() && p.sent.Load() > p.threshold {
				p.heldOnce.Do(func() { close(p.held) })
				<-p.release
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				src.Close()
			}
			return
		}
	}
}

// unhold lets the held answers through.
func (p *holdProxy) unhold() { p.unholdOnce.Do(func() { close(p.release) }) }

func (p *holdProxy) close() {
	p.ln.Close()
	p.unhold()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func heartbeats(n int) []jobcast.Event {
	evs := make([]jobcast.Event, n)
	base := time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)
	for i := range evs {
		evs[i] = jobcast.Event{
			TS: base.Add(time.Duration(i) * time.Millisecond), Event: jobcast.EventHeartbeat, Node: "n1",
			JobID: fmt.Sprintf("job-%d", i%500), Pipeline: "csv_import", ConnID: fmt.Sprintf("c-%d", i%500),
			AppVersion: "2.0", NetworkType: "wifi", RTTMs: float64(i % 300), SampleInterval: 1,
		}
	}
	return evs
}

func countEvents(t *testing.T, s *clickhouse.Store) int64 {
	t.Helper()
	rows, err := s.Query(context.Background(), "SELECT count() AS n FROM events")
	if err != nil {
		t.Fatal(err)
	}
	switch n := rows.Rows[0][0].(type) {
	case int64:
		return n
	case float64:
		return int64(n)
	default:
		t.Fatalf("count() is %T", n)
		return 0
	}
}

// A Write whose caller's deadline passes after the batch reached the server
// waits for the server's answer: the server writes the batch anyway, so
// failing it would have the recorder write it twice.
func TestWriteWaitsForAnswerOnceSent(t *testing.T) {
	t.Parallel()
	dsn := chtest.URL(t)
	direct, err := clickhouse.Open(context.Background(), clickhouse.Config{URL: dsn})
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	p := newHoldProxy(t, u.Host, 64<<10)
	u.Host = p.ln.Addr().String()
	s, err := clickhouse.Open(context.Background(), clickhouse.Config{URL: u.String()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	const n = 5_000 // about 1 MB: well past the threshold
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	go func() {
		// The answer comes only after the caller's deadline.
		select {
		case <-p.held:
			<-ctx.Done()
		case <-time.After(time.Minute):
		}
		p.unhold()
	}()
	p.armed.Store(true)
	if err := s.Write(ctx, heartbeats(n)); err != nil {
		t.Fatalf("Write: %v, want it to wait for the answer of a batch sent", err)
	}
	if ctx.Err() == nil {
		t.Fatal("Write returned before its deadline: the proxy held nothing back")
	}
	if got := countEvents(t, direct); got != n {
		t.Errorf("%d events in the table, want %d", got, n)
	}
}

// A Write whose caller gave up before the batch was sent leaves nothing.
func TestWriteCancelledBeforeSending(t *testing.T) {
	t.Parallel()
	s := open(t)
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := s.Write(ctx, heartbeats(1_000))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Write: %v, want context.Canceled", err)
	}
	if got := countEvents(t, s); got != 0 {
		t.Errorf("%d events in the table, want none", got)
	}
}
