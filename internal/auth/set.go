package auth

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// maxFileBytes bounds a key file; a bigger one is refused as a mistake.
const maxFileBytes = 1 << 20

// Set is the keys in force: fixed ones (from an environment variable) and
// those of a key file, which Watch re-reads when the file changes. Safe
// for concurrent use: a reload swaps the whole set atomically.
//
// Auth is required when any fixed key is given or a file is configured. A
// configured file that holds no key (and no fixed key) does not turn auth
// off: every request is refused until keys are back (fail closed).
type Set struct {
	static []string
	file   string
	log    *zap.Logger
	keys   atomic.Pointer[Keys]

	// Owned by the reloading goroutine (NewSet, then Watch).
	lastSum [sha256.Size]byte
	lastErr string
}

// NewSet returns the set of static plus the keys of file ("" for none).
// A configured file must be readable now: an error here stops the service
// rather than starting it with fewer keys than intended. log receives
// counts only, never keys.
func NewSet(static []string, file string, log *zap.Logger) (*Set, error) {
	s := &Set{static: static, file: file, log: log}
	if file == "" {
		s.keys.Store(NewKeys(static...))
		return s, nil
	}
	data, err := readFile(file)
	if err != nil {
		return nil, err
	}
	s.swap(data)
	return s, nil
}

// Required reports whether requests need a key.
func (s *Set) Required() bool {
	return s != nil && (len(s.static) > 0 || s.file != "")
}

// Match reports whether key is one of the keys in force (constant time,
// see Keys.Match).
func (s *Set) Match(key string) bool {
	return s.keys.Load().Match(key)
}

// Len is the number of keys in force.
func (s *Set) Len() int {
	return s.keys.Load().Len()
}

// Watch re-reads the key file every interval and swaps the keys when its
// content changed (compared by SHA-256, so a rewrite within the file
// system's timestamp granularity is not missed, and a Kubernetes Secret's
// symlink swap is followed). While the file cannot be read the keys in
// force stay. It returns nil when ctx ends, at once when no file is
// configured.
func (s *Set) Watch(ctx context.Context, interval time.Duration) error {
	if s.file == "" {
		return nil
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			s.reload()
		}
	}
}

func (s *Set) reload() {
	data, err := readFile(s.file)
	if err != nil {
		if msg := err.Error(); msg != s.lastErr { // once per kind of failure
			s.lastErr = msg
			s.log.Warn("cannot read the key file; keeping the keys in force", zap.Error(err), zap.Int("keys", s.Len()))
		}
		return
	}
	if s.lastErr != "" {
		s.lastErr = ""
		s.log.Info("key file readable again", zap.String("file", s.file))
	}
	if sha256.Sum256(data) == s.lastSum {
		return
	}
	s.swap(data)
}

// swap installs the keys of data and logs how many there are.
func (s *Set) swap(data []byte) {
	s.lastSum = sha256.Sum256(data)
	fromFile := ParseFile(data)
	k := NewKeys(append(append([]string(nil), s.static...), fromFile...)...)
	s.keys.Store(k)
	if k.Len() == 0 {
		s.log.Warn("no key configured: every request needing one is refused", zap.String("file", s.file))
		return
	}
	s.log.Info("keys loaded", zap.String("file", s.file), zap.Int("file_keys", len(fromFile)), zap.Int("keys", k.Len()))
}

func readFile(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", name, err)
	}
	if len(data) > maxFileBytes {
		return nil, fmt.Errorf("key file %s: %w", name, errTooBig)
	}
	return data, nil
}

var errTooBig = errors.New("larger than 1 MiB")
