package nats_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/internal/storetest"
	"github.com/jobcast/jobcast/nats"
	"github.com/jobcast/jobcast/nats/natstest"
	"github.com/jobcast/jobcast/protocol"
)

// TestJobStoreReplicated runs the conformance suite on a three-replica
// stream of a three-server JetStream cluster, as production runs it: there
// the leader checks a write's expected revision before the write is
// replicated, and refuses a second write to the same job while the first
// is in flight, which the store must hear as a conflict.
func TestJobStoreReplicated(t *testing.T) {
	t.Parallel()
	urls := startJetStreamCluster(t, 3)
	var n atomic.Int64
	storetest.RunJobStoreTests(t, func(t *testing.T) jobcast.JobStore {
		i := n.Add(1)
		return retrying{newReplicatedJobStore(t, urls[int(i)%len(urls)], nats.JobStoreConfig{
			Stream: fmt.Sprintf("JOBS_%d", i), Prefix: fmt.Sprintf("t%d", i), Replicas: 3,
		})}
	})
}

// newReplicatedJobStore creates a job store with cfg on the cluster
// serving url. The cluster elects its meta leader after it starts, and
// each stream its own leader after it is created: until both, writes fail
// (no responders). So it waits for a leader with both replicas current, as
// an operator waits for a new stream.
func newReplicatedJobStore(t testing.TB, url string, cfg nats.JobStoreConfig) *nats.JobStore {
	t.Helper()
	ctx := context.Background()
	nc := natstest.Connect(t, url)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	var s *nats.JobStore
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if s == nil {
			s, err = nats.NewJobStore(ctx, nc, cfg)
		}
		if s != nil {
			var st jetstream.Stream
			if st, err = js.Stream(ctx, cfg.Stream); err == nil && ready(st.CachedInfo().Cluster) {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream %s not ready after 20s: %v", cfg.Stream, err)
		}
	}
}

// retrying sends a call again that no server answered (no responders: the
// request reached no one, so nothing was applied). Two cores running three
// servers' elections beside other work make leaders come and go for a
// moment; the suite tests the store's semantics on replicated streams, and
// an outage's answers are TestOutage's business.
type retrying struct{ s *nats.JobStore }

func retry[T any](ctx context.Context, f func() (T, error)) (T, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		v, err := f()
		if !errors.Is(err, natsgo.ErrNoResponders) || time.Now().After(deadline) || ctx.Err() != nil {
			return v, err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (r retrying) CreateJob(ctx context.Context, job *jobcast.Job) error {
	_, err := retry(ctx, func() (struct{}, error) { return struct{}{}, r.s.CreateJob(ctx, job) })
	return err
}

func (r retrying) GetJob(ctx context.Context, id string) (*jobcast.Job, error) {
	return retry(ctx, func() (*jobcast.Job, error) { return r.s.GetJob(ctx, id) })
}

func (r retrying) UpdateJob(ctx context.Context, job *jobcast.Job, prevRev int64, msgs []*jobcast.Message) error {
	_, err := retry(ctx, func() (struct{}, error) { return struct{}{}, r.s.UpdateJob(ctx, job, prevRev, msgs) })
	return err
}

func (r retrying) Messages(ctx context.Context, jobID string, afterSeq int64) ([]protocol.Envelope, error) {
	return retry(ctx, func() ([]protocol.Envelope, error) { return r.s.Messages(ctx, jobID, afterSeq) })
}

func (r retrying) DeleteFinishedBefore(ctx context.Context, t time.Time) (int, error) {
	total := 0 // a failed sweep may have deleted some
	_, err := retry(ctx, func() (struct{}, error) {
		n, err := r.s.DeleteFinishedBefore(ctx, t)
		total += n
		return struct{}{}, err
	})
	return total, err
}

func (r retrying) Close() error { return r.s.Close() }

// ready: the stream has a leader and two current replicas.
func ready(c *jetstream.ClusterInfo) bool {
	if c == nil || c.Leader == "" || len(c.Replicas) != 2 {
		return false
	}
	for _, r := range c.Replicas {
		if !r.Current {
			return false
		}
	}
	return true
}

// startJetStreamCluster starts n embedded servers with JetStream, routed
// to each other, and returns their client URLs; they shut down when the
// test ends. The route ports are picked free beforehand (every server must
// know the others' before they start).
func startJetStreamCluster(t testing.TB, n int) []string {
	t.Helper()
	ports := make([]int, n)
	routes := make([]*url.URL, n)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = l.Addr().(*net.TCPAddr).Port
		routes[i] = &url.URL{Scheme: "nats", Host: l.Addr().String()}
		l.Close()
	}
	servers := make([]*server.Server, n)
	for i := range n {
		s, err := server.NewServer(&server.Options{
			ServerName: fmt.Sprintf("s%d", i),
			Host:       "127.0.0.1",
			Port:       server.RANDOM_PORT,
			JetStream:  true,
			StoreDir:   t.TempDir(),
			NoLog:      true,
			NoSigs:     true,
			Cluster:    server.ClusterOpts{Name: "jobcast-test", Host: "127.0.0.1", Port: ports[i]},
			Routes:     routes,
		})
		if err != nil {
			t.Fatalf("nats server %d: %v", i, err)
		}
		s.Start()
		t.Cleanup(func() {
			s.Shutdown()
			s.WaitForShutdown()
		})
		servers[i] = s
	}
	urls := make([]string, n)
	for i, s := range servers {
		if !s.ReadyForConnections(20 * time.Second) {
			t.Fatalf("nats server %d not ready after 20s", i)
		}
		urls[i] = s.ClientURL()
	}
	return urls
}
