package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jobcast/jobcast/client"
	"github.com/jobcast/jobcast/protocol"
)

// Options configure a simulation.
type Options struct {
	// BaseURL is the server's HTTP base URL, e.g. http://127.0.0.1:8080.
	BaseURL string
	// APIKey is a producer API key of that server.
	APIKey string
	// JobsPerPipeline is how many jobs of each pipeline run at once
	// (default 3).
	JobsPerPipeline int
	// Speed scales simulated time: 2 runs everything twice as fast
	// (default 1).
	Speed float64
	// StatusEvery prints a status line this often (default 5s; <0 never).
	StatusEvery time.Duration
	// Out receives status lines (default io.Discard).
	Out io.Writer
	// Log receives unexpected errors (default: discarded).
	Log *slog.Logger
	// Seed makes a run repeatable (0: random).
	Seed uint64
	// Clean turns off the simulated trouble (random job errors and
	// failures, clients with stale tokens), so that the error rate stays
	// at zero outside an ErrorBurst.
	Clean bool
	// ErrorBurst, when it returns true at a job's start, makes that job
	// post an error after its first item: an error burst that
	// raises the error rate on demand (jobcast demo -inject errors), to
	// see the default error-rate alert fire and then resolve.
	ErrorBurst func() bool
}

// Stats is what a simulation observed. Mismatches and Lost must stay zero:
// they count clients whose final state differed from the server's, and
// terminal or error messages a client never received.
type Stats struct {
	JobsStarted   int64
	JobsCompleted int64
	JobsFailed    int64
	JobsRunning   int64
	Clients       int64
	Connected     int64
	Drops         int64
	Resumes       int64
	Messages      int64
	Errors        int64
	Mismatches    int64
	Lost          int64
}

type pipeline struct {
	name     string
	total    [2]int64      // range of items per job
	rate     float64       // items per second
	tick     time.Duration // mean progress event interval (jittered ±50 %)
	errCode  string
	errMsg   string
	provider string
}

// The pipelines pace their jobs and progress like healthy production
// traffic, so that the clean demo fires none of the default alert rules
// (docs/alerts.md): csv_import jobs last 10–20 s and the others 30 s to
// 3 min (connections average well over the 10 s of
// connection_duration_short, and no job runs the 5 minutes of job_hang);
// progress comes every few hundred milliseconds, near the 500 ms throttle
// window, so that some frames are coalesced but far fewer than the 50 % of
// throttle_rate_high.
var pipelines = []pipeline{
	{name: "csv_import", total: [2]int64{1200, 2400}, rate: 120, tick: 400 * time.Millisecond,
		errCode: "E_ROW_INVALID", errMsg: "Some rows could not be imported.", provider: "csv"},
	{name: "batch_enrichment", total: [2]int64{300, 1200}, rate: 10, tick: 800 * time.Millisecond,
		errCode: protocol.ErrEnrichmentFailed, provider: "clearbit"},
	{name: "ai_scan", total: [2]int64{20, 90}, rate: 0.5, tick: 0, // one event per item
		errCode: protocol.ErrGeminiTimeout, provider: "gemini"},
}

// Trouble (a job error, a failed job, a client with a stale token) is
// budgeted rather than drawn per job: the error rate is a share of
// sessions, and a handful of early sessions with one error among them
// would cross the 5 % of error_rate_high. The first trouble comes after
// troubleAfter sessions, then at most troubleShare of the sessions since,
// so the clean demo's error rate stays near 2.5 % yet the errors panel has
// rows after about a minute.
const (
	troubleAfter = 25
	troubleShare = 0.025
)

// Trouble kinds a job may get from the budget.
const (
	troubleNone = iota
	troubleError
	troubleFail
	troubleStaleToken
)

// dropAfter is the least time a connection runs before the simulated
// network loss, and the least the job still has to run after it: both
// halves of a dropped connection last about this long or more.
const dropAfter = 10 * time.Second

