//go:build linux

package hub

import (
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

// writeCloseReply answers the client's close frame (RFC 6455 5.5.1) on a
// connection that is closed right after it. The frame is sent with
// MSG_MORE: the kernel holds it and close(2) sends it in the FIN's segment.
// Each segment on loopback wakes the client at the server's expense, and
// answering the close was an eighth of the server's CPU under churn.
// Unless the client sends more after its close frame, which RFC 6455 does
// not allow (close(2) then resets the connection), the bytes on the wire
// are the same.
func (c *conn) writeCloseReply(data []byte) {
	if c.closeSent.Swap(true) {
		return
	}
	rc := c.raw // the poller's, when it reads the connection
	if rc == nil {
		sc, ok := c.nc.(syscall.Conn)
		if !ok {
			c.writeFrame(websocket.CloseMessage, data)
			return
		}
		var err error
		if rc, err = sc.SyscallConn(); err != nil {
			c.writeFrame(websocket.CloseMessage, data)
			return
		}
	}
	b := appendFrame(make([]byte, 0, 2+len(data)), websocket.CloseMessage, data)
	_ = c.nc.SetWriteDeadline(time.Now().Add(controlWriteWait))
	// Errors are left to the reader, as for other control frames.
	_ = rc.Write(func(fd uintptr) bool {
		for len(b) > 0 {
			n, err := syscall.SendmsgN(int(fd), b, nil, nil, syscall.MSG_MORE)
			switch err {
			case nil:
				b = b[n:]
			case syscall.EINTR:
			case syscall.EAGAIN:
				return false // wait until writable, or the deadline
			default:
				return true
			}
		}
		return true
	})
}
