// Package experiment runs A/B tests of the transport's own parameters
// (heartbeat interval, throttle window; SPEC §7): it validates experiments,
// assigns units (jobs) to arms deterministically and stickily, hands the
// hub the values to apply, serves /v1/experiments and analyses the
// results from the telemetry store with the statistics of package stats.
//
// Assignment follows GrowthBook's design: a unit's bucket is a double
// FNV-1a hash of the experiment's seed and the unit id into 10,000
// buckets; each arm owns a range starting at its cumulative weight and
// as long as weight × coverage, so raising coverage only extends ranges and
// never moves an enrolled unit; a namespace is a second hash that keeps
// experiments with disjoint namespace ranges apart. Because the arms or
// the segment may still change, and a client's network type changes
// between connections, the first decision is stored and reused: a unit
// keeps its arm, or its non-enrollment, for good. As Statsig and Eppo do,
// exposure is logged when the value takes effect (the ready frame), once
// per unit.
package experiment
