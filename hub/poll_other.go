//go:build !linux

package hub

import (
	"errors"
	"syscall"
)

// startReading reads an upgraded connection in a goroutine of its own:
// there is no poller outside Linux.
func (h *Hub) startReading(c *conn) {
	go c.readBlocking()
}

// yieldReader does nothing: readers are not bounded.
func (c *conn) yieldReader() {}

// unpoll does nothing: no connection is polled.
func (c *conn) unpoll() {}

// rawWrite is never called: c.raw is set by the poller only.
func (c *conn) rawWrite([]byte) (int, error) { return 0, errors.ErrUnsupported }

// rawWriteControl is never called: c.raw is set by the poller only.
func (c *conn) rawWriteControl(syscall.RawConn, []byte) bool { return true }
