package duckdb_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/duckdb"
)

// crashEnv names the database file the child process of TestCrashSafety
// writes to; crashBigEnv, when set, makes every odd batch a big one.
const (
	crashEnv    = "JOBCAST_DUCKDB_CRASH_CHILD"
	crashBigEnv = "JOBCAST_DUCKDB_CRASH_BIG"
)

// crashBatch is the size of a batch; crashBigBatch that of a big one: a
// whole DuckDB row group, which DuckDB writes compressed into the database
// file before the commit and logs in the WAL as block pointers.
const (
	crashBatch    = 1000
	crashBigBatch = 122880
)

// crashBatchSize is the size of batch b.
func crashBatchSize(b int64, big bool) int {
	if big && b%2 == 1 {
		return crashBigBatch
	}
	return crashBatch
}

// crashChild writes batches of crashBatchSize events, each batch numbered
// in its events' total_count, until it is killed. After each Write it
// prints the batch number, so the parent knows which batches were
// acknowledged.
func crashChild() {
	// A small threshold: checkpoints every few batches, so that kills land
	// before, in and after them.
	s, err := duckdb.Open(context.Background(), os.Getenv(crashEnv), duckdb.Options{CheckpointThreshold: "4MB"})
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(2)
	}
	big := os.Getenv(crashBigEnv) != ""
	next := 0 // the number of the next batch's first event
	build := func(b int64) []jobcast.Event {
		batch := make([]jobcast.Event, crashBatchSize(b, big))
		for i := range batch {
			batch[i] = realisticEvent(next + i)
			batch[i].TotalCount = b
			batch[i].ConnID = fmt.Sprint(next + i)
		}
		next += len(batch)
		return batch
	}
	batch := build(0)
	for b := int64(0); ; b++ {
		if err := s.Write(context.Background(), batch); err != nil {
			fmt.Fprintln(os.Stderr, "write:", err)
			os.Exit(2)
		}
		// Build the next batch before acknowledging this one, so that a
		// kill right after the acknowledgement lands in the next Write.
		batch = build(b + 1)
		fmt.Println(b)
	}
}

// TestCrashSafety kills a process with SIGKILL while it writes batches and
// reopens its file: the file opens, holds only whole batches, numbered
// without a gap from 0, and at least every batch whose Write returned. The
// last round writes every other batch as a whole row group, so that the
// kill lands in a Write that DuckDB writes into the file before it commits.
func TestCrashSafety(t *testing.T) {
	t.Parallel()
	for round, c := range []struct {
		after int64
		big   bool
	}{{10, false}, {90, false}, {200, false}, {2, true}} {
		path := filepath.Join(t.TempDir(), "crash.duckdb")
		acked := killMidWrite(t, path, c.after, c.big)
		for _, p := range []string{path, path + ".wal"} {
			if fi, err := os.Stat(p); err == nil {
				t.Logf("round %d: %s: %d bytes", round, filepath.Base(p), fi.Size())
			}
		}
		t0 := time.Now()
		s, err := duckdb.Open(context.Background(), path, duckdb.Options{})
		t.Logf("round %d: reopen took %v", round, time.Since(t0))
		if err != nil {
			t.Fatalf("round %d: reopen after SIGKILL: %v", round, err)
		}
		rows, err := s.Query(context.Background(), `SELECT total_count, count(*), count(DISTINCT conn_id) FROM events
			GROUP BY total_count ORDER BY total_count`)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		t.Logf("round %d: %d batches acknowledged before the kill; %d batches in the file", round, acked+1, len(rows.Rows))
		for i, r := range rows.Rows {
			b, n, conns := r[0].(int64), r[1].(int64), r[2].(int64)
			if want := int64(crashBatchSize(b, c.big)); b != int64(i) || n != want || conns != n {
				t.Errorf("round %d: batch %d (the %d-th in the file): %d events, %d distinct conn_id; want batches 0..n without gaps, each whole (%d events) and without duplicates",
					round, b, i, n, conns, want)
			}
		}
		if last := int64(len(rows.Rows)) - 1; last < acked {
			t.Errorf("round %d: last batch in the file is %d, but %d was acknowledged", round, last, acked)
		}
	}
}

// killMidWrite runs crashChild on path, kills it with SIGKILL once it has
// acknowledged batch after, and returns the last batch it acknowledged.
func killMidWrite(t *testing.T, path string, after int64, big bool) int64 {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashEnv+"="+path)
	if big {
		cmd.Env = append(cmd.Env, crashBigEnv+"=1")
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := int64(-1)
	sc := bufio.NewScanner(stdout)
	for acked < after && sc.Scan() {
		fmt.Sscan(sc.Text(), &acked)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for sc.Scan() { // acknowledged between our last read and the kill
		fmt.Sscan(sc.Text(), &acked)
	}
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child did not die of SIGKILL: %v; stderr: %s", err, stderr.String())
	}
	if acked < after {
		t.Fatalf("child acknowledged batches up to %d only; stderr: %s", acked, stderr.String())
	}
	return acked
}
