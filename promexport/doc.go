// Package promexport exposes jobcast's live counters and gauges in the
// Prometheus exposition format (GET /metrics). Labels are low-cardinality
// only: event, reason, network type, close code, and error codes and
// pipelines capped at a fixed number of distinct values.
package promexport
