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
// writes to.
const crashEnv = "JOBCAST_DUCKDB_CRASH_CHILD"

const crashBatch = 1000

// crashChild writes batches of crashBatch events, each batch numbered in
// its events' total_count, until it is killed. After each Write it prints
// the batch number, so the parent knows which batches were acknowledged.
func crashChild() {
	// A small threshold: checkpoints every few batches, so that kills land
	// before, in and after them.
	s, err := duckdb.Open(context.Background(), os.Getenv(crashEnv), duckdb.Options{CheckpointThreshold: "4MB"})
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(2)
	}
	batch := make([]jobcast.Event, crashBatch)
	for b := int64(0); ; b++ {
		for i := range batch {
			batch[i] = realisticEvent(int(b)*crashBatch + i)
			batch[i].TotalCount = b
			batch[i].ConnID = fmt.Sprint(int(b)*crashBatch + i)
		}
		if err := s.Write(context.Background(), batch); err != nil {
			fmt.Fprintln(os.Stderr, "write:", err)
			os.Exit(2)
		}
		fmt.Println(b)
	}
}

// TestCrashSafety kills a process with SIGKILL while it writes batches and
// reopens its file: the file opens, holds only whole batches, numbered
// without a gap from 0, and at least every batch whose Write returned.
func TestCrashSafety(t *testing.T) {
	t.Parallel()
	for round, after := range []int64{10, 90, 200} {
		path := filepath.Join(t.TempDir(), "crash.duckdb")
		acked := killMidWrite(t, path, after)
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
		rows, err := s.Query(context.Background(), `SELECT count(*), count(DISTINCT total_count), coalesce(max(total_count), -1),
			count(DISTINCT conn_id) FROM events`)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		r := rows.Rows[0]
		n, batches, last, conns := r[0].(int64), r[1].(int64), r[2].(int64), r[3].(int64)
		t.Logf("round %d: %d batches acknowledged before the kill; %d events, %d batches in the file", round, acked+1, n, batches)
		if n != batches*crashBatch || conns != n || batches != last+1 {
			t.Errorf("round %d: %d events, %d distinct conn_id, batches %d numbered up to %d: want whole batches 0..n without gaps or duplicates",
				round, n, conns, batches, last)
		}
		if last < acked {
			t.Errorf("round %d: last batch in the file is %d, but %d was acknowledged", round, last, acked)
		}
	}
}

// killMidWrite runs crashChild on path, kills it with SIGKILL once it has
// acknowledged batch after, and returns the last batch it acknowledged.
func killMidWrite(t *testing.T, path string, after int64) int64 {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashEnv+"="+path)
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
