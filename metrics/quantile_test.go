package metrics_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/duckdb"
	"github.com/jobcast/jobcast/metrics"
)

// TestWeightedQuantilesRandom checks the RTT percentiles against a direct
// computation in Go on 5,000 random heartbeats built to stress the binned
// SQL: sub-millisecond values, values on and around the edges of its bins,
// many distinct values inside one millisecond, repeated values, and weights
// 1, 3 and 10, over three network types and two hour buckets.
func TestWeightedQuantilesRandom(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, err := duckdb.Open(ctx, filepath.Join(t.TempDir(), "events.duckdb"), duckdb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })

	r := rand.New(rand.NewPCG(7, 11))
	nets := []string{"wifi", "cellular", ""}
	type sample struct {
		v float64
		w int64
	}
	groups := map[string][]sample{} // "net|hour", "net|*", "*|hour", "*|*"
	var events []jobcast.Event
	for i := range 5000 {
		var v float64
		switch r.IntN(6) {
		case 0:
			v = float64(r.IntN(1000)) / 1000 // sub-millisecond
		case 1:
			// On and next to an edge between two of the SQL's bins,
			// ((b+0.5)/16)² (a rounding cast of 16·sqrt(v)).
			edge := math.Pow((float64(r.IntN(300))+0.5)/16, 2)
			v = []float64{edge, math.Nextafter(edge, 0), math.Nextafter(edge, math.Inf(1))}[r.IntN(3)]
		case 2:
			v = 100 + float64(r.IntN(1000))/1000 // many values inside one ms
		case 3:
			v = []float64{42, 42, 55.5, 300}[r.IntN(4)] // repeats
		case 4:
			v = float64(r.IntN(5_000_000)) / 1000 // anywhere up to 5 s
		default:
			v = float64(20+r.IntN(200)) + float64(r.IntN(1000))/1000
		}
		wt := []int64{1, 1, 3, 10}[r.IntN(4)]
		net := nets[r.IntN(len(nets))]
		hour := r.IntN(2)
		ts := t0.Add(time.Duration(hour)*time.Hour + time.Duration(r.IntN(3600_000))*time.Millisecond)
		events = append(events, jobcast.Event{TS: ts, Event: jobcast.EventHeartbeat, JobID: fmt.Sprintf("j%d", i%300),
			NetworkType: net, RTTMs: v, SampleInterval: wt})
		s := sample{v, wt}
		for _, k := range []string{net + "|" + fmt.Sprint(hour), net + "|*", "*|" + fmt.Sprint(hour), "*|*"} {
			groups[k] = append(groups[k], s)
		}
	}
	if err := store.Write(ctx, events); err != nil {
		t.Fatal(err)
	}
	quantile := func(ss []sample, bp int64) (float64, float64) {
		ss = slices.Clone(ss)
		slices.SortFunc(ss, func(a, b sample) int {
			switch {
			case a.v < b.v:
				return -1
			case a.v > b.v:
				return 1
			}
			return 0
		})
		var total, cum int64
		for _, s := range ss {
			total += s.w
		}
		for _, s := range ss {
			cum += s.w
			if cum*10000 >= bp*total {
				return s.v, float64(total)
			}
		}
		panic("unreachable")
	}
	lib := metrics.New(store)
	for _, m := range []struct {
		name string
		bp   int64
	}{{metrics.RTTP50Ms, 5000}, {metrics.RTTP95Ms, 9500}, {metrics.RTTP99Ms, 9900}} {
		for _, shape := range []struct {
			name    string
			groupBy []string
			bucket  time.Duration
		}{{"all", nil, 0}, {"by_network", []string{"network_type"}, 0}, {"hours", nil, time.Hour}, {"by_network_hours", []string{"network_type"}, time.Hour}} {
			t.Run(m.name+"/"+shape.name, func(t *testing.T) {
				t.Parallel()
				res, err := lib.Compute(ctx, metrics.Query{Metric: m.name, From: t0, To: t0.Add(2 * time.Hour),
					GroupBy: shape.groupBy, Bucket: shape.bucket})
				if err != nil {
					t.Fatal(err)
				}
				want := 1
				if shape.groupBy != nil {
					want *= len(nets)
				}
				if shape.bucket > 0 {
					want *= 2
				}
				if len(res.Points) != want {
					t.Fatalf("%d points, want %d", len(res.Points), want)
				}
				for _, p := range res.Points {
					key := "*|"
					if shape.groupBy != nil {
						key = p.Group["network_type"] + "|"
					}
					if shape.bucket > 0 {
						key += fmt.Sprint(int(p.Time.Sub(t0) / time.Hour))
					} else {
						key += "*"
					}
					v, wt := quantile(groups[key], m.bp)
					if p.Value != v || p.Weight != wt {
						t.Errorf("%s: %v (weight %v), want %v (weight %v)", key, p.Value, p.Weight, v, wt)
					}
				}
			})
		}
	}
}
