package hub

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
)

// Reading client frames. gorilla's Conn reads through a bufio.Reader of its
// own, and nothing tells whether it holds the next frame already: a
// connection woken by the poller could not be read with it and then left
// waiting for the socket. So the hub parses client frames itself (RFC 6455
// 5.2, as gorilla's ReadMessage does, error for error: the hub's tests are
// its specification) from bytes it reads, and keeps between reads only an
// incomplete frame, which an idle connection does not have.

// Opcodes (RFC 6455 5.2).
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xa
)

// controlWriteWait bounds writing a control frame, as gorilla's writeWait.
const controlWriteWait = time.Second

// fragments is an unfinished message sent in several frames.
type fragments struct {
	data []byte
}

// readFrames acts on each complete frame at the start of b, handing each
// complete message to onMessage (c.onMessage but in tests), and returns the
// rest: an incomplete frame, to be read again with what follows it. An
// error ends the connection, as gorilla's ReadMessage error did.
func (c *conn) readFrames(b []byte, onMessage func([]byte)) ([]byte, error) {
	for len(b) >= 2 {
		n, err := c.readFrame(b, onMessage)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			break
		}
		b = b[n:]
	}
	return b, nil
}

// readFrame acts on the frame at the start of b (at least two bytes) and
// returns its length, or 0 while b does not hold all of it. The checks and
// their order are gorilla's advanceFrame's: header errors as soon as the
// first two bytes are in, the read limit as soon as the length and mask
// are, so a client cannot make the server wait for a frame it will refuse.
func (c *conn) readFrame(b []byte, onMessage func([]byte)) (int, error) {
	op := int(b[0] & 0x0f)
	final := b[0]&0x80 != 0
	masked := b[1]&0x80 != 0
	n := int64(b[1] & 0x7f)
	inMessage := c.frag != nil

	var bad []string
	if b[0]&0x40 != 0 {
		bad = append(bad, "RSV1 set")
	}
	if b[0]&0x20 != 0 {
		bad = append(bad, "RSV2 set")
	}
	if b[0]&0x10 != 0 {
		bad = append(bad, "RSV3 set")
	}
	switch op {
	case opClose, opPing, opPong:
		if n > 125 {
			bad = append(bad, "len > 125 for control")
		}
		if !final {
			bad = append(bad, "FIN not set on control")
		}
	case opText, opBinary:
		if inMessage {
			bad = append(bad, "data before FIN")
		}
	case opContinuation:
		if !inMessage {
			bad = append(bad, "continuation after FIN")
		}
	default:
		bad = append(bad, "bad opcode "+strconv.Itoa(op))
	}
	if !masked {
		bad = append(bad, "bad MASK")
	}
	if len(bad) > 0 {
		return 0, c.protocolError(strings.Join(bad, ", "))
	}

	hdr := 2
	switch n {
	case 126:
		if len(b) < 4 {
			return 0, nil
		}
		n, hdr = int64(binary.BigEndian.Uint16(b[2:])), 4
	case 127:
		if len(b) < 10 {
			return 0, nil
		}
		n, hdr = int64(binary.BigEndian.Uint64(b[2:])), 10
		if n < 0 {
			return 0, websocket.ErrReadLimit
		}
	}
	if len(b) < hdr+4 {
		return 0, nil
	}
	key := [4]byte(b[hdr : hdr+4])
	hdr += 4

	data := op == opText || op == opBinary || op == opContinuation
	if data {
		total := n
		if inMessage {
			total += int64(len(c.frag.data))
		}
		if total < 0 {
			return 0, websocket.ErrReadLimit
		}
		if limit := c.h.cfg.MaxFrameBytes; limit > 0 && total > limit {
			// A connection being closed was read without a limit;
			// it is dropped instead of buffering the frame.
			if !c.discard {
				c.writeClose(websocket.FormatCloseMessage(websocket.CloseMessageTooBig, ""))
			}
			return 0, websocket.ErrReadLimit
		}
	}
	if int64(len(b)-hdr) < n {
		return 0, nil
	}
	end := hdr + int(n)
	payload := b[hdr:end]
	for i := range payload {
		payload[i] ^= key[i&3]
	}

	switch op {
	case opPing:
		c.writeControl(websocket.PongMessage, payload)
	case opPong:
		// Unsolicited WebSocket pongs are ignored; heartbeats are
		// protocol frames.
	case opClose:
		code, text := websocket.CloseNoStatusReceived, ""
		if len(payload) >= 2 {
			code = int(binary.BigEndian.Uint16(payload))
			if !validReceivedCloseCode(code) {
				return 0, c.protocolError("bad close code " + strconv.Itoa(code))
			}
			text = string(payload[2:])
			if !utf8.ValidString(text) {
				return 0, c.protocolError("invalid utf8 payload in close frame")
			}
		}
		// Answer with the same code, unless our own close went first.
		c.writeCloseReply(websocket.FormatCloseMessage(code, ""))
		return 0, &websocket.CloseError{Code: code, Text: text}
	default:
		switch {
		case final && !inMessage:
			onMessage(payload)
		case !final && !inMessage:
			c.frag = &fragments{data: slices.Clone(payload)}
		default:
			c.frag.data = append(c.frag.data, payload...)
			if final {
				msg := c.frag.data
				c.frag = nil
				onMessage(msg)
			}
		}
	}
	return end, nil
}

