package metric

// Named is one value of a named signal: "metrics": {"temperature": 21.5}.
type Named struct {
	Name  string
	Value float64
}

// Tag is one device tag: "tags": {"site": "berlin"}.
type Tag struct {
	Key, Value string
}

// Limits of named metrics and tags.
const (
	MaxNameLen     = 64 // a metric name: ^[a-z][a-z0-9_]{0,63}$
	MaxTagKeyLen   = 32 // a tag key: ^[a-z][a-z0-9_]{0,31}$
	MaxTagValueLen = 64 // a tag value: 1–64 characters of [A-Za-z0-9._:-]
	MaxTags        = 8  // tags per object
	// MaxMetricsLimit is the largest MAX_METRICS: what any stream entry
	// may carry, whatever ingest wrote it.
	MaxMetricsLimit = 256
)

// ValidName reports whether s is a metric name: ^[a-z][a-z0-9_]{0,63}$.
func ValidName(s string) bool { return validKey(s, MaxNameLen) }

// ValidTagKey reports whether s is a tag key: ^[a-z][a-z0-9_]{0,31}$.
func ValidTagKey(s string) bool { return validKey(s, MaxTagKeyLen) }

// ValidTagValue reports whether s is a tag value: 1–64 characters of
// [A-Za-z0-9._:-].
func ValidTagValue(s string) bool {
	if len(s) == 0 || len(s) > MaxTagValueLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !idChar[s[i]] {
			return false
		}
	}
	return true
}

// Reserved reports whether name is one of the top-level signals, which
// may not appear inside "metrics".
func Reserved(name string) bool { return name == "cpu" || name == "rps" }

func validKey(s string, maxLen int) bool {
	if len(s) == 0 || len(s) > maxLen || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}
