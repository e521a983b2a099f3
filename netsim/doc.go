// Package netsim is a loopback TCP proxy that behaves like a mobile
// network: it delays what passes through it (latency plus jitter), cuts a
// share of its connections at a random moment (a phone losing signal), and
// kills connections that stay silent longer than an idle timeout (how
// carrier-grade NATs forget a mapping).
//
// The load generator puts it between its clients and the server; the
// experiments use it to see how heartbeat and throttle settings behave on a
// bad network. It forwards bytes, so it works for any TCP protocol, and it
// only listens on loopback addresses.
package netsim
