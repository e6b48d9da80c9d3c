package httpserver

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/pulse-iot/pulse/internal/framing"
)

// ErrBodyTimeout is the error of a request body read that did not finish
// within the server's body timeout (BODY_TIMEOUT). Handlers answer it with
// 408; the connection is closed after the response.
var ErrBodyTimeout = errors.New("request body not received in time")

// Messages of the requests the guard refuses.
const (
	msgAmbiguous  = "request has both Content-Length and Transfer-Encoding"
	msgUnverified = "request framing could not be verified"
)

// framedListener hands out connections whose bytes a framing.Scanner
// follows, so that the guard can tell what net/http hides.
type framedListener struct{ net.Listener }

func (l framedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &framedConn{Conn: c, scan: framing.New()}, nil
}

type framedConn struct {
	net.Conn
	mu     sync.Mutex // Read runs in net/http's reader and background-reader goroutines; next in handlers
	scan   *framing.Scanner
	served int // requests handed to the handler so far
}

func (c *framedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.mu.Lock()
		c.scan.Write(p[:n])
		c.mu.Unlock()
	}
	return n, err
}

// CloseWrite half-closes a TCP connection: net/http does so before it
// closes one after an error response, so that the client reads the whole
// response instead of a reset.
func (c *framedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// next returns the verdict of the connection's next request. net/http
// serves a connection's requests one after another and has read each
// one's header section before its handler starts.
func (c *framedConn) next() framing.Reason {
	c.mu.Lock()
	defer c.mu.Unlock()
	v := c.scan.Verdict(c.served)
	c.served++
	return v
}

type connKey struct{}

func connContext(ctx context.Context, c net.Conn) context.Context {
	if fc, ok := c.(*framedConn); ok {
		return context.WithValue(ctx, connKey{}, fc)
	}
	return ctx
}

// guard runs before every handler (outside the router, so before logging,
// metrics, auth and limits):
//   - a request with both Content-Length and Transfer-Encoding is refused
//     with 400 and its connection closed (RFC 9112 §6.1), so nothing that
//     followed it on the connection is served;
//   - a request body must arrive within bodyTimeout of the end of the
//     headers: reads after that fail with ErrBodyTimeout, so a client that
//     trickles a body holds a MAX_INFLIGHT slot at most that long.
func guard(h http.Handler, bodyTimeout time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fc, ok := r.Context().Value(connKey{}).(*framedConn); ok {
			switch fc.next() {
			case framing.Ambiguous:
				refuse(w, msgAmbiguous)
				return
			case framing.Unverified:
				refuse(w, msgUnverified)
				return
			}
		}
		if bodyTimeout > 0 && r.Body != nil && r.Body != http.NoBody {
			if http.NewResponseController(w).SetReadDeadline(time.Now().Add(bodyTimeout)) == nil {
				// A copy: net/http inspects its own request's Body after
				// the handler (100-continue, unread rests).
				r2 := *r
				r2.Body = deadlineBody{r.Body}
				r = &r2
			}
		}
		h.ServeHTTP(w, r)
	})
}

func refuse(w http.ResponseWriter, msg string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Connection", "close") // net/http closes after the response
	w.WriteHeader(http.StatusBadRequest)
	io.WriteString(w, `{"error":"`+msg+`"}`)
}

// deadlineBody reports a read past the body deadline as ErrBodyTimeout.
// (net/http lifts the deadline itself once the body is read, before its
// background read of the connection.)
type deadlineBody struct {
	io.ReadCloser
}

func (b deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		err = ErrBodyTimeout
	}
	return n, err
}
