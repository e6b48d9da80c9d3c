package framing

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
)

const (
	smuggled   = "GET /admin HTTP/1.1\r\nHost: x\r\n\r\n"
	headerLike = "Content-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"
)

func TestVerdicts(t *testing.T) {
	chunked := "0\r\n\r\n" + smuggled
	tests := []struct {
		name   string
		stream string
		want   []Reason // verdict of requests 0, 1, ...
	}{
		{"one GET", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", []Reason{Accepted, Accepted}},
		{"CL then TE", fmt.Sprintf("POST / HTTP/1.1\r\nContent-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n%s", len(chunked), chunked),
			[]Reason{Ambiguous, Ambiguous}},
		{"TE then CL, odd case", fmt.Sprintf("POST / HTTP/1.1\r\ntransfer-encoding: Chunked\r\nCONTENT-LENGTH: %d\r\n\r\n%s", len(chunked), chunked),
			[]Reason{Ambiguous}},
		{"both on HTTP/1.0", "POST / HTTP/1.0\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", []Reason{Ambiguous}},
		{"ambiguous second request", "GET / HTTP/1.1\r\n\r\nPOST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
			[]Reason{Accepted, Ambiguous, Ambiguous}},
		{"smuggling attempt in a CL body is body", fmt.Sprintf("POST / HTTP/1.1\r\nContent-Length: %d\r\n\r\n%sGET / HTTP/1.1\r\n\r\n",
			len(smuggled), "POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"[:len(smuggled)]),
			[]Reason{Accepted, Accepted, Accepted}},
		{"header-like lines in a chunked body are body", fmt.Sprintf("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n", len(headerLike), headerLike),
			[]Reason{Accepted, Accepted, Accepted}},
		{"trailers", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1;ext=1\r\na\r\n0\r\nContent-Length: 9\r\n\r\nGET / HTTP/1.1\r\n\r\n",
			[]Reason{Accepted, Accepted, Accepted}},
		{"repeated equal CL", "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nxGET / HTTP/1.1\r\n\r\n", []Reason{Accepted, Accepted}},
		{"differing CL", "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx", []Reason{Unverified}},
		{"TE on HTTP/1.0 is ignored", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\nGET / HTTP/1.1\r\n\r\n", []Reason{Accepted, Accepted, Accepted}},
		{"TE other than chunked", "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", []Reason{Unverified}},
		{"two TE fields", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", []Reason{Unverified}},
		{"bad chunk size: next requests unverified", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", []Reason{Accepted, Unverified}},
		{"missing CRLF after chunk data", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n", []Reason{Accepted, Unverified}},
		{"overlong CL line", "POST / HTTP/1.1\r\nContent-Length:" + strings.Repeat(" ", 300) + "1\r\n\r\nx", []Reason{Unverified}},
		{"long request line, long other header", "GET /" + strings.Repeat("a", 5000) + " HTTP/1.1\r\nCookie: " + strings.Repeat("b", 5000) + "\r\n\r\nGET / HTTP/1.1\r\n\r\n",
			[]Reason{Accepted, Accepted, Accepted}},
		{"blank lines after a POST", "POST / HTTP/1.1\r\nContent-Length: 1\r\n\r\nx\r\n\r\nGET / HTTP/1.1\r\n\r\n", []Reason{Accepted, Accepted, Accepted}},
		{"bare LF line ends", "GET / HTTP/1.1\nContent-Length: 2\n\nabGET / HTTP/1.1\n\n", []Reason{Accepted, Accepted, Accepted}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Whole, and one byte at a time: reads split anywhere.
			for _, split := range []int{len(tt.stream), 1, 7} {
				s := New()
				for b := []byte(tt.stream); len(b) > 0; {
					k := min(split, len(b))
					s.Write(b[:k])
					b = b[k:]
				}
				for i, want := range tt.want {
					if got := s.Verdict(i); got != want {
						t.Errorf("split %d: request %d: %v, want %v", split, i, got, want)
					}
				}
			}
		})
	}
}

// A random stream of valid requests: the scanner must accept every one
// and count exactly the requests net/http reads from the same bytes.
func TestAgreesWithNetHTTP(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 300; round++ {
		var b strings.Builder
		n := 1 + rng.IntN(6)
		for i := 0; i < n; i++ {
			writeRequest(&b, rng)
		}
		stream := b.String()

		// net/http's reading, as its server does it.
		got := 0
		br := bufio.NewReader(strings.NewReader(stream))
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				break
			}
			if _, err := io.Copy(io.Discard, req.Body); err != nil {
				t.Fatalf("round %d: net/http cannot read a body: %v\n%q", round, err, stream)
			}
			got++
		}
		if got != n {
			t.Fatalf("round %d: net/http read %d of %d requests\n%q", round, got, n, stream)
		}

		s := New()
		for rest := []byte(stream); len(rest) > 0; {
			k := min(1+rng.IntN(40), len(rest))
			s.Write(rest[:k])
			rest = rest[k:]
		}
		for i := 0; i <= n; i++ {
			if v := s.Verdict(i); v != Accepted {
				t.Fatalf("round %d: request %d: %v\n%q", round, i, v, stream)
			}
		}
		if s.request != n || s.st != stHeaders {
			t.Fatalf("round %d: scanner at request %d (state %d), net/http read %d\n%q", round, s.request, s.st, n, stream)
		}
	}
}

func writeRequest(b *strings.Builder, rng *rand.Rand) {
	body := strings.Repeat("{\"a\":1}\r\n", rng.IntN(5))
	method := []string{"GET", "POST", "PUT", "HEAD"}[rng.IntN(4)]
	proto := "HTTP/1.1"
	if rng.IntN(8) == 0 {
		proto = "HTTP/1.0"
	}
	fmt.Fprintf(b, "%s /p%d?q=%s %s\r\nHost: x\r\n", method, rng.IntN(100), strings.Repeat("z", rng.IntN(300)), proto)
	if rng.IntN(3) == 0 {
		fmt.Fprintf(b, "X-Long: %s\r\n", strings.Repeat("y", rng.IntN(2000)))
	}
	switch {
	case proto == "HTTP/1.1" && rng.IntN(2) == 0:
		b.WriteString("Transfer-Encoding: chunked\r\n\r\n")
		for rest := body; len(rest) > 0; {
			k := min(1+rng.IntN(12), len(rest))
			if rng.IntN(3) == 0 {
				fmt.Fprintf(b, "%X;name=\"v\"\r\n%s\r\n", k, rest[:k])
			} else {
				fmt.Fprintf(b, "%x\r\n%s\r\n", k, rest[:k])
			}
			rest = rest[k:]
		}
		if rng.IntN(3) == 0 {
			b.WriteString("0\r\nX-Trailer: t\r\n\r\n")
		} else {
			b.WriteString("0\r\n\r\n")
		}
	case len(body) > 0 || rng.IntN(2) == 0:
		fmt.Fprintf(b, "Content-Length: %d\r\n\r\n%s", len(body), body)
	default:
		b.WriteString("\r\n")
	}
}

func TestMemoryStaysSmall(t *testing.T) {
	s := New()
	s.Write([]byte("GET /" + strings.Repeat("a", 1<<20)))
	s.Write([]byte(" HTTP/1.1\r\nX: " + strings.Repeat("b", 1<<20) + "\r\n"))
	if cap(s.line) > maxChunkLine {
		t.Errorf("line buffer grew to %d bytes", cap(s.line))
	}
}

// Whatever the bytes, the scanner neither panics nor grows, and a
// verdict, once given, never changes.
func FuzzWrite(f *testing.F) {
	f.Add([]byte("POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), 3)
	f.Add([]byte("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nT: 1\r\n\r\nGET / HTTP/1.0\r\n\r\n"), 1)
	f.Add([]byte("GET / HTTP/1.1\n\n\n\nPOST / HTTP/1.1\nContent-Length: 99999999999999999999\n\n"), 2)
	f.Fuzz(func(t *testing.T, data []byte, split int) {
		split = max(1, split%64)
		s := New()
		var seen []Reason
		for rest := data; len(rest) > 0; {
			k := min(split, len(rest))
			s.Write(rest[:k])
			rest = rest[k:]
			for i := range seen {
				if v := s.Verdict(i); seen[i] != Accepted && v != seen[i] {
					t.Fatalf("verdict of request %d changed from %v to %v", i, seen[i], v)
				}
			}
			seen = seen[:0]
			for i := 0; i <= s.request+1; i++ {
				seen = append(seen, s.Verdict(i))
			}
		}
		if cap(s.line) > maxChunkLine {
			t.Fatalf("line buffer grew to %d", cap(s.line))
		}
	})
}

// The cost per request of following a keep-alive connection of typical
// single-event POSTs.
func BenchmarkWrite(b *testing.B) {
	body := `{"device_id":"sensor-000042","cpu":51.25,"rps":104.5,"timestamp":1714564000.5}`
	req := []byte(fmt.Sprintf("POST /metrics HTTP/1.1\r\nHost: ingest:8080\r\nUser-Agent: device/1.0\r\nAuthorization: Bearer 0123456789abcdef0123456789abcdef\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body))
	s := New()
	b.SetBytes(int64(len(req)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		s.Write(req)
	}
	if s.Verdict(b.N) != Accepted {
		b.Fatal("a valid request refused")
	}
}