var (
	appVersions = []string{"3.2.0", "3.3.1", "3.4.0", "3.4.2"}
	osVersions  = []string{"iOS 17.5", "iOS 18.1", "iOS 18.2", "Android 13", "Android 14", "Android 15"}
	devices     = map[string][]string{
		"iOS":     {"iPhone13,2", "iPhone15,3", "iPhone16,1", "iPad13,4"},
		"Android": {"Pixel 7", "Pixel 8", "SM-S911B", "SM-A546B", "moto g84"},
	}
	networks = []string{"wifi", "wifi", "cellular", "cellular", "cellular", "ethernet"}
)

// sim is one running simulation.
type sim struct {
	opt      Options
	producer *client.Producer
	wsURL    string
	stats    Stats
	rngMu    sync.Mutex
	rng      *rand.Rand
	// trouble counts the jobs given trouble from the budget.
	trouble int64
	// dropped is set once a client has lost its network: the first
	// client of a long enough job always does, so that a resume shows
	// within the demo's first half minute.
	dropped atomic.Bool
}

func (o Options) withDefaults() Options {
	if o.JobsPerPipeline <= 0 {
		o.JobsPerPipeline = 3
	}
	if o.Speed <= 0 {
		o.Speed = 1
	}
	if o.StatusEvery == 0 {
		o.StatusEvery = 5 * time.Second
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Seed == 0 {
		o.Seed = rand.Uint64()
	}
	return o
}

// Run simulates until ctx ends, then waits for running jobs' goroutines to
// stop and returns what it saw.
func Run(ctx context.Context, opt Options) (Stats, error) {
	opt = opt.withDefaults()
	if opt.BaseURL == "" || opt.APIKey == "" {
		return Stats{}, errors.New("demo: BaseURL and APIKey are required")
	}
	s := &sim{
		opt:      opt,
		producer: client.NewProducer(opt.BaseURL, opt.APIKey),
		wsURL:    "ws" + strings.TrimPrefix(strings.TrimRight(opt.BaseURL, "/"), "http") + "/ws/progress",
		rng:      rand.New(rand.NewPCG(opt.Seed, opt.Seed^0x9e3779b97f4a7c15)),
	}
	var wg sync.WaitGroup
	start := time.Now()
	for _, p := range pipelines {
		for i := 0; i < opt.JobsPerPipeline; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Stagger the first jobs so the pipelines do not move in step.
				if !s.sleep(ctx, time.Duration(s.float()*float64(2*time.Second))) {
					return
				}
				for ctx.Err() == nil {
					s.runJob(ctx, p)
					s.sleep(ctx, time.Duration((0.5+s.float())*float64(time.Second)))
				}
			}()
		}
	}
	if opt.StatusEvery > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(opt.StatusEvery)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					fmt.Fprintln(opt.Out, s.Snapshot().Line(time.Since(start)))
				}
			}
		}()
	}
	wg.Wait()
	return s.Snapshot(), nil
}

// Snapshot returns the counters so far.
func (s *sim) Snapshot() Stats {
	return Stats{
		JobsStarted:   atomic.LoadInt64(&s.stats.JobsStarted),
		JobsCompleted: atomic.LoadInt64(&s.stats.JobsCompleted),
		JobsFailed:    atomic.LoadInt64(&s.stats.JobsFailed),
		JobsRunning:   atomic.LoadInt64(&s.stats.JobsRunning),
		Clients:       atomic.LoadInt64(&s.stats.Clients),
		Connected:     atomic.LoadInt64(&s.stats.Connected),
		Drops:         atomic.LoadInt64(&s.stats.Drops),
		Resumes:       atomic.LoadInt64(&s.stats.Resumes),
		Messages:      atomic.LoadInt64(&s.stats.Messages),
		Errors:        atomic.LoadInt64(&s.stats.Errors),
		Mismatches:    atomic.LoadInt64(&s.stats.Mismatches),
		Lost:          atomic.LoadInt64(&s.stats.Lost),
	}
}

// Line renders the stats as one status line.
func (st Stats) Line(elapsed time.Duration) string {
	return fmt.Sprintf("[demo %s] jobs: %d running, %d completed, %d failed | clients: %d connected, %d drops, %d resumed | messages: %d delivered, %d errors | lost: %d, mismatched: %d",
		elapsed.Truncate(time.Second), st.JobsRunning, st.JobsCompleted, st.JobsFailed,
		st.Connected, st.Drops, st.Resumes, st.Messages, st.Errors, st.Lost, st.Mismatches)
}

