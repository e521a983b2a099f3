package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/jobcast/jobcast/client"
	"github.com/jobcast/jobcast/demo"
	"github.com/jobcast/jobcast/netsim"
	"github.com/jobcast/jobcast/protocol"
)

// ticket opens one connection.
type ticket struct {
	JobID string `json:"j"`
	Token string `json:"t"`
}

// plan is one client process's share of a run.
type plan struct {
	BaseURL     string         `json:"baseUrl"`
	APIKey      string         `json:"apiKey"`
	Tickets     []ticket       `json:"tickets"`
	ConnectRate float64        `json:"connectRate"`
	SourceIPs   int            `json:"sourceIPs"`
	FirstIP     int            `json:"firstIP"` // offset into the source addresses
	Network     netsim.Profile `json:"network"`
	Churn       bool           `json:"churn"`
	ChurnFor    time.Duration  `json:"churnFor"`
	Seed        uint64         `json:"seed"`
}

// clientReport is what one client process saw.
type clientReport struct {
	Attempted    int64            `json:"attempted"`
	Established  int64            `json:"established"` // clients whose first connection got ready
	Failed       int64            `json:"failed"`      // clients that never got ready
	SetupSeconds float64          `json:"setupSeconds"`
	Connects     int64            `json:"connects"` // ready frames, reconnects and churn included
	ChurnConns   int64            `json:"churnConns"`
	Messages     int64            `json:"messages"`
	Progress     int64            `json:"progress"`
	Latency      histWire         `json:"latency"`
	Resumes      int64            `json:"resumes"`
	Duplicates   int64            `json:"duplicates"`
	SeqGaps      int64            `json:"seqGaps"`
	Lost         int64            `json:"lost"`
	Mismatched   int64            `json:"mismatched"`
	Unfinished   int64            `json:"unfinished"`
	Proxy        *netsim.Stats    `json:"proxy,omitempty"`
	Errors       map[string]int64 `json:"errors,omitempty"`
}

// pacer hands out start times at a fixed rate to any number of goroutines.
type pacer struct {
	mu    sync.Mutex
	every time.Duration
	next  time.Time
}

func newPacer(rate float64) *pacer {
	return &pacer{every: time.Duration(float64(time.Second) / rate)}
}

