package hub_test

import (
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/hub"
	"github.com/jobcast/jobcast/protocol"
)

// maskedFrame is a client frame (RFC 6455 5.2): first byte b0 (FIN, RSV,
// opcode), masked payload.
func maskedFrame(b0 byte, payload []byte) []byte {
	key := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	b := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n <= 0xffff:
		b = append(b, 0x80|126, byte(n>>8), byte(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	b = append(b, key[:]...)
	for i, x := range payload {
		b = append(b, x^key[i&3])
	}
	return b
}

const pingFrame = `{"v":2,"type":"ping","payload":{"clientTime":7}}`

// pongFrame is an unsolicited pong in the SDKs' form: read and ignored.
const pongFrame = `{"v":2,"type":"pong","ts":1,"payload":{"serverTime":5}}`

// TestReadFrames speaks raw frames to both readers (the poller, and a
// goroutine per connection as where there is no poller): frames split
// across writes and several in one write, fragments, control frames and
// the errors gorilla's reader answered, with the same close codes.
func TestReadFrames(t *testing.T) {
	t.Parallel()
	text := func(s string) []byte { return maskedFrame(0x81, []byte(s)) }
	cat := func(bs ...[]byte) []byte {
		var out []byte
		for _, b := range bs {
			out = append(out, b...)
		}
		return out
	}
	tests := []struct {
		name     string
		write    []byte
		byByte   bool // one write per byte
		chunk    int  // one write per chunk bytes
		pongs    int  // protocol pongs expected
		wsPong   bool // a WebSocket pong expected
		close    int  // the server's close code, 0 for none
		shutdown bool // answered with 1000 after the client's close
	}{
		{name: "one frame a byte at a time", write: text(pingFrame), byByte: true, pongs: 1},
		{name: "the largest frame in pieces", write: text(`{"v":2,"type":"ping","payload":{"pad":"` +
			strings.Repeat("x", protocol.MaxFrameBytes-42) + `"}}`), chunk: 1000, pongs: 1},
		{name: "two frames in one write", write: cat(text(pingFrame), text(pingFrame)), pongs: 2},
		{name: "fragments around a ping", write: cat(
			maskedFrame(0x01, []byte(pingFrame[:10])),
			maskedFrame(0x89, []byte("hi")),
			maskedFrame(0x00, []byte(pingFrame[10:20])),
			maskedFrame(0x80, []byte(pingFrame[20:]))), pongs: 1, wsPong: true},
		{name: "fragments a byte at a time", write: cat(
			maskedFrame(0x01, []byte(pingFrame[:30])),
			maskedFrame(0x80, []byte(pingFrame[30:]))), byByte: true, pongs: 1},
		{name: "unmasked frame", write: []byte{0x81, 0x01, 'x'}, close: websocket.CloseProtocolError},
		{name: "reserved bits", write: maskedFrame(0xc1, []byte("x")), close: websocket.CloseProtocolError},
		{name: "unknown opcode", write: maskedFrame(0x83, []byte("x")), close: websocket.CloseProtocolError},
		{name: "continuation without a message", write: maskedFrame(0x80, []byte("x")), close: websocket.CloseProtocolError},
		{name: "fragmented control frame", write: maskedFrame(0x09, []byte("x")), close: websocket.CloseProtocolError},
		{name: "bad close code", write: maskedFrame(0x88, []byte{0x03, 0xed}), close: websocket.CloseProtocolError},
		{name: "close reason not UTF-8", write: maskedFrame(0x88, []byte{0x03, 0xe8, 0xff}), close: websocket.CloseProtocolError},
		{name: "announced length over the limit", write: maskedFrame(0x81, make([]byte, protocol.MaxFrameBytes+1))[:14], close: websocket.CloseMessageTooBig},
		{name: "fragments over the limit", write: cat(
			maskedFrame(0x01, make([]byte, protocol.MaxFrameBytes)),
			maskedFrame(0x80, []byte("x"))), close: websocket.CloseMessageTooBig},
		{name: "client close", write: maskedFrame(0x88, []byte{0x03, 0xe8}), close: websocket.CloseNormalClosure},
		// Pongs alone are read by the poller's loop; with anything else
		// the loop hands what it read to a reader.
		{name: "pongs in one write", write: cat(text(pongFrame), text(pongFrame))},
		{name: "a pong and a ping in one write", write: cat(text(pongFrame), text(pingFrame)), pongs: 1},
		{name: "a pong and part of a ping", write: cat(text(pongFrame), text(pingFrame)), chunk: len(pongFrame) + 16, pongs: 1},
		{name: "a pong and a close", write: cat(text(pongFrame), maskedFrame(0x88, []byte{0x03, 0xe8})), close: websocket.CloseNormalClosure},
	}
	for _, goroutines := range []bool{false, true} {
		e := newEnv(t, jobcast.Config{})
		name := "poller"
		if goroutines {
			hub.ReadWithGoroutines(e.srv.Hub)
			name = "goroutines"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					t.Parallel()
					tk := e.createJob(t)
					c, _ := e.open(t, tk)
					wsPongs := make(chan string, 1)
					c.c.SetPongHandler(func(s string) error { wsPongs <- s; return nil })
					nc := c.c.NetConn()
					_ = nc.SetWriteDeadline(time.Now().Add(waitTimeout))
					chunks := [][]byte{tt.write}
					if tt.byByte {
						tt.chunk = 1
					}
					if tt.chunk > 0 {
						chunks = nil
						for b := tt.write; len(b) > 0; {
							n := min(tt.chunk, len(b))
							chunks = append(chunks, b[:n])
							b = b[n:]
						}
					}
					for _, b := range chunks {
						if _, err := nc.Write(b); err != nil {
							t.Fatalf("write: %v", err)
						}
					}
					for range tt.pongs {
						c.expect(protocol.TypePong)
					}
					if tt.close != 0 {
						c.expectClose(tt.close)
						return
					}
					if tt.wsPong {
						select {
						case s := <-wsPongs:
							if s != "hi" {
								t.Errorf("WebSocket pong %q, want hi", s)
							}
						default:
							t.Error("no WebSocket pong before the protocol pong")
						}
					}
					c.expectNothing()
				})
			}
		})
	}
}

// A client that goes away in the middle of a frame, without a close frame,
// is forgotten by either reader.
func TestReadEOFMidFrame(t *testing.T) {
	t.Parallel()
	for _, goroutines := range []bool{false, true} {
		e := newEnv(t, jobcast.Config{})
		if goroutines {
			hub.ReadWithGoroutines(e.srv.Hub)
		}
		tk := e.createJob(t)
		c, _ := e.open(t, tk)
		waitFor(t, "the connection", func() bool { return e.srv.Hub.ConnCount() == 1 })
		nc := c.c.NetConn()
		if _, err := nc.Write(maskedFrame(0x81, []byte(pingFrame))[:5]); err != nil {
			t.Fatal(err)
		}
		nc.Close()
		waitFor(t, "the disconnect", func() bool { return e.srv.Hub.ConnCount() == 0 })
	}
}
