package httpapi

import (
	"net/http/pprof"
)

// routePprof serves the Go profiler under /debug/pprof/ behind the admin
// token: CPU and heap profiles of a node under load are how the benchmarks
// find what bounds it (docs/benchmarks.md), and a profile reveals nothing a
// holder of the admin token cannot already see.
func (a *API) routePprof() {
	a.mux.HandleFunc("GET /debug/pprof/", a.admin(pprof.Index))
	a.mux.HandleFunc("GET /debug/pprof/cmdline", a.admin(pprof.Cmdline))
	a.mux.HandleFunc("GET /debug/pprof/profile", a.admin(pprof.Profile))
	a.mux.HandleFunc("GET /debug/pprof/symbol", a.admin(pprof.Symbol))
	a.mux.HandleFunc("GET /debug/pprof/trace", a.admin(pprof.Trace))
}