// wait blocks until the caller's turn.
func (p *pacer) wait(ctx context.Context) error {
	p.mu.Lock()
	now := time.Now()
	at := p.next
	if at.Before(now) {
		at = now // no burst to catch up after an idle spell
	}
	p.next = at.Add(p.every)
	p.mu.Unlock()
	d := time.Until(at)
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// slot is one simulated client: a watcher, or a succession of them when
// churning.
type slot struct {
	t        ticket
	cc       client.ClientContext
	w        *client.Watcher // the current (last) watcher
	lastSeen atomic.Int64
	runErr   error
}

// clients runs one process's watchers.
type clients struct {
	p      plan
	wsURL  string
	dialer *websocket.Dialer
	pace   *pacer
	hist   Histogram

	attempted, established, failed, connects, churned atomic.Int64
	messages, progress, resumes, gaps                 atomic.Int64

	errMu  sync.Mutex
	errors map[string]int64
}

// errorKinds bounds how many distinct error texts a report keeps.
const errorKinds = 20

func (c *clients) noteErr(err error) {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	k := err.Error()
	if len(k) > 120 {
		k = k[:120]
	}
	if _, ok := c.errors[k]; ok || len(c.errors) < errorKinds {
		c.errors[k]++
	} else {
		c.errors["other"]++
	}
}

// runClients opens the plan's connections, calls connected once every
// client's first connection is established or failed, churns if asked, and
// returns when every job ended or ctx is done. Then it checks every
// client's final state against the server's.
func runClients(ctx context.Context, p plan, connected func(clientReport)) (clientReport, error) {
	c := &clients{p: p, pace: newPacer(p.ConnectRate), errors: map[string]int64{}}
	c.wsURL = "ws" + p.BaseURL[len("http"):] + "/ws/progress"
	var px *netsim.Proxy
	if !p.Network.IsZero() {
		u, err := url.Parse(p.BaseURL)
		if err != nil {
			return clientReport{}, err
		}
		px, err = netsim.Start("127.0.0.1:0", u.Host, p.Network)
		if err != nil {
			return clientReport{}, err
		}
		defer px.Close()
		c.wsURL = "ws://" + px.Addr() + "/ws/progress"
	}
	var next atomic.Uint32
	c.dialer = &websocket.Dialer{
		HandshakeTimeout: 30 * time.Second,
		ReadBufferSize:   1024,
		WriteBufferSize:  1024,
		WriteBufferPool:  &sync.Pool{},
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c.attempted.Add(1)
			d := net.Dialer{}
			if p.SourceIPs > 1 {
				n := (int(next.Add(1)) + p.FirstIP) % p.SourceIPs
				d.LocalAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+n))}
			}
			return d.DialContext(ctx, network, addr)
		},
	}
	rng := rand.New(rand.NewPCG(p.Seed, p.Seed^0x5851f42d4c957f2d))
	slots := make([]*slot, len(p.Tickets))
	for i, t := range p.Tickets {
		slots[i] = &slot{t: t, cc: demo.RandomClientContext(rng)}
	}

	start := time.Now()
	var lastReady atomic.Int64
	var settled sync.WaitGroup
	settled.Add(len(slots))
	var wg sync.WaitGroup
	churnUntil := make(chan time.Time, 1)
	var churnDeadline time.Time
	var churnOnce sync.Once
	getChurnDeadline := func() time.Time {
		churnOnce.Do(func() { churnDeadline = <-churnUntil })
		return churnDeadline
	}
	for _, s := range slots {
		wg.Go(func() {
			var once sync.Once
			settle := func(ok bool) {
				once.Do(func() {
					if ok {
						c.established.Add(1)
						lastReady.Store(time.Now().UnixNano())
					} else {
						c.failed.Add(1)
					}
					settled.Done()
				})
			}
			if err := c.pace.wait(ctx); err != nil {
				settle(false)
				return
			}
			if !p.Churn {
				s.runErr = c.watch(ctx, s, func() { settle(true) })
				if s.runErr != nil {
					settle(false)
				}
				return
			}
			c.churn(ctx, s, settle, getChurnDeadline)
		})
	}
	settled.Wait()
	setup := time.Duration(0)
	if t := lastReady.Load(); t > 0 {
		setup = time.Unix(0, t).Sub(start)
	}
	if connected != nil {
		connected(c.snapshot(setup))
	}
	churnUntil <- time.Now().Add(p.ChurnFor)
	wg.Wait()

	r := c.snapshot(setup)
	if px != nil {
		st := px.Stats()
		r.Proxy = &st
	}
	for _, s := range slots {
		if s.runErr != nil {
			if errors.Is(s.runErr, context.Canceled) || errors.Is(s.runErr, context.DeadlineExceeded) {
				r.Unfinished++
			} else {
				c.noteErr(s.runErr)
			}
		}
	}
	if err := c.check(slots, &r); err != nil {
		return r, err
	}
	c.errMu.Lock()
	r.Errors = c.errors
	c.errMu.Unlock()
	return r, nil
}

// watch runs one watcher until its job ends or ctx is done. onReady is
// called for its first ready frame.
func (c *clients) watch(ctx context.Context, s *slot, onReady func()) error {
	var readyOnce sync.Once
	w, err := client.NewWatcher(client.Config{
		URL:        c.wsURL,
		JobID:      s.t.JobID,
		Token:      s.t.Token,
		Context:    s.cc,
		Dialer:     c.dialer,
		MinBackoff: 100 * time.Millisecond,
		MaxBackoff: 5 * time.Second,
		OnReady: func(r protocol.Ready) {
			c.connects.Add(1)
			if r.Resumed {
				c.resumes.Add(1)
			} else {
				s.lastSeen.Store(r.State.Seq)
			}
			readyOnce.Do(onReady)
		},
		OnMessage: func(env protocol.Envelope) {
			c.messages.Add(1)
			if prev := s.lastSeen.Swap(env.Seq); env.Seq > prev+1 {
				c.gaps.Add(env.Seq - prev - 1)
			}
			if env.Type != protocol.TypeJobProgress {
				return
			}
			c.progress.Add(1)
			if sent, ok := sentNs(env.Payload); ok {
				c.hist.Add(time.Duration(time.Now().UnixNano() - sent))
			}
		},
	})
	if err != nil {
		return err
	}
	s.w = w
	return w.Run(ctx)
}