func (s *sim) float() float64 {
	s.rngMu.Lock()
	defer s.rngMu.Unlock()
	return s.rng.Float64()
}

func (s *sim) intn(n int) int {
	s.rngMu.Lock()
	defer s.rngMu.Unlock()
	return s.rng.IntN(n)
}

// takeTrouble draws the trouble of a job that starts now, within the
// budget (see troubleShare).
func (s *sim) takeTrouble() int {
	if s.opt.Clean {
		return troubleNone
	}
	s.rngMu.Lock()
	defer s.rngMu.Unlock()
	started := atomic.LoadInt64(&s.stats.JobsStarted)
	if started < troubleAfter || float64(s.trouble+1) > 1+troubleShare*float64(started-troubleAfter) || s.rng.Float64() < 0.5 {
		return troubleNone
	}
	s.trouble++
	return troubleError + s.rng.IntN(3)
}

func pick[T any](s *sim, xs []T) T { return xs[s.intn(len(xs))] }

// sleep waits d of simulated time; false if ctx ended first.
func (s *sim) sleep(ctx context.Context, d time.Duration) bool {
	d = time.Duration(float64(d) / s.opt.Speed)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func (s *sim) clientContext() client.ClientContext {
	osv := pick(s, osVersions)
	family := "Android"
	if strings.HasPrefix(osv, "iOS") {
		family = "iOS"
	}
	return client.ClientContext{
		AppVersion:  pick(s, appVersions),
		OSVersion:   osv,
		NetworkType: pick(s, networks),
		DeviceModel: pick(s, devices[family]),
	}
}

// seen is what one watcher received, checked against the producer's record.
type seen struct {
	mu        sync.Mutex
	nonProg   map[int64]string // seq → type of non-progress messages
	lastState protocol.JobState
	resumes   int
	network   string
}

// runJob runs one job from creation to its terminal event, with watchers.
func (s *sim) runJob(ctx context.Context, p pipeline) {
	began := time.Now()
	total := p.total[0] + int64(s.float()*float64(p.total[1]-p.total[0]))
	tk, err := s.producer.CreateJob(ctx, client.CreateJobRequest{Pipeline: p.name, TotalCount: total,
		Metadata: []byte(fmt.Sprintf(`{"source":"demo","items":%d}`, total))})
	if err != nil {
		if ctx.Err() == nil {
			s.opt.Log.Warn("demo: create job", "err", err)
		}
		return
	}
	atomic.AddInt64(&s.stats.JobsStarted, 1)
	atomic.AddInt64(&s.stats.JobsRunning, 1)
	trouble := s.takeTrouble()
	expect := time.Duration(float64(total) / p.rate * float64(time.Second))
	defer atomic.AddInt64(&s.stats.JobsRunning, -1)

	// Watchers run on their own context: they must see the job's end even
	// when the simulation is stopping, within a grace period.
	wctx, wcancel := context.WithCancel(context.Background())
	defer wcancel()
	stop := context.AfterFunc(ctx, func() {
		time.AfterFunc(3*time.Second, wcancel)
	})
	defer stop()
	nWatchers := 1 + s.intn(2)
	results := make([]*seen, nWatchers)
	var wg sync.WaitGroup
	for i := 0; i < nWatchers; i++ {
		results[i] = &seen{nonProg: map[int64]string{}}
		stale := i == 0 && trouble == troubleStaleToken
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.watch(wctx, tk, expect, stale, results[i])
		}()
	}

	log, sent := s.produce(ctx, tk.JobID, p, total, trouble)
	wg.Wait()
	if !sent {
		return // interrupted: nothing to check
	}
	final, err := s.producer.GetJob(context.Background(), tk.JobID)
	if err != nil {
		s.opt.Log.Warn("demo: get job", "job", tk.JobID, "err", err)
		return
	}
	for _, r := range results {
		r.mu.Lock()
		if r.lastState.Seq != final.Seq || r.lastState.Status != final.Status || r.lastState.ProcessedCount != final.ProcessedCount {
			atomic.AddInt64(&s.stats.Mismatches, 1)
			s.opt.Log.Warn("demo: client state differs from server", "job", final.JobID,
				"clientSeq", r.lastState.Seq, "serverSeq", final.Seq, "clientStatus", r.lastState.Status, "serverStatus", final.Status)
		}
		for seq := range log {
			if _, ok := r.nonProg[seq]; !ok {
				atomic.AddInt64(&s.stats.Lost, 1)
			}
		}
		r.mu.Unlock()
	}
	if final.Status == protocol.StatusCompleted {
		atomic.AddInt64(&s.stats.JobsCompleted, 1)
	} else {
		atomic.AddInt64(&s.stats.JobsFailed, 1)
	}
	var watchers []string
	for _, r := range results {
		r.mu.Lock()
		w := r.network
		if r.resumes > 0 {
			w += fmt.Sprintf(" (resumed %d×)", r.resumes)
		}
		watchers = append(watchers, w)
		r.mu.Unlock()
	}
	outcome := fmt.Sprintf("%d/%d", final.ProcessedCount, final.TotalCount)
	if final.LastError != nil {
		outcome += " last error " + final.LastError.Code
	}
	fmt.Fprintf(s.opt.Out, "  %-9s %-16s %s  %-24s %6s · watched by %s\n",
		final.Status, p.name, final.JobID, outcome, time.Since(began).Round(100*time.Millisecond), strings.Join(watchers, ", "))
}

