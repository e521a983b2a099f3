package loadgen

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jobcast/jobcast/client"
	"github.com/jobcast/jobcast/demo"
	"github.com/jobcast/jobcast/protocol"
)

// jobTotal is the totalCount of every load job: never reached, so a job
// ends only when the generator completes it.
const jobTotal = 1 << 40

// side is one client process, in this process or another.
type side interface {
	// connected yields a snapshot once every client's first connection
	// was established or failed.
	connected() <-chan clientReport
	// done yields the final report.
	done() <-chan sideResult
}

type sideResult struct {
	r   clientReport
	err error
}

// localSide runs clients in this process.
type localSide struct {
	conn chan clientReport
	res  chan sideResult
}

func startLocal(ctx context.Context, p plan) *localSide {
	s := &localSide{conn: make(chan clientReport, 1), res: make(chan sideResult, 1)}
	go func() {
		r, err := runClients(ctx, p, func(r clientReport) { s.conn <- r })
		s.res <- sideResult{r, err}
	}()
	return s
}

func (s *localSide) connected() <-chan clientReport { return s.conn }
func (s *localSide) done() <-chan sideResult        { return s.res }

// Run performs a load run against cfg.URL and returns its report. It ends
// by itself: after the connection phase, cfg.Duration of measured load,
// and the drain of every job's end (at most cfg.DrainTimeout).
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	base := strings.TrimRight(cfg.URL, "/")
	u, _ := url.Parse(base)
	pid := cfg.ServerPID
	if pid == 0 {
		pid = findListener(u.Host)
	}
	pid = max(pid, 0)
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 4 * cfg.Producers}}
	defer hc.CloseIdleConnections()
	smp := &sampler{base: base, adminToken: cfg.AdminToken, pid: pid, http: hc}
	prod := client.NewProducer(base, cfg.APIKey)
	prod.HTTP = hc
	seed := cfg.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}

	nJobs := (cfg.Conns + cfg.WatchersPerJob - 1) / cfg.WatchersPerJob
	fmt.Fprintf(cfg.Out, "loadgen: creating %d jobs\n", nJobs)
	jobs, err := createJobs(ctx, prod, nJobs, 4*cfg.Producers, seed)
	if err != nil {
		return nil, err
	}
	// The baseline is the server with its jobs and no connections, so that
	// what the connection phase adds is the connections' cost alone.
	s0, err := smp.sample(ctx, true)
	if err != nil {
		return nil, fmt.Errorf("loadgen: baseline: %w", err)
	}

	// Tickets in job order, cut into one contiguous share per process, so
	// that the watchers of a job live in one process.
	tickets := make([]ticket, cfg.Conns)
	for i := range tickets {
		tickets[i] = jobs[i/cfg.WatchersPerJob]
	}
	procs := (cfg.Conns + cfg.ConnsPerProcess - 1) / cfg.ConnsPerProcess
	clientURLs := []string{base}
	if len(cfg.ClientURLs) > 0 {
		clientURLs = cfg.ClientURLs
		procs = max(procs, len(clientURLs))
	}
	cctx, cancelClients := context.WithCancel(ctx)
	defer cancelClients()
	sides := make([]side, procs)
	for i := range sides {
		lo, hi := i*len(tickets)/procs, (i+1)*len(tickets)/procs
		p := plan{
			BaseURL: strings.TrimRight(clientURLs[i%len(clientURLs)], "/"), APIKey: cfg.APIKey, Tickets: tickets[lo:hi],
			ConnectRate: cfg.ConnectRate / float64(procs),
			SourceIPs:   cfg.SourceIPs, FirstIP: i * cfg.SourceIPs / procs,
			Network: cfg.Network, Churn: cfg.Churn, ChurnFor: cfg.Duration,
			Seed: seed + uint64(i),
		}
		if procs == 1 {
			sides[i] = startLocal(cctx, p)
		} else if sides[i], err = startWorker(cctx, cfg, p); err != nil {
			return nil, err
		}
	}
	fmt.Fprintf(cfg.Out, "loadgen: opening %d connections at %.0f/s in %d process(es)\n", cfg.Conns, cfg.ConnectRate, procs)
	// A client that keeps being refused retries forever; the phase gets
	// the time its rate needs plus the drain timeout, then the run fails.
	connectBy := time.NewTimer(time.Duration(float64(cfg.Conns)/cfg.ConnectRate*float64(time.Second)) + cfg.DrainTimeout)
	defer connectBy.Stop()
	var conn clientReport
	for _, s := range sides {
		select {
		case <-connectBy.C:
			return nil, errors.New("loadgen: clients still not connected after the connect rate's time plus the drain timeout; see the server's log (limits per IP or per job?)")
		case r := <-s.connected():
			conn.add(r)
			conn.SetupSeconds = max(conn.SetupSeconds, r.SetupSeconds)
		case res := <-s.done():
			if res.err == nil {
				res.err = errors.New("client process ended before connecting")
			}
			return nil, fmt.Errorf("loadgen: %w", res.err)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	fmt.Fprintf(cfg.Out, "loadgen: %d established, %d failed in %.1fs; measuring for %s\n",
		conn.Established, conn.Failed, conn.SetupSeconds, cfg.Duration)

	idle := cfg.Rate == 0 && !cfg.Churn
	s1, err := smp.sample(ctx, true)
	if err != nil {
		return nil, fmt.Errorf("loadgen: after connecting: %w", err)
	}
	var pub producerStats
	mctx, cancelMeasure := context.WithTimeout(ctx, cfg.Duration)
	if cfg.Rate > 0 {
		produce(mctx, prod, jobs, cfg, &pub)
	}
	<-mctx.Done()
	cancelMeasure()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	// Idle memory is read after a GC, like the baseline; under load a
	// forced GC would perturb what is measured.
	s2, err := smp.sample(ctx, idle)
	if err != nil {
		return nil, fmt.Errorf("loadgen: after the measured phase: %w", err)
	}

	fmt.Fprintf(cfg.Out, "loadgen: completing %d jobs and waiting for every client to see the end\n", len(jobs))
	if err := completeJobs(ctx, prod, jobs, 4*cfg.Producers); err != nil {
		return nil, err
	}
	drain := time.AfterFunc(cfg.DrainTimeout, cancelClients)
	defer drain.Stop()
	var final clientReport
	var sideErr error
	for _, s := range sides {
		res := <-s.done()
		final.add(res.r)
		if res.err != nil && sideErr == nil {
			sideErr = res.err
		}
	}
	final.SetupSeconds = conn.SetupSeconds
	final.Attempted, final.Established, final.Failed = conn.Attempted, conn.Established, conn.Failed
	rep := buildReport(cfg, procs, len(jobs), conn, final, s0, s1, s2, pub.published.Load(), pub.errs.Load())
	rep.PublishRequests = pub.requests.Load()
	if pub.rtt.Count() > 0 {
		rep.RequestP50Ms, rep.RequestP99Ms = ms(pub.rtt.Quantile(0.50)), ms(pub.rtt.Quantile(0.99))
	}
	rep.Server.PID = pid
	if sideErr != nil {
		return rep, fmt.Errorf("loadgen: %w", sideErr)
	}
	return rep, nil
}

// add merges r into c (counters add; setup is the caller's).
func (c *clientReport) add(r clientReport) {
	c.Attempted += r.Attempted
	c.Established += r.Established
	c.Failed += r.Failed
	c.Connects += r.Connects
	c.ChurnConns += r.ChurnConns
	c.Messages += r.Messages
	c.Progress += r.Progress
	c.Resumes += r.Resumes
	c.Duplicates += r.Duplicates
	c.SeqGaps += r.SeqGaps
	c.Lost += r.Lost
	c.Mismatched += r.Mismatched
	c.Unfinished += r.Unfinished
	var h Histogram
	h.merge(c.Latency)
	h.merge(r.Latency)
	c.Latency = h.wire()
	if r.Proxy != nil {
		if c.Proxy == nil {
			c.Proxy = r.Proxy
		} else {
			p := *c.Proxy
			p.Accepted += r.Proxy.Accepted
			p.Active += r.Proxy.Active
			p.Doomed += r.Proxy.Doomed
			p.Dropped += r.Proxy.Dropped
			p.IdleKilled += r.Proxy.IdleKilled
			p.DialFailed += r.Proxy.DialFailed
			c.Proxy = &p
		}
	}
	for k, v := range r.Errors {
		if c.Errors == nil {
			c.Errors = map[string]int64{}
		}
		c.Errors[k] += v
	}
}

// createJobs creates n jobs over the demo's pipelines and returns a ticket
// for each.
func createJobs(ctx context.Context, prod *client.Producer, n, conc int, seed uint64) ([]ticket, error) {
	pipelines := demo.Pipelines()
	out := make([]ticket, n)
	idx := make(chan int)
	var firstErr error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			for i := range idx {
				t, err := prod.CreateJob(ctx, client.CreateJobRequest{
					JobID:      fmt.Sprintf("load-%x-%d", seed&0xffffff, i),
					Pipeline:   pipelines[i%len(pipelines)],
					TotalCount: jobTotal,
				})
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("loadgen: create job: %w", err)
					}
					mu.Unlock()
					continue
				}
				out[i] = ticket{JobID: t.JobID, Token: t.Token}
			}
		})
	}
	for i := range n {
		mu.Lock()
		failed := firstErr != nil
		mu.Unlock()
		if failed || ctx.Err() != nil {
			break
		}
		idx <- i
	}
	close(idx)
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	return out, ctx.Err()
}

