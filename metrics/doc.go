// Package metrics is the one implementation of the telemetry metrics of SPEC
// §4 (connection success rate, RTT percentiles, error rate, …): each metric is
// a SQL aggregate over the wide `events` table, so GraphQL, the dashboard,
// alert rules and experiment analysis all read the same numbers.
//
// A Library turns a Query (metric, time window, equality filters, group-by
// dimensions, optional time buckets) into one parameterized statement for the
// store's SQL dialect and reads the answer back as Points. Only identifiers
// and constants from this package's allow-lists are written into the SQL
// text; every value that comes from a Query (times, filter values, bucket
// width, limits) is a bound argument.
//
// Every count is weighted by sample_interval, so a sampled heartbeat that
// stands for ten counts ten times (as Workers Analytics Engine does with
// _sample_interval). Distinct-session counts are not weighted: only
// heartbeats are sampled, and sessions are counted from unsampled events.
//
// The formulas, units and the rules for empty denominators are documented on
// each Definition and in docs/telemetry.md.
package metrics
