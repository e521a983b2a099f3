package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/jobcast/jobcast/protocol"
)

// Ticket is what a client needs to open one connection.
type Ticket struct {
	JobID string
	Token string
}

// Frame prefixes: the server encodes the envelope with "v" then "type"
// first, so the type is known without decoding the frame.
var (
	prefixProgress = []byte(`{"v":2,"type":"` + protocol.TypeJobProgress + `"`)
	prefixPing     = []byte(`{"v":2,"type":"` + protocol.TypePing + `"`)
	prefixReady    = []byte(`{"v":2,"type":"` + protocol.TypeReady + `"`)
	sentKey        = []byte(`"sentNs":`)
)

// ProgressPayload is a progress payload stamped with the publisher's clock,
// for latency measurement; the server forwards the extra field unchanged.
func ProgressPayload(processed int64, sentNs int64) json.RawMessage {
	b := make([]byte, 0, 64)
	b = append(b, `{"processedCount":`...)
	b = strconv.AppendInt(b, processed, 10)
	if sentNs != 0 {
		b = append(b, `,"sentNs":`...)
		b = strconv.AppendInt(b, sentNs, 10)
	}
	return append(b, '}')
}

// ProgressEvent is a producer progress event; see ProgressPayload.
func ProgressEvent(processed int64, sentNs int64) []protocol.ProducerEvent {
	return []protocol.ProducerEvent{{Type: protocol.EventProgress, Payload: ProgressPayload(processed, sentNs)}}
}

// DialOptions tune DialAll.
type DialOptions struct {
	// URL is the server's ws://host:port/ws/progress.
	URL string
	// SourceIPs spreads connections over source addresses 127.0.0.1 ..
	// 127.0.0.N, for more ephemeral ports and under per-IP limits. Zero or
	// one dials from the default address. Only for loopback servers.
	SourceIPs int
	// Concurrency is how many handshakes run at once (default 32).
	Concurrency int
	// RecordLatency keeps receive-minus-send of every progress frame that
	// carries sentNs.
	RecordLatency bool
}

// Watcher is one raw WebSocket client of a job.
type Watcher struct {
	JobID string
	conn  *websocket.Conn

	frames  atomic.Int64 // job_progress frames received
	waitFor atomic.Int64 // frame count a waiter wants, 0 if none
	wake    chan struct{}
	done    chan struct{} // closed when the reader ends
	err     error         // why the reader ended; read after done

	record    bool
	latencies []int64 // ns; written by the reader before frames.Add
}

// Frames returns how many job_progress frames w received.
func (w *Watcher) Frames() int64 { return w.frames.Load() }

// DialAll opens one connection per ticket, reads each one's ready frame, and
// starts its reader. On error it closes what it opened.
func DialAll(ctx context.Context, opt DialOptions, tickets []Ticket) ([]*Watcher, error) {
	conc := opt.Concurrency
	if conc <= 0 {
		conc = 32
	}
	var next atomic.Uint32
	d := &websocket.Dialer{
		HandshakeTimeout: 30 * time.Second,
		ReadBufferSize:   1024,
		WriteBufferSize:  1024,
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			nd := &net.Dialer{}
			if opt.SourceIPs > 1 {
				n := next.Add(1) % uint32(opt.SourceIPs)
				nd.LocalAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+n))}
			}
			return nd.DialContext(ctx, network, addr)
		},
	}
	ws := make([]*Watcher, len(tickets))
	errs := make(chan error, conc)
	sem := make(chan struct{}, conc)
	var wg sync.WaitGroup
	var failed atomic.Bool
	for i, t := range tickets {
		if failed.Load() {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			w, err := dial(ctx, d, opt, t)
			if err != nil {
				if !failed.Swap(true) {
					errs <- fmt.Errorf("connection %d (job %s): %w", i, t.JobID, err)
				}
				return
			}
			ws[i] = w
		}()
	}
	wg.Wait()
	if failed.Load() {
		CloseAll(slices.DeleteFunc(ws, func(w *Watcher) bool { return w == nil }))
		return nil, <-errs
	}
	return ws, nil
}

func dial(ctx context.Context, d *websocket.Dialer, opt DialOptions, t Ticket) (*Watcher, error) {
	h := http.Header{}
	h.Set("Authorization", "Bearer "+t.Token)
	conn, resp, err := d.DialContext(ctx, opt.URL+"?jobId="+url.QueryEscape(t.JobID), h)
	if err != nil {
		if resp != nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			resp.Body.Close()
			return nil, fmt.Errorf("%w: %d %s", err, resp.StatusCode, bytes.TrimSpace(body))
		}
		return nil, err
	}
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	_, data, err := conn.ReadMessage()
	if err == nil && !bytes.HasPrefix(data, prefixReady) {
		err = fmt.Errorf("first frame is not ready: %.200s", data)
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	_ = conn.SetReadDeadline(time.Time{})
	w := &Watcher{JobID: t.JobID, conn: conn, wake: make(chan struct{}, 1), done: make(chan struct{}), record: opt.RecordLatency}
	go w.readLoop()
	return w, nil
}

