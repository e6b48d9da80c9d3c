package proctest

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// RawConn is a TCP connection to an HTTP server for tests that write
// requests as raw bytes (smuggled, malformed, trickling) and read what
// comes back.
type RawConn struct {
	net.Conn
	R *bufio.Reader // the server's side of the conversation
}

// DialRaw connects to addr within 5 s; the connection closes when t ends.
func DialRaw(t testing.TB, addr string) *RawConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &RawConn{Conn: c, R: bufio.NewReader(c)}
}

// Send writes s, failing t when it cannot.
func (c *RawConn) Send(t testing.TB, s string) {
	t.Helper()
	if _, err := io.WriteString(c, s); err != nil {
		t.Fatal(err)
	}
}

// Response reads one response and its body within d; nil and the error
// when none came.
func (c *RawConn) Response(d time.Duration) (*http.Response, string, error) {
	c.SetReadDeadline(time.Now().Add(d))
	resp, err := http.ReadResponse(c.R, nil)
	if err != nil {
		return nil, "", err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b), err
}
