package client

import "testing"

// Each watcher shuffles its endpoints: first connections spread over all
// nodes, and the clients of one node fail over to all the others rather
// than all to the same next one.
func TestEndpointOrderSpreads(t *testing.T) {
	t.Parallel()
	urls := []string{"ws://a", "ws://b", "ws://c"}
	first := map[string]int{}
	afterA := map[string]int{}
	for range 600 {
		w, err := NewWatcher(Config{URL: urls[0], URLs: urls, Token: "t"})
		if err != nil {
			t.Fatal(err)
		}
		if len(w.endpoints) != 3 {
			t.Fatalf("endpoints = %v, want 3 (URL deduplicated)", w.endpoints)
		}
		first[w.endpoints[0]]++
		if w.endpoints[0] == "ws://a" {
			afterA[w.endpoints[1]]++
		}
	}
	// Expected 200 each and 100 each; bounds far outside chance.
	for _, u := range urls {
		if first[u] < 100 {
			t.Errorf("first endpoint %s chosen %d times in 600", u, first[u])
		}
	}
	for _, u := range urls[1:] {
		if afterA[u] < 40 {
			t.Errorf("after ws://a, %s chosen %d times: %v", u, afterA[u], afterA)
		}
	}
}
