package experiment_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/client"
	"github.com/jobcast/jobcast/protocol"
)

// dialReady opens a WebSocket for a job with a network type and returns the
// ready frame's payload; the connection is closed again.
func dialReady(t *testing.T, s *server, jobID, token, network string, resume bool) protocol.Ready {
	t.Helper()
	h := http.Header{}
	h.Set("Authorization", "Bearer "+token)
	h.Set("X-Network-Type", network)
	h.Set("X-App-Version", "3.4.2")
	h.Set("X-OS-Version", "iOS 18.1")
	if resume {
		h.Set("X-Last-Seq", "0")
		h.Set("X-Reconnect-Attempt", "1")
	}
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	ws, resp, err := d.DialContext(callCtx(t), s.WSURL+"?jobId="+jobID, h)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	resp.Body.Close()
	defer ws.Close()
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	var env protocol.Envelope
	if err := ws.ReadJSON(&env); err != nil {
		t.Fatalf("read ready: %v", err)
	}
	if env.Type != protocol.TypeReady {
		t.Fatalf("first frame %s, want ready", env.Type)
	}
	var r protocol.Ready
	if err := json.Unmarshal(env.Payload, &r); err != nil {
		t.Fatal(err)
	}
	_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	return r
}

// TestStickyAssignmentThroughHub speaks the real protocol: a heartbeat
// experiment on cellular, jobs connecting on cellular get their arm's
// interval in ready (and the connection uses it), keep it when they
// reconnect on wifi; jobs first seen on wifi get the default and keep it
// when they come back on cellular. Exactly one exposure per enrolled unit,
// none for the others, whatever the number of connections.
func TestStickyAssignmentThroughHub(t *testing.T) {
	t.Parallel()
	svc, st := newService(t, nil)
	create(t, svc, `{"id":"heartbeat-cellular-v1","parameter":"heartbeat_interval_ms","control":30000,"variant":45000,
		"coverage":1.0,"split":0.5,"segment":{"networkType":"cellular"},"status":"running"}`)
	s := startServer(t, svc, jobcast.Config{})
	const n = 24
	arms := map[int64]int{}
	enrolled := 0
	for i := range n {
		tk, err := s.Producer.CreateJob(callCtx(t), clientJob(i))
		if err != nil {
			t.Fatal(err)
		}
		first, second := "cellular", "wifi"
		if i%3 == 0 {
			first, second = "wifi", "cellular"
		}
		r1 := dialReady(t, s, tk.JobID, tk.Token, first, false)
		r2 := dialReady(t, s, tk.JobID, tk.Token, second, true)
		r3 := dialReady(t, s, tk.JobID, tk.Token, first, true)
		if r1.HeartbeatIntervalMs != r2.HeartbeatIntervalMs || r1.HeartbeatIntervalMs != r3.HeartbeatIntervalMs {
			t.Fatalf("job %d (%s then %s): heartbeat %d, %d, %d across reconnects", i, first, second,
				r1.HeartbeatIntervalMs, r2.HeartbeatIntervalMs, r3.HeartbeatIntervalMs)
		}
		if first == "wifi" {
			if r1.HeartbeatIntervalMs != s.Config.HeartbeatInterval.Milliseconds() {
				t.Fatalf("job %d first seen on wifi got %d ms, want the default", i, r1.HeartbeatIntervalMs)
			}
			continue
		}
		if v := r1.HeartbeatIntervalMs; v != 30000 && v != 45000 {
			t.Fatalf("job %d on cellular got %d ms", i, v)
		}
		arms[r1.HeartbeatIntervalMs]++
		enrolled++
	}
	if arms[30000] == 0 || arms[45000] == 0 {
		t.Errorf("arms %v: both should have units", arms)
	}
	s.Events.Wait(t, jobcast.EventDisconnected, 3*n)
	exposures := s.Events.Named(jobcast.EventExposure)
	if len(exposures) != enrolled {
		t.Fatalf("%d exposure events for %d enrolled units", len(exposures), enrolled)
	}
	seen := map[string]bool{}
	for _, e := range exposures {
		if seen[e.JobID] {
			t.Errorf("unit %s exposed twice", e.JobID)
		}
		seen[e.JobID] = true
		if e.ExperimentID != "heartbeat-cellular-v1" || e.Param != jobcast.ParamHeartbeatInterval || e.NetworkType != "cellular" ||
			(e.Variant == "control") != (e.Value == "30000") || e.ConnID == "" {
			t.Errorf("exposure %+v", e)
		}
	}
	decided, inArms, err := st.CountAssignments(callCtx(t), "heartbeat-cellular-v1")
	if err != nil {
		t.Fatal(err)
	}
	if decided != n || inArms != int64(enrolled) {
		t.Errorf("store decided %d units, enrolled %d; want %d and %d", decided, inArms, n, enrolled)
	}
}

