package client_test

import (
	"context"
	"testing"
	"time"

	"github.com/jobcast/jobcast/client"
	"github.com/jobcast/jobcast/internal/jobcasttest"
	"github.com/jobcast/jobcast/protocol"
)

func TestWatcherSeesJobToCompletion(t *testing.T) {
	t.Parallel()
	srv := jobcasttest.Start(t, jobcasttest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tk, err := srv.Producer.CreateJob(ctx, client.CreateJobRequest{Pipeline: "csv_import", TotalCount: 3})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan protocol.Envelope, 100)
	w, err := client.NewWatcher(client.Config{URL: srv.WSURL, JobID: tk.JobID, Token: tk.Token,
		OnMessage: func(e protocol.Envelope) { got <- e }})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	ready := make(chan struct{})
	go func() {
		for w.Stats().Connects == 0 {
			time.Sleep(5 * time.Millisecond)
		}
		close(ready)
	}()
	<-ready
	if _, err := srv.Producer.SendEvents(ctx, tk.JobID, []protocol.ProducerEvent{
		client.NewEvent("started", map[string]any{"totalCount": 3}),
		client.NewEvent("progress", map[string]any{"processedCount": 1}),
		client.NewEvent("completed", map[string]any{"successCount": 3}),
	}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	st := w.State()
	if st.Status != protocol.StatusCompleted || st.SuccessCount != 3 || st.Seq != 3 {
		t.Fatalf("state = %+v", st)
	}
	close(got)
	var types []string
	for e := range got {
		types = append(types, e.Type)
	}
	t.Logf("types: %v", types)
}
