package httpapi

import (
	"net/http"
	"runtime"

	"github.com/jobcast/jobcast/internal/httputil"
)

// RuntimeStats is the body of GET /v1/debug/runtime: the Go runtime's view of
// this process, so that benchmarks and operators can see the heap and
// goroutine cost of connections without attaching a profiler.
type RuntimeStats struct {
	HeapInuseBytes uint64 `json:"heapInuseBytes"`
	HeapAllocBytes uint64 `json:"heapAllocBytes"`
	// Mallocs counts heap objects allocated since the process started; the
	// difference over a run divided by the frames sent is allocs per frame.
	Mallocs uint64 `json:"mallocs"`
	// StackInuseBytes is goroutine stacks, which the heap figures omit: an
	// idle connection's reader goroutine lives there.
	StackInuseBytes uint64 `json:"stackInuseBytes"`
	// SysBytes is all memory the runtime obtained from the OS.
	SysBytes   uint64 `json:"sysBytes"`
	Goroutines int    `json:"goroutines"`
	NumGC      uint32 `json:"numGC"`
}

// runtimeStats answers RuntimeStats, after a full GC when ?gc=1 so that the
// heap figures count live objects only.
func (a *API) runtimeStats(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("gc") == "1" {
		runtime.GC()
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	httputil.WriteJSON(w, http.StatusOK, RuntimeStats{
		HeapInuseBytes:  ms.HeapInuse,
		HeapAllocBytes:  ms.HeapAlloc,
		Mallocs:         ms.Mallocs,
		StackInuseBytes: ms.StackInuse,
		SysBytes:        ms.Sys,
		Goroutines:      runtime.NumGoroutine(),
		NumGC:           ms.NumGC,
	})
}
