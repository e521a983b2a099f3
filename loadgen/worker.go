package loadgen

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
)

// Worker processes speak JSON lines. The parent writes the plan as one
// line on stdin and closes stdin to stop the worker early; the worker
// writes {"connected":…} once its clients are connected and {"final":…}
// (or {"error":…}) at the end.
type workerMsg struct {
	Connected *clientReport `json:"connected,omitempty"`
	Final     *clientReport `json:"final,omitempty"`
	Error     string        `json:"error,omitempty"`
}

// WorkerMain is the body of a worker process (`jobcast loadgen -worker`):
// it reads a plan from stdin, runs its clients and reports on stdout.
func WorkerMain(ctx context.Context, stdin io.Reader, stdout io.Writer) error {
	br := bufio.NewReader(stdin)
	line, err := br.ReadBytes('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("loadgen worker: read plan: %w", err)
	}
	var p plan
	if err := json.Unmarshal(line, &p); err != nil {
		return fmt.Errorf("loadgen worker: plan: %w", err)
	}
	if err := CheckLoopback(p.BaseURL); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The parent closes stdin (or dies) to stop the worker.
	go func() {
		_, _ = io.Copy(io.Discard, br)
		cancel()
	}()
	var mu sync.Mutex
	enc := json.NewEncoder(stdout)
	send := func(m workerMsg) {
		mu.Lock()
		defer mu.Unlock()
		_ = enc.Encode(m)
	}
	r, err := runClients(ctx, p, func(r clientReport) { send(workerMsg{Connected: &r}) })
	if err != nil {
		send(workerMsg{Error: err.Error()})
		return nil
	}
	send(workerMsg{Final: &r})
	return nil
}

// processSide is a worker process.
type processSide struct {
	conn chan clientReport
	res  chan sideResult
}

func (s *processSide) connected() <-chan clientReport { return s.conn }
func (s *processSide) done() <-chan sideResult        { return s.res }

// startWorker starts a worker process for p; canceling ctx closes its
// stdin, which ends it with a report.
func startWorker(ctx context.Context, cfg Config, p plan) (*processSide, error) {
	argv := cfg.WorkerCommand
	if len(argv) == 0 {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("loadgen: find own executable for workers: %w", err)
		}
		argv = []string{exe, "loadgen", "-worker"}
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = os.Environ()
	var stderr strings.Builder
	cmd.Stderr = &lockedBuilder{b: &stderr}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("loadgen: start worker: %w", err)
	}
	planJSON, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	go func() {
		_, _ = stdin.Write(append(planJSON, '\n'))
		<-ctx.Done()
		stdin.Close()
	}()
	s := &processSide{conn: make(chan clientReport, 1), res: make(chan sideResult, 1)}
	go func() {
		res := sideResult{err: errors.New("worker ended without a report")}
		dec := json.NewDecoder(stdout)
		for {
			var m workerMsg
			if err := dec.Decode(&m); err != nil {
				break
			}
			switch {
			case m.Connected != nil:
				s.conn <- *m.Connected
			case m.Final != nil:
				res = sideResult{r: *m.Final}
			case m.Error != "":
				res = sideResult{err: errors.New(m.Error)}
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		werr := cmd.Wait()
		if res.err != nil && werr != nil {
			res.err = fmt.Errorf("%w (worker: %v; stderr: %.500s)", res.err, werr, strings.TrimSpace(stderr.String()))
		}
		s.res <- res
	}()
	return s, nil
}

// lockedBuilder collects a child's stderr, written from exec's goroutine.
type lockedBuilder struct {
	mu sync.Mutex
	b  *strings.Builder
}

func (l *lockedBuilder) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len() > 64<<10 {
		return len(p), nil
	}
	return l.b.Write(p)
}
