package hub

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/auth"
	"github.com/jobcast/jobcast/protocol"
)

// closeGrace is how long a connection waits for the peer's close frame after
// sending its own.
const closeGrace = 2 * time.Second

// maxClientFramesPerSec bounds what one client may send; clients send a pong
// per ping and little else.
const maxClientFramesPerSec = 50

// errSlowConsumer stops the writer of a connection dropped as a slow consumer.
var errSlowConsumer = errors.New("slow consumer")

type outFrame struct {
	data   []byte
	close  bool // data is a close-frame payload
	framed bool // data is the rest of a frame that writeNowLocked began (and counted)
}

// conn is one client connection. After the upgrade it is read by the
// poller (a goroutine only while a frame is being handled; see doc.go) or,
// where there is no poller, by a goroutine of its own; a writer goroutine
// runs only while frames are queued. The hub answers the handshake, frames
// what it writes and parses what it reads itself.
type conn struct {
	h           *Hub
	nc          net.Conn
	seq         uint64 // numbers the connection in its ID and in the poller
	ip          string
	connectedAt time.Time
	heartbeat   time.Duration

	// Set before the connection is shared, or only by the reader.
	jobID string
	// iat is the token's issue time in Unix nanoseconds, for revocations;
	// 0 before a token was verified, math.MinInt64 for a token without one.
	iat   int64
	entry *jobEntry
	// slot is the connection's index in entry.conns. Guarded by entry.mu.
	slot int

	msgsSent  atomic.Int64
	bytesSent atomic.Int64
	// dropped is set when the connection is cut off as a slow consumer; the
	// writer then stops writing instead of waiting on the client.
	dropped atomic.Bool
	// closeSent is set by whoever writes the close frame: one is sent, as
	// gorilla's Conn allowed.
	closeSent atomic.Bool
	// midFrame is set while a frame that writeNowLocked wrote in part
	// waits for the writer to finish it: control frames then go through
	// the queue, or they would split it. Set only with the socket's write
	// lock held (rawWrite), so that a control writer, which reads it there,
	// cannot miss it; cleared by the writer once the rest is out.
	midFrame atomic.Bool
	// finished is set when the connection has been torn down and forgotten.
	finished atomic.Bool
	// rs is the reader's state (readIdle, readBusy, readDone): who may end
	// the connection when its socket is closed.
	rs atomic.Int32

	// Reader state, touched only by the reader of the moment.
	raw     syscall.RawConn // set when the poller reads the connection
	frag    *fragments      // an unfinished fragmented message, rarely set
	partial *[]byte         // an incomplete frame kept between reads, rarely set

	// Guarded by mu. Every idle connection holds these, so the small
	// fields are grouped at the end, with no padding between them.
	mu       sync.Mutex
	cc       *ClientContext // shared with every connection saying the same; replaced, never modified
	pipeline string
	liveBuf  []*jobcast.Message
	seenSeq  int64
	queue    []outFrame
	thr      throttle
	thrTimer jobcast.Timer
	// timer is the one other timer a connection needs at a time: the hello
	// deadline, then closeGrace. Pings and pong deadlines are the hub's
	// heartbeat scheduler's (hbDue).
	timer           jobcast.Timer
	handshakeSeq    *int64
	pingOutstanding int64 // serverTime of the unanswered ping, 0 if none
	lastPingST      int64
	hbDue           int64         // the next ping, or the pong deadline while pingOutstanding is set: Unix ns, hub clock; written under c.mu and the scheduler's lock
	pingSentAt      time.Duration // since connectedAt: a time.Time is three times larger
	msgsRecv        int64
	heartbeats      int64
	lastRTT         time.Duration
	rttSum          time.Duration
	rateWindow      time.Duration // since connectedAt
	closeReason     string
	progressSent    int64 // job_progress frames queued
	closeCode       int32
	violations      int32
	rateCount       int32
	hbIndex         int32 // place in the heartbeat scheduler's heap, 1-based; 0 when not scheduled (the scheduler's lock)
	resumed         bool
	replaying       bool
	writing         bool
	closing         bool // a close frame is queued; nothing else will be
	closed          bool // torn down
	awaitingHello   bool
	started         bool // ready was sent: the connection counts as connected
	discard         bool // start closed the connection: read frames are dropped (reader state)
	holdsSlot       bool // the poller's reader of the moment holds a place among maxReaders (reader state)
}

