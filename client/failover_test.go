package client_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/client"
	"github.com/jobcast/jobcast/inmem"
	"github.com/jobcast/jobcast/internal/clocktest"
	"github.com/jobcast/jobcast/internal/jobcasttest"
	"github.com/jobcast/jobcast/protocol"
)

// cluster starts n test servers sharing one store and one broker: nodes of
// one cluster, as far as a client can tell.
func cluster(t *testing.T, n int) []*jobcasttest.Server {
	t.Helper()
	return clusterWith(t, n, jobcast.Config{ThrottleDisabled: true}, nil)
}

// clusterWith is cluster with a config and a clock (nil: the system's).
func clusterWith(t *testing.T, n int, cfg jobcast.Config, clock jobcast.Clock) []*jobcasttest.Server {
	t.Helper()
	store, broker := inmem.NewJobStore(), inmem.NewBroker()
	nodes := make([]*jobcasttest.Server, n)
	for i := range nodes {
		c := cfg
		c.NodeID = string(rune('a' + i))
		nodes[i] = jobcasttest.Start(t, jobcasttest.Options{Config: c, Store: store, Broker: broker, Clock: clock})
	}
	return nodes
}

// deadURL is a WebSocket URL nothing listens on any more.
func deadURL(t *testing.T) string {
	t.Helper()
	s := httptest.NewServer(nil)
	u := "ws" + strings.TrimPrefix(s.URL, "http") + "/ws/progress"
	s.Close()
	return u
}

// A watcher whose node shuts down mid-job moves to the other node, resumes
// there and ends with the final state, without losing a non-progress
// message.
func TestWatcherFailsOver(t *testing.T) {
	t.Parallel()
	nodes := cluster(t, 2)
	tk := nodes[0].CreateJob(t)
	rec := newRecorder()
	cfg := client.Config{URLs: []string{nodes[0].WSURL, nodes[1].WSURL}, Token: tk.Token, JobID: tk.JobID,
		MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}
	rec.hook(&cfg)
	w, err := client.NewWatcher(cfg)
	if err != nil {
		t.Fatal(err)
	}
	res := run(t, w)
	first := rec.waitEvent(t, "connected").Endpoint
	on, other := nodes[0], nodes[1]
	if first == nodes[1].WSURL {
		on, other = nodes[1], nodes[0]
	} else if first != nodes[0].WSURL {
		t.Fatalf("connected to %q, not a node", first)
	}
	on.Send(t, tk.JobID, started(), progress(10), errorEv(protocol.ErrGeminiTimeout))
	rec.waitSeq(t, 3)

	on.Close() // 1001 to its clients
	if ev := rec.waitEvent(t, "disconnected"); ev.CloseCode != 1001 || ev.Endpoint != first {
		t.Errorf("disconnected = %+v", ev)
	}
	other.Send(t, tk.JobID, errorEv("E_ONE"), progress(50), progress(60), errorEv("E_TWO"), completed())
	if ev := rec.waitEvent(t, "connected"); ev.Endpoint != other.WSURL || !ev.Resumed {
		t.Errorf("reconnected = %+v, want resumed on %s", ev, other.WSURL)
	}
	if err := result(t, res); err != nil {
		t.Fatalf("Run = %v", err)
	}
	byType := map[int64]string{}
	for _, m := range rec.messages() {
		byType[m.Seq] = m.Type
	}
	for seq, typ := range map[int64]string{1: protocol.TypeJobStarted, 3: protocol.TypeError, 4: protocol.TypeError, 7: protocol.TypeError, 8: protocol.TypeJobCompleted} {
		if byType[seq] != typ {
			t.Errorf("seq %d: got %q, want %q (all: %v)", seq, byType[seq], typ, byType)
		}
	}
	if st := w.State(); st.Status != protocol.StatusCompleted || st.Seq != 8 || st.LastError == nil || st.LastError.Code != "E_TWO" {
		t.Errorf("state = %+v", st)
	}
	if s := w.Stats(); s.Connects != 2 || s.Resumes != 1 || s.Duplicates != 0 {
		t.Errorf("stats = %+v", s)
	}
}

