// Package telemetry records jobcast's telemetry events without ever making
// delivery wait: Record copies an event into a bounded ring buffer (no
// allocation, no I/O), and writer goroutines (one, or as many as the store
// takes at once: two for DuckDB) drain it in batches into a
// jobcast.TelemetryStore. When the buffer is full, new events are dropped and
// counted; the counts are exported on /metrics.
package telemetry
