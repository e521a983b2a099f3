package jobs_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/client"
	"github.com/jobcast/jobcast/inmem"
	"github.com/jobcast/jobcast/internal/clocktest"
	"github.com/jobcast/jobcast/internal/jobcasttest"
	"github.com/jobcast/jobcast/jobs"
	"github.com/jobcast/jobcast/protocol"
)

// wsClient reads a job's frames over a real WebSocket.
type wsClient struct {
	t *testing.T
	c *websocket.Conn
}

func dialJob(t *testing.T, srv *jobcasttest.Server, tk *client.Ticket, lastSeq string) *wsClient {
	t.Helper()
	q := url.Values{"jobId": {tk.JobID}, "token": {tk.Token}}
	if lastSeq != "" {
		q.Set("lastSeq", lastSeq)
	}
	c, resp, err := websocket.DefaultDialer.Dial(srv.WSURL+"?"+q.Encode(), nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	resp.Body.Close()
	t.Cleanup(func() { c.Close() })
	return &wsClient{t: t, c: c}
}

// next returns the next frame other than a ping.
func (w *wsClient) next() protocol.Envelope {
	w.t.Helper()
	for {
		w.c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, data, err := w.c.ReadMessage()
		if err != nil {
			w.t.Fatalf("read: %v", err)
		}
		var env protocol.Envelope
		if err := json.Unmarshal(data, &env); err != nil {
			w.t.Fatalf("frame %s: %v", data, err)
		}
		if env.Type != protocol.TypePing {
			return env
		}
	}
}

// frames reads n frames and returns them as "type#seq".
func (w *wsClient) frames(n int) string {
	w.t.Helper()
	var out []string
	for range n {
		env := w.next()
		out = append(out, env.Type+"#"+jsonNumber(env.Seq))
	}
	return strings.Join(out, " ")
}

func jsonNumber(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// postEvents posts a batch and returns the status, the durable header and
// the body's durable field.
func postEvents(t *testing.T, srv *jobcasttest.Server, jobID, body string) (int, string, any) {
	t.Helper()
	req, _ := http.NewRequest("POST", srv.URL+"/v1/jobs/"+jobID+"/events", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+jobcasttest.APIKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, resp.Header.Get("X-Jobcast-Durable"), out["durable"]
}

// While the job store refuses writes, a live client over a real WebSocket
// keeps getting the job's events, producers are told they are not durable
// yet, and a client that reconnects with lastSeq during the outage resumes
// with nothing lost. Once the store takes writes, the queue is written in
// seq order.
func TestSpoolOverWebSocket(t *testing.T) {
	t.Parallel()
	inner := inmem.NewJobStore()
	outage := &outageStore{JobStore: inner}
	clock := clocktest.New(t0)
	spool := jobs.NewSpool(outage, jobs.SpoolOptions{Clock: clock, MaxWrites: 3})
	srv := jobcasttest.Start(t, jobcasttest.Options{
		Config: jobcast.Config{ThrottleDisabled: true}, Clock: clock, Store: jobs.NewCachedStore(spool, 0),
	})
	tk := srv.CreateJob(t)
	live := dialJob(t, srv, tk, "")
	if got := live.frames(1); got != "ready#0" {
		t.Fatalf("first frame %s", got)
	}
	if status, hdr, body := postEvents(t, srv, tk.JobID, `{"type":"started","payload":{"totalCount":100}}`); status != 202 || hdr != "true" || body != true {
		t.Fatalf("before the outage: %d, header %q, durable %v", status, hdr, body)
	}

	outage.down.Store(true)
	status, hdr, body := postEvents(t, srv, tk.JobID, `[{"type":"progress","payload":{"processedCount":10}},{"type":"error","payload":{"code":"E_GEMINI_TIMEOUT"}}]`)
	if status != 202 || hdr != "false" || body != false {
		t.Fatalf("during the outage: %d, header %q, durable %v", status, hdr, body)
	}
	postEvents(t, srv, tk.JobID, `{"type":"progress","payload":{"processedCount":20}}`)
	if got := live.frames(4); got != "job_started#1 job_progress#2 error#3 job_progress#4" {
		t.Fatalf("the live client during the outage got %s", got)
	}
	// A client that saw seq 1 reconnects: the queued error and the
	// latest progress are replayed.
	resumed := dialJob(t, srv, tk, "1")
	if got := resumed.frames(3); got != "ready#0 error#3 job_progress#4" {
		t.Fatalf("the resumed client got %s", got)
	}
	st, err := srv.Producer.GetJob(context.Background(), tk.JobID)
	if err != nil || st.Seq != 4 || st.ProcessedCount != 20 {
		t.Fatalf("GET the job during the outage: %+v %v", st, err)
	}
	// A third queued write fills the spool (3 writes; a batch is one): the
	// next is refused with 503, as without a spool.
	postEvents(t, srv, tk.JobID, `{"type":"progress","payload":{"processedCount":30}}`)
	if status, _, _ := postEvents(t, srv, tk.JobID, `{"type":"completed"}`); status != http.StatusServiceUnavailable {
		t.Fatalf("beyond the spool's bound: %d", status)
	}
	live.frames(1) // progress#5

	outage.down.Store(false)
	clock.Advance(250 * time.Millisecond)
	if st := spool.Stats(); st.Queued != 0 || st.FlushedLate != 3 {
		t.Fatalf("after the flush: %+v", st)
	}
	logged, _ := inner.Messages(context.Background(), tk.JobID, 0)
	if got := envSeqs(logged); got != "1:job_started 3:error" {
		t.Fatalf("the store's log after the flush: %q", got)
	}
	if status, hdr, _ := postEvents(t, srv, tk.JobID, `{"type":"completed"}`); status != 202 || hdr != "true" {
		t.Fatalf("after the flush: %d %q", status, hdr)
	}
	if got := live.frames(1); got != "job_completed#6" {
		t.Fatalf("the live client after the flush got %s", got)
	}
	job, err := inner.GetJob(context.Background(), tk.JobID)
	if err != nil || job.Seq != 6 || job.Status != protocol.StatusCompleted {
		t.Fatalf("the stored job: %+v %v", job, err)
	}
}
