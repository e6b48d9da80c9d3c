// Package auth checks the API keys (or read tokens) a service accepts: a
// set of keys held as SHA-256 digests and matched in constant time, parsed
// from a key file that is re-read when it changes, and a gin middleware
// that answers 401 without one of them.
//
// Keys are secrets: nothing here logs them, and errors never contain them.
package auth

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"strings"
)

// Keys is an immutable set of keys, kept only as SHA-256 digests.
type Keys struct {
	digests [][sha256.Size]byte
}

// NewKeys returns the set of keys; empty strings and duplicates are
// dropped.
func NewKeys(keys ...string) *Keys {
	k := &Keys{}
	seen := map[[sha256.Size]byte]bool{}
	for _, key := range keys {
		if key == "" {
			continue
		}
		d := sha256.Sum256([]byte(key))
		if !seen[d] {
			seen[d] = true
			k.digests = append(k.digests, d)
		}
	}
	return k
}

// Len is the number of distinct keys.
func (k *Keys) Len() int {
	if k == nil {
		return 0
	}
	return len(k.digests)
}

// Match reports whether candidate is one of the keys. It hashes the
// candidate and compares the digest with every key's, without stopping at
// a match, so its time depends neither on which key matched nor on any
// key's length or content.
func (k *Keys) Match(candidate string) bool {
	if k == nil || candidate == "" {
		return false
	}
	d := sha256.Sum256([]byte(candidate))
	found := 0
	for i := range k.digests {
		found |= subtle.ConstantTimeCompare(d[:], k.digests[i][:])
	}
	return found == 1
}

// ParseFile returns the keys of a key file: one key per line, surrounding
// white space trimmed; blank lines and lines starting with # are ignored.
func ParseFile(data []byte) []string {
	var keys []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), len(data)+1)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		keys = append(keys, line)
	}
	return keys
}