// An endpoint that is down from the start costs at most one attempt: the
// next one goes to the next endpoint.
func TestWatcherSkipsDeadEndpoint(t *testing.T) {
	t.Parallel()
	nodes := cluster(t, 1)
	dead := deadURL(t)
	for i := range 8 { // the order is random: both orders come up
		tk := nodes[0].CreateJob(t)
		rec := newRecorder()
		cfg := client.Config{URL: dead, URLs: []string{nodes[0].WSURL}, Token: tk.Token,
			MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}
		rec.hook(&cfg)
		w, err := client.NewWatcher(cfg)
		if err != nil {
			t.Fatal(err)
		}
		res := run(t, w)
		if ev := rec.waitEvent(t, "connected"); ev.Endpoint != nodes[0].WSURL {
			t.Errorf("watcher %d connected to %q", i, ev.Endpoint)
		}
		if n := len(rec.eventsOf("reconnecting")); n > 1 {
			t.Errorf("watcher %d: %d failed attempts before connecting, want at most 1", i, n)
		}
		nodes[0].Send(t, tk.JobID, completed())
		if err := result(t, res); err != nil {
			t.Fatalf("Run = %v", err)
		}
	}
}

// Every node of a cluster knows every job, so an unknown job or a rejected
// token ends Run at once instead of asking the next node.
func TestWatcherMultiEndpointPermanentErrors(t *testing.T) {
	t.Parallel()
	nodes := cluster(t, 2)
	unknownTok, _, err := nodes[0].Tokens.Issue("no-such-job")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, token string
		want        error
	}{
		{"job not found", unknownTok, client.ErrJobNotFound},
		{"token invalid", "garbage", client.ErrTokenInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec := newRecorder()
			cfg := client.Config{URLs: []string{nodes[0].WSURL, nodes[1].WSURL}, Token: tc.token,
				MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}
			rec.hook(&cfg)
			w, err := client.NewWatcher(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := result(t, run(t, w)); !errors.Is(err, tc.want) {
				t.Fatalf("Run = %v, want %v", err, tc.want)
			}
			if n := len(rec.eventsOf("reconnecting")); n != 0 {
				t.Errorf("%d retries after a permanent error", n)
			}
		})
	}
}

// An expired token says nothing about the node: the watcher refreshes it
// and tries the same node again.
func TestWatcherMultiEndpointTokenRefreshStays(t *testing.T) {
	t.Parallel()
	clock := clocktest.New(epoch)
	nodes := clusterWith(t, 2, jobcast.Config{TokenTTL: time.Minute}, clock)
	fronts := []*front{newFront(t, nodes[0].API), newFront(t, nodes[1].API)}
	tk := nodes[0].CreateJob(t)
	clock.Advance(2 * time.Minute) // tk.Token is expired now
	rec := newRecorder()
	cfg := client.Config{URLs: []string{fronts[0].wsURL(), fronts[1].wsURL()}, Token: tk.Token,
		MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond,
		TokenFunc: func(ctx context.Context) (string, error) {
			nt, err := nodes[1].Producer.NewToken(ctx, tk.JobID)
			if err != nil {
				return "", err
			}
			return nt.Token, nil
		}}
	rec.hook(&cfg)
	w, err := client.NewWatcher(cfg)
	if err != nil {
		t.Fatal(err)
	}
	res := run(t, w)
	rec.waitEvent(t, "connected")
	nodes[0].Send(t, tk.JobID, completed())
	if err := result(t, res); err != nil {
		t.Fatalf("Run = %v", err)
	}
	a, b := len(fronts[0].requests()), len(fronts[1].requests())
	if !(a == 2 && b == 0 || a == 0 && b == 2) {
		t.Errorf("handshakes per node: %d and %d; want both (expired, then refreshed) on one", a, b)
	}
}