func (h *Hub) newConn(nc net.Conn, jobID, ip string, cc ClientContext, now time.Time) *conn {
	return &conn{
		h:           h,
		nc:          nc,
		seq:         connSeq.Add(1),
		ip:          ip,
		jobID:       jobID,
		connectedAt: now,
		heartbeat:   h.cfg.HeartbeatInterval,
		cc:          internContext(cc),
		replaying:   true,
		thr:         throttle{window: h.cfg.EffectiveThrottle()},
	}
}

func (c *conn) now() time.Time { return c.h.opt.Clock.Now() }

// connSeq numbers connections in the process: the poller, shared by every
// hub of the process, knows them by it.
var connSeq atomic.Uint64

// id is the connection's ID, NODE-SEQ (SEQ in hex). It is built when
// needed: the string would cost an idle connection 32 bytes.
func (c *conn) id() string {
	return c.h.opt.NodeID + "-" + strconv.FormatUint(c.seq, 16)
}

// envelope encodes a connection-level frame (no seq).
func (c *conn) envelope(typ string, payload any) []byte {
	raw, err := json.Marshal(payload)
	if err != nil {
		raw = []byte("{}")
	}
	return c.wrap(typ, c.now().UnixMilli(), raw)
}

// wrap puts an encoded payload in the envelope, byte for byte what
// json.Marshal(&protocol.Envelope{...}) writes (TestEnvelopeMatchesJSON),
// without encoding/json's second pass over the payload (it re-validates
// and compacts a json.RawMessage): the ready frame carries the job state,
// and every new connection sends one.
func (c *conn) wrap(typ string, ts int64, raw []byte) []byte {
	b := make([]byte, 0, 48+len(typ)+len(c.jobID)+len(c.pipeline)+len(raw))
	b = c.appendEnvelopeHead(b, typ, ts)
	b = append(b, raw...)
	return append(b, '}')
}

// appendEnvelopeHead appends the envelope up to its payload.
func (c *conn) appendEnvelopeHead(b []byte, typ string, ts int64) []byte {
	b = append(b, `{"v":`...)
	b = strconv.AppendInt(b, protocol.Version, 10)
	b = appendJSONField(b, "type", typ)
	b = appendJSONField(b, "jobId", c.jobID)
	b = appendJSONField(b, "pipeline", c.pipeline)
	b = append(b, `,"ts":`...)
	b = strconv.AppendInt(b, ts, 10)
	return append(b, `,"payload":`...)
}

// pingFrame is envelope(TypePing, &protocol.Ping{ServerTime: st}) at ts,
// byte for byte, without reflection: every connection sends one per
// heartbeat, and encoding/json made it a tenth of an idle server's CPU.
func (c *conn) pingFrame(st, ts int64) []byte {
	b := make([]byte, 0, 96+len(c.jobID)+len(c.pipeline))
	b = append(b, `{"v":2,"type":"ping"`...)
	b = appendJSONField(b, "jobId", c.jobID)
	b = appendJSONField(b, "pipeline", c.pipeline)
	b = append(b, `,"ts":`...)
	b = strconv.AppendInt(b, ts, 10)
	b = append(b, `,"payload":{`...)
	if st != 0 {
		b = append(b, `"serverTime":`...)
		b = strconv.AppendInt(b, st, 10)
	}
	return append(b, "}}"...)
}

// appendJSONField appends ,"key":"value" as encoding/json writes a string
// field with omitempty: nothing when value is empty.
func appendJSONField(b []byte, key, value string) []byte {
	if value == "" {
		return b
	}
	b = append(b, `,"`...)
	b = append(b, key...)
	b = append(b, `":`...)
	if safeJSONString(value) {
		b = append(b, '"')
		b = append(b, value...)
		return append(b, '"')
	}
	q, _ := json.Marshal(value) // escaping as encoding/json does it
	return append(b, q...)
}

// safeJSONString reports whether encoding/json writes s unchanged between
// quotes: printable ASCII other than the characters it escapes.
func safeJSONString(s string) bool {
	for i := 0; i < len(s); i++ {
		switch ch := s[i]; {
		case ch < 0x20 || ch >= 0x7f, ch == '"', ch == '\\', ch == '<', ch == '>', ch == '&':
			return false
		}
	}
	return true
}

// errorFrame builds a connection-level error frame from the catalog.
func (c *conn) errorFrame(code, reason string) []byte {
	var details json.RawMessage
	if reason != "" {
		details, _ = json.Marshal(map[string]string{"reason": reason})
	}
	p := c.h.opt.Catalog.Payload(code, nil, nil, details)
	if c.started {
		e := c.eventLocked(jobcast.EventError)
		e.ErrorCode, e.Retryable, e.Reason = code, p.Retryable, reason
		c.h.opt.Recorder.Record(e)
	}
	return c.envelope(protocol.TypeError, &p)
}

