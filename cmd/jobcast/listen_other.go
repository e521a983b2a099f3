//go:build !linux

package main

import "net"

// listen listens for TCP on addr; accepted connections get Go's default
// keep-alive.
func listen(addr string) (net.Listener, error) {
	return net.Listen("tcp", addr)
}
