package telemetry

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jobcast/jobcast"
)

var _ jobcast.EventRecorder = (*Recorder)(nil)

// Options configure a Recorder. Zero values take the defaults.
type Options struct {
	// Node is stamped on events that carry none.
	Node string
	// BufferSize is the ring's capacity in events (default 131072, about
	// 50 MiB once filled: above DefaultMaxBatchSize, so a backlog is
	// written in whole DuckDB row groups). A full ring drops new events.
	BufferSize int
	// BatchSize is how many buffered events wake the writer before
	// FlushInterval has passed (default 4096).
	BatchSize int
	// MaxBatchSize is the most events one Write gets (default: the
	// store's, when it is a BatchSizer, else DefaultMaxBatchSize; never
	// above a BatchSizer's; at least BatchSize, at most BufferSize). A
	// writer that falls behind takes everything buffered up to this: a
	// store's cost per event then shrinks as the backlog grows, so it
	// catches up instead of dropping. Each batch being written is held
	// besides the ring (up to another 48 MiB at DefaultMaxBatchSize, per
	// writer), and a crash loses at most them and the ring, as before.
	MaxBatchSize int
	// FlushInterval is the longest an event waits in the ring before it is
	// written (default 1s); a full batch is written at once.
	FlushInterval time.Duration
	// Writers is how many goroutines write batches to the store at once,
	// each taking the next batch from the ring (default: the store's, when
	// it is a ConcurrentWriter, else 1). A store whose one Write keeps
	// about one core busy ingests faster with two (DuckDB:
	// docs/benchmarks.md). Each holds its batch besides the ring, and a
	// crash loses at most the ring and every batch being written.
	Writers int
	// WriteTimeout bounds one Write (default 10s).
	WriteTimeout time.Duration
	// RetryFor is how long a batch whose Write fails is retried, with
	// backoff from 100 ms up to 2 s, before it is given up and counted
	// lost (default 1 min). Meanwhile new events wait in the ring, and
	// drop once it is full: a store outage shorter than this and than the
	// ring's worth of events loses nothing.
	RetryFor time.Duration
	Clock    jobcast.Clock
	Log      *slog.Logger
}

// DefaultMaxBatchSize is MaxBatchSize's default: DuckDB's row group (122,880
// rows). A DuckDB transaction that appends at least a row group is written
// compressed straight into the database file and logged in the WAL as block
// pointers, instead of row by row into the WAL and compressed again at the
// next checkpoint: about 40 % less CPU per event (docs/benchmarks.md). A
// backlog is taken in whole row groups, so that each such Write does not
// leave a partly filled row group behind (a batch of 131,072 made the file
// almost twice as large per event). It takes effect with a BufferSize above
// it (the default); with a ring of 65,536 a backlog is written a whole ring
// at a time.
const DefaultMaxBatchSize = 122880

// BatchSizer is implemented by a store whose Writes should stay below a
// size of its own: the default MaxBatchSize is right for DuckDB, whose
// cost per event falls with the batch, and wrong for ClickHouse, which
// inserted 65,536-event batches at a quarter of the rate of 16,384-event
// ones, so that a backlog's inserts timed out, the next batch was bigger
// still, and the cluster never caught up (docs/cluster.md).
type BatchSizer interface {
	// MaxBatchSize is the most events the store wants in one Write; 0
	// means no limit of its own.
	MaxBatchSize() int
}

// ConcurrentWriter is implemented by a store that takes that many Writes at
// once and is faster for it: the default of Options.Writers.
type ConcurrentWriter interface {
	// Writers is how many Writes the store runs at once.
	Writers() int
}

// Stats are the recorder's counters since it started.
type Stats struct {
	Recorded    uint64 // events accepted into the ring
	Dropped     uint64 // events refused because the ring was full
	Written     uint64 // events the store accepted
	WriteErrors uint64 // failed Write calls
	Lost        uint64 // events in batches whose Write failed
	Buffered    int    // events waiting in the ring now
}

