// Package loadgen drives a running jobcast server (embedded or cluster) with
// simulated mobile clients and producers, and reports what the clients saw
// and what it cost the server: connection setup, delivered frames per
// second, publish→deliver latency, resumes and lost frames, and the
// server's memory per connection and CPU per frame.
//
// Clients are client.Watcher instances (the Go SDK, so the load is what a
// real app does), with the demo's mix of app and OS versions, networks and
// devices, connecting at a set rate from several loopback source addresses
// so the ephemeral ports of one address do not cap them. Producers use
// client.Producer and put their wall clock in every progress payload
// ("sentNs"); clients on the same machine subtract it from theirs.
//
// One process may hold 20,000 open files here, so above ConnsPerProcess
// connections the generator re-executes itself as worker processes (stdin:
// a JSON plan; stdout: JSON lines) and merges their reports. It only ever
// targets loopback addresses: it is a benchmark tool, not a way to load
// someone else's server.
package loadgen
