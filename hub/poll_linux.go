//go:build linux

package hub

import (
	"errors"
	"io"
	"os"
	"slices"
	"sync"
	"syscall"
)

// poller waits for the sockets of all idle connections in one epoll set,
// so that an idle connection has no goroutine (see doc.go). A connection's
// socket is armed one-shot: a readable socket is taken out of the set until
// a reader goroutine has read it and re-armed it, so two readers never
// read one connection.
type poller struct {
	epfd int
	// file is the epoll set in Go's own netpoller: the loop waits in the
	// scheduler, not in a blocking epoll_wait, which held the P of a
	// one-core server for up to a sysmon tick at each wait and halved the
	// rate of new connections.
	file  *os.File
	raw   syscall.RawConn
	wake  int           // read end of a pipe in the set: wakes the loop to exit
	wakeW int           // write end
	sem   chan struct{} // bounds the readers running at once

	mu      sync.Mutex
	conns   map[uint64]*conn // by conn.seq
	running bool             // the loop goroutine runs; it exits when conns is empty
}

// maxReaders bounds the goroutines reading woken connections at once, so
// that a burst of wake-ups (every client answering a ping at once) does
// not start thousands of goroutines. A reader that is about to wait on the
// job store (a hello frame) gives its place back first (yieldReader).
const maxReaders = 64

// wakeID is the epoll key of the wake pipe; connections start at 1.
const wakeID = 0

var (
	pollerOnce sync.Once
	thePoller  *poller
	pollerErr  error
)

// sharedPoller returns the process's poller, created on first use.
func sharedPoller() (*poller, error) {
	pollerOnce.Do(func() { thePoller, pollerErr = newPoller() })
	return thePoller, pollerErr
}

func newPoller() (*poller, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	var fds [2]int
	if err := syscall.Pipe2(fds[:], syscall.O_NONBLOCK|syscall.O_CLOEXEC); err != nil {
		syscall.Close(epfd)
		return nil, err
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: wakeID}
	err = syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, fds[0], &ev)
	if err == nil {
		err = syscall.SetNonblock(epfd, true)
	}
	if err != nil {
		syscall.Close(epfd)
		syscall.Close(fds[0])
		syscall.Close(fds[1])
		return nil, err
	}
	// Kept for the life of the process: the file's finalizer would close
	// the set.
	file := os.NewFile(uintptr(epfd), "jobcast-epoll")
	raw, err := file.SyscallConn()
	if err != nil {
		file.Close()
		syscall.Close(fds[0])
		syscall.Close(fds[1])
		return nil, err
	}
	return &poller{
		file:  file,
		raw:   raw,
		epfd:  epfd,
		wake:  fds[0],
		wakeW: fds[1],
		sem:   make(chan struct{}, maxReaders),
		conns: make(map[uint64]*conn),
	}, nil
}

// pollEvents is what a connection is armed for: data, or the peer gone.
const pollEvents = syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT

// startReading hands an upgraded connection to the poller, or to a
// goroutine of its own when the poller cannot take it (a socket without a
// file descriptor, Options.GoroutineReaders).
func (h *Hub) startReading(c *conn) {
	if !h.goroutineReaders.Load() {
		if p, err := sharedPoller(); err == nil && p.add(c) {
			return
		}
	}
	go c.readBlocking()
}

// add registers c and arms its socket; false if it cannot be polled.
func (p *poller) add(c *conn) bool {
	sc, ok := c.nc.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	// Under c.mu: the heartbeat scheduler writes pings through it.
	c.mu.Lock()
	c.raw = raw
	c.mu.Unlock()
	p.mu.Lock()
	p.conns[c.seq] = c
	if !p.running {
		p.running = true
		go p.loop()
	}
	p.mu.Unlock()
	c.rs.Store(readIdle)
	if p.ctl(c, syscall.EPOLL_CTL_ADD) {
		return true
	}
	if !c.rs.CompareAndSwap(readIdle, readBusy) {
		return true // closed meanwhile, and abort ended it
	}
	p.remove(c)
	return false // closed meanwhile: a reader's first read fails
}

