// Package framing follows the framing of the HTTP/1.1 requests in one
// connection's byte stream, as a server reads it, and finds the requests
// whose framing is ambiguous.
//
// Go's net/http accepts a request with both Content-Length and
// Transfer-Encoding: chunked, drops Content-Length and keeps the
// connection open. A front proxy that framed the same bytes by
// Content-Length then forwards what it took for body as the next request
// (request smuggling). RFC 9112 §6.1 lets a server refuse such a request
// and requires it to close the connection. net/http hides both headers
// from handlers, so the decision needs the raw bytes: a Scanner sees them
// as they are read from the connection.
package framing

import (
	"bytes"
	"strconv"
)

// Limits of what the scanner buffers. A header line is kept up to
// maxLine bytes: enough for any name and for every sane Content-Length or
// Transfer-Encoding value; a longer Content-Length or Transfer-Encoding
// line makes the request unverifiable, and so refused.
const (
	maxLine      = 256
	maxChunkLine = 4096 // net/http's own limit
)

type state uint8

const (
	stHeaders   state = iota // in a request's start line and header fields
	stBody                   // in a Content-Length body
	stChunkSize              // in a chunk-size line
	stChunkData              // in chunk data
	stChunkCRLF              // in the CRLF after chunk data
	stTrailer                // in the trailer section after the last chunk
	stDone                   // stopped: a request was refused or lost
)

// Reason tells why a request is refused.
type Reason uint8

const (
	// Accepted: the request's framing is unambiguous.
	Accepted Reason = iota
	// Ambiguous: the request has both Content-Length and Transfer-Encoding.
	Ambiguous
	// Unverified: the scanner could not follow the stream up to or through
	// this request (a framing it does not parse the way net/http would).
	Unverified
)

// Scanner follows one connection's requests. Feed it every byte read from
// the connection, in order, with Write; Verdict tells, for the n-th
// request the server parsed (0-based), whether to refuse it. It keeps a
// few hundred bytes at most, whatever the traffic. Not safe for
// concurrent use.
type Scanner struct {
	st      state
	request int // index of the request being scanned

	line      []byte // the current line, up to maxLine (or maxChunkLine) bytes
	lineLen   int    // its full length
	lineCR    bool   // the last byte added was '\r'
	firstLine bool   // the next header line is the request line
	http10    bool
	hasCL     bool
	cl        int64
	te        int // Transfer-Encoding fields seen
	chunkedTE bool

	remaining int64 // of the body or chunk
	crlf      int   // bytes of the chunk's CRLF seen

	bad    int // first refused request, -1 if none
	reason Reason
}

// New returns a scanner at the start of a connection.
func New() *Scanner {
	return &Scanner{firstLine: true, bad: -1, line: make([]byte, 0, 64)}
}

// Verdict returns Accepted, or why the n-th request (0-based) of the
// connection must be refused: every request from the first ambiguous or
// unverifiable one on is.
func (s *Scanner) Verdict(n int) Reason {
	if s.bad >= 0 && n >= s.bad {
		return s.reason
	}
	return Accepted
}

func (s *Scanner) stop(request int, r Reason) {
	s.st, s.bad, s.reason = stDone, request, r
}

// Write feeds bytes read from the connection. It never fails.
func (s *Scanner) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 && s.st != stDone {
		switch s.st {
		case stBody:
			if p = s.skipRemaining(p); s.remaining == 0 {
				s.nextRequest()
			}
		case stChunkData:
			if p = s.skipRemaining(p); s.remaining == 0 {
				s.st, s.crlf = stChunkCRLF, 0
			}
		case stChunkCRLF:
			if p[0] != "\r\n"[s.crlf] {
				s.stop(s.request+1, Unverified) // net/http fails the body and closes
				return n, nil
			}
			p = p[1:]
			if s.crlf++; s.crlf == 2 {
				s.st = stChunkSize
			}
		default: // line-oriented states
			i := bytes.IndexByte(p, '\n')
			if i < 0 {
				s.addLine(p)
				p = nil
				continue
			}
			s.addLine(p[:i])
			p = p[i+1:]
			s.endLine()
		}
	}
	return n, nil
}

// skipRemaining consumes up to s.remaining bytes of the body or chunk
// from p and returns the rest.
func (s *Scanner) skipRemaining(p []byte) []byte {
	k := min(int64(len(p)), s.remaining)
	s.remaining -= k
	return p[k:]
}

