package duckdb

import (
	"context"
	"database/sql/driver"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jobcast/jobcast"
)

// day is the length of a rollup day; days start at 00:00 UTC.
const day = 24 * time.Hour

// Rollup tables: pre-aggregated copies of whole UTC days of events, which
// the metrics library reads instead of events for the days rollup_days
// lists (see metrics' dialect). Each keeps the four dashboard dimensions
// (pipeline, app_version, os_version, network_type) and drops device_model,
// conn_id and the rest: per day they hold about a fortieth of the rows for
// counts and sums, and distinct-job counts and quantiles stop hashing job ids
// and sorting RTTs of the whole window. Every column is exact: integer sums,
// per-day dense job numbers, RTT values as they were written.
//
//   - rollup_days: the days whose rollups are complete, with the number of
//     distinct jobs of the day (the largest job number in rollup_jobs) and
//     the smallest and largest job_key of the day (lo_key, hi_key).
//   - rollup_state: one row: gen, incremented in every transaction that
//     adds or removes a day, so that a reader can tell that rollup_days did
//     not change between two statements; and the rollupVersion that built
//     the rollups.
//   - rollup_events: per day, event and dimensions, w = Σ sample_interval,
//     w_token_expired = the same over reason = 'token_expired', and Σ(x·w)
//     of each numeric column a metric sums.
//   - rollup_jobs: per day, dimensions and job (job_id <> ”), the job's
//     number within the day (1…jobs, dense), its number across days
//     (job_key, from rollup_job_ids) and whether it had an error or
//     connect_failed event (errored) and a connected or reconnected one.
//     The per-day numbers count one day's jobs as a bitstring of jobs bits;
//     the job keys count the distinct jobs of several days (and of the
//     events at a window's edges, looked up in rollup_job_ids) as a
//     bitstring from the smallest to the largest key of those days
//     (rollup_days' lo_key and hi_key): exact, without hashing job ids.
//   - rollup_job_ids: job_id → job_key, one row per job of a rolled-up day,
//     numbered in the order builds first see them (dense but for the jobs
//     retention removed). A build adds its day's new jobs (builds are
//     serialized by Store.rmu); DeleteBefore removes the jobs no
//     rollup_jobs row refers to any more. Its numbers are never reused
//     while a row refers to them, so a job has one key in every day.
//   - rollup_rtt_bins: per day, dimensions and RTT bin (CAST(sqrt(rtt_ms) *
//     16 AS BIGINT), rtt_ms < 0 as 0), Σw of the heartbeats in it.
//   - rollup_rtt: per day, bin, dimensions and exact rtt_ms value, Σw of
//     the heartbeats with that value; written in (day, bin) order, so that a
//     scan for a few bins skips the rest by zone maps.
//   - rollup_dim_jobs and rollup_dim_rtt_bins: rollup_jobs' counts of
//     distinct jobs (all, errored, connected) and rollup_rtt_bins' weights
//     per day and one dimension (dim names it, value is its value) or none
//     (dim and value ”): what a query filtering and grouping by at most
//     one dimension, like the dashboard's trends by network type, reads in
//     a few hundred rows instead of millions.
//
// Invariant: rollup rows exist exactly for the days in rollup_days, and each
// such day's rows aggregate all of its events. A Write with events of a
// rolled-up day (late or out of order) deletes that day's rollups in its own
// transaction; DeleteBefore deletes those of the days it empties and of the
// day it cuts; Rollup rebuilds the missing days. (Rows of a day not in
// rollup_days, left by an abandoned build, are never read.)
var rollupSchema = []string{
	`CREATE TABLE IF NOT EXISTS rollup_days (day TIMESTAMP NOT NULL, jobs BIGINT NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS rollup_state (gen BIGINT NOT NULL)`,
	`INSERT INTO rollup_state (gen) SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM rollup_state)`,
	`ALTER TABLE rollup_state ADD COLUMN IF NOT EXISTS version INTEGER DEFAULT 0`,
	`CREATE TABLE IF NOT EXISTS rollup_events (day TIMESTAMP NOT NULL, event VARCHAR NOT NULL,
		pipeline VARCHAR NOT NULL, app_version VARCHAR NOT NULL, os_version VARCHAR NOT NULL, network_type VARCHAR NOT NULL,
		w BIGINT NOT NULL, w_token_expired BIGINT NOT NULL, duration_ms BIGINT NOT NULL, rtt_ms DOUBLE NOT NULL,
		throttled_count BIGINT NOT NULL, progress_sent BIGINT NOT NULL, messages_sent BIGINT NOT NULL, bytes_sent BIGINT NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS rollup_jobs (day TIMESTAMP NOT NULL,
		pipeline VARCHAR NOT NULL, app_version VARCHAR NOT NULL, os_version VARCHAR NOT NULL, network_type VARCHAR NOT NULL,
		job INTEGER NOT NULL, errored BOOLEAN NOT NULL, connected BOOLEAN NOT NULL)`,
	`ALTER TABLE rollup_jobs ADD COLUMN IF NOT EXISTS job_key BIGINT`,
	`ALTER TABLE rollup_days ADD COLUMN IF NOT EXISTS lo_key BIGINT`,
	`ALTER TABLE rollup_days ADD COLUMN IF NOT EXISTS hi_key BIGINT`,
	`CREATE TABLE IF NOT EXISTS rollup_job_ids (job_id VARCHAR NOT NULL, job_key BIGINT NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS rollup_rtt_bins (day TIMESTAMP NOT NULL,
		pipeline VARCHAR NOT NULL, app_version VARCHAR NOT NULL, os_version VARCHAR NOT NULL, network_type VARCHAR NOT NULL,
		bin SMALLINT NOT NULL, w BIGINT NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS rollup_dim_jobs (day TIMESTAMP NOT NULL, dim VARCHAR NOT NULL, value VARCHAR NOT NULL,
		jobs BIGINT NOT NULL, errored BIGINT NOT NULL, connected BIGINT NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS rollup_dim_rtt_bins (day TIMESTAMP NOT NULL, dim VARCHAR NOT NULL, value VARCHAR NOT NULL,
		bin SMALLINT NOT NULL, w BIGINT NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS rollup_rtt (day TIMESTAMP NOT NULL, bin SMALLINT NOT NULL,
		pipeline VARCHAR NOT NULL, app_version VARCHAR NOT NULL, os_version VARCHAR NOT NULL, network_type VARCHAR NOT NULL,
		rtt_ms DOUBLE NOT NULL, w BIGINT NOT NULL)`,
}