// onMessage handles a complete client message; data is only valid during
// the call.
func (c *conn) onMessage(data []byte) {
	if c.discard {
		return
	}
	c.onFrame(data)
}

// validReceivedCloseCode is gorilla's check of a peer's close code: the
// registered codes a peer may send, and the 3000-4999 application range.
func validReceivedCloseCode(code int) bool {
	switch code {
	case websocket.CloseNormalClosure, websocket.CloseGoingAway, websocket.CloseProtocolError,
		websocket.CloseUnsupportedData, websocket.CloseInvalidFramePayloadData,
		websocket.ClosePolicyViolation, websocket.CloseMessageTooBig, websocket.CloseMandatoryExtension,
		websocket.CloseInternalServerErr, websocket.CloseServiceRestart, websocket.CloseTryAgainLater:
		return true
	}
	return code >= 3000 && code <= 4999
}

// protocolError closes with 1002 and the reason, as gorilla does, and
// returns the error that ends reading.
func (c *conn) protocolError(msg string) error {
	data := websocket.FormatCloseMessage(websocket.CloseProtocolError, msg)
	if len(data) > 125 {
		data = data[:125]
	}
	c.writeClose(data)
	return errors.New("websocket: " + msg)
}

// writeClose writes a close frame with payload data, unless one was
// written already.
func (c *conn) writeClose(data []byte) {
	if c.closeSent.Swap(true) {
		return
	}
	c.writeFrame(websocket.CloseMessage, data)
}

// writeControl writes a control frame other than close; after the close
// frame nothing more is written.
func (c *conn) writeControl(op int, data []byte) {
	if c.closeSent.Load() {
		return
	}
	c.writeFrame(op, data)
}

// writeFrame writes one unmasked final frame (RFC 6455 5.2) in one Write,
// which net.Conn keeps whole against the writer's batches; while the
// writer finishes a frame that writeNowLocked began, it queues it after
// that one instead. Errors are left to the reader and the writer, as
// gorilla's control writes did.
func (c *conn) writeFrame(op int, data []byte) {
	b := make([]byte, 0, 2+len(data))
	b = append(b, 0x80|byte(op), byte(len(data)))
	b = append(b, data...)
	_ = c.nc.SetWriteDeadline(time.Now().Add(controlWriteWait))
	c.mu.Lock()
	raw := c.raw
	c.mu.Unlock()
	if raw == nil {
		_, _ = c.nc.Write(b) // no frame is written in part without the poller's socket
		return
	}
	if c.rawWriteControl(raw, b) {
		return
	}
	c.mu.Lock()
	c.pushLocked(outFrame{data: b, framed: true})
	c.mu.Unlock()
}

// startGrace ends the connection closeGrace after our close frame if the
// client has not answered it with its own by then.
func (c *conn) startGrace() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	// The other timers were stopped when the close was queued. Real
	// time, as the socket deadline it replaces.
	c.timer = time.AfterFunc(closeGrace, c.abort)
}

// Reader states: who ends a connection whose socket is closed.
const (
	readBusy int32 = iota // a reader has it (or will): the reader ends it when its read fails
	readIdle              // waiting in the poller: abort ends it
	readDone              // ended
)

// abort closes the socket of a connection that is still open. A reader
// then fails and ends the connection; a connection waiting in the poller
// has no reader, so abort ends it itself. The socket is closed first: a
// reader that re-arms after this fails to, and ends the connection.
func (c *conn) abort() {
	c.nc.Close()
	if c.rs.CompareAndSwap(readIdle, readDone) {
		c.endRead(net.ErrClosed)
	}
}

// endRead ends a connection whose reading is over, with err as the reason
// if none was set.
func (c *conn) endRead(err error) {
	c.unpoll()
	c.noteReadError(err)
	c.finish()
}

// finish tears the connection down and forgets it, once.
func (c *conn) finish() {
	if c.finished.Swap(true) {
		return
	}
	c.h.untrack(c)
	c.h.ipConns.Release(c.ip)
}

// readBlocking reads the connection in a goroutine of its own until it
// ends: where there is no poller, or for a connection it cannot take.
func (c *conn) readBlocking() {
	buf := make([]byte, 0, 512)
	for {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, cap(buf)) // a frame larger than the buffer
		}
		n, err := c.nc.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if n > 0 {
			rest, ferr := c.readFrames(buf, c.onMessage)
			switch {
			case ferr != nil:
				err = ferr
			case len(rest) == 0 && cap(buf) > 4096:
				buf = make([]byte, 0, 512) // a large frame's buffer is not kept
			case len(rest) < len(buf):
				// Only when a frame was consumed: moving an
				// incomplete frame at every read would be quadratic.
				buf = buf[:copy(buf, rest)]
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) && len(buf) > 0 {
				err = io.ErrUnexpectedEOF
			}
			c.rs.Store(readDone)
			c.endRead(err)
			return
		}
	}
}