// watch runs one simulated mobile client on the job.
// The client of a long job may lose its network once (expect is the job's
// expected duration); stale makes it start with a stale token.
func (s *sim) watch(ctx context.Context, tk *client.Ticket, expect time.Duration, stale bool, r *seen) {
	atomic.AddInt64(&s.stats.Clients, 1)
	cc := s.clientContext()
	r.mu.Lock()
	r.network = cc.NetworkType
	r.mu.Unlock()
	// Cellular clients drop more often, as real ones do.
	dropProb := 0.35
	switch cc.NetworkType {
	case "cellular":
		dropProb = 0.6
	case "ethernet":
		dropProb = 0.15
	}
	token := tk.Token
	if stale {
		// An app restored from the background with a stale token: the
		// server refuses it (connect_failed) and the SDK asks the
		// backend for a fresh one.
		token = "stale." + tk.Token[:len(tk.Token)/2]
	}
	w, err := client.NewWatcher(client.Config{
		URL:        s.wsURL,
		JobID:      tk.JobID,
		Token:      token,
		Context:    cc,
		Dialer:     networkLatency(cc.NetworkType).dialer(s.opt.Speed),
		MinBackoff: 100 * time.Millisecond,
		MaxBackoff: 2 * time.Second,
		TokenFunc: func(ctx context.Context) (string, error) {
			t, err := s.producer.NewToken(ctx, tk.JobID)
			if err != nil {
				return "", err
			}
			return t.Token, nil
		},
		OnMessage: func(e protocol.Envelope) {
			atomic.AddInt64(&s.stats.Messages, 1)
			if e.Type != protocol.TypeJobProgress {
				r.mu.Lock()
				r.nonProg[e.Seq] = e.Type
				r.mu.Unlock()
			}
			if e.Type == protocol.TypeError || e.Type == protocol.TypeJobFailed {
				atomic.AddInt64(&s.stats.Errors, 1)
			}
		},
		OnEvent: func(e client.Event) {
			switch e.Kind {
			case "connected":
				atomic.AddInt64(&s.stats.Connected, 1)
				if e.Resumed {
					atomic.AddInt64(&s.stats.Resumes, 1)
					r.mu.Lock()
					r.resumes++
					r.mu.Unlock()
				}
			case "disconnected":
				atomic.AddInt64(&s.stats.Connected, -1)
			}
		},
	})
	if err != nil {
		s.opt.Log.Warn("demo: watcher", "err", err)
		return
	}
	// Lose the network once, some time into a job long enough that both
	// halves of the connection last dropAfter or more: a connection cut
	// after a second or two is a flapping client, not a healthy one.
	if latest := min(2*dropAfter, expect-dropAfter); latest > dropAfter && (s.dropped.CompareAndSwap(false, true) || s.float() < dropProb) {
		at := dropAfter + time.Duration(s.float()*float64(latest-dropAfter))
		go func() {
			if s.sleep(ctx, at) {
				atomic.AddInt64(&s.stats.Drops, 1)
				w.Drop()
			}
		}()
	}
	// Some apps open the screen a moment after the job starts.
	if s.float() < 0.3 && !s.sleep(ctx, time.Duration(s.float()*float64(time.Second))) {
		return
	}
	err = w.Run(ctx)
	r.mu.Lock()
	r.lastState = w.State()
	r.mu.Unlock()
	if err != nil && ctx.Err() == nil {
		s.opt.Log.Warn("demo: watcher stopped", "job", tk.JobID, "err", err)
	}
}