// eventLocked is a telemetry event about this connection, with its client
// context. Call with c.mu held.
func (c *conn) eventLocked(name string) jobcast.Event {
	return jobcast.Event{
		TS:             c.now(),
		Event:          name,
		Node:           c.h.opt.NodeID,
		JobID:          c.jobID,
		Pipeline:       c.pipeline,
		ConnID:         c.id(),
		AppVersion:     c.cc.AppVersion,
		OSVersion:      c.cc.OSVersion,
		NetworkType:    c.cc.NetworkType,
		DeviceModel:    c.cc.DeviceModel,
		ReconnectCount: int64(c.cc.ReconnectAttempt),
	}
}

// start registers the connection with its job, sends ready and the replay
// after lastSeq (nil: a fresh client, replayed from the beginning), and
// starts heartbeats. It returns false when the connection was closed.
func (c *conn) start(ctx context.Context, lastSeq *int64) bool {
	if err := c.h.join(c); err != nil {
		code := protocol.CloseInternalError
		if jobcast.ErrorCode(err) == protocol.ErrTooManyConns {
			code = protocol.CloseRateLimited
		} else {
			c.h.opt.Log.Error("join job", "job", c.jobID, "err", err)
		}
		c.fail(code, jobcast.ErrorCode(err), jobcast.ErrorMessage(err), failReason(err))
		return false
	}
	job, err := c.h.opt.Store.GetJob(ctx, c.jobID)
	if err != nil {
		c.failLoad(err)
		return false
	}
	return c.startJoined(ctx, lastSeq, job)
}

// failLoad closes a connection whose job could not be read.
func (c *conn) failLoad(err error) {
	if errors.Is(err, jobcast.ErrJobNotFound) {
		c.fail(protocol.CloseJobNotFound, protocol.ErrJobNotFound, "", jobcast.ReasonJobNotFound)
		return
	}
	c.h.opt.Log.Error("load job for client", "job", c.jobID, "err", err)
	c.fail(protocol.CloseInternalError, protocol.ErrInternal, "", jobcast.ReasonInternal)
}

// startJoined is start for a connection that joined its job before job
// was read, so that every message after the snapshot reaches it live.
func (c *conn) startJoined(ctx context.Context, lastSeq *int64, job *jobcast.Job) bool {
	var logged []protocol.Envelope
	var err error
	after := int64(0)
	if lastSeq != nil {
		after = *lastSeq
	}
	{
		// A client cannot have seen more than the job has (a store
		// restored from backup, a client bug): resume from what the
		// server knows, and say so in ready.lastSeq, or the connection
		// would drop every message up to the client's number.
		if after > job.Seq {
			after = job.Seq
		}
		// Nothing is logged past the job's seq: a client that is up to
		// date (a fresh job, a resume with nothing missed) needs no query.
		// What comes after the snapshot arrives live: join came first.
		if after < job.Seq {
			logged, err = c.h.opt.Store.Messages(ctx, c.jobID, after)
		}
	}
	if err != nil {
		c.failLoad(err)
		return false
	}
	replay := jobcast.ReplayAfter(logged, job.LastProgress, after)
	params := c.assignParams(ctx, job.Pipeline)
	now := c.now()

	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return false
	}
	c.pipeline = job.Pipeline
	c.applyParamsLocked(params)
	c.resumed = lastSeq != nil
	c.seenSeq = after
	c.started = true
	ev := jobcast.EventConnected
	if c.resumed || c.cc.ReconnectAttempt > 0 || c.cc.LastDisconnect != "" {
		ev = jobcast.EventReconnected
	}
	e := c.eventLocked(ev)
	e.Reason = c.cc.LastDisconnect
	c.h.opt.Recorder.Record(e)
	c.enqueueLocked(c.readyFrame(&protocol.Ready{
		ConnectionID:        c.id(),
		HeartbeatIntervalMs: c.heartbeat.Milliseconds(),
		PongTimeoutMs:       c.h.cfg.PongTimeout.Milliseconds(),
		ThrottleMs:          c.thr.window.Milliseconds(),
		Resumed:             c.resumed,
		LastSeq:             after,
		ServerTime:          now.UnixMilli(),
		State:               job.JobState,
	}))
	c.exposeLocked(params)
	for i := range replay {
		m, err := jobcast.NewMessage(replay[i])
		if err != nil {
			continue
		}
		if m.Type == protocol.TypeJobProgress {
			c.thr.lastSent = now
			c.progressSent++
		}
		c.seenSeq = m.Seq
		c.enqueueLocked(m.Frame)
	}
	c.replaying = false
	for _, m := range c.liveBuf {
		c.handleLocked(m, now)
	}
	c.liveBuf = nil
	if job.Finished() && !c.closing {
		c.closeLocked(protocol.CloseJobFinished, "job finished")
	}
	if !c.closing {
		c.schedulePingLocked(c.heartbeat)
	}
	return !c.closing
}

