package hub

import (
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"strings"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/internal/httputil"
	"github.com/jobcast/jobcast/protocol"
)

// The WebSocket opening handshake (RFC 6455 4.2), done here rather than by
// gorilla's Upgrader: the Upgrader writes its 101 response on its own, and
// the ready frame then needs a second write(2), which on loopback also
// wakes the client a second time. upgrade returns the response unwritten
// and the connection's first write carries it with ready (attach). The
// checks, their order, statuses and messages are the Upgrader's, so a
// client sees the same answers (TestHandshakeErrors).

// errEarlyData is a client that sent frames before the handshake was
// answered; its connection is closed without a response, as gorilla did.
var errEarlyData = errors.New("websocket: client sent data before handshake is complete")

// upgrade checks that r opens a WebSocket, hijacks its connection and
// returns it with the handshake response to write first. A request that is
// not a valid handshake gets the HTTP error (JSON body, connect_failed
// recorded) and upgrade returns an error.
func (h *Hub) upgrade(w http.ResponseWriter, r *http.Request) (net.Conn, []byte, error) {
	const badHandshake = "the client is not using the websocket protocol: "
	status, reason := 0, ""
	key := r.Header.Get("Sec-Websocket-Key")
	switch {
	case !headerHasToken(r.Header, "Connection", "upgrade"):
		status, reason = http.StatusBadRequest, badHandshake+"'upgrade' token not found in 'Connection' header"
	case !headerHasToken(r.Header, "Upgrade", "websocket"):
		status, reason = http.StatusBadRequest, badHandshake+"'websocket' token not found in 'Upgrade' header"
	case r.Method != http.MethodGet:
		status, reason = http.StatusMethodNotAllowed, badHandshake+"request method is not GET"
	case !headerHasToken(r.Header, "Sec-Websocket-Version", "13"):
		status, reason = http.StatusBadRequest, "unsupported version: 13 not found in 'Sec-Websocket-Version' header"
	case !h.checkOrigin(r):
		status, reason = http.StatusForbidden, "request origin not allowed by Upgrader.CheckOrigin"
	case !validChallengeKey(key):
		status, reason = http.StatusBadRequest, "not a websocket handshake: 'Sec-WebSocket-Key' header must be Base64 encoded value of 16-byte in length"
	}
	if status == 0 {
		hj, ok := w.(http.Hijacker)
		if !ok {
			status, reason = http.StatusInternalServerError, "response does not implement http.Hijacker"
		} else {
			nc, brw, err := hj.Hijack()
			if err != nil {
				status, reason = http.StatusInternalServerError, err.Error()
			} else {
				if brw.Reader.Buffered() > 0 {
					nc.Close()
					return nil, nil, errEarlyData
				}
				return nc, handshakeResponse(key, offersSubprotocol(r, protocol.Subprotocol)), nil
			}
		}
	}
	why := jobcast.ReasonBadRequest
	if status == http.StatusForbidden {
		why = jobcast.ReasonOriginRejected
	}
	_, jobID, _, _, cc, _ := parseHandshake(r)
	h.recordConnectFailed(jobID, "", cc, protocol.ErrBadRequest, why)
	err := jobcast.Errorf(protocol.ErrBadRequest, "websocket handshake: websocket: %s", reason)
	httputil.WriteError(w, status, err)
	return nil, nil, err
}

// handshakeResponse is the server's 101 (RFC 6455 4.2.2), selecting
// jobcast.v2 when the client offered it.
func handshakeResponse(key string, subprotocol bool) []byte {
	b := make([]byte, 0, 192)
	b = append(b, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "...)
	b = appendAcceptKey(b, key)
	b = append(b, "\r\n"...)
	if subprotocol {
		b = append(b, "Sec-WebSocket-Protocol: "+protocol.Subprotocol+"\r\n"...)
	}
	return append(b, "\r\n"...)
}

// acceptGUID is the GUID RFC 6455 1.3 appends to the client's key.
const acceptGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// appendAcceptKey appends Sec-WebSocket-Accept for key: base64 of the SHA-1
// of key and acceptGUID.
func appendAcceptKey(b []byte, key string) []byte {
	var in [24 + len(acceptGUID)]byte
	s := append(append(in[:0], key...), acceptGUID...)
	sum := sha1.Sum(s)
	return base64.StdEncoding.AppendEncode(b, sum[:])
}

// validChallengeKey reports whether Sec-WebSocket-Key is base64 of 16
// bytes (RFC 6455 4.1), as gorilla checks it.
func validChallengeKey(key string) bool {
	// 16 bytes are 24 base64 characters with padding; the standard
	// decoder accepts nothing else for them.
	if len(key) != 24 {
		return false
	}
	var out [18]byte
	n, err := base64.StdEncoding.Decode(out[:], []byte(key))
	return err == nil && n == 16
}

// headerHasToken reports whether a comma-separated header holds token,
// case-insensitively (Connection: keep-alive, Upgrade).
func headerHasToken(hdr http.Header, name, token string) bool {
	for _, v := range hdr[name] {
		for v != "" {
			var t string
			t, v, _ = strings.Cut(v, ",")
			if strings.EqualFold(strings.Trim(t, " \t"), token) {
				return true
			}
		}
	}
	return false
}

// offersSubprotocol reports whether the client's Sec-WebSocket-Protocol
// lists p. As gorilla, only the header's first line is read.
func offersSubprotocol(r *http.Request, p string) bool {
	v := r.Header.Get("Sec-Websocket-Protocol")
	for v != "" {
		var t string
		t, v, _ = strings.Cut(v, ",")
		if strings.TrimSpace(t) == p {
			return true
		}
	}
	return false
}
