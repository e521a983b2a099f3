package hub_test

import (
	"net/url"
	"slices"
	"testing"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/internal/clocktest"
	"github.com/jobcast/jobcast/internal/jobcasttest"
	"github.com/jobcast/jobcast/protocol"
)

// A job's state and message log survive a server restart: a client that
// resumes on the new server gets every message it missed.
func TestRestartResume(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		missed   []protocol.ProducerEvent // sent while the client is away, before the restart
		after    []protocol.ProducerEvent // sent to the new server
		want     []string
		latest   int64 // processedCount of the replayed progress
		wantStat string
	}{
		{
			name:     "finished before the restart",
			missed:   []protocol.ProducerEvent{errorEv(protocol.ErrGeminiTimeout), progress(50), failed(protocol.ErrEnrichmentFailed)},
			want:     []string{"error#3", "job_progress#4", "job_failed#5"},
			latest:   50,
			wantStat: protocol.StatusFailed,
		},
		{
			name:     "running across the restart",
			missed:   []protocol.ProducerEvent{errorEv(protocol.ErrGeminiTimeout), progress(50), progress(60)},
			after:    []protocol.ProducerEvent{completed()},
			want:     []string{"error#3", "job_progress#5", "job_completed#6"},
			latest:   60,
			wantStat: protocol.StatusCompleted,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			clock := clocktest.New(epoch)
			opt := jobcasttest.Options{Config: jobcast.Config{ThrottleDisabled: true}, Clock: clock, SQLiteDir: dir}
			a := &env{srv: jobcasttest.Start(t, opt), clock: clock}
			tk := a.createJob(t)
			c, _ := a.open(t, tk)
			a.send(t, tk.JobID, started(), progress(10))
			seen := c.barrier()
			if !slices.Equal(seqs(seen), []int64{1, 2}) {
				t.Fatalf("before the restart: %v", types(seen))
			}
			c.c.Close() // the client goes away at seq 2
			waitFor(t, "the client to go", func() bool { return a.srv.Hub.ConnCount() == 0 })
			a.send(t, tk.JobID, tt.missed...)
			a.srv.Close()

			b := &env{srv: jobcasttest.Start(t, opt), clock: clock}
			q := url.Values{"jobId": {tk.JobID}, "lastSeq": {"2"}}
			r := dial(t, b.wsURL(q), bearer(tk.Token))
			ready := r.ready()
			if !ready.Resumed || ready.State.Seq != int64(2+len(tt.missed)) {
				t.Errorf("ready after restart: resumed=%v state=%+v", ready.Resumed, ready.State)
			}
			var got []frame
			if len(tt.after) > 0 {
				got = r.barrier() // the replay
				b.send(t, tk.JobID, tt.after...)
			}
			rest, code := r.untilClose()
			got = append(got, rest...)
			if code != protocol.CloseJobFinished {
				t.Errorf("close %d, want 1000", code)
			}
			// The replayed progress is the latest one before the restart.
			for _, f := range got {
				if f.Type == protocol.TypeJobProgress && processed(t, f) != tt.latest {
					t.Errorf("replayed progress %s, want the latest", f.data)
				}
			}
			if !slices.Equal(types(got), tt.want) {
				t.Errorf("after restart got %v, want %v", types(got), tt.want)
			}
			st, err := b.srv.Producer.GetJob(ctxT(t), tk.JobID)
			if err != nil {
				t.Fatal(err)
			}
			if st.Status != tt.wantStat || st.Seq != int64(2+len(tt.missed)+len(tt.after)) {
				t.Errorf("job after restart = %+v", st)
			}
		})
	}
}
