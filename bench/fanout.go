package bench

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/jobcast/jobcast/protocol"
)

// FrameWaiter is the client side of a fanout benchmark, in this process or
// another one.
type FrameWaiter interface {
	// Await returns a channel that yields nil once every client has received
	// at least target progress frames, or an error.
	Await(target int64) <-chan error
}

// Watchers are in-process clients.
type Watchers []*Watcher

// awaitTimeout bounds how long a round may take to arrive everywhere; a
// benchmark stuck longer than this has lost frames.
const awaitTimeout = 2 * time.Minute

// Await implements FrameWaiter.
func (ws Watchers) Await(target int64) <-chan error {
	ch := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), awaitTimeout)
		defer cancel()
		ch <- WaitAll(ctx, ws, target)
	}()
	return ch
}

// AppendFunc publishes events to a job: jobs.Service.Append or the
// producer API.
type AppendFunc func(ctx context.Context, jobID string, events []protocol.ProducerEvent) error

// FanoutOptions describe a throughput run.
type FanoutOptions struct {
	Jobs           []string
	WatchersPerJob int
	// Publishers is how many goroutines share a round's appends (default 1).
	Publishers int
	// Window is how many rounds may be in flight before the publisher waits
	// for the slowest client (default 64; keep it well below the server's
	// send queue length).
	Window  int64
	Append  AppendFunc
	Clients FrameWaiter
}

// RunFanout is the body of a throughput benchmark. One op is one round: a
// progress event appended to every job. The time includes delivering every
// frame of every round to every client. It reports frames/s, frames/op and
// allocs/frame (every allocation in this process divided by frames
// delivered).
func RunFanout(b *testing.B, opt FanoutOptions) {
	b.Helper()
	pubs := max(opt.Publishers, 1)
	window := opt.Window
	if window <= 0 {
		window = 64
	}
	half := max(window/2, 1)
	ctx := context.Background()
	shards := make([][]string, pubs)
	for i, id := range opt.Jobs {
		shards[i%pubs] = append(shards[i%pubs], id)
	}
	publish := func(round int64) error {
		if pubs == 1 {
			for _, id := range opt.Jobs {
				if err := opt.Append(ctx, id, ProgressEvent(round, 0)); err != nil {
					return fmt.Errorf("append to %s: %w", id, err)
				}
			}
			return nil
		}
		errs := make([]error, pubs)
		var wg sync.WaitGroup
		for p, ids := range shards {
			wg.Go(func() {
				for _, id := range ids {
					if err := opt.Append(ctx, id, ProgressEvent(round, 0)); err != nil {
						errs[p] = fmt.Errorf("append to %s: %w", id, err)
						return
					}
				}
			})
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				return err
			}
		}
		return nil
	}

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	var round int64
	var pending <-chan error
	b.ReportAllocs()
	for b.Loop() {
		round++
		if err := publish(round); err != nil {
			b.Fatal(err)
		}
		if round%half == 0 {
			// At most window rounds are in flight: the ack for round-half
			// must be in before round+half is published.
			if pending != nil {
				if err := <-pending; err != nil {
					b.Fatal(err)
				}
			}
			pending = opt.Clients.Await(round)
		}
	}
	// b.Loop stopped the timer; delivering the last rounds is part of the run.
	b.StartTimer()
	if pending != nil {
		if err := <-pending; err != nil {
			b.Fatal(err)
		}
	}
	if err := <-opt.Clients.Await(round); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	runtime.ReadMemStats(&after)
	frames := float64(round) * float64(len(opt.Jobs)) * float64(opt.WatchersPerJob)
	b.ReportMetric(frames/b.Elapsed().Seconds(), "frames/s")
	b.ReportMetric(frames/float64(round), "frames/op")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/frames, "allocs/frame")
}