// produce plays the producer of one job and returns the seqs of the
// non-progress messages it sent (which every watcher must receive), and
// false if the simulation stopped first.
func (s *sim) produce(ctx context.Context, jobID string, p pipeline, total int64, trouble int) (map[int64]bool, bool) {
	log := map[int64]bool{}
	post := func(typ string, payload any) bool {
		res, err := s.producer.SendEvent(ctx, jobID, client.NewEvent(typ, payload))
		if err != nil {
			if ctx.Err() == nil {
				s.opt.Log.Warn("demo: send event", "job", jobID, "type", typ, "err", err)
			}
			return false
		}
		if typ != protocol.EventProgress {
			log[res.Seq] = true
		}
		return true
	}
	stopped := func() (map[int64]bool, bool) {
		// Leave no job running forever when the demo stops.
		cctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, _ = s.producer.SendEvent(cctx, jobID, client.NewEvent(protocol.EventFailed,
			map[string]any{"code": "E_CANCELLED", "message": "The demo was stopped.", "retryable": true}))
		return log, false
	}
	if !post(protocol.EventStarted, map[string]any{"totalCount": total}) {
		return stopped()
	}
	errAt, failAt := int64(-1), int64(-1)
	switch trouble {
	case troubleError:
		errAt = int64(float64(total) * (0.1 + 0.6*s.float()))
	case troubleFail:
		failAt = int64(float64(total) * (0.3 + 0.6*s.float()))
	}
	if s.opt.ErrorBurst != nil && s.opt.ErrorBurst() {
		errAt = 1 // after the first item
	}
	var processed, failures int64
	for processed < total {
		step := int64(1)
		wait := time.Duration(float64(time.Second) / p.rate * (0.5 + s.float()))
		if p.tick > 0 {
			wait = time.Duration(float64(p.tick) * (0.5 + s.float()))
			step = max(1, int64(p.rate*wait.Seconds()))
		}
		if !s.sleep(ctx, wait) {
			return stopped()
		}
		prev := processed
		processed = min(processed+step, total)
		if failAt >= 0 && prev < failAt && processed >= failAt {
			if !post(protocol.EventFailed, map[string]any{
				"code": p.errCode, "message": p.errMsg, "retryable": false,
				"details": map[string]any{"provider": p.provider, "processedCount": processed},
			}) {
				return stopped()
			}
			return log, true
		}
		progress := map[string]any{"processedCount": processed, "totalCount": total}
		if p.tick == 0 {
			progress["currentItem"] = fmt.Sprintf("page-%03d.pdf", processed)
		}
		if !post(protocol.EventProgress, progress) {
			return stopped()
		}
		if errAt >= 0 && prev < errAt && processed >= errAt {
			failures += 1 + int64(s.intn(5))
			payload := map[string]any{"code": p.errCode, "details": map[string]any{"provider": p.provider}}
			if p.errMsg != "" {
				payload["message"] = p.errMsg
			}
			if !post(protocol.EventError, payload) {
				return stopped()
			}
			// The producer backs off before it carries on, as a retry would.
			if !s.sleep(ctx, time.Second) {
				return stopped()
			}
		}
	}
	if !post(protocol.EventCompleted, map[string]any{
		"successCount": total - failures, "failureCount": failures,
		"result": map[string]any{"pipeline": p.name, "items": total},
	}) {
		return stopped()
	}
	return log, true
}