// producerStats counts what the producers sent and how long each request
// took, from stamping its events to the server's answer: the first part of
// publish→deliver, so a tail there is the producers' or the HTTP path's.
type producerStats struct {
	published, requests, errs atomic.Int64
	rtt                       Histogram
}

// produce sends each job's progress events at cfg.Rate, batched every
// BatchInterval, until ctx ends. Each job has its own phase within the
// interval and its batch goes out at that moment, so the server sees a
// steady stream of requests rather than every producer posting all its jobs
// back to back at the top of each interval (which measured the queue of that
// burst: p50 10 ms at 1,000 requests/s with the server 34 % busy). A
// producer that falls behind its schedule sends at once, with more events.
func produce(ctx context.Context, prod *client.Producer, jobs []ticket, cfg Config, st *producerStats) {
	start := time.Now()
	period := time.Duration(float64(time.Second) / cfg.Rate)
	var wg sync.WaitGroup
	for p := range cfg.Producers {
		wg.Go(func() {
			var mine []int
			for i := p; i < len(jobs); i += cfg.Producers {
				mine = append(mine, i)
			}
			if len(mine) == 0 {
				return // more producers than jobs
			}
			sent := make([]int64, len(mine))
			wait := time.NewTimer(0)
			defer wait.Stop()
			for round := int64(0); ; round++ {
				for k, i := range mine {
					offset := time.Duration(round)*cfg.BatchInterval + time.Duration(int64(cfg.BatchInterval)*int64(i)/int64(len(jobs)))
					if d := time.Until(start.Add(offset)); d > 0 {
						wait.Reset(d)
						select {
						case <-ctx.Done():
							return
						case <-wait.C:
						}
					}
					if ctx.Err() != nil {
						return
					}
					phase := time.Duration(int64(period) * int64(i) / int64(len(jobs)))
					due := int64(float64(time.Since(start)+phase)/float64(period)) + 1
					n := min(due-sent[k], 100)
					if n <= 0 {
						continue
					}
					now := time.Now().UnixNano()
					evs := make([]protocol.ProducerEvent, n)
					for e := range evs {
						sent[k]++
						evs[e] = protocol.ProducerEvent{Type: protocol.EventProgress, Payload: progressPayload(sent[k], now)}
					}
					// The request outlives the window: canceling it midway
					// would leave unknown whether the server applied it.
					rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
					_, err := prod.SendEvents(rctx, jobs[i].JobID, evs)
					cancel()
					if err != nil {
						st.errs.Add(1)
						cfg.Log.Warn("send progress", "job", jobs[i].JobID, "err", err)
						continue
					}
					st.rtt.Add(time.Duration(time.Now().UnixNano() - now))
					st.published.Add(n)
					st.requests.Add(1)
				}
			}
		})
	}
	wg.Wait()
}

// progressPayload is a progress payload stamped with the producer's clock;
// the server forwards fields it does not know unchanged.
func progressPayload(processed, sentNs int64) []byte {
	b := make([]byte, 0, 64)
	b = append(b, `{"processedCount":`...)
	b = strconv.AppendInt(b, processed, 10)
	b = append(b, `,"sentNs":`...)
	b = strconv.AppendInt(b, sentNs, 10)
	return append(b, '}')
}

// completeJobs sends every job its terminal event, which closes its
// clients' connections.
func completeJobs(ctx context.Context, prod *client.Producer, jobs []ticket, conc int) error {
	idx := make(chan int)
	var failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			for i := range idx {
				_, err := prod.SendEvent(ctx, jobs[i].JobID, client.NewEvent(protocol.EventCompleted, map[string]any{"successCount": 0}))
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
			}
		})
	}
	for i := range jobs {
		idx <- i
	}
	close(idx)
	wg.Wait()
	if n := failed.Load(); n > 0 {
		return fmt.Errorf("loadgen: completing %d jobs failed: %v", n, firstErr.Load())
	}
	return nil
}
