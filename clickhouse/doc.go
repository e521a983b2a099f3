// Package clickhouse is cluster mode's jobcast.TelemetryStore: the events
// table in ClickHouse, written in batches over the native protocol and read
// by the metrics library in the "clickhouse" SQL dialect.
//
// It works with the ClickHouse Debian ships (18.16, from 2018) as well as
// with current releases, which shapes the schema:
//
//   - ts is Decimal64(3), Unix seconds with milliseconds: 18.16 has no
//     DateTime64, and DateTime keeps whole seconds only. Query returns
//     Decimal(18, 3) columns as time.Time, and binds time.Time arguments as
//     Decimal64(3) literals, so callers see times as with DuckDB. In SQL
//     typed at POST /v1/sql, compare ts with numbers
//     (ts >= toUnixTimestamp(now()) - 3600) rather than DateTime values.
//   - retryable is UInt8; Query returns every UInt8 column as a bool, as
//     DuckDB's comparisons and BOOLEAN columns are.
//   - inserts name their columns (18.16 rejects native inserts without an
//     explicit column list).
//   - the table is partitioned by UTC day, ordered by the low-cardinality
//     columns then ts; a TTL clause (ClickHouse 19.6 and later) drops
//     events after the retention, and DeleteBefore drops whole days by
//     partition and deletes the rest of the cutoff's day by a mutation,
//     waiting for it (18.16 has no synchronous deletes).
//
// Writes are inserts of at most MaxBatchSize events (the store is a
// telemetry.BatchSizer), and a Write keeps its caller's deadline only until
// its batch is sent: the server writes a batch it has received whether or
// not the client waits, so giving up then would have the recorder write it
// twice (plain MergeTree tables have no insert deduplication).
//
// QueryUntrusted's sandbox is per-query settings (readonly=2: no writes and
// no DDL, while still allowing the query's own limits and harmless table
// functions such as numbers(); max_execution_time, max_result_rows,
// max_memory_usage) plus a check of the statement's tokens: a single
// SELECT, reading only the events table, no SETTINGS clause (readonly=2
// would let a query lift its own limits), and no table function but
// numbers and zeros. readonly=1 would refuse every table function, but
// readonly=2 still allows file(), url() and remote(), so the token check is
// what refuses them.
package clickhouse
