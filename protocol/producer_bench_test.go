package protocol

import (
	"strconv"
	"testing"
)

// loadgenBatch is the body the throttled load scenario posts: one job's
// progress events of the last second, each stamped with a send time.
func loadgenBatch(n int) []byte {
	b := []byte{'['}
	for i := range n {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"type":"progress","payload":{"processedCount":`...)
		b = strconv.AppendInt(b, int64(1000+i), 10)
		b = append(b, `,"sentNs":`...)
		b = strconv.AppendInt(b, 1764133200123456789+int64(i)*50e6, 10)
		b = append(b, `}}`...)
	}
	return append(b, ']')
}

// BenchmarkParseLoadgenBatch compares the parser producers get with the
// general path alone (what every body went through before the fast path).
func BenchmarkParseLoadgenBatch(b *testing.B) {
	body := loadgenBatch(20)
	for _, p := range []struct {
		name  string
		parse func([]byte) ([]ProducerEvent, error)
	}{
		{"ParseProducerEvents", ParseProducerEvents},
		{"general", parseGeneral},
	} {
		b.Run("batch20/"+p.name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := p.parse(body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
