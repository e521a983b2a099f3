package loadgen

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// Log-linear buckets: values below 256 µs exactly, above that 128 buckets
// per power of two (under 0.8 % resolution: 2 ms at 500 ms, where the
// throttled scenario's target allows 10), up to 2^40 µs.
const (
	histSubBits = 7
	histSub     = 1 << histSubBits
	histLinear  = 2 * histSub
	histBins    = histLinear + 40*histSub
)

// Histogram counts latencies in microseconds. Add is safe from many
// goroutines at once; histograms from several processes merge by adding.
type Histogram struct {
	counts [histBins]atomic.Uint64
	n      atomic.Uint64
	max    atomic.Int64
}

func binOf(us int64) int {
	if us < histLinear {
		return int(max(us, 0))
	}
	shift := bits.Len64(uint64(us)) - (histSubBits + 1) // us >> shift is in [histSub, 2·histSub)
	i := histLinear + (shift-1)*histSub + int(us>>shift) - histSub
	return min(i, histBins-1)
}

// binUpper is the largest value that falls into bin i.
func binUpper(i int) int64 {
	if i < histLinear {
		return int64(i)
	}
	shift := (i-histLinear)/histSub + 1
	m := int64((i-histLinear)%histSub + histSub)
	return (m+1)<<shift - 1
}

// Add records one latency.
func (h *Histogram) Add(d time.Duration) {
	us := d.Microseconds()
	h.counts[binOf(us)].Add(1)
	h.n.Add(1)
	for {
		m := h.max.Load()
		if us <= m || h.max.CompareAndSwap(m, us) {
			return
		}
	}
}

// Count is the number of recorded values.
func (h *Histogram) Count() uint64 { return h.n.Load() }

// Quantile returns the value at quantile q (0 < q ≤ 1), as the upper bound
// of its bucket, so it never understates.
func (h *Histogram) Quantile(q float64) time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(q*float64(n) + 0.5)
	rank = max(rank, 1)
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			return time.Duration(min(binUpper(i), h.max.Load())) * time.Microsecond
		}
	}
	return time.Duration(h.max.Load()) * time.Microsecond
}

// Max is the largest recorded value.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max.Load()) * time.Microsecond }

// histWire is a Histogram on the wire between processes: sparse bins.
type histWire struct {
	Bins   map[int]uint64 `json:"bins,omitempty"`
	MaxUs  int64          `json:"maxUs,omitempty"`
	Counts uint64         `json:"count,omitempty"`
}

func (h *Histogram) wire() histWire {
	w := histWire{Bins: map[int]uint64{}, MaxUs: h.max.Load(), Counts: h.n.Load()}
	for i := range h.counts {
		if c := h.counts[i].Load(); c > 0 {
			w.Bins[i] = c
		}
	}
	return w
}

// merge adds w's values to h.
func (h *Histogram) merge(w histWire) {
	for i, c := range w.Bins {
		if i >= 0 && i < histBins {
			h.counts[i].Add(c)
		}
	}
	h.n.Add(w.Counts)
	for {
		m := h.max.Load()
		if w.MaxUs <= m || h.max.CompareAndSwap(m, w.MaxUs) {
			return
		}
	}
}
