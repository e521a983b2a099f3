//go:build linux

package main

import (
	"context"
	"net"
	"syscall"
)

// listen listens for TCP on addr with the keep-alive Go gives each accepted
// connection by default (probes after 15 s idle, every 15 s, 9 of them) set
// once on the listening socket instead: Linux copies a listener's socket
// options to the sockets it accepts, and setting them on each was four of
// the five setsockopt(2) calls of every new connection.
func listen(addr string) (net.Listener, error) {
	lc := net.ListenConfig{
		KeepAlive: -1, // inherited from the listener
		Control: func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				for _, o := range []struct{ level, opt, v int }{
					{syscall.SOL_SOCKET, syscall.SO_KEEPALIVE, 1},
					{syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE, 15},
					{syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL, 15},
					{syscall.IPPROTO_TCP, syscall.TCP_KEEPCNT, 9},
				} {
					if serr == nil {
						serr = syscall.SetsockoptInt(int(fd), o.level, o.opt, o.v)
					}
				}
			})
			if err != nil {
				return err
			}
			return serr
		},
	}
	return lc.Listen(context.Background(), "tcp", addr)
}
