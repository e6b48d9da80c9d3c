package notify

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Defaults of the settings (the environment variables of the same names).
const (
	DefaultResend    = time.Minute // ALERT_RESEND, Prometheus' resend delay
	DefaultOutboxMax = 10000       // ALERT_OUTBOX_MAX, per shard
)

// Bounds of the settings.
const (
	MinResend    = time.Second
	MaxResend    = time.Hour
	MaxOutboxMax = 1000000
)

// ParseURLs checks ALERTMANAGER_URL: comma-separated base URLs of
// Alertmanagers (http or https, a host, optionally a path prefix such as
// Alertmanager's --web.route-prefix; user:password@ for basic auth is
// allowed; no query or fragment). Blanks around commas are ignored; ""
// returns nil: delivery off. The URLs come back without a trailing slash.
func ParseURLs(v string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, s := range strings.Split(v, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		u, err := baseURL(s)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", Redact(s), err)
		}
		if seen[u] {
			return nil, fmt.Errorf("%q: listed twice", Redact(s))
		}
		seen[u] = true
		out = append(out, u)
	}
	return out, nil
}

// ParseLinkBase checks ALERT_LINK_BASE: the api's base URL as operators
// reach it (http or https, no query or fragment), "" for no links. It
// comes back without a trailing slash.
func ParseLinkBase(v string) (string, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return "", nil
	}
	return baseURL(v)
}

// ParseResend checks ALERT_RESEND: a duration from 1s to 1h; "" is the
// default, 1m.
func ParseResend(v string) (time.Duration, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return DefaultResend, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < MinResend || d > MaxResend {
		return 0, fmt.Errorf("must be a duration from %v to %v, such as 30s or 1m", MinResend, MaxResend)
	}
	return d, nil
}

// ParseOutboxMax checks ALERT_OUTBOX_MAX: the most alerts a shard's
// outbox holds, 1 to 1000000; "" is the default, 10000.
func ParseOutboxMax(v string) (int, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return DefaultOutboxMax, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > MaxOutboxMax {
		return 0, fmt.Errorf("must be a whole number from 1 to %d", MaxOutboxMax)
	}
	return n, nil
}

func baseURL(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil {
		return "", errors.New("must be a URL such as http://alertmanager:9093")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", errors.New("must be an http:// or https:// URL")
	}
	if u.Host == "" || u.Hostname() == "" {
		return "", errors.New("must name a host")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return "", errors.New("must have a port from 1 to 65535")
		}
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return "", errors.New("must not have a query or fragment")
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u.String(), nil
}

// Redact returns URL s with any password replaced, for logs and errors.
func Redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		if i := strings.LastIndex(s, "@"); i >= 0 {
			return "***" + s[i:]
		}
		return s
	}
	return u.Redacted()
}
