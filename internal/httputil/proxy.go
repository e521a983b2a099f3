package httputil

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// ProxyTrust says which peers are reverse proxies whose X-Forwarded-For and
// X-Forwarded-Proto headers are believed. Without it every client behind a
// proxy would share the proxy's address, and so its per-IP limits; with it
// trusting everyone, any client could pick its own address.
type ProxyTrust struct {
	nets []netip.Prefix
}

// ParseProxyTrust parses addresses and CIDR prefixes ("10.0.0.0/8",
// "127.0.0.1", "::1").
func ParseProxyTrust(entries []string) (*ProxyTrust, error) {
	p := &ProxyTrust{}
	for _, e := range entries {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		if strings.Contains(e, "/") {
			pfx, err := netip.ParsePrefix(e)
			if err != nil {
				return nil, fmt.Errorf("trusted proxy %q is not an address or CIDR prefix", e)
			}
			p.nets = append(p.nets, pfx.Masked())
			continue
		}
		a, err := netip.ParseAddr(e)
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q is not an address or CIDR prefix", e)
		}
		p.nets = append(p.nets, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return p, nil
}

func (p *ProxyTrust) trusted(s string) bool {
	if p == nil || len(p.nets) == 0 {
		return false
	}
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil {
		return false
	}
	a = a.Unmap()
	for _, n := range p.nets {
		if n.Contains(a) {
			return true
		}
	}
	return false
}

func peer(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// ClientIP returns the client's address: the peer's, or, when the peer is a
// trusted proxy, the nearest untrusted hop of X-Forwarded-For.
func (p *ProxyTrust) ClientIP(r *http.Request) string {
	ip := peer(r)
	if !p.trusted(ip) {
		return ip
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop := strings.TrimSpace(hops[i])
		if hop == "" {
			continue
		}
		if _, err := netip.ParseAddr(hop); err != nil {
			return ip // a malformed chain: trust nothing in it
		}
		if !p.trusted(hop) {
			return hop
		}
		ip = hop
	}
	return ip
}

// Scheme is "https" when the request came over TLS, or through a trusted
// proxy that says so in X-Forwarded-Proto; otherwise "http".
func (p *ProxyTrust) Scheme(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	if p.trusted(peer(r)) && strings.EqualFold(strings.TrimSpace(r.Header.Get("X-Forwarded-Proto")), "https") {
		return "https"
	}
	return "http"
}