func (w *Watcher) readLoop() {
	defer close(w.done)
	buf := make([]byte, 0, 512)
	for {
		_, r, err := w.conn.NextReader()
		if err != nil {
			w.err = err
			return
		}
		buf = buf[:0]
		for {
			if len(buf) == cap(buf) {
				buf = append(buf, 0)[:len(buf)]
			}
			n, err := r.Read(buf[len(buf):cap(buf)])
			buf = buf[:len(buf)+n]
			if err == io.EOF {
				break
			}
			if err != nil {
				w.err = err
				return
			}
		}
		switch {
		case bytes.HasPrefix(buf, prefixProgress):
			if w.record {
				if sent, ok := sentNs(buf); ok {
					w.latencies = append(w.latencies, time.Now().UnixNano()-sent)
				}
			}
			n := w.frames.Add(1)
			if t := w.waitFor.Load(); t > 0 && n >= t && w.waitFor.CompareAndSwap(t, 0) {
				select {
				case w.wake <- struct{}{}:
				default:
				}
			}
		case bytes.HasPrefix(buf, prefixPing):
			if err := w.pong(buf); err != nil {
				w.err = err
				return
			}
		}
	}
}

// pong answers a server ping by echoing its serverTime.
func (w *Watcher) pong(frame []byte) error {
	var env struct {
		Payload protocol.Ping `json:"payload"`
	}
	if err := json.Unmarshal(frame, &env); err != nil {
		return fmt.Errorf("decode ping: %w", err)
	}
	out, _ := json.Marshal(&protocol.Envelope{V: protocol.Version, Type: protocol.TypePong,
		Payload: json.RawMessage(`{"serverTime":` + strconv.FormatInt(env.Payload.ServerTime, 10) + `}`)})
	return w.conn.WriteMessage(websocket.TextMessage, out)
}

// sentNs finds the "sentNs" the publisher stamped into the payload.
func sentNs(frame []byte) (int64, bool) {
	i := bytes.Index(frame, sentKey)
	if i < 0 {
		return 0, false
	}
	var v int64
	j := i + len(sentKey)
	for ; j < len(frame) && frame[j] >= '0' && frame[j] <= '9'; j++ {
		v = v*10 + int64(frame[j]-'0')
	}
	return v, j > i+len(sentKey)
}

// ErrWatcherClosed is returned when a watcher's connection ended while
// something waited for its frames.
var ErrWatcherClosed = errors.New("watcher connection closed")

// WaitFrames blocks until w received at least target progress frames.
func (w *Watcher) WaitFrames(ctx context.Context, target int64) error {
	for w.frames.Load() < target {
		w.waitFor.Store(target)
		if w.frames.Load() >= target {
			break
		}
		select {
		case <-w.wake:
		case <-w.done:
			if w.frames.Load() >= target {
				return nil
			}
			return fmt.Errorf("job %s after %d of %d frames: %w: %v", w.JobID, w.frames.Load(), target, ErrWatcherClosed, w.err)
		case <-ctx.Done():
			return fmt.Errorf("job %s has %d of %d frames: %w", w.JobID, w.frames.Load(), target, ctx.Err())
		}
	}
	return nil
}

// WaitAll blocks until every watcher received at least target frames.
func WaitAll(ctx context.Context, ws []*Watcher, target int64) error {
	for _, w := range ws {
		if err := w.WaitFrames(ctx, target); err != nil {
			return err
		}
	}
	return nil
}

// Latencies returns the recorded latencies of every watcher. Call it only
// after WaitFrames saw every frame that carried a timestamp.
func Latencies(ws []*Watcher) []int64 {
	var all []int64
	for _, w := range ws {
		all = append(all, w.latencies...)
	}
	return all
}

// Percentile returns the p-th percentile (0 < p <= 100) of sorted samples.
func Percentile(sorted []int64, p float64) int64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p/100+0.5) - 1
	i = max(0, min(i, len(sorted)-1))
	return sorted[i]
}

// CloseAll closes every watcher with 1000 and waits for their readers.
func CloseAll(ws []*Watcher) {
	msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
	for _, w := range ws {
		_ = w.conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
	}
	timeout := time.NewTimer(5 * time.Second)
	defer timeout.Stop()
	for _, w := range ws {
		select {
		case <-w.done:
		case <-timeout.C:
			// The server did not answer the close in time: cut the rest.
			for _, w := range ws {
				w.conn.Close()
			}
			<-w.done
		}
		w.conn.Close()
	}
}

// Err returns why w's reader ended, or nil while it runs.
func (w *Watcher) Err() error {
	select {
	case <-w.done:
		if w.err == nil {
			return ErrWatcherClosed
		}
		return w.err
	default:
		return nil
	}
}
