package bench_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jobcast/jobcast/bench"
)

// The client process is this test binary re-executed with roleEnv set. It
// reads its connections from a tickets file ("jobID token" lines), dials
// them, prints "ready N", then answers stdin commands on stdout:
//
//	wait T  → "ok T" once every connection has received T progress frames
//	close   → closes every connection, prints "closed" and exits
//
// Any failure prints "error …" and exits 1.
const (
	roleEnv      = "JOBCAST_BENCH_ROLE"
	roleClients  = "clients"
	urlEnv       = "JOBCAST_BENCH_WS_URL"
	ticketsEnv   = "JOBCAST_BENCH_TICKETS"
	sourceIPsEnv = "JOBCAST_BENCH_SOURCE_IPS"
)

func clientProcessMain(stdin io.Reader, stdout io.Writer) error {
	tickets, err := readTickets(os.Getenv(ticketsEnv))
	if err != nil {
		return err
	}
	ips, _ := strconv.Atoi(os.Getenv(sourceIPsEnv))
	ws, err := bench.DialAll(context.Background(), bench.DialOptions{URL: os.Getenv(urlEnv), SourceIPs: ips}, tickets)
	if err != nil {
		return err
	}
	defer bench.CloseAll(ws)
	fmt.Fprintln(stdout, "ready", len(ws))
	sc := bufio.NewScanner(stdin)
	for sc.Scan() {
		cmd, arg, _ := strings.Cut(sc.Text(), " ")
		switch cmd {
		case "wait":
			target, err := strconv.ParseInt(arg, 10, 64)
			if err != nil {
				return fmt.Errorf("bad wait %q", arg)
			}
			if err := <-bench.Watchers(ws).Await(target); err != nil {
				return err
			}
			fmt.Fprintln(stdout, "ok", target)
		case "close":
			bench.CloseAll(ws)
			ws = nil
			fmt.Fprintln(stdout, "closed")
			return nil
		default:
			return fmt.Errorf("unknown command %q", cmd)
		}
	}
	return sc.Err()
}

func readTickets(path string) ([]bench.Ticket, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read tickets: %w", err)
	}
	var out []bench.Ticket
	for line := range strings.Lines(string(data)) {
		id, tok, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok {
			return nil, fmt.Errorf("bad ticket line %q", line)
		}
		out = append(out, bench.Ticket{JobID: id, Token: tok})
	}
	return out, nil
}

// clientProcess is the parent's handle on a client process. It implements
// bench.FrameWaiter; waits are pipelined and answered in order.
type clientProcess struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string

	mu      sync.Mutex
	waiting []chan error
	readErr error
}

// startClientProcess runs the client process against wsURL with tickets and
// waits until every connection is open.
func startClientProcess(tb testing.TB, wsURL string, tickets []bench.Ticket, sourceIPs int) *clientProcess {
	tb.Helper()
	exe, err := os.Executable()
	if err != nil {
		tb.Fatal(err)
	}
	path := tb.TempDir() + "/tickets"
	var sb strings.Builder
	for _, t := range tickets {
		sb.WriteString(t.JobID + " " + t.Token + "\n")
	}
	if err := os.WriteFile(path, []byte(sb.String()), 0o600); err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), roleEnv+"="+roleClients, urlEnv+"="+wsURL, ticketsEnv+"="+path,
		sourceIPsEnv+"="+strconv.Itoa(sourceIPs))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	p := &clientProcess{cmd: cmd, stdin: stdin, lines: make(chan string, 1)}
	tb.Cleanup(p.close)
	go p.readLoop(stdout)
	select {
	case line, ok := <-p.lines:
		if !ok || !strings.HasPrefix(line, "ready ") {
			tb.Fatalf("client process: %q %v", line, p.err())
		}
	case <-time.After(2 * time.Minute):
		tb.Fatal("client process did not connect within 2 minutes")
	}
	return p
}

func (p *clientProcess) err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.readErr
}

// readLoop hands the first line (ready) to startClientProcess, then answers
// pending waits in order.
func (p *clientProcess) readLoop(stdout io.Reader) {
	sc := bufio.NewScanner(stdout)
	first := true
	fail := func(err error) {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.readErr = err
		for _, ch := range p.waiting {
			ch <- err
		}
		p.waiting = nil
	}
	for sc.Scan() {
		line := sc.Text()
		if first {
			first = false
			p.lines <- line
			close(p.lines)
			continue
		}
		switch {
		case strings.HasPrefix(line, "ok "):
			p.mu.Lock()
			if len(p.waiting) > 0 {
				p.waiting[0] <- nil
				p.waiting = p.waiting[1:]
			}
			p.mu.Unlock()
		case line == "closed":
		default:
			fail(fmt.Errorf("client process: %s", line))
		}
	}
	if first {
		close(p.lines)
	}
	fail(errors.New("client process exited"))
}

// Await implements bench.FrameWaiter.
func (p *clientProcess) Await(target int64) <-chan error {
	ch := make(chan error, 1)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.readErr != nil {
		ch <- p.readErr
		return ch
	}
	p.waiting = append(p.waiting, ch)
	if _, err := fmt.Fprintln(p.stdin, "wait", target); err != nil {
		p.waiting = p.waiting[:len(p.waiting)-1]
		ch <- err
	}
	return ch
}

// close asks the process to close its connections and waits for it.
func (p *clientProcess) close() {
	_, _ = fmt.Fprintln(p.stdin, "close")
	p.stdin.Close()
	done := make(chan struct{})
	go func() {
		_ = p.cmd.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
}