// fail sends an error frame (errCode, with detail as its reason) and closes
// with closeCode. A connection that never got ready records connect_failed
// with why.
func (c *conn) fail(closeCode int, errCode, detail, why string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return
	}
	if !c.started {
		c.h.connectFailed(c.eventLocked(""), errCode, why)
	}
	c.enqueueLocked(c.errorFrame(errCode, detail))
	c.closeLocked(closeCode, errCode)
}

// deliver is the broker callback path; it never blocks.
func (c *conn) deliver(m *jobcast.Message) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return
	}
	if m.Type == jobcast.MessageRevoked {
		if c.iat != 0 && c.iat < time.UnixMilli(m.TS).UnixNano() {
			c.enqueueLocked(c.errorFrame(protocol.ErrTokenInvalid, "token revoked"))
			c.closeLocked(protocol.CloseTokenInvalid, "token revoked")
		}
		return
	}
	if c.replaying {
		c.liveBuf = append(c.liveBuf, m)
		if len(c.liveBuf) > c.h.cfg.SendQueueLen {
			c.slowConsumerLocked()
		}
		return
	}
	c.handleLocked(m, c.now())
}

func (c *conn) handleLocked(m *jobcast.Message, now time.Time) {
	if m.Seq <= c.seenSeq || c.closing {
		return // a duplicate, or already replayed
	}
	c.seenSeq = m.Seq
	if m.Type == protocol.TypeJobProgress {
		coalesced := c.thr.throttled
		send, arm, delay := c.thr.offer(m, now)
		if n := c.thr.throttled - coalesced; n > 0 {
			c.h.addThrottled(c.jobID, n)
		}
		if send {
			c.progressSent++
			c.enqueueLocked(m.EncodedFrame())
		}
		if arm {
			c.thrTimer = c.h.opt.Clock.AfterFunc(delay, c.onThrottleTimer)
		}
		return
	}
	if p := c.thr.flush(now); p != nil {
		c.progressSent++
		c.enqueueLocked(p.EncodedFrame())
	}
	c.enqueueLocked(m.EncodedFrame())
	if protocol.IsTerminal(m.Type) {
		c.closeLocked(protocol.CloseJobFinished, "job finished")
	}
}

func (c *conn) onThrottleTimer() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return
	}
	m, again := c.thr.fire(c.now())
	if m != nil {
		c.progressSent++
		c.enqueueLocked(m.EncodedFrame())
	}
	if again > 0 {
		c.thrTimer = c.h.opt.Clock.AfterFunc(again, c.onThrottleTimer)
	}
}

// enqueueLocked queues a text frame and makes sure a writer runs.
func (c *conn) enqueueLocked(data []byte) {
	if c.closing || data == nil {
		return
	}
	if len(c.queue) >= c.h.cfg.SendQueueLen {
		c.slowConsumerLocked()
		return
	}
	c.pushLocked(outFrame{data: data})
}

// writeNowLocked writes a text frame at once, from the calling goroutine
// and without waiting on the socket, when nothing is queued or being
// written; otherwise, and for what the socket does not take at once, it
// queues it as enqueueLocked does. The heartbeat scheduler sends pings so:
// a writer goroutine started for each ping was a good part of an idle
// server's CPU.
func (c *conn) writeNowLocked(data []byte) {
	if c.closing || c.closed || c.writing || len(c.queue) > 0 || c.raw == nil {
		c.enqueueLocked(data)
		return
	}
	bp := writeBufs.Get().(*[]byte)
	buf := appendTextFrame((*bp)[:0], data)
	n, _ := c.rawWrite(buf)
	switch {
	case n == len(buf):
	case n > 0:
		c.pushLocked(outFrame{data: slices.Clone(buf[n:]), framed: true})
	default:
		// Nothing written: the socket is full (the writer waits for
		// it), or broken (the writer's write fails and ends it).
		c.enqueueLocked(data)
	}
	if n > 0 {
		c.msgsSent.Add(1)
		c.bytesSent.Add(int64(len(data)))
		c.h.framesSent.Add(1)
		c.h.bytesSent.Add(int64(len(data)))
	}
	*bp = buf[:0]
	writeBufs.Put(bp)
}

