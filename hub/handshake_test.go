package hub_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/jobcast/jobcast"
	"github.com/jobcast/jobcast/internal/jobcasttest"
	"github.com/jobcast/jobcast/protocol"
)

// rfcKey and rfcAccept are the example of RFC 6455 1.3.
const (
	rfcKey    = "dGhlIHNhbXBsZSBub25jZQ=="
	rfcAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
)

// rawHandshake sends an upgrade request for target with headers as given
// (nil values leave a header out) and returns the response, with the reader
// positioned after it.
func rawHandshake(t *testing.T, wsURL, method, target string, header map[string]string) (*http.Response, *bufio.Reader) {
	t.Helper()
	u, err := url.Parse(wsURL)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := net.DialTimeout("tcp", u.Host, waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(deadline())
	var b strings.Builder
	b.WriteString(method + " " + target + " HTTP/1.1\r\nHost: " + u.Host + "\r\n")
	for k, v := range header {
		b.WriteString(k + ": " + v + "\r\n")
	}
	b.WriteString("\r\n")
	if _, err := io.WriteString(nc, b.String()); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	return resp, br
}

// upgradeHeaders are a valid handshake's headers with token, then changes
// applied ("" deletes).
func upgradeHeaders(token string, changes map[string]string) map[string]string {
	h := map[string]string{
		"Connection":            "Upgrade",
		"Upgrade":               "websocket",
		"Sec-WebSocket-Version": "13",
		"Sec-WebSocket-Key":     rfcKey,
		"Authorization":         "Bearer " + token,
	}
	for k, v := range changes {
		if v == "" {
			delete(h, k)
			continue
		}
		h[k] = v
	}
	return h
}

// readServerFrame reads one unmasked server frame of a short payload.
func readServerFrame(t *testing.T, br *bufio.Reader) (byte, []byte) {
	t.Helper()
	var hdr [2]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		t.Fatalf("read frame: %v", err)
	}
	n := int(hdr[1] & 0x7f)
	if n == 126 {
		var ext [2]byte
		if _, err := io.ReadFull(br, ext[:]); err != nil {
			t.Fatal(err)
		}
		n = int(ext[0])<<8 | int(ext[1])
	}
	data := make([]byte, n)
	if _, err := io.ReadFull(br, data); err != nil {
		t.Fatal(err)
	}
	return hdr[0], data
}

// The hub answers the handshake itself (RFC 6455 4.2.2): the accept key,
// jobcast.v2 echoed only when offered, and ready as the first frame.
func TestHandshakeResponse(t *testing.T) {
	t.Parallel()
	e := newEnv(t, jobcast.Config{})
	tk := e.createJob(t)
	target := "/ws/progress?jobId=" + url.QueryEscape(tk.JobID)
	tests := []struct {
		name      string
		changes   map[string]string
		wantProto string
	}{
		{name: "no subprotocol"},
		{name: "jobcast.v2 offered", changes: map[string]string{"Sec-WebSocket-Protocol": "chat, " + protocol.Subprotocol}, wantProto: protocol.Subprotocol},
		{name: "token in subprotocol", changes: map[string]string{"Authorization": "",
			"Sec-WebSocket-Protocol": protocol.Subprotocol + ", " + protocol.BearerSubprotocolPrefix + tk.Token}, wantProto: protocol.Subprotocol},
		{name: "other subprotocols only", changes: map[string]string{"Sec-WebSocket-Protocol": "chat, superchat"}},
		{name: "token lists and case", changes: map[string]string{"Connection": "keep-alive, UPGRADE", "Upgrade": "WebSocket"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp, br := rawHandshake(t, e.srv.WSURL, http.MethodGet, target, upgradeHeaders(tk.Token, tt.changes))
			if resp.StatusCode != http.StatusSwitchingProtocols {
				b, _ := io.ReadAll(resp.Body)
				t.Fatalf("status %d %s, want 101", resp.StatusCode, b)
			}
			for k, want := range map[string]string{
				"Upgrade": "websocket", "Connection": "Upgrade",
				"Sec-WebSocket-Accept": rfcAccept, "Sec-WebSocket-Protocol": tt.wantProto,
			} {
				if got := resp.Header.Get(k); got != want {
					t.Errorf("%s: %q, want %q", k, got, want)
				}
			}
			op, data := readServerFrame(t, br)
			var env protocol.Envelope
			if op != 0x81 || json.Unmarshal(data, &env) != nil || env.Type != protocol.TypeReady {
				t.Fatalf("first frame: opcode %#x %s, want a ready text frame", op, data)
			}
		})
	}
}

