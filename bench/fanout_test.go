package bench_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/bench"
	"github.com/jobcast/jobcast/internal/jobcasttest"
	"github.com/jobcast/jobcast/jobs"
	"github.com/jobcast/jobcast/protocol"
)

// BenchmarkFanout measures frames/s through the hub with the clients in a
// second process, so that this process (and its allocation counts) is the
// server and the publisher only: jobs.Service.Append on the in-memory store,
// the in-process broker, every connection's queue and writer. Throttling is
// off. One op is one round: a progress event appended to every job.
//
// jobs=10000/watchers=1 needs 10,000 sockets on each side; one process may
// hold only 20,000 files here, hence the second process.
func BenchmarkFanout(b *testing.B) {
	for _, tc := range []struct{ jobs, watchers, publishers, sourceIPs int }{
		{1, 100, 1, 1},
		{10000, 1, 2, 8},
	} {
		b.Run(fmt.Sprintf("jobs=%d/watchers=%d", tc.jobs, tc.watchers), func(b *testing.B) {
			srv := jobcasttest.Start(b, jobcasttest.Options{Config: jobcast.Config{
				ThrottleDisabled:    true,
				MaxConnsPerIP:       1 << 20,
				MaxConnsPerJob:      1 << 20,
				NewConnsPerSecPerIP: 1 << 20,
			}})
			ids, tickets := createJobs(b, srv, tc.jobs, tc.watchers)
			clients := startClientProcess(b, srv.WSURL, tickets, tc.sourceIPs)
			bench.RunFanout(b, bench.FanoutOptions{
				Jobs: ids, WatchersPerJob: tc.watchers, Publishers: tc.publishers,
				Append: func(ctx context.Context, id string, events []protocol.ProducerEvent) error {
					_, _, err := srv.Jobs.Append(ctx, id, events)
					return err
				},
				Clients: clients,
			})
		})
	}
}

// createJobs creates n jobs in srv and returns their ids and perJob tickets
// for each.
func createJobs(tb testing.TB, srv *jobcasttest.Server, n, perJob int) ([]string, []bench.Ticket) {
	tb.Helper()
	ids := make([]string, n)
	var tickets []bench.Ticket
	for i := range ids {
		job, err := srv.Jobs.Create(context.Background(), jobs.CreateRequest{JobID: fmt.Sprintf("bench-%05d", i), Pipeline: "bench"})
		if err != nil {
			tb.Fatal(err)
		}
		ids[i] = job.JobID
		tok, _, err := srv.Tokens.Issue(job.JobID)
		if err != nil {
			tb.Fatal(err)
		}
		for range perJob {
			tickets = append(tickets, bench.Ticket{JobID: job.JobID, Token: tok})
		}
	}
	return ids, tickets
}