// Recorder is a jobcast.EventRecorder that writes to a TelemetryStore.
type Recorder struct {
	store jobcast.TelemetryStore
	opt   Options

	mu   sync.Mutex
	ring []jobcast.Event
	head int // index of the oldest event
	n    int // events in the ring

	wake     chan struct{}
	stop     chan struct{}
	done     chan struct{}
	started  atomic.Bool
	stopOnce sync.Once

	recorded, dropped, written, writeErrors, lost atomic.Uint64
}

// New returns a recorder writing to store; call Start to begin writing.
func New(store jobcast.TelemetryStore, opt Options) *Recorder {
	if opt.BufferSize <= 0 {
		opt.BufferSize = 131072
	}
	if opt.BatchSize <= 0 {
		opt.BatchSize = 4096
	}
	storeMax := 0
	if bs, ok := store.(BatchSizer); ok {
		storeMax = bs.MaxBatchSize()
	}
	if storeMax > 0 {
		opt.BatchSize = min(opt.BatchSize, storeMax)
	}
	if opt.BatchSize > opt.BufferSize {
		opt.BatchSize = opt.BufferSize
	}
	if opt.MaxBatchSize <= 0 {
		opt.MaxBatchSize = DefaultMaxBatchSize
		if storeMax > 0 {
			opt.MaxBatchSize = storeMax
		}
	}
	if storeMax > 0 {
		opt.MaxBatchSize = min(opt.MaxBatchSize, storeMax)
	}
	opt.MaxBatchSize = min(max(opt.MaxBatchSize, opt.BatchSize), opt.BufferSize)
	if opt.Writers <= 0 {
		opt.Writers = 1
		if cw, ok := store.(ConcurrentWriter); ok {
			opt.Writers = max(cw.Writers(), 1)
		}
	}
	if opt.FlushInterval <= 0 {
		opt.FlushInterval = time.Second
	}
	if opt.WriteTimeout <= 0 {
		opt.WriteTimeout = 10 * time.Second
	}
	if opt.RetryFor <= 0 {
		opt.RetryFor = time.Minute
	}
	if opt.Clock == nil {
		opt.Clock = jobcast.SystemClock{}
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	return &Recorder{
		store: store,
		opt:   opt,
		ring:  make([]jobcast.Event, opt.BufferSize),
		wake:  make(chan struct{}, 1),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
}

// Record copies e into the ring. It never blocks on I/O and never
// allocates; when the ring is full the event is dropped and counted.
func (r *Recorder) Record(e jobcast.Event) {
	r.mu.Lock()
	if r.n == len(r.ring) {
		r.mu.Unlock()
		r.dropped.Add(1)
		return
	}
	i := r.head + r.n
	if i >= len(r.ring) {
		i -= len(r.ring)
	}
	r.ring[i] = e
	slot := &r.ring[i]
	if slot.TS.IsZero() {
		slot.TS = r.opt.Clock.Now()
	}
	if slot.Node == "" {
		slot.Node = r.opt.Node
	}
	if slot.SampleInterval <= 0 {
		slot.SampleInterval = 1
	}
	r.n++
	full := r.n >= r.opt.BatchSize
	r.mu.Unlock()
	r.recorded.Add(1)
	if full {
		select {
		case r.wake <- struct{}{}:
		default:
		}
	}
}

// Start runs the writer goroutines. It is idempotent.
func (r *Recorder) Start() {
	if r.started.Swap(true) {
		return
	}
	var wg sync.WaitGroup
	for range r.opt.Writers {
		wg.Go(r.run)
	}
	go func() {
		wg.Wait()
		close(r.done)
	}()
}

// Stop writes what is buffered, within ctx, and stops the writers. It is
// idempotent and waits; events recorded after Stop stay in the ring.
func (r *Recorder) Stop(ctx context.Context) error {
	if !r.started.Load() {
		return r.flushAll(ctx)
	}
	r.stopOnce.Do(func() { close(r.stop) })
	select {
	case <-r.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Stats returns the counters.
func (r *Recorder) Stats() Stats {
	r.mu.Lock()
	buffered := r.n
	r.mu.Unlock()
	return Stats{
		Recorded:    r.recorded.Load(),
		Dropped:     r.dropped.Load(),
		Written:     r.written.Load(),
		WriteErrors: r.writeErrors.Load(),
		Lost:        r.lost.Load(),
		Buffered:    buffered,
	}
}

// run is one writer: it takes the next batch from the ring and writes it,
// while other writers write theirs.
func (r *Recorder) run() {
	batch := make([]jobcast.Event, 0, r.opt.BatchSize)
	for {
		var stopping bool
		timer := r.opt.Clock.AfterFunc(r.opt.FlushInterval, func() {
			select {
			case r.wake <- struct{}{}:
			default:
			}
		})
		select {
		case <-r.wake:
		case <-r.stop:
			stopping = true
		}
		timer.Stop()
		for {
			batch = r.take(batch[:0])
			if len(batch) == 0 {
				break
			}
			r.write(context.Background(), batch)
			if len(batch) < r.opt.BatchSize {
				break
			}
		}
		if stopping {
			// Drain whatever arrived while the last batch was written.
			for {
				batch = r.take(batch[:0])
				if len(batch) == 0 {
					return
				}
				r.write(context.Background(), batch)
			}
		}
	}
}

// take moves up to MaxBatchSize events from the ring into batch. With
// more than one writer, it wakes another when a full batch remains.
func (r *Recorder) take(batch []jobcast.Event) []jobcast.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := min(r.n, r.opt.MaxBatchSize)
	if r.opt.Writers > 1 && r.n-k >= r.opt.BatchSize {
		select {
		case r.wake <- struct{}{}:
		default:
		}
	}
	for j := 0; j < k; j++ {
		i := r.head + j
		if i >= len(r.ring) {
			i -= len(r.ring)
		}
		batch = append(batch, r.ring[i])
		r.ring[i] = jobcast.Event{} // drop string references
	}
	r.head = (r.head + k) % len(r.ring)
	r.n -= k
	return batch
}

// maxRetryWait caps the wait between two tries of a failed batch.
const maxRetryWait = 2 * time.Second

// write hands a batch to the store, retrying a failed write with backoff
// for up to RetryFor, while new events wait in the ring (it was 3 tries
// within half a second: a store outage of a few seconds lost every batch
// of it even with the ring nearly empty); a batch that still fails is
// counted as lost. When the recorder stops, a failed batch gets one last
// try without waiting.
func (r *Recorder) write(ctx context.Context, batch []jobcast.Event) {
	backoff := 100 * time.Millisecond
	start := time.Now()
	stopping := false
	for attempt := 0; ; attempt++ {
		wctx, cancel := context.WithTimeout(ctx, r.opt.WriteTimeout)
		err := r.store.Write(wctx, batch)
		cancel()
		if err == nil {
			r.written.Add(uint64(len(batch)))
			if attempt > 0 {
				r.opt.Log.Info("telemetry written again after failed writes", "events", len(batch), "attempts", attempt+1)
			}
			return
		}
		r.writeErrors.Add(1)
		if stopping || errors.Is(err, context.Canceled) || time.Since(start)+backoff > r.opt.RetryFor {
			r.lost.Add(uint64(len(batch)))
			r.opt.Log.Warn("telemetry batch lost", "events", len(batch), "attempts", attempt+1, "err", err)
			return
		}
		r.opt.Log.Warn("telemetry write failed; retrying", "events", len(batch), "attempt", attempt+1, "retry_in", backoff, "err", err)
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-r.stop:
			t.Stop()
			stopping = true // shutting down: one last try without waiting
		}
		backoff = min(4*backoff, maxRetryWait)
	}
}

// flushAll writes everything buffered, for a recorder that never started.
func (r *Recorder) flushAll(ctx context.Context) error {
	batch := make([]jobcast.Event, 0, r.opt.BatchSize)
	for {
		batch = r.take(batch[:0])
		if len(batch) == 0 {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		r.write(ctx, batch)
	}
}
