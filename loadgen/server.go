package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat;
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// serverSample is the server's state at one moment.
type serverSample struct {
	At time.Time
	// From /proc/<pid> when the server is local, else from /metrics.
	CPU    time.Duration // user + system since the process started
	RSS    int64         // bytes
	HasCPU bool
	// fromProc is set when CPU and RSS came from /proc.
	fromProc bool
	// From /metrics (admin token).
	FramesSent int64
	HasFrames  bool
	Conns      int64
	HasConns   bool
	Runtime    *runtimeStats // from /v1/debug/runtime (admin token)
}

// runtimeStats is the part of GET /v1/debug/runtime the report uses.
type runtimeStats struct {
	HeapInuseBytes  int64 `json:"heapInuseBytes"`
	StackInuseBytes int64 `json:"stackInuseBytes"`
	Mallocs         int64 `json:"mallocs"`
	Goroutines      int64 `json:"goroutines"`
	NumGC           int64 `json:"numGC"`
}

// sampler reads the server's figures.
type sampler struct {
	base       string
	adminToken string
	pid        int // 0: not local (or unknown)
	http       *http.Client
}

// sample reads every figure it can; gc asks the server for a full GC first,
// so that heap figures count live objects only.
func (s *sampler) sample(ctx context.Context, gc bool) (serverSample, error) {
	out := serverSample{}
	// The runtime figures come first: the GC they may ask for is then
	// before the CPU reading, not counted in the next window.
	if s.adminToken != "" {
		var rt runtimeStats
		q := ""
		if gc {
			q = "?gc=1"
		}
		if err := s.getJSON(ctx, "/v1/debug/runtime"+q, &rt); err == nil {
			out.Runtime = &rt
		}
		// A server without /metrics (a test server) still has the rest.
		if m, err := s.metrics(ctx); err == nil {
			if v, ok := m["jobcast_frames_sent_total"]; ok {
				out.FramesSent, out.HasFrames = int64(v), true
			}
			if v, ok := m["jobcast_connections"]; ok {
				out.Conns, out.HasConns = int64(v), true
			}
			cpu, okC := m["process_cpu_seconds_total"]
			rss, okR := m["process_resident_memory_bytes"]
			if okC && okR {
				out.CPU, out.RSS, out.HasCPU = time.Duration(cpu*float64(time.Second)), int64(rss), true
			}
		}
	}
	if s.pid > 0 {
		cpu, rss, err := procStat(s.pid)
		if err != nil {
			return out, err
		}
		out.CPU, out.RSS, out.HasCPU, out.fromProc = cpu, rss, true, true
	}
	out.At = time.Now()
	return out, nil
}

func (s *sampler) get(ctx context.Context, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.base+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+s.adminToken)
	resp, err := s.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %.200s", path, resp.Status, data)
	}
	return data, nil
}

func (s *sampler) getJSON(ctx context.Context, path string, v any) error {
	data, err := s.get(ctx, path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	return nil
}

// metrics reads the unlabelled samples of the Prometheus exposition.
func (s *sampler) metrics(ctx context.Context) (map[string]float64, error) {
	data, err := s.get(ctx, "/metrics")
	if err != nil {
		return nil, err
	}
	return parseMetrics(data), nil
}

func parseMetrics(data []byte) map[string]float64 {
	out := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' || strings.ContainsRune(line, '{') {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		if v, err := strconv.ParseFloat(f[1], 64); err == nil {
			out[f[0]] = v
		}
	}
	return out
}

// procStat reads a process's CPU time and resident memory.
func procStat(pid int) (cpu time.Duration, rss int64, err error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, fmt.Errorf("server process: %w", err)
	}
	// The command name, in parentheses, may contain spaces: fields count
	// from after its closing parenthesis.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, 0, errors.New("server process: malformed /proc stat")
	}
	f := strings.Fields(string(stat[i+1:]))
	// utime and stime are fields 14 and 15 of the whole line, 12 and 13
	// after the name (state is the first).
	if len(f) < 13 {
		return 0, 0, errors.New("server process: short /proc stat")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, errors.New("server process: malformed /proc stat times")
	}
	cpu = time.Duration(ut+st) * time.Second / clockTicks
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, fmt.Errorf("server process: %w", err)
	}
	for line := range strings.Lines(string(status)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0, 0, errors.New("server process: malformed VmRSS")
			}
			return cpu, kb << 10, nil
		}
	}
	return 0, 0, errors.New("server process: no VmRSS")
}

// findListener returns the pid of the local process listening on the TCP
// port of addr, or 0 when none can be seen (another user's process, not
// Linux).
func findListener(addr string) int {
	_, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return 0
	}
	inodes := map[string]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for line := range strings.Lines(string(data)) {
			fs := strings.Fields(line)
			// sl local_address rem_address st ... inode (field 9)
			if len(fs) < 10 || fs[3] != "0A" { // 0A: LISTEN
				continue
			}
			_, hexPort, ok := strings.Cut(fs[1], ":")
			if !ok {
				continue
			}
			if p, err := strconv.ParseUint(hexPort, 16, 16); err == nil && p == port {
				inodes["socket:["+fs[9]+"]"] = true
			}
		}
	}
	if len(inodes) == 0 {
		return 0
	}
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		fds, err := os.ReadDir(p + "/fd")
		if err != nil {
			continue
		}
		for _, fd := range fds {
			if l, err := os.Readlink(p + "/fd/" + fd.Name()); err == nil && inodes[l] {
				pid, _ := strconv.Atoi(filepath.Base(p))
				return pid
			}
		}
	}
	return 0
}
