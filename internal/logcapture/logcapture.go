// Package logcapture captures a service's JSON log for tests, which read
// it while the service is still writing.
package logcapture

import (
	"bufio"
	"bytes"
	"encoding/json"
	"strings"
	"sync"
)

// Buffer is an io.Writer safe for a logger and a reader at once.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// ListenAddr returns the "addr" of the first "listening" line logged by
// logger (e.g. "ingest", "ingest.admin"), or "" when there is none yet.
func (s *Buffer) ListenAddr(logger string) string {
	sc := bufio.NewScanner(strings.NewReader(s.String()))
	for sc.Scan() {
		var line struct {
			Logger string `json:"logger"`
			Msg    string `json:"msg"`
			Addr   string `json:"addr"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "listening" && line.Logger == logger {
			return line.Addr
		}
	}
	return ""
}
