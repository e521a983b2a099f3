package hub

// ReadWithGoroutines makes h read new connections in a goroutine each, as
// where there is no poller, so that tests cover both readers.
func ReadWithGoroutines(h *Hub) { h.goroutineReaders.Store(true) }