func (c *conn) pushLocked(f outFrame) {
	c.queue = append(c.queue, f)
	// Before the upgrade (nc nil) frames wait; attach starts the writer.
	if !c.writing && !c.closed && c.nc != nil {
		c.writing = true
		c.h.wg.Add(1)
		go c.writeLoop(nil)
	}
}

// closeLocked queues a close frame after what is already queued.
func (c *conn) closeLocked(code int, reason string) {
	if c.closing {
		return
	}
	c.closing = true
	c.closeCode, c.closeReason = int32(code), reason
	c.stopTimersLocked()
	c.pushLocked(outFrame{data: websocket.FormatCloseMessage(code, reason), close: true})
}

func (c *conn) closeWith(code int, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closeLocked(code, reason)
}

// slowConsumerLocked drops the queue of a client that does not keep up and
// closes it; a write blocked on it is cut short.
func (c *conn) slowConsumerLocked() {
	c.queue = nil
	c.liveBuf = nil
	c.closeLocked(protocol.ClosePolicyViolation, "slow consumer")
	// Set dropped before the deadline: a writer that sets its own deadline
	// after this one sees the flag and stops.
	c.dropped.Store(true)
	if c.nc != nil {
		_ = c.nc.SetWriteDeadline(time.Now().Add(time.Second))
	}
}

// attach gives the connection its socket, right after the upgrade, with
// the handshake's own goroutine as its writer until writeFirst: what start
// queues meanwhile (ready, the replay; a revocation that came before the
// upgrade) then goes out with the handshake response in one write(2).
// Writing the 101 and ready apart was two writes, each waking the client.
func (c *conn) attach(nc net.Conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nc = nc
	c.writing = true
}

// writeFirst writes the handshake response and the frames queued since
// attach, and goes on as the connection's writer until the queue is empty.
func (c *conn) writeFirst(resp []byte) {
	c.h.wg.Add(1)
	c.writeLoop(resp)
}

// closeNow writes a close frame directly, before the connection is shared.
func (c *conn) closeNow(code int, reason string) {
	c.writeClose(websocket.FormatCloseMessage(code, reason))
}

func (c *conn) stopTimersLocked() {
	if c.thrTimer != nil {
		c.thrTimer.Stop()
	}
	if c.timer != nil {
		c.timer.Stop()
	}
	c.h.beats.remove(c)
}

// writeLoop writes queued frames until the queue is empty, then ends: an
// idle connection has no writer goroutine. Each round writes everything
// queued since the last one in as few write(2) calls as it can, which is
// where a fan-out spends most of its CPU.
//
// prefix, if any, is written ahead of the first frames (writeFirst).
func (c *conn) writeLoop(prefix []byte) {
	defer c.h.wg.Done()
	var spare []outFrame
	for {
		c.mu.Lock()
		if (len(c.queue) == 0 && prefix == nil) || c.closed {
			c.writing = false
			c.queue = nil
			c.mu.Unlock()
			return
		}
		batch := c.queue
		// The drained batch's array takes the next frames: a busy
		// connection alternates between two arrays instead of growing a
		// new one every round.
		c.queue = spare
		c.mu.Unlock()
		err := c.writeBatch(batch, prefix)
		prefix = nil
		// The first batch after writeNowLocked wrote a frame in part
		// begins with its rest.
		c.midFrame.Store(false)
		if err != nil {
			c.abort()
			c.mu.Lock()
			c.closing = true
			c.writing = false
			c.queue = nil
			c.stopTimersLocked()
			c.mu.Unlock()
			return
		}
		clear(batch) // drop the frames, keep the array
		spare = batch[:0]
	}
}

// maxWriteBytes bounds one write(2) of a batch; pooled buffers larger than
// maxPooledBytes are left to the GC.
const (
	maxWriteBytes  = 64 << 10
	maxPooledBytes = 256 << 10
)

