package experiment_test

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/client"
	"github.com/jobcast/jobcast/experiment"
	"github.com/jobcast/jobcast/internal/jobcasttest"
	"github.com/jobcast/jobcast/netsim"
	"github.com/jobcast/jobcast/protocol"
)

// TestEndToEndHeartbeatCausesReconnects is the heartbeat-on-cellular
// experiment scaled down 300×: a NAT that forgets connections idle for
// 250 ms (netsim), a control heartbeat of 100 ms that keeps them alive and
// a variant of 400 ms that does not. The variant truly causes reconnects;
// the analysis, reading the telemetry from DuckDB, must call it
// significant, in that direction, and see no sample ratio mismatch.
func TestEndToEndHeartbeatCausesReconnects(t *testing.T) {
	t.Parallel()
	events := openEvents(t)
	svc, _ := newService(t, events)
	create(t, svc, `{"id":"heartbeat-cellular-e2e","parameter":"heartbeat_interval_ms","control":100,"variant":400,
		"segment":{"networkType":"cellular"},"status":"running","minUnitsPerArm":25}`)
	s := startServer(t, svc, jobcast.Config{HeartbeatInterval: 100 * time.Millisecond})
	u, err := url.Parse(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	px, err := netsim.Start("127.0.0.1:0", u.Host, netsim.Profile{IdleTimeout: 250 * time.Millisecond, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	defer px.Close()
	var nd net.Dialer
	dialer := &websocket.Dialer{HandshakeTimeout: 10 * time.Second, NetDialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return nd.DialContext(ctx, network, px.Addr())
	}}

	const units = 70
	const life = 1200 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, units)
	for i := range units {
		tk, err := s.Producer.CreateJob(ctx, clientJob(i))
		if err != nil {
			t.Fatal(err)
		}
		w, err := client.NewWatcher(client.Config{
			URL: s.WSURL, JobID: tk.JobID, Token: tk.Token, Dialer: dialer,
			Context:    client.ClientContext{NetworkType: "cellular", AppVersion: "3.4.2", OSVersion: "Android 14"},
			MinBackoff: 10 * time.Millisecond, MaxBackoff: 40 * time.Millisecond,
		})
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(2)
		go func() {
			defer wg.Done()
			if err := w.Run(ctx); err != nil {
				errs <- err
			}
		}()
		go func() { // the producer finishes the job after its life
			defer wg.Done()
			t := time.NewTimer(life)
			defer t.Stop()
			select {
			case <-t.C:
			case <-ctx.Done():
				return
			}
			if _, err := s.Producer.SendEvents(ctx, tk.JobID, []protocol.ProducerEvent{jobcasttest.Completed()}); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// Every connection that got ready records one disconnected event.
	deadline := time.Now().Add(10 * time.Second)
	for {
		started := len(s.Events.Named(jobcast.EventConnected)) + len(s.Events.Named(jobcast.EventReconnected))
		if len(s.Events.Named(jobcast.EventDisconnected)) >= started && len(s.Events.Named(jobcast.EventJobCompleted)) == units {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("telemetry incomplete: %d connections started, %d ended", started, len(s.Events.Named(jobcast.EventDisconnected)))
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := events.Write(ctx, s.Events.All()); err != nil {
		t.Fatal(err)
	}
	t.Logf("proxy: %+v", px.Stats())

	var res experiment.Results
	if code := apiCall(t, svc.Handler(), http.MethodGet, "/v1/experiments/heartbeat-cellular-e2e/results", "", &res); code != http.StatusOK {
		t.Fatalf("results: %d", code)
	}
	if n := res.Arms[0].Units + res.Arms[1].Units; n != units {
		t.Errorf("%d units analysed, %d exposed", n, units)
	}
	t.Logf("units: %s %d, %s %d; SRM p = %.3g", res.Arms[0].Name, res.Arms[0].Units, res.Arms[1].Name, res.Arms[1].Units, float64(res.SRM.P))
	if res.SRM.Flagged {
		t.Errorf("SRM flagged: %+v", res.SRM)
	}
	m := metric(t, &res, experiment.MetricReconnectsPerSession)
	c := m.Comparisons[0]
	t.Logf("reconnects per session: control %.2f [%.2f, %.2f], variant %.2f [%.2f, %.2f]; diff %.2f, p = %.2g (Holm %.2g), significant %v",
		m.Arms[0].Value, m.Arms[0].Lo, m.Arms[0].Hi, m.Arms[1].Value, m.Arms[1].Lo, m.Arms[1].Hi, c.Diff, c.P, c.PAdjusted, c.Significant)
	if !c.Significant || !(c.Diff > 0) || !(m.Arms[1].Value > m.Arms[0].Value) {
		t.Fatalf("the variant's extra reconnects were not detected: %+v %+v (warnings %v)", m.Arms, c, res.Warnings)
	}
	hb := metric(t, &res, experiment.MetricHeartbeatsPerConnMin)
	t.Logf("heartbeats per connection-minute: control %.1f, variant %.1f", hb.Arms[0].Value, hb.Arms[1].Value)
	if !(hb.Arms[1].Value < hb.Arms[0].Value) {
		t.Errorf("the longer heartbeat did not send fewer heartbeats: %+v", hb.Arms)
	}
}
