//go:build !linux

package hub

// startReading reads an upgraded connection in a goroutine of its own:
// there is no poller outside Linux.
func (h *Hub) startReading(c *conn) {
	go c.readBlocking()
}

// yieldReader does nothing: readers are not bounded.
func (c *conn) yieldReader() {}

// unpoll does nothing: no connection is polled.
func (c *conn) unpoll() {}
