//go:build !linux

package hub

// writeCloseReply answers the client's close frame on a connection that is
// closed right after it.
func (c *conn) writeCloseReply(data []byte) { c.writeClose(data) }
