// Package duckdb implements jobcast.TelemetryStore on an embedded DuckDB file
// (github.com/duckdb/duckdb-go, cgo), the telemetry store of embedded mode.
//
// One wide table, events, holds every telemetry event (SPEC §4). Its columns
// are never NULL: a field that does not apply to an event is stored as its Go
// zero value, the empty string or 0, so GROUP BY, = and DISTINCT need no
// COALESCE and a missing app_version groups as the empty string. The one exception to "zero as is" is sample_interval, where
// 0 is stored as 1 so that every metric can weight by it without a CASE. ts is
// a TIMESTAMP (no time zone) holding UTC at microsecond precision.
//
// Writes go through DuckDB's Appender on one dedicated connection, one
// transaction per Write call: a Write that returned nil is in DuckDB's
// write-ahead log and survives a killed process; a Write that failed or was
// cut short by a crash leaves nothing behind.
//
// The database is opened with external access disabled (no files other than
// the database, its WAL and its spill directory; no network; no extension
// install or load), with extension autoloading off and a memory limit, and
// then its configuration is locked, so no SQL can undo those settings.
// QueryUntrusted adds to that: DuckDB's own parser must see exactly one
// SELECT calling only allowed table functions, and the query runs in a
// read-only transaction within a row and a time limit.
//
// DuckDB keeps one database instance per file and process: open a file with
// one Store at a time.
package duckdb