// ctl adds or re-arms c's socket; false when the socket is closed.
func (p *poller) ctl(c *conn, op int) bool {
	ev := syscall.EpollEvent{Events: pollEvents, Fd: int32(uint32(c.seq)), Pad: int32(uint32(c.seq >> 32))}
	var cerr error
	// Control holds the descriptor open: it cannot be closed and its
	// number reused by another connection meanwhile.
	err := c.raw.Control(func(fd uintptr) {
		cerr = syscall.EpollCtl(p.epfd, op, int(fd), &ev)
	})
	return err == nil && cerr == nil
}

// remove forgets c; the kernel drops its socket from the set when it is
// closed. The loop exits once no connection is left.
func (p *poller) remove(c *conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns[c.seq] != c {
		return
	}
	delete(p.conns, c.seq)
	if len(p.conns) == 0 && p.running {
		_, _ = syscall.Write(p.wakeW, []byte{0})
	}
}

// unpoll forgets a connection the poller was reading.
func (c *conn) unpoll() {
	if c.raw != nil {
		thePoller.remove(c)
	}
}

// loop waits for readable sockets and starts a reader for each, until no
// connection is left (so that an idle hub, and a test, has no goroutine).
func (p *poller) loop() {
	events := make([]syscall.EpollEvent, 128)
	ready := make([]*conn, 0, len(events))
	for {
		var n int
		// epoll_wait without waiting; with nothing ready the goroutine
		// parks until Go's netpoller sees the set readable.
		err := p.raw.Read(func(fd uintptr) bool {
			var werr error
			for {
				n, werr = syscall.EpollWait(int(fd), events, 0)
				if werr != syscall.EINTR {
					break
				}
			}
			return werr == nil && n > 0
		})
		if err != nil {
			// Not expected (the set is pollable and never closed):
			// wait in the kernel rather than spin.
			n, _ = syscall.EpollWait(p.epfd, events, -1)
			n = max(n, 0)
		}
		p.mu.Lock()
		for _, ev := range events[:n] {
			id := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
			if id == wakeID {
				p.drainWake()
				continue
			}
			if c := p.conns[id]; c != nil && c.rs.CompareAndSwap(readIdle, readBusy) {
				ready = append(ready, c)
			}
		}
		if len(p.conns) == 0 {
			p.drainWake()
			p.running = false
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
		for i, c := range ready {
			p.sem <- struct{}{}
			go p.read(c)
			ready[i] = nil
		}
		ready = ready[:0]
	}
}

// drainWake empties the wake pipe. Call with p.mu held.
func (p *poller) drainWake() {
	var b [64]byte
	for {
		if n, err := syscall.Read(p.wake, b[:]); n <= 0 || err != nil {
			return
		}
	}
}

// readBufs are the buffers readers read into; an idle connection keeps
// none.
var readBufs = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

// read reads what the socket of c holds, acts on the complete frames, keeps
// an incomplete one for the next wake-up and re-arms the socket; or ends
// the connection.
func (p *poller) read(c *conn) {
	c.holdsSlot = true
	// An incomplete frame goes on in its own buffer, which grows by
	// doubling: copying it into a pooled buffer at each wake-up would cost
	// a client trickling a large frame byte by byte quadratic time.
	var bp *[]byte
	var buf []byte
	if c.partial != nil {
		buf, c.partial = *c.partial, nil
	} else {
		bp = readBufs.Get().(*[]byte)
		buf = (*bp)[:0]
	}
	err := func() error {
		for {
			if len(buf) == cap(buf) {
				buf = slices.Grow(buf, cap(buf)) // a frame larger than the buffer
			}
			space := cap(buf) - len(buf)
			n, err := c.rawRead(buf[len(buf):cap(buf)])
			if errors.Is(err, syscall.EAGAIN) {
				return nil
			}
			if err != nil {
				return err
			}
			if n == 0 {
				if len(buf) > 0 {
					return io.ErrUnexpectedEOF
				}
				return io.EOF
			}
			buf = buf[:len(buf)+n]
			rest, err := c.readFrames(buf, c.onMessage)
			if err != nil {
				return err
			}
			if len(rest) < len(buf) {
				buf = buf[:copy(buf, rest)]
			}
			if n < space {
				// The socket is drained, or nearly: if more came
				// meanwhile, re-arming reports it at once.
				return nil
			}
		}
	}()
	if err == nil && len(buf) > 0 {
		if bp != nil {
			buf = slices.Clone(buf) // the pooled buffer goes back
		}
		c.partial = &buf
	}
	if bp != nil {
		readBufs.Put(bp) // as taken: a buffer grown for a large frame is not kept
	}
	c.yieldReader() // before the next reader of c may start
	if err != nil {
		c.rs.Store(readDone)
		c.endRead(err)
		return
	}
	c.rs.Store(readIdle)
	if !p.ctl(c, syscall.EPOLL_CTL_MOD) && c.rs.CompareAndSwap(readIdle, readDone) {
		// Closed meanwhile (abort, teardown): end it unless abort did.
		c.endRead(errors.New("connection closed"))
	}
}

// yieldReader gives back the reader's place among maxReaders before work
// that may wait (a hello frame's token check and store reads): readers
// waiting on the store must not keep other connections' pongs unread.
func (c *conn) yieldReader() {
	if c.holdsSlot {
		c.holdsSlot = false
		<-thePoller.sem
	}
}

// rawRead reads what the socket holds without waiting: EAGAIN when
// nothing.
func (c *conn) rawRead(b []byte) (int, error) {
	var n int
	var err error
	rerr := c.raw.Read(func(fd uintptr) bool {
		for {
			n, err = syscall.Read(int(fd), b)
			if err != syscall.EINTR {
				return true
			}
		}
	})
	if rerr != nil {
		return 0, rerr
	}
	if n < 0 {
		n = 0
	}
	return n, err
}

// rawWrite writes what the socket takes now, without waiting: EAGAIN when
// it takes nothing. When it takes part of b, c.midFrame is set, under the
// socket's write lock, so that no control frame goes out before the rest.
// Call with c.mu held (c.raw is set under it).
func (c *conn) rawWrite(b []byte) (int, error) {
	var n int
	var err error
	werr := c.raw.Write(func(fd uintptr) bool {
		for {
			n, err = syscall.Write(int(fd), b)
			if err != syscall.EINTR {
				if n > 0 && n < len(b) {
					c.midFrame.Store(true)
				}
				return true
			}
		}
	})
	if werr != nil {
		return 0, werr
	}
	if n < 0 {
		n = 0
	}
	return n, err
}

// rawWriteControl writes a control frame whole to raw (c.raw, read under
// c.mu), waiting for the socket as net.Conn's Write does (the write
// deadline bounds it), unless a frame is written in part (c.midFrame):
// then it writes nothing and returns false, and the caller queues b after
// that frame's rest. The flag is read under
// the socket's write lock, where it cannot change. Errors are left to the
// reader and the writer.
func (c *conn) rawWriteControl(raw syscall.RawConn, b []byte) bool {
	queued := false
	_ = raw.Write(func(fd uintptr) bool {
		if c.midFrame.Load() {
			queued = true
			return true
		}
		for len(b) > 0 {
			n, err := syscall.Write(int(fd), b)
			switch {
			case err == syscall.EINTR:
			case err == syscall.EAGAIN:
				return false // wait until the socket takes more
			case err != nil:
				return true
			default:
				b = b[n:]
			}
		}
		return true
	})
	return !queued
}
