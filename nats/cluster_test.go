package nats_test

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/auth"
	"github.com/jobcast/jobcast/client"
	"github.com/jobcast/jobcast/httpapi"
	"github.com/jobcast/jobcast/hub"
	"github.com/jobcast/jobcast/jobs"
	"github.com/jobcast/jobcast/nats"
	"github.com/jobcast/jobcast/nats/natstest"
	"github.com/jobcast/jobcast/protocol"
)

const (
	clusterKey    = "cluster-api-key-0123456789"
	clusterSecret = "cluster-jwt-secret-0123456789-0123456789"
)

// clusterNode is the producer API and the hub of one node, on its own NATS
// connection: the wiring of cmd/jobcast with the cluster engines, minus
// telemetry.
type clusterNode struct {
	url, wsURL string
	producer   *client.Producer
}

func startClusterNode(t *testing.T, natsURL, id string) *clusterNode {
	t.Helper()
	ctx := context.Background()
	nc := natstest.Connect(t, natsURL)
	store, err := nats.NewJobStore(ctx, nc, nats.JobStoreConfig{Memory: true})
	if err != nil {
		t.Fatalf("NewJobStore: %v", err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	broker := nats.NewBroker(nc, "", log)
	cfg := jobcast.Config{NodeID: id, APIKeys: []string{clusterKey}, AdminToken: "cluster-admin-0123456789", ThrottleDisabled: true}.WithDefaults()
	clock := jobcast.SystemClock{}
	ring, err := auth.NewKeyring(auth.Key{ID: auth.SecretKeyID([]byte(clusterSecret)), Secret: []byte(clusterSecret)})
	if err != nil {
		t.Fatal(err)
	}
	tokens := auth.NewTokens(ring, cfg.TokenTTL, clock)
	apiKeys, err := auth.NewAPIKeys(cfg.APIKeys, nil)
	if err != nil {
		t.Fatal(err)
	}
	catalog := jobcast.NewCatalog(nil)
	svc := jobs.New(store, broker, catalog, clock, log)
	h := hub.New(hub.Options{Config: cfg, Store: store, Broker: broker, Tokens: tokens, Catalog: catalog, Clock: clock, Log: log, NodeID: id})
	api := httpapi.New(httpapi.Options{Config: cfg, Jobs: svc, Hub: h, Tokens: tokens, APIKeys: apiKeys, Clock: clock, Log: log})
	ts := httptest.NewServer(api)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		api.Drain()
		_ = h.Shutdown(ctx)
		ts.CloseClientConnections()
		ts.Close()
	})
	return &clusterNode{
		url:      ts.URL,
		wsURL:    "ws" + strings.TrimPrefix(ts.URL, "http") + "/ws/progress",
		producer: client.NewProducer(ts.URL, clusterKey),
	}
}

// TestTwoNodes: a client on node A watches a job that is created and
// driven through node B; it sees every message once, in order, live, and
// both nodes serve the same state.
func TestTwoNodes(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	url := natstest.NewServer(t)
	a, b := startClusterNode(t, url, "node-a"), startClusterNode(t, url, "node-b")

	ticket, err := b.producer.CreateJob(ctx, client.CreateJobRequest{Pipeline: "csv_import", TotalCount: 50})
	if err != nil {
		t.Fatalf("CreateJob on B: %v", err)
	}
	var (
		mu    sync.Mutex
		seqs  []int64
		ready = make(chan struct{})
		once  sync.Once
	)
	w, err := client.NewWatcher(client.Config{
		URL: a.wsURL, JobID: ticket.JobID, Token: ticket.Token, MaxAttempts: 3,
		OnReady: func(protocol.Ready) { once.Do(func() { close(ready) }) },
		OnMessage: func(env protocol.Envelope) {
			mu.Lock()
			seqs = append(seqs, env.Seq)
			mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	select {
	case <-ready:
	case <-ctx.Done():
		t.Fatal("no ready frame from node A")
	}

	events := []protocol.ProducerEvent{client.NewEvent(protocol.EventStarted, map[string]any{"totalCount": 50})}
	for i := 1; i <= 50; i++ {
		events = append(events, client.NewEvent(protocol.EventProgress, map[string]any{"processedCount": i}))
		if i == 25 {
			events = append(events, client.NewEvent(protocol.EventError, map[string]any{"code": "E_GEMINI_TIMEOUT", "retryable": true}))
		}
	}
	events = append(events, client.NewEvent(protocol.EventCompleted, map[string]any{"successCount": 49, "failureCount": 1}))
	for _, ev := range events { // one post each: 53 updates through B
		if _, err := b.producer.SendEvent(ctx, ticket.JobID, ev); err != nil {
			t.Fatalf("SendEvent on B: %v", err)
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("watcher on A: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seqs) != len(events) {
		t.Fatalf("client on A saw %d messages, want %d: %v", len(seqs), len(events), seqs)
	}
	for i, s := range seqs {
		if s != int64(i+1) {
			t.Fatalf("message %d has seq %d: %v", i, s, seqs)
		}
	}
	if st := w.State(); st.Status != protocol.StatusCompleted || st.ProcessedCount != 50 {
		t.Fatalf("watcher state %+v", st)
	}
	for name, n := range map[string]*clusterNode{"A": a, "B": b} {
		st, err := n.producer.GetJob(ctx, ticket.JobID)
		if err != nil || st.Status != protocol.StatusCompleted || st.Seq != int64(len(events)) || st.SuccessCount != 49 {
			t.Fatalf("GetJob on %s = %+v, %v", name, st, err)
		}
	}
}