// churn replaces the slot's connection with a new one, at the shared rate,
// until the churn deadline; the last one watches the job to its end.
func (c *clients) churn(ctx context.Context, s *slot, settle func(bool), deadline func() time.Time) {
	first := true
	for {
		wctx, cancel := context.WithCancel(ctx)
		ready := make(chan struct{})
		done := make(chan error, 1)
		go func() {
			done <- c.watch(wctx, s, func() { close(ready) })
		}()
		select {
		case <-ready:
			if first {
				settle(true)
			} else {
				c.churned.Add(1)
			}
		case err := <-done:
			cancel()
			// A watcher can be ready and end at once (its job ended
			// meanwhile, as at the end of a run): both channels are then
			// ready, and its connection counts like any other.
			select {
			case <-ready:
				if first {
					settle(true)
				} else {
					c.churned.Add(1)
				}
			default:
				if first {
					settle(false)
				}
			}
			s.runErr = err
			return
		}
		first = false
		if time.Now().After(deadline()) {
			s.runErr = <-done
			cancel()
			return
		}
		if err := c.pace.wait(ctx); err != nil {
			cancel()
			s.runErr = <-done
			return
		}
		cancel() // the client closes with 1000 and a new one dials
		<-done
	}
}

func (c *clients) snapshot(setup time.Duration) clientReport {
	return clientReport{
		Attempted:    c.attempted.Load(),
		Established:  c.established.Load(),
		Failed:       c.failed.Load(),
		SetupSeconds: setup.Seconds(),
		Connects:     c.connects.Load(),
		ChurnConns:   c.churned.Load(),
		Messages:     c.messages.Load(),
		Progress:     c.progress.Load(),
		Latency:      c.hist.wire(),
		Resumes:      c.resumes.Load(),
		SeqGaps:      c.gaps.Load(),
	}
}

// check compares every client's final state with the server's: a client
// behind the server's seq lost frames; one with a different status or
// count holds a wrong state.
func (c *clients) check(slots []*slot, r *clientReport) error {
	prod := client.NewProducer(c.p.BaseURL, c.p.APIKey)
	prod.HTTP = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	defer prod.HTTP.CloseIdleConnections()
	states := map[string]*protocol.JobState{}
	var jobIDs []string
	for _, s := range slots {
		if _, ok := states[s.t.JobID]; !ok {
			states[s.t.JobID] = nil
			jobIDs = append(jobIDs, s.t.JobID)
		}
	}
	ids := make(chan string)
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for id := range ids {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				st, err := prod.GetJob(ctx, id)
				cancel()
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = fmt.Errorf("final state of job %s: %w", id, err)
				}
				states[id] = st
				mu.Unlock()
			}
		})
	}
	for _, id := range jobIDs {
		ids <- id
	}
	close(ids)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	for _, s := range slots {
		srv := states[s.t.JobID]
		if srv == nil {
			continue
		}
		if s.w == nil {
			r.Lost += srv.Seq
			continue
		}
		st := s.w.Stats()
		r.Duplicates += int64(st.Duplicates)
		got := s.w.State()
		if d := srv.Seq - s.w.LastSeq(); d > 0 {
			r.Lost += d
		}
		if got.Status != srv.Status || got.ProcessedCount != srv.ProcessedCount {
			r.Mismatched++
		}
	}
	return nil
}

var sentKey = []byte(`"sentNs":`)

// sentNs finds the publisher's timestamp in a progress payload.
func sentNs(payload []byte) (int64, bool) {
	i := bytes.Index(payload, sentKey)
	if i < 0 {
		return 0, false
	}
	var v int64
	j := i + len(sentKey)
	for ; j < len(payload) && payload[j] >= '0' && payload[j] <= '9'; j++ {
		v = v*10 + int64(payload[j]-'0')
	}
	return v, j > i+len(sentKey)
}