// rollupVersion names what buildDay computes. Open drops the rollups of a
// file built by another version (they are derived data: the retention sweep
// builds them again), so changing buildDay or the tables' meaning needs
// only this number changed. Version 3 added rollup_job_ids, job_key and
// the days' key ranges.
const rollupVersion = 3

// migrateRollups drops every rollup when the file's were built by another
// rollupVersion.
func (s *Store) migrateRollups(ctx context.Context) error {
	var v int64
	if err := s.db.QueryRowContext(ctx, `SELECT version FROM rollup_state`).Scan(&v); err != nil {
		return fmt.Errorf("read rollup version: %w", err)
	}
	if v == rollupVersion {
		return nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("drop rollups of version %d: %w", v, err)
	}
	defer tx.Rollback()
	for _, t := range append(slices.Clone(rollupTables), "rollup_job_ids") {
		if _, err := tx.ExecContext(ctx, "DELETE FROM "+t); err != nil {
			return fmt.Errorf("drop rollups of version %d: %w", v, err)
		}
	}
	if _, err := tx.ExecContext(ctx, "UPDATE rollup_state SET gen = gen + 1, version = ?", rollupVersion); err != nil {
		return fmt.Errorf("drop rollups of version %d: %w", v, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("drop rollups of version %d: %w", v, err)
	}
	return nil
}

// rollupTables are the tables holding a day's rows, deleted together.
var rollupTables = []string{"rollup_events", "rollup_jobs", "rollup_rtt_bins", "rollup_rtt",
	"rollup_dim_jobs", "rollup_dim_rtt_bins", "rollup_days"}

// rttBin is the bin of a heartbeat: monotonic in rtt_ms (sqrt is correctly
// rounded), 0.13 ms wide at 1 ms, 0.9 ms at 50 ms, 4 ms at 1 s; a SMALLINT
// up to 16 s·… (sqrt(10^6 ms)·16 = 16,000).
const rttBin = "CAST(least(sqrt(greatest(rtt_ms, 0)) * 16, 32767) AS SMALLINT)"

// buildDay are the statements that aggregate the events of the day [$1, $2)
// (bound as microseconds) into the rollup tables.
var buildDay = []string{
	`INSERT INTO rollup_events SELECT make_timestamp($1), event, pipeline, app_version, os_version, network_type,
		CAST(sum(sample_interval) AS BIGINT),
		CAST(coalesce(sum(sample_interval) FILTER (WHERE reason = '` + jobcast.ReasonTokenExpired + `'), 0) AS BIGINT),
		CAST(sum(duration_ms * sample_interval) AS BIGINT), CAST(sum(rtt_ms * sample_interval) AS DOUBLE),
		CAST(sum(throttled_count * sample_interval) AS BIGINT), CAST(sum(progress_sent * sample_interval) AS BIGINT),
		CAST(sum(messages_sent * sample_interval) AS BIGINT), CAST(sum(bytes_sent * sample_interval) AS BIGINT)
	FROM events WHERE ts >= make_timestamp($1) AND ts < make_timestamp($2)
	GROUP BY event, pipeline, app_version, os_version, network_type`,
	`INSERT INTO rollup_job_ids SELECT job_id, (SELECT coalesce(max(job_key), 0) FROM rollup_job_ids) + row_number() OVER (ORDER BY job_id)
	FROM (SELECT DISTINCT job_id FROM events WHERE ts >= make_timestamp($1) AND ts < make_timestamp($2) AND job_id <> '') AS j
	WHERE NOT EXISTS (SELECT 1 FROM rollup_job_ids AS d WHERE d.job_id = j.job_id)`,
	`INSERT INTO rollup_jobs (day, pipeline, app_version, os_version, network_type, job, errored, connected, job_key)
	SELECT make_timestamp($1), pipeline, app_version, os_version, network_type,
		CAST(dense_rank() OVER (ORDER BY job_id) AS INTEGER), errored, connected, job_key
	FROM (SELECT pipeline, app_version, os_version, network_type, job_id,
		bool_or(list_contains(['` + jobcast.EventError + `', '` + jobcast.EventConnectFailed + `'], event)) AS errored,
		bool_or(list_contains(['` + jobcast.EventConnected + `', '` + jobcast.EventReconnected + `'], event)) AS connected
		FROM events WHERE ts >= make_timestamp($1) AND ts < make_timestamp($2) AND job_id <> ''
		GROUP BY pipeline, app_version, os_version, network_type, job_id) JOIN rollup_job_ids USING (job_id)
	ORDER BY pipeline, app_version, os_version, network_type`,
	`INSERT INTO rollup_rtt SELECT make_timestamp($1), ` + rttBin + ` AS bin, pipeline, app_version, os_version, network_type,
		rtt_ms, CAST(sum(sample_interval) AS BIGINT)
	FROM events WHERE ts >= make_timestamp($1) AND ts < make_timestamp($2) AND event = '` + jobcast.EventHeartbeat + `'
	GROUP BY bin, pipeline, app_version, os_version, network_type, rtt_ms
	ORDER BY bin, pipeline, app_version, os_version, network_type, rtt_ms`,
	`INSERT INTO rollup_rtt_bins SELECT day, pipeline, app_version, os_version, network_type, bin, CAST(sum(w) AS BIGINT)
	FROM rollup_rtt WHERE day = make_timestamp($1)
	GROUP BY day, pipeline, app_version, os_version, network_type, bin
	ORDER BY pipeline, app_version, os_version, network_type, bin`,
	`INSERT INTO rollup_dim_jobs ` + strings.Join([]string{
		`SELECT make_timestamp($1), '', '', count(*), count(*) FILTER (WHERE errored), count(*) FILTER (WHERE connected) FROM (SELECT job, bool_or(errored) AS errored, bool_or(connected) AS connected FROM rollup_jobs WHERE day = make_timestamp($1) GROUP BY job)`,
		`SELECT make_timestamp($1), 'pipeline', pipeline, count(*), count(*) FILTER (WHERE errored), count(*) FILTER (WHERE connected) FROM (SELECT pipeline, job, bool_or(errored) AS errored, bool_or(connected) AS connected FROM rollup_jobs WHERE day = make_timestamp($1) GROUP BY pipeline, job) GROUP BY pipeline`,
		`SELECT make_timestamp($1), 'app_version', app_version, count(*), count(*) FILTER (WHERE errored), count(*) FILTER (WHERE connected) FROM (SELECT app_version, job, bool_or(errored) AS errored, bool_or(connected) AS connected FROM rollup_jobs WHERE day = make_timestamp($1) GROUP BY app_version, job) GROUP BY app_version`,
		`SELECT make_timestamp($1), 'os_version', os_version, count(*), count(*) FILTER (WHERE errored), count(*) FILTER (WHERE connected) FROM (SELECT os_version, job, bool_or(errored) AS errored, bool_or(connected) AS connected FROM rollup_jobs WHERE day = make_timestamp($1) GROUP BY os_version, job) GROUP BY os_version`,
		`SELECT make_timestamp($1), 'network_type', network_type, count(*), count(*) FILTER (WHERE errored), count(*) FILTER (WHERE connected) FROM (SELECT network_type, job, bool_or(errored) AS errored, bool_or(connected) AS connected FROM rollup_jobs WHERE day = make_timestamp($1) GROUP BY network_type, job) GROUP BY network_type`,
	}, "\n\tUNION ALL "),
	`INSERT INTO rollup_dim_rtt_bins ` + strings.Join([]string{
		`SELECT make_timestamp($1), '', '', bin, CAST(sum(w) AS BIGINT) FROM rollup_rtt_bins WHERE day = make_timestamp($1) GROUP BY bin`,
		`SELECT make_timestamp($1), 'pipeline', pipeline, bin, CAST(sum(w) AS BIGINT) FROM rollup_rtt_bins WHERE day = make_timestamp($1) GROUP BY pipeline, bin`,
		`SELECT make_timestamp($1), 'app_version', app_version, bin, CAST(sum(w) AS BIGINT) FROM rollup_rtt_bins WHERE day = make_timestamp($1) GROUP BY app_version, bin`,
		`SELECT make_timestamp($1), 'os_version', os_version, bin, CAST(sum(w) AS BIGINT) FROM rollup_rtt_bins WHERE day = make_timestamp($1) GROUP BY os_version, bin`,
		`SELECT make_timestamp($1), 'network_type', network_type, bin, CAST(sum(w) AS BIGINT) FROM rollup_rtt_bins WHERE day = make_timestamp($1) GROUP BY network_type, bin`,
	}, "\n\tUNION ALL "),
}

// dayOf returns the start of t's UTC day in microseconds since the epoch.
func dayOf(t time.Time) int64 {
	us, d := t.UnixMicro(), day.Microseconds()
	r := us % d
	if r < 0 {
		r += d
	}
	return us - r
}

// loadRolled reads rollup_days into s.rolled.
func (s *Store) loadRolled(ctx context.Context) error {
	rows, err := s.db.QueryContext(ctx, `SELECT epoch_us(day) FROM rollup_days`)
	if err != nil {
		return fmt.Errorf("read rollup days: %w", err)
	}
	defer rows.Close()
	s.rolled = map[int64]bool{}
	for rows.Next() {
		var d int64
		if err := rows.Scan(&d); err != nil {
			return fmt.Errorf("read rollup days: %w", err)
		}
		s.rolled[d] = true
	}
	return rows.Err()
}

// lateDays returns the rolled-up days that events fall in, sorted, and
// marks the day being built dirty when one of them falls in it.
func (s *Store) lateDays(events []jobcast.Event) []int64 {
	if len(s.rolled) == 0 && s.building == noDay {
		return nil
	}
	var late []int64
	last := int64(noDay)
	for i := range events {
		d := dayOf(events[i].TS)
		if d == last {
			continue // batches come in time order: one day check per day
		}
		last = d
		if d == s.building {
			s.buildDirty = true
		}
		if s.rolled[d] && !slices.Contains(late, d) {
			late = append(late, d)
		}
	}
	slices.Sort(late)
	return late
}

// dropDays deletes the rollups of days (µs) inside the writer's open
// transaction and bumps the generation. The caller removes them from
// s.rolled once the transaction committed.
func (w *writer) dropDays(ctx context.Context, days []int64) error {
	if len(days) == 0 {
		return nil
	}
	list := make([]string, len(days))
	for i, d := range days {
		list[i] = fmt.Sprintf("make_timestamp(%d)", d)
	}
	in := "day IN (" + strings.Join(list, ", ") + ")"
	for _, t := range rollupTables {
		if err := w.exec(ctx, "DELETE FROM "+t+" WHERE "+in); err != nil {
			return fmt.Errorf("drop rollups of %d days: %w", len(days), err)
		}
	}
	return w.exec(ctx, "UPDATE rollup_state SET gen = gen + 1")
}

// Rollup implements jobcast.TelemetryStore: it builds the rollups of every
// day that has events, ended at or before before, and has none yet (never
// built, or dropped by a late Write or by DeleteBefore), one day per
// transaction, so that Writes wait for one day's build at most (about
// 0.3 s for 330,000 events). Metrics read events for the days it has not
// built, so it is an optimization only: the answers do not change.
func (s *Store) Rollup(ctx context.Context, before time.Time) (int, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT DISTINCT epoch_us(date_trunc('day', ts)) AS d FROM events
		WHERE ts < make_timestamp(?) ORDER BY d`, dayOf(before))
	if err != nil {
		return 0, fmt.Errorf("rollup: list days: %w", err)
	}
	var days []int64
	for rows.Next() {
		var d int64
		if err := rows.Scan(&d); err != nil {
			rows.Close()
			return 0, fmt.Errorf("rollup: list days: %w", err)
		}
		days = append(days, d)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("rollup: list days: %w", err)
	}
	built := 0
	for _, d := range days {
		ok, err := s.rollupDay(ctx, d)
		if err != nil {
			return built, err
		}
		if ok {
			built++
		}
	}
	return built, nil
}

// rollupDay builds day d (µs) unless it is built; it reports whether it
// built it. The aggregation runs on a connection of its own, without the
// writer's lock, so Writes go on meanwhile; its rows stay invisible to
// metrics until the day is added to rollup_days, which happens under the
// lock, and only if no Write or DeleteBefore touched the day since the
// build began (they set s.buildDirty). A day whose build is abandoned that
// way, or cut short by a crash, keeps rows that no query reads (metrics
// read only days in rollup_days) until its next build deletes them.
func (s *Store) rollupDay(ctx context.Context, d int64) (bool, error) {
	// One build at a time: each numbers its new jobs after the largest
	// key in rollup_job_ids.
	s.rmu.Lock()
	defer s.rmu.Unlock()
	s.wmu.Lock()
	if s.closed {
		s.wmu.Unlock()
		return false, errClosed
	}
	if s.rolled[d] {
		s.wmu.Unlock()
		return false, nil
	}
	// From here on a Write with an event of d, committed after the build's
	// snapshot or not, marks the build dirty.
	s.building, s.buildDirty = d, false
	s.wmu.Unlock()
	defer func() {
		s.wmu.Lock()
		s.building = noDay
		s.wmu.Unlock()
	}()
	name := time.UnixMicro(d).UTC().Format(time.DateOnly)
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return false, fmt.Errorf("rollup %s: %w", name, err)
	}
	defer conn.Close()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("rollup %s: begin: %w", name, err)
	}
	defer tx.Rollback()
	for _, t := range rollupTables[:len(rollupTables)-1] { // not rollup_days
		if _, err := tx.ExecContext(ctx, "DELETE FROM "+t+" WHERE day = make_timestamp($1)", d); err != nil {
			return false, fmt.Errorf("rollup %s: %w", name, err)
		}
	}
	for _, stmt := range buildDay {
		var args []any
		switch {
		case strings.Contains(stmt, "$2"):
			args = []any{d, d + day.Microseconds()}
		case strings.Contains(stmt, "$1"):
			args = []any{d}
		}
		if _, err := tx.ExecContext(ctx, stmt, args...); err != nil {
			return false, fmt.Errorf("rollup %s: %w", name, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("rollup %s: commit: %w", name, err)
	}
	var jobs, lo, hi int64
	if err := conn.QueryRowContext(ctx, "SELECT coalesce(max(job), 0), coalesce(min(job_key), 0), coalesce(max(job_key), 0) FROM rollup_jobs WHERE day = make_timestamp($1)", d).Scan(&jobs, &lo, &hi); err != nil {
		return false, fmt.Errorf("rollup %s: %w", name, err)
	}
	if s.beforePublish != nil {
		s.beforePublish(d)
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed {
		return false, errClosed
	}
	if s.buildDirty {
		return false, nil // the next Rollup builds it again
	}
	w := s.writers[0] // no Write holds one while wmu is locked
	if err := w.exec(ctx, "BEGIN TRANSACTION"); err != nil {
		w.exec(context.Background(), "ROLLBACK")
		return false, fmt.Errorf("rollup %s: begin: %w", name, err)
	}
	err = w.execArgs(ctx, "INSERT INTO rollup_days (day, jobs, lo_key, hi_key) VALUES (make_timestamp($1), $2, $3, $4)",
		[]driver.NamedValue{{Ordinal: 1, Value: d}, {Ordinal: 2, Value: jobs}, {Ordinal: 3, Value: lo}, {Ordinal: 4, Value: hi}})
	if err == nil {
		err = w.exec(ctx, "UPDATE rollup_state SET gen = gen + 1")
	}
	if err == nil {
		err = w.exec(context.Background(), "COMMIT")
	}
	if err != nil {
		w.exec(context.Background(), "ROLLBACK")
		return false, fmt.Errorf("rollup %s: %w", name, err)
	}
	s.rolled[d] = true
	return true, nil
}

// noDay is Store.building when no day is being built.
const noDay = -1 << 63

func (w *writer) execArgs(ctx context.Context, stmt string, args []driver.NamedValue) error {
	_, err := w.conn.(driver.ExecerContext).ExecContext(ctx, stmt, args)
	return err
}

// pruneJobIDs deletes the jobs of rollup_job_ids that no rollup_jobs row
// refers to any more (retention removed their days). It runs only while no
// build is running (a build may refer to a job no committed row refers to
// yet) and skips when one is: the next retention sweep prunes them.
func (s *Store) pruneJobIDs(ctx context.Context) error {
	if !s.rmu.TryLock() {
		return nil
	}
	defer s.rmu.Unlock()
	if _, err := s.db.ExecContext(ctx, `DELETE FROM rollup_job_ids WHERE NOT EXISTS
		(SELECT 1 FROM rollup_jobs AS r WHERE r.job_key = rollup_job_ids.job_key)`); err != nil {
		return fmt.Errorf("prune rollup job ids: %w", err)
	}
	return nil
}
