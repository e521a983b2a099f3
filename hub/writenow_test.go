//go:build linux

package hub

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/jobcast/jobcast"
)

// TestWriteNowPartial: a frame the socket does not take whole is written
// inline as far as it goes; the writer finishes it, and frames queued or
// written after it arrive after it, all whole.
func TestWriteNowPartial(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	nc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.(*net.TCPConn).SetWriteBuffer(4096)
	raw, err := nc.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	h := &Hub{cfg: jobcast.Config{SendQueueLen: 16, WriteTimeout: 10 * time.Second}, beats: newHeartbeats(jobcast.SystemClock{}, 0)}
	c := &conn{h: h, nc: nc, raw: raw}

	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB: more than the socket takes at once
	c.mu.Lock()
	c.writeNowLocked(big)
	partial := c.writing
	c.enqueueLocked([]byte("after"))
	c.mu.Unlock()
	if !partial {
		t.Error("a 1 MiB frame went out whole in one non-blocking write; the test did not reach the partial path")
	}
	// A control frame the reader writes meanwhile (the answer to a
	// WebSocket ping) waits for the rest of the frame instead of
	// splitting it, and does not wait for the client.
	c.writeControl(websocket.PongMessage, []byte("hi"))

	_ = client.SetReadDeadline(time.Now().Add(10 * time.Second))
	for i, want := range []struct {
		op      byte
		payload []byte
	}{{0x81, big}, {0x81, []byte("after")}, {0x8a, []byte("hi")}} {
		if op, got := readServerFrame(t, client); op != want.op || !bytes.Equal(got, want.payload) {
			t.Fatalf("frame %d: %#x with %d bytes, want %#x with %d (%.20q...)", i, op, len(got), want.op, len(want.payload), got)
		}
	}
	h.wg.Wait() // the writer ends once the queue is empty
	if n := c.msgsSent.Load(); n != 2 {
		t.Errorf("msgsSent = %d, want 2", n)
	}
}

// readServerFrame reads one unmasked server frame: its first byte and
// payload.
func readServerFrame(t *testing.T, r io.Reader) (byte, []byte) {
	t.Helper()
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		t.Fatal(err)
	}
	n := uint64(hdr[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			t.Fatal(err)
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			t.Fatal(err)
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		t.Fatal(err)
	}
	return hdr[0], payload
}