func (s *Scanner) addLine(b []byte) {
	if len(b) == 0 {
		return
	}
	s.lineLen += len(b)
	s.lineCR = b[len(b)-1] == '\r'
	limit := maxLine
	if s.st == stChunkSize {
		limit = maxChunkLine
	}
	if room := limit - len(s.line); room > 0 {
		s.line = append(s.line, b[:min(room, len(b))]...)
	}
}

// endLine handles the line just ended by '\n' (its '\r' removed).
func (s *Scanner) endLine() {
	line, full := s.line, s.lineLen == len(s.line) // full: nothing was cut off
	if s.lineCR && len(line) > 0 && full {
		line = line[:len(line)-1]
	}
	empty := s.lineLen == 0 || s.lineLen == 1 && s.lineCR
	defer func() { s.line, s.lineLen, s.lineCR = s.line[:0], 0, false }()
	switch s.st {
	case stHeaders:
		s.headerLine(line, full, empty)
	case stChunkSize:
		if !full {
			s.stop(s.request+1, Unverified)
			return
		}
		size, ok := chunkSize(line)
		if !ok {
			s.stop(s.request+1, Unverified)
			return
		}
		if size == 0 {
			s.st = stTrailer
			return
		}
		s.st, s.remaining = stChunkData, size
	case stTrailer:
		if empty {
			s.nextRequest()
		}
	}
}

func (s *Scanner) headerLine(line []byte, full, empty bool) {
	if s.firstLine {
		if empty {
			return // blank lines before a request line: skipped or refused by net/http
		}
		s.firstLine = false
		// Only the version matters: net/http ignores Transfer-Encoding in
		// an HTTP/1.0 request.
		tail := line
		if !full {
			tail = nil // a request line longer than maxLine: its version is unknown
		}
		s.http10 = bytes.HasSuffix(tail, []byte(" HTTP/1.0"))
		return
	}
	if empty {
		s.endHeaders()
		return
	}
	colon := bytes.IndexByte(line, ':')
	if colon < 0 {
		return // continuation or malformed: net/http folds or refuses it
	}
	name := line[:colon]
	switch {
	case asciiEqualFold(name, "content-length"):
		if !full {
			s.stop(s.request, Unverified)
			return
		}
		v, ok := contentLength(line[colon+1:])
		if !ok || s.hasCL && v != s.cl {
			s.stop(s.request, Unverified) // net/http answers 400 and closes
			return
		}
		s.hasCL, s.cl = true, v
	case asciiEqualFold(name, "transfer-encoding"):
		if !full {
			s.stop(s.request, Unverified)
			return
		}
		s.te++
		s.chunkedTE = asciiEqualFold(trimOWS(line[colon+1:]), "chunked")
	}
}

func (s *Scanner) endHeaders() {
	switch {
	case s.hasCL && s.te > 0:
		s.stop(s.request, Ambiguous)
	case s.te > 0 && !s.http10:
		if s.te != 1 || !s.chunkedTE {
			s.stop(s.request, Unverified) // net/http answers 501 and closes
			return
		}
		s.st = stChunkSize
	case s.hasCL && s.cl > 0:
		s.st, s.remaining = stBody, s.cl
	default:
		s.nextRequest()
	}
}

func (s *Scanner) nextRequest() {
	s.request++
	s.st, s.firstLine = stHeaders, true
	s.http10, s.hasCL, s.cl, s.te, s.chunkedTE = false, false, 0, 0, false
}

func trimOWS(b []byte) []byte {
	return bytes.Trim(b, " \t")
}

// contentLength parses a Content-Length value as net/http does: digits
// only, at most an int64.
func contentLength(b []byte) (int64, bool) {
	b = trimOWS(b)
	if len(b) == 0 {
		return 0, false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseInt(string(b), 10, 64)
	return v, err == nil
}

// chunkSize parses a chunk-size line (extensions after ';' ignored) as
// net/http does: 1 to 16 hex digits.
func chunkSize(line []byte) (int64, bool) {
	line = bytes.TrimRight(line, " \t")
	if i := bytes.IndexByte(line, ';'); i >= 0 {
		line = line[:i]
	}
	line = bytes.TrimRight(line, " \t")
	if len(line) == 0 || len(line) > 16 {
		return 0, false
	}
	var v uint64
	for _, c := range line {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		v = v<<4 | uint64(c)
	}
	if v > 1<<62 {
		return 0, false
	}
	return int64(v), true
}

func asciiEqualFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := range b {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}
