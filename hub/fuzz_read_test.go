package hub

import (
	"bytes"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/jobcast/jobcast"
)

// discardConn is a socket that takes every write (the close and pong frames
// the reader answers with) and nothing else.
type discardConn struct {
	net.Conn
	written bytes.Buffer
}

func (d *discardConn) Write(b []byte) (int, error)      { return d.written.Write(b) }
func (d *discardConn) SetWriteDeadline(time.Time) error { return nil }

// readAll runs the frame reader over data as it arrives in pieces of at
// most step bytes, as a reader does, and returns the messages, what the
// reader wrote back, and the error that ended it or the bytes left.
func readAll(data []byte, step int) string {
	c := &conn{h: &Hub{cfg: jobcast.Config{MaxFrameBytes: 64}}, nc: &discardConn{}}
	var out bytes.Buffer
	var buf []byte
	for len(data) > 0 {
		n := min(step, len(data))
		buf, data = append(buf, data[:n]...), data[n:]
		rest, err := c.readFrames(buf, func(m []byte) { fmt.Fprintf(&out, "message %q\n", m) })
		if err != nil {
			fmt.Fprintf(&out, "error %v\nwrote %q", err, c.nc.(*discardConn).written.Bytes())
			return out.String()
		}
		buf = append([]byte(nil), rest...)
	}
	fmt.Fprintf(&out, "wrote %q\nleft %d", c.nc.(*discardConn).written.Bytes(), len(buf))
	return out.String()
}

// FuzzReadFrames checks the frame reader on any bytes a client can send: it
// must not panic, and what it does (messages, frames written back, the
// error) must not depend on how the bytes were split between reads, which
// is up to the network.
func FuzzReadFrames(f *testing.F) {
	mask := func(b0 byte, p string) []byte {
		b := []byte{b0, 0x80 | byte(len(p)), 1, 2, 3, 4}
		for i := range len(p) {
			b = append(b, p[i]^byte(i%4+1))
		}
		return b
	}
	f.Add(mask(0x81, `{"v":2,"type":"pong"}`), 1)
	f.Add(append(mask(0x01, "ab"), append(mask(0x89, "p"), mask(0x80, "cd")...)...), 3)
	f.Add(mask(0x88, "\x03\xe8bye"), 2)
	f.Add([]byte{0x81, 0xfe, 0x00, 0x41, 1, 2, 3, 4}, 1)
	f.Add([]byte{0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4}, 5)
	f.Add([]byte{0x81, 0x01, 'x'}, 1)
	f.Fuzz(func(t *testing.T, data []byte, step int) {
		if step < 1 || step > len(data) {
			step = 1
		}
		whole, split := readAll(data, len(data)+1), readAll(data, step)
		if whole != split {
			t.Fatalf("read whole:\n%s\nread %d bytes at a time:\n%s", whole, step, split)
		}
	})
}