// Requests that are not WebSocket handshakes get the HTTP status gorilla's
// Upgrader gave them, with the JSON error body.
func TestHandshakeErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t, jobcast.Config{AllowedOrigins: []string{"app.example.com"}})
	tk := e.createJob(t)
	target := "/ws/progress?jobId=" + url.QueryEscape(tk.JobID)
	// The API routes only GET to the hub (other methods get its 404): the
	// hub's own answer to them is seen with the hub as the whole server.
	direct := httptest.NewServer(e.srv.Hub)
	t.Cleanup(direct.Close)
	directURL := "ws" + strings.TrimPrefix(direct.URL, "http")
	tests := []struct {
		name       string
		method     string
		changes    map[string]string
		wantStatus int
		wantText   string
	}{
		{name: "no Sec-WebSocket-Key", changes: map[string]string{"Sec-WebSocket-Key": ""}, wantStatus: http.StatusBadRequest, wantText: "Sec-WebSocket-Key"},
		{name: "key of 15 bytes", changes: map[string]string{"Sec-WebSocket-Key": "AAAAAAAAAAAAAAAAAAAA"}, wantStatus: http.StatusBadRequest, wantText: "Sec-WebSocket-Key"},
		{name: "key not base64", changes: map[string]string{"Sec-WebSocket-Key": "!!!!!!!!!!!!!!!!!!!!!!=="}, wantStatus: http.StatusBadRequest, wantText: "Sec-WebSocket-Key"},
		{name: "version 8", changes: map[string]string{"Sec-WebSocket-Version": "8"}, wantStatus: http.StatusBadRequest, wantText: "version"},
		{name: "no version", changes: map[string]string{"Sec-WebSocket-Version": ""}, wantStatus: http.StatusBadRequest, wantText: "version"},
		{name: "POST", method: http.MethodPost, changes: map[string]string{"Content-Length": "0"}, wantStatus: http.StatusMethodNotAllowed, wantText: "not GET"},
		{name: "no Upgrade", changes: map[string]string{"Upgrade": ""}, wantStatus: http.StatusBadRequest, wantText: "'Upgrade'"},
		{name: "Connection without upgrade", changes: map[string]string{"Connection": "keep-alive"}, wantStatus: http.StatusBadRequest, wantText: "'Connection'"},
		{name: "origin not allowed", changes: map[string]string{"Origin": "https://evil.example.com"}, wantStatus: http.StatusForbidden, wantText: "origin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			method := tt.method
			if method == "" {
				method = http.MethodGet
			}
			u := e.srv.WSURL
			if method != http.MethodGet {
				u = directURL
			}
			resp, _ := rawHandshake(t, u, method, target, upgradeHeaders(tk.Token, tt.changes))
			defer resp.Body.Close()
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			code, msg := httpError(t, resp)
			if code != protocol.ErrBadRequest || !strings.Contains(msg, tt.wantText) {
				t.Errorf("error %s %q, want %s mentioning %q", code, msg, protocol.ErrBadRequest, tt.wantText)
			}
		})
	}
	// The allowed origin still connects.
	resp, _ := rawHandshake(t, e.srv.WSURL, http.MethodGet, target, upgradeHeaders(tk.Token, map[string]string{"Origin": "https://app.example.com"}))
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Errorf("allowed origin: status %d, want 101", resp.StatusCode)
	}
}

// A client that sends frames before the handshake is answered is cut off
// without a response, as gorilla's Upgrader did: the bytes net/http read
// ahead would be lost to the connection.
func TestHandshakeEarlyData(t *testing.T) {
	t.Parallel()
	e := newEnv(t, jobcast.Config{})
	tk := e.createJob(t)
	u, err := url.Parse(e.srv.WSURL)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := net.DialTimeout("tcp", u.Host, waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(deadline())
	req := "GET /ws/progress?jobId=" + url.QueryEscape(tk.JobID) + " HTTP/1.1\r\nHost: " + u.Host + "\r\n"
	for k, v := range upgradeHeaders(tk.Token, nil) {
		req += k + ": " + v + "\r\n"
	}
	// The request and a masked empty text frame in one write.
	req += "\r\n\x81\x80\x01\x02\x03\x04"
	if _, err := io.WriteString(nc, req); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(nc)
	if len(b) > 0 || (err != nil && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset")) {
		t.Fatalf("got %q, %v; want the connection closed without a response", b, err)
	}
}

// BenchmarkConnectClose is one churn connection end to end over loopback:
// the handshake with its token, ready, and the client's close answered.
// Client and server share the process, so ns/op and allocs/op count both.
func BenchmarkConnectClose(b *testing.B) {
	srv := jobcasttest.Start(b, jobcasttest.Options{Config: jobcast.Config{
		MaxConnsPerIP: 1 << 20, MaxConnsPerJob: 1 << 20, NewConnsPerSecPerIP: 1 << 20,
	}})
	tk := srv.CreateJob(b)
	u := srv.WSURL + "?jobId=" + url.QueryEscape(tk.JobID)
	h := bearer(tk.Token)
	d := websocket.Dialer{HandshakeTimeout: waitTimeout}
	closeMsg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
	b.ReportAllocs()
	for b.Loop() {
		c, _, err := d.Dial(u, h)
		if err != nil {
			b.Fatal(err)
		}
		_ = c.SetReadDeadline(deadline())
		if _, data, err := c.ReadMessage(); err != nil || !strings.Contains(string(data), `"type":"ready"`) {
			b.Fatalf("first frame %s, %v", data, err)
		}
		if err := c.WriteControl(websocket.CloseMessage, closeMsg, deadline()); err != nil {
			b.Fatal(err)
		}
		if _, _, err := c.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
			b.Fatalf("after close: %v", err)
		}
		c.Close()
	}
}
