// Package jobcast holds the domain of the jobcast server: jobs and their
// state machine, the messages clients receive, the error catalog, the
// configuration, and the interfaces between the parts (JobStore, Broker,
// Clock). Adapters for each technology live in their own packages (sqlite,
// inmem, …) and services in theirs (jobs, hub, httpapi); cmd/jobcast wires
// them together. This package imports no adapter.
package jobcast