// TestConcurrentFirstConnections: several first connections of one unit
// at once agree on the arm, and log one exposure.
func TestConcurrentFirstConnections(t *testing.T) {
	t.Parallel()
	svc, _ := newService(t, nil)
	create(t, svc, `{"id":"throttle-all","parameter":"throttle_ms","control":500,"variant":1000,"status":"running"}`)
	s := startServer(t, svc, jobcast.Config{})
	const jobsN, conns = 6, 5
	for i := range jobsN {
		tk, err := s.Producer.CreateJob(callCtx(t), clientJob(i))
		if err != nil {
			t.Fatal(err)
		}
		got := make([]int64, conns)
		var wg sync.WaitGroup
		for c := range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got[c] = dialReady(t, s, tk.JobID, tk.Token, "wifi", false).ThrottleMs
			}()
		}
		wg.Wait()
		for _, v := range got {
			if v != got[0] || (v != 500 && v != 1000) {
				t.Fatalf("job %d: throttle values %v", i, got)
			}
		}
	}
	s.Events.Wait(t, jobcast.EventDisconnected, jobsN*conns)
	if n := len(s.Events.Named(jobcast.EventExposure)); n != jobsN {
		t.Fatalf("%d exposures for %d units", n, jobsN)
	}
}

// TestHotChanges: starting, ramping and stopping an experiment through the
// API changes what the next connection gets, without a restart.
func TestHotChanges(t *testing.T) {
	t.Parallel()
	svc, _ := newService(t, nil)
	h := svc.Handler()
	create(t, svc, `{"id":"hb","parameter":"heartbeat_interval_ms","control":20000,"variant":20000,"coverage":0.0001}`)
	s := startServer(t, svc, jobcast.Config{})
	def := s.Config.HeartbeatInterval.Milliseconds()
	connect := func(i int) int64 {
		tk, err := s.Producer.CreateJob(callCtx(t), clientJob(i))
		if err != nil {
			t.Fatal(err)
		}
		return dialReady(t, s, tk.JobID, tk.Token, "wifi", false).HeartbeatIntervalMs
	}
	if v := connect(0); v != def {
		t.Fatalf("draft experiment applied: %d", v)
	}
	for k, step := range []struct {
		method, path, body string
		want               int64
	}{
		{http.MethodPost, "/v1/experiments/hb/start", "", def},          // coverage 0.01 %: (almost) nobody
		{http.MethodPut, "/v1/experiments/hb", `{"coverage":1}`, 20000}, // everyone
		{http.MethodPost, "/v1/experiments/hb/stop", "", def},
	} {
		if code := apiCall(t, h, step.method, step.path, step.body, nil); code != http.StatusOK {
			t.Fatalf("%s %s: %d", step.method, step.path, code)
		}
		for i := range 3 {
			if v := connect(100*(k+1) + i); v != step.want { // new units: a decided one keeps its decision
				t.Fatalf("after %s %s: heartbeat %d, want %d", step.method, step.path, v, step.want)
			}
		}
	}
}

// clientJob is job i of a test's server. Fixed ids make the arms of a
// test's units the same on every run.
func clientJob(i int) client.CreateJobRequest {
	return client.CreateJobRequest{Pipeline: "csv_import", TotalCount: 100, JobID: fmt.Sprintf("job-%d", i)}
}

// TestThrottleApplied: the assigned throttle window is the one the
// connection coalesces progress with, not only the number in ready. With
// 1500 ms (the default is 500 ms), the progress after the first comes no
// sooner than 1.5 s later.
func TestThrottleApplied(t *testing.T) {
	t.Parallel()
	svc, _ := newService(t, nil)
	create(t, svc, `{"id":"throttle-slow","parameter":"throttle_ms","control":1500,"variant":1500,"status":"running"}`)
	s := startServer(t, svc, jobcast.Config{})
	tk, err := s.Producer.CreateJob(callCtx(t), clientJob(0))
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	h.Set("Authorization", "Bearer "+tk.Token)
	ws, resp, err := (&websocket.Dialer{HandshakeTimeout: 10 * time.Second}).DialContext(callCtx(t), s.WSURL+"?jobId="+tk.JobID, h)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	defer ws.Close()
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	read := func() (protocol.Envelope, time.Time) {
		t.Helper()
		var env protocol.Envelope
		if err := ws.ReadJSON(&env); err != nil {
			t.Fatal(err)
		}
		return env, time.Now()
	}
	if env, _ := read(); env.Type != protocol.TypeReady || !strings.Contains(string(env.Payload), `"throttleMs":1500`) {
		t.Fatalf("ready %s", env.Payload)
	}
	var evs []protocol.ProducerEvent
	for i := 1; i <= 5; i++ {
		evs = append(evs, client.NewEvent(protocol.EventProgress, map[string]any{"processedCount": i * 10}))
	}
	if _, err := s.Producer.SendEvents(callCtx(t), tk.JobID, evs); err != nil {
		t.Fatal(err)
	}
	first, at1 := read()
	last, at2 := read()
	if first.Type != protocol.TypeJobProgress || last.Type != protocol.TypeJobProgress || last.Seq != first.Seq+4 {
		t.Fatalf("frames %s seq %d, %s seq %d; want the first and the last progress", first.Type, first.Seq, last.Type, last.Seq)
	}
	if gap := at2.Sub(at1); gap < 1400*time.Millisecond {
		t.Fatalf("the coalesced progress came %s after the first; the assigned window is 1500 ms", gap)
	}
}