// writeBufs holds batch buffers, so that a connection keeps none while
// idle.
var writeBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// writeBatch writes data frames straight to the socket, several per
// write(2), framed here: gorilla's WriteMessage flushes each message on
// its own. A server's frames are unmasked, so a text frame is a 2 to 10
// byte header and the payload. A close frame goes in the write of the frames
// before it. Control frames the reader answers meanwhile (a close, a pong)
// cannot split a frame: net.Conn serializes whole Write calls.
func (c *conn) writeBatch(batch []outFrame, prefix []byte) error {
	bp := writeBufs.Get().(*[]byte)
	buf := append((*bp)[:0], prefix...)
	defer func() {
		if cap(buf) <= maxPooledBytes {
			*bp = buf[:0]
			writeBufs.Put(bp)
		}
	}()
	var frames, bytes int64
	flush := func() error {
		if len(buf) == 0 {
			return nil
		}
		nc := c.nc
		_ = nc.SetWriteDeadline(time.Now().Add(c.h.cfg.WriteTimeout))
		// After the deadline: slowConsumerLocked sets the flag before its
		// own, shorter deadline, so one of the two stops this write.
		if c.dropped.Load() {
			return errSlowConsumer
		}
		if _, err := nc.Write(buf); err != nil {
			return err
		}
		buf = buf[:0]
		c.msgsSent.Add(frames)
		c.bytesSent.Add(bytes)
		c.h.framesSent.Add(frames)
		c.h.bytesSent.Add(bytes)
		frames, bytes = 0, 0
		return nil
	}
	for _, f := range batch {
		if f.close {
			// Behind other frames the close frame goes in their write;
			// alone, it is written as control frames are.
			if len(buf) > 0 && len(f.data) <= 125 && !c.closeSent.Swap(true) {
				buf = appendFrame(buf, websocket.CloseMessage, f.data)
			}
			if err := flush(); err != nil {
				return err
			}
			c.writeClose(f.data)
			c.startGrace()
			continue
		}
		if f.framed {
			buf = append(buf, f.data...)
		} else {
			buf = appendTextFrame(buf, f.data)
			frames++
			bytes += int64(len(f.data))
		}
		if len(buf) >= maxWriteBytes {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

// appendTextFrame appends an unmasked, final text frame (RFC 6455 5.2).
func appendTextFrame(b, payload []byte) []byte {
	const finText = 0x81
	n := len(payload)
	switch {
	case n < 126:
		b = append(b, finText, byte(n))
	case n <= 0xffff:
		b = append(b, finText, 126, byte(n>>8), byte(n))
	default:
		b = append(b, finText, 127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	return append(b, payload...)
}

// appendFrame appends an unmasked final frame of a payload shorter than 126
// bytes: a control frame (RFC 6455 5.5).
func appendFrame(b []byte, op int, payload []byte) []byte {
	b = append(b, 0x80|byte(op), byte(len(payload)))
	return append(b, payload...)
}

func (c *conn) noteReadError(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closeCode != 0 {
		return
	}
	var ce *websocket.CloseError
	var ne net.Error
	switch {
	case errors.As(err, &ce):
		c.closeCode, c.closeReason = int32(ce.Code), "client closed"
	case errors.Is(err, websocket.ErrReadLimit):
		c.closeCode, c.closeReason = protocol.CloseMessageTooBig, "frame too big"
	case errors.As(err, &ne) && ne.Timeout():
		c.closeCode, c.closeReason = websocket.CloseAbnormalClosure, "read timeout"
	default:
		c.closeCode, c.closeReason = websocket.CloseAbnormalClosure, "connection lost"
	}
}

func (c *conn) onFrame(data []byte) {
	now := c.now()
	c.mu.Lock()
	c.msgsRecv++
	// The first frame opens the first window.
	if at := now.Sub(c.connectedAt); c.msgsRecv == 1 || at-c.rateWindow >= time.Second {
		c.rateWindow, c.rateCount = at, 0
	}
	c.rateCount++
	if c.rateCount > maxClientFramesPerSec {
		c.enqueueLocked(c.errorFrame(protocol.ErrRateLimited, "too many frames from this client"))
		c.closeLocked(protocol.CloseRateLimited, "rate limited")
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()

	if st, ok := parseCanonicalPong(data); ok {
		c.onPong(st, now)
		return
	}
	env, err := protocol.DecodeClientFrame(data)
	if err != nil {
		c.violation(err.(*protocol.ErrFrame).Reason)
		return
	}
	switch env.Type {
	case protocol.TypePing:
		var p protocol.Ping
		_ = json.Unmarshal(env.Payload, &p)
		c.mu.Lock()
		c.enqueueLocked(c.envelope(protocol.TypePong, &protocol.Pong{ServerTime: now.UnixMilli(), ClientTime: p.ClientTime}))
		c.mu.Unlock()
	case protocol.TypePong:
		var p protocol.Pong
		_ = json.Unmarshal(env.Payload, &p)
		c.onPong(p.ServerTime, now)
	case protocol.TypeHello:
		var hello protocol.Hello
		if len(env.Payload) > 0 {
			_ = json.Unmarshal(env.Payload, &hello)
		}
		c.onHello(&hello)
	}
}

// Pong frames in the form the SDKs write them: every connection sends
// one per heartbeat, and decoding them with encoding/json was a sixth of an
// idle server's CPU.
var (
	pongPrefix  = []byte(`{"v":2,"type":"pong","ts":`)
	pongPayload = []byte(`,"payload":{"serverTime":`)
)

// parseCanonicalPong reads {"v":2,"type":"pong","ts":N,"payload":{"serverTime":M}}
// byte for byte and returns M. Any other form, valid or not, returns false
// and takes the general decoder, so the fast path accepts nothing the
// decoder would refuse.
func parseCanonicalPong(data []byte) (int64, bool) {
	rest, ok := bytes.CutPrefix(data, pongPrefix)
	if !ok {
		return 0, false
	}
	if _, rest, ok = cutDigits(rest); !ok {
		return 0, false
	}
	if rest, ok = bytes.CutPrefix(rest, pongPayload); !ok {
		return 0, false
	}
	st, rest, ok := cutDigits(rest)
	if !ok || string(rest) != "}}" {
		return 0, false
	}
	return st, true
}

// cutDigits reads a non-negative decimal integer of at most 18 digits
// without a leading zero (JSON does not allow one), so it cannot overflow.
func cutDigits(b []byte) (int64, []byte, bool) {
	var v int64
	i := 0
	for ; i < len(b) && i < 19 && b[i] >= '0' && b[i] <= '9'; i++ {
		v = v*10 + int64(b[i]-'0')
	}
	if i == 0 || i > 18 || (i > 1 && b[0] == '0') {
		return 0, b, false
	}
	return v, b[i:], true
}

// violation answers a bad frame with E_PROTOCOL and closes with 1008 once the
// client has sent too many.
func (c *conn) violation(reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.violations++
	c.enqueueLocked(c.errorFrame(protocol.ErrProtocol, reason))
	if int(c.violations) >= c.h.cfg.MaxProtocolViolation {
		c.closeLocked(protocol.ClosePolicyViolation, "too many protocol violations")
	}
}

// schedulePingLocked schedules the next ping d from now.
func (c *conn) schedulePingLocked(d time.Duration) {
	c.h.beats.set(c, c.now().Add(d))
}

// onHeartbeat is the scheduler's call for a connection whose action fell
// due at now (Unix nanoseconds): a ping, or, when the last one is still
// unanswered, the close for a late pong.
func (c *conn) onHeartbeat(now int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing || c.hbDue > now {
		return // closed, or rescheduled by a pong since the pass took it
	}
	if c.pingOutstanding != 0 {
		c.closeLocked(protocol.CloseHeartbeatTimeout, "heartbeat timeout")
		return
	}
	c.sendPingLocked()
}

// sendPingLocked sends a ping and schedules its pong deadline.
func (c *conn) sendPingLocked() {
	now := c.now()
	st := now.UnixMilli()
	if st <= c.lastPingST {
		st = c.lastPingST + 1 // keep ping ids unique on a coarse clock
	}
	c.lastPingST, c.pingOutstanding, c.pingSentAt = st, st, now.Sub(c.connectedAt)
	c.writeNowLocked(c.pingFrame(st, now.UnixMilli()))
	c.h.beats.set(c, now.Add(c.h.cfg.PongTimeout))
}

func (c *conn) onPong(serverTime int64, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing || c.pingOutstanding == 0 || serverTime != c.pingOutstanding {
		return // unsolicited or stale pong
	}
	rtt := now.Sub(c.connectedAt) - c.pingSentAt
	c.pingOutstanding = 0
	c.heartbeats++
	if n := int64(c.h.cfg.HeartbeatSampleInterval); n <= 1 || c.heartbeats%n == 1 {
		// Sampled: one heartbeat in n is recorded and stands for n.
		e := c.eventLocked(jobcast.EventHeartbeat)
		e.RTTMs = float64(rtt.Microseconds()) / 1000
		e.SampleInterval = max(n, 1)
		c.h.opt.Recorder.Record(e)
	}
	c.lastRTT = rtt
	c.rttSum += rtt
	next := c.heartbeat - rtt
	if next < 0 {
		next = 0
	}
	c.schedulePingLocked(next)
}

// awaitHello holds a connection that presented no token until a hello frame
// brings one.
func (c *conn) awaitHello(lastSeq *int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.awaitingHello = true
	c.handshakeSeq = lastSeq
	c.timer = c.h.opt.Clock.AfterFunc(c.h.cfg.HelloTimeout, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.awaitingHello && !c.closing {
			c.h.connectFailed(c.eventLocked(""), protocol.ErrTokenInvalid, jobcast.ReasonHelloTimeout)
			c.enqueueLocked(c.errorFrame(protocol.ErrTokenInvalid, "no hello with a token in time"))
			c.closeLocked(protocol.CloseTokenInvalid, "no token")
		}
	})
}

func (c *conn) onHello(hello *protocol.Hello) {
	c.mu.Lock()
	cc := *c.cc
	if hello.AppVersion != "" {
		cc.AppVersion = hello.AppVersion
	}
	if hello.OSVersion != "" {
		cc.OSVersion = hello.OSVersion
	}
	if hello.NetworkType != "" {
		cc.NetworkType = protocol.NormalizeNetworkType(hello.NetworkType)
	}
	if hello.DeviceModel != "" {
		cc.DeviceModel = hello.DeviceModel
	}
	if hello.ReconnectAttempt > 0 {
		cc.ReconnectAttempt = hello.ReconnectAttempt
	}
	if hello.LastDisconnect != "" {
		cc.LastDisconnect = hello.LastDisconnect
	}
	c.cc = internContext(cc)
	waiting := c.awaitingHello && !c.closing
	if waiting {
		c.awaitingHello = false
		if c.timer != nil {
			c.timer.Stop() // the hello deadline
		}
	}
	lastSeq := c.handshakeSeq
	c.mu.Unlock()
	if !waiting {
		return
	}
	c.yieldReader()
	if hello.LastSeq != nil {
		lastSeq = hello.LastSeq
	}
	claims, err := c.h.opt.Tokens.Verify(hello.Token, c.jobID)
	if err != nil {
		code := protocol.CloseTokenInvalid
		if errors.Is(err, auth.ErrTokenExpired) {
			code = protocol.CloseTokenExpired
		}
		c.fail(code, jobcast.ErrorCode(err), jobcast.ErrorMessage(err), failReason(err))
		return
	}
	job, err := c.h.opt.Store.GetJob(context.Background(), claims.JobID)
	switch {
	case errors.Is(err, jobcast.ErrJobNotFound):
		c.fail(protocol.CloseJobNotFound, protocol.ErrJobNotFound, "", jobcast.ReasonJobNotFound)
		return
	case err != nil:
		c.h.opt.Log.Error("load job for hello", "job", claims.JobID, "err", err)
		c.fail(protocol.CloseInternalError, protocol.ErrInternal, "", jobcast.ReasonInternal)
		return
	case auth.Revoked(claims, job):
		c.fail(protocol.CloseTokenInvalid, protocol.ErrTokenInvalid, "token revoked", jobcast.ReasonTokenRevoked)
		return
	}
	c.setClaims(claims)
	c.start(context.Background(), lastSeq)
}

// setClaims keeps what revocations need of the verified token.
func (c *conn) setClaims(claims *auth.Claims) {
	if claims.IssuedAt.IsZero() {
		c.iat = math.MinInt64 // revoked by any revocation
		return
	}
	c.iat = claims.IssuedAt.UnixNano()
}

// teardown releases everything the connection holds. It is idempotent.
func (c *conn) teardown() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed, c.closing = true, true
	c.stopTimersLocked()
	c.queue, c.liveBuf = nil, nil
	e := c.entry
	if c.started {
		ev := c.eventLocked(jobcast.EventDisconnected)
		ev.CloseCode, ev.Reason = int(c.closeCode), c.closeReason
		ev.DurationMs = c.now().Sub(c.connectedAt).Milliseconds()
		ev.MessagesSent, ev.BytesSent = c.msgsSent.Load(), c.bytesSent.Load()
		ev.MessagesReceived = c.msgsRecv
		ev.ProgressSent, ev.ThrottledCount = c.progressSent, c.thr.throttled
		c.h.opt.Recorder.Record(ev)
	}
	c.mu.Unlock()
	if e != nil {
		c.h.leave(c, e)
	}
	c.nc.Close()
}

func (c *conn) info() ConnInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	ci := ConnInfo{
		ConnectionID:     c.id(),
		JobID:            c.jobID,
		Node:             c.h.opt.NodeID,
		ConnectedAt:      c.connectedAt,
		Resumed:          c.resumed,
		Client:           *c.cc,
		LastRTTMs:        float64(c.lastRTT.Microseconds()) / 1000,
		Heartbeats:       c.heartbeats,
		MessagesSent:     c.msgsSent.Load(),
		BytesSent:        c.bytesSent.Load(),
		MessagesReceived: c.msgsRecv,
		ThrottledCount:   c.thr.throttled,
		LastSeq:          c.seenSeq,
	}
	if c.heartbeats > 0 {
		ci.AvgRTTMs = float64((c.rttSum / time.Duration(c.heartbeats)).Microseconds()) / 1000
	}
	return ci
}
