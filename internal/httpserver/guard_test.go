package httpserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/pulse-iot/pulse/internal/proctest"
)

// serve runs h behind NewServer and Serve on a loopback port until the
// test ends, and returns its address.
func serve(t *testing.T, h http.Handler, bodyTimeout time.Duration) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- Serve(ctx, zap.NewNop(), NewServer(h, zap.NewNop(), bodyTimeout), ln, 5*time.Second) }()
	t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// echo answers the path and the length of the body it read.
var echo = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	if errors.Is(err, ErrBodyTimeout) {
		w.WriteHeader(http.StatusRequestTimeout)
		return
	}
	fmt.Fprintf(w, "%s %d", r.URL.Path, len(b))
})

func TestGuardRefusesAmbiguousFraming(t *testing.T) {
	addr := serve(t, echo, time.Second)
	tests := []struct {
		name  string
		write string
		want  []string // bodies of the responses, in order, then the connection closes
	}{
		{"CL and TE, request smuggled in the body",
			"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 36\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
			[]string{`{"error":"request has both Content-Length and Transfer-Encoding"}`}},
		{"a clean request first",
			"GET /one HTTP/1.1\r\nHost: x\r\n\r\nPOST /two HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\nGET /three HTTP/1.1\r\nHost: x\r\n\r\n",
			[]string{"/one 0", `{"error":"request has both Content-Length and Transfer-Encoding"}`}},
		{"request after a chunk with a broken end",
			"POST /one HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n0\r\n\r\nGET /two HTTP/1.1\r\nHost: x\r\n\r\n",
			[]string{""}}, // net/http answers the broken body itself (400) and closes
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := proctest.DialRaw(t, addr)
			io.WriteString(c, tt.write)
			for i, want := range tt.want {
				resp, body, err := c.Response(3 * time.Second)
				if err != nil {
					t.Fatalf("response %d: %v", i, err)
				}
				if want != "" && body != want {
					t.Errorf("response %d: %d %s, want %s", i, resp.StatusCode, body, want)
				}
				if i == len(tt.want)-1 && !resp.Close {
					t.Errorf("response %d: no Connection: close", i)
				}
			}
			if resp, body, err := c.Response(3 * time.Second); err == nil {
				t.Errorf("a further response on the connection: %d %s", resp.StatusCode, body)
			} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Errorf("connection left open: %v", err)
			}
		})
	}
}

func TestGuardKeepsValidConnectionsAlive(t *testing.T) {
	addr := serve(t, echo, time.Second)
	c := proctest.DialRaw(t, addr)
	io.WriteString(c, "POST /cl HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"+
		"POST /chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n2;x=y\r\ncd\r\n0\r\nT: 1\r\n\r\n"+
		"GET /after HTTP/1.1\r\nHost: x\r\n\r\n")
	for _, want := range []string{"/cl 3", "/chunked 4", "/after 0"} {
		resp, body, err := c.Response(3 * time.Second)
		if err != nil || body != want || resp.Close {
			t.Fatalf("got %v %q (close %v), want %q on an open connection", err, body, resp != nil && resp.Close, want)
		}
	}
}

func TestBodyTimeout(t *testing.T) {
	var lateCancel atomic.Bool
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if errors.Is(err, ErrBodyTimeout) {
			w.WriteHeader(http.StatusRequestTimeout)
			return
		}
		// A handler that works on after reading its body, past the body
		// deadline, keeps its context: the deadline ends with the body.
		time.Sleep(600 * time.Millisecond)
		lateCancel.Store(r.Context().Err() != nil)
		fmt.Fprintf(w, "%d", len(b))
	})
	addr := serve(t, h, 300*time.Millisecond)

	// A trickling body: cut at the deadline, 408, connection closed.
	c := proctest.DialRaw(t, addr)
	io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
	start := time.Now()
	go func(conn net.Conn) {
		for i := 0; i < 30; i++ {
			if _, err := conn.Write([]byte("x")); err != nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}(c)
	resp, _, err := c.Response(5 * time.Second)
	if err != nil || resp.StatusCode != http.StatusRequestTimeout || !resp.Close {
		t.Fatalf("trickling body: %v %v, want 408 and Connection: close", err, resp)
	}
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Errorf("cut after %v, want about 300ms", d)
	}

	// A chunked body that never ends, likewise.
	c = proctest.DialRaw(t, addr)
	io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n")
	if resp, _, err := c.Response(5 * time.Second); err != nil || resp.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("unfinished chunked body: %v %v, want 408", err, resp)
	}

	// A body in time: served, the handler's context lives past the body
	// deadline, and the connection serves the next request.
	c = proctest.DialRaw(t, addr)
	for i, want := range []string{"3", "0"} {
		req := "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
		if i == 1 {
			req = "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
		}
		io.WriteString(c, req)
		resp, body, err := c.Response(5 * time.Second)
		if err != nil || body != want || resp.Close {
			t.Fatalf("request %d: %v %q, want %q on an open connection", i, err, body, want)
		}
		if lateCancel.Load() {
			t.Errorf("request %d: the handler's context ended at the body deadline", i)
		}
	}
}

func TestMethodLabelsAreAFixedSet(t *testing.T) {
	tests := map[string]string{
		"GET": "GET", "HEAD": "HEAD", "POST": "POST", "PUT": "PUT", "PATCH": "PATCH", "DELETE": "DELETE",
		"OPTIONS": "OPTIONS", "CONNECT": "CONNECT", "TRACE": "TRACE",
		"get": "other", "PROPFIND": "other", "X" + strings.Repeat("Y", 1000): "other", "": "other",
	}
	for in, want := range tests {
		if got := methodLabel(in); got != want {
			t.Errorf("methodLabel(%.20q) = %q, want %q", in, got, want)
		}
	}
}

// When net/http closes a connection after a response (here: a large body
// left unread), the client reads the whole response and then EOF, at once:
// the wrapped connection still half-closes like a TCP one (without it,
// net/http waits half a second and closes, and the client may get a reset).
func TestGuardKeepsHalfClose(t *testing.T) {
	var _ interface{ CloseWrite() error } = (*framedConn)(nil)
	addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusRequestEntityTooLarge)
	}), time.Second)
	c := proctest.DialRaw(t, addr)
	const n = 4 << 20
	fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", n)
	go c.Write(make([]byte, n)) // fails once the server closes
	resp, _, err := c.Response(3 * time.Second)
	if err != nil || resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("response: %v %v", err, resp)
	}
	start := time.Now()
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	_, err = c.R.ReadByte()
	if err != io.EOF || time.Since(start) > 300*time.Millisecond {
		t.Errorf("after the response: %v after %v, want EOF at once", err, time.Since(start))
	}
}
