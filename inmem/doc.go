// Package inmem holds in-process implementations of jobcast's interfaces: the
// embedded mode's Broker, and a JobStore used by tests and by benchmarks
// that should not measure disk I/O.
package inmem
