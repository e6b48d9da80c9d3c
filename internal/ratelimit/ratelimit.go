// Package ratelimit limits the request rate of each client with a token
// bucket per client address, in a bounded table: memory stays bounded
// whatever the number of clients.
package ratelimit

import (
	"container/list"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
)

// DefaultMaxClients bounds the clients tracked at once (about 150 bytes
// each: 15 MB in all).
const DefaultMaxClients = 100_000

// Limiter holds a token bucket per client: each holds up to burst tokens,
// refilled at rate per second, and a request takes one. Safe for
// concurrent use.
//
// Clients are kept in least-recently-seen order. A bucket idle long enough
// to be full again is the same as a new one, so it is dropped (a few at
// each call, no goroutine). When the table is full anyway, the least
// recently seen client is dropped, which gives it a full bucket when it
// returns: under a flood of distinct addresses the limit gets laxer for
// the quietest clients, never the memory unbounded.
type Limiter struct {
	rate     float64
	burst    float64
	fillTime time.Duration // an idle bucket is full again after this
	max      int
	now      func() time.Time

	mu      sync.Mutex
	clients map[string]*list.Element
	order   list.List // of *bucket, most recently seen first
}

type bucket struct {
	key    string
	tokens float64
	last   time.Time
}

// New returns a limiter of rate requests per second per client with bursts
// of up to burst requests (at least 1). rate must be positive.
func New(rate float64, burst int) *Limiter {
	burst = max(burst, 1)
	return &Limiter{
		rate:     rate,
		burst:    float64(burst),
		fillTime: time.Duration(float64(burst) / rate * float64(time.Second)),
		max:      DefaultMaxClients,
		now:      time.Now,
		clients:  map[string]*list.Element{},
	}
}

// Allow takes a token from key's bucket. When there is none it returns
// false and how long until there is one.
func (l *Limiter) Allow(key string) (bool, time.Duration) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.evictIdle(now, 2)
	var b *bucket
	if e, ok := l.clients[key]; ok {
		b = e.Value.(*bucket)
		l.order.MoveToFront(e)
		if elapsed := now.Sub(b.last); elapsed > 0 { // a clock going back refills nothing
			b.tokens = math.Min(l.burst, b.tokens+elapsed.Seconds()*l.rate)
			b.last = now
		}
	} else {
		if len(l.clients) >= l.max {
			l.evictIdle(now, len(l.clients))
			if len(l.clients) >= l.max {
				l.remove(l.order.Back())
			}
		}
		b = &bucket{key: key, tokens: l.burst, last: now}
		l.clients[key] = l.order.PushFront(b)
	}
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
}

// Len is the number of clients tracked.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.clients)
}

// evictIdle drops up to n of the least recently seen buckets that are
// full again by now.
func (l *Limiter) evictIdle(now time.Time, n int) {
	for ; n > 0; n-- {
		e := l.order.Back()
		if e == nil || now.Sub(e.Value.(*bucket).last) < l.fillTime {
			return
		}
		l.remove(e)
	}
}

func (l *Limiter) remove(e *list.Element) {
	delete(l.clients, e.Value.(*bucket).key)
	l.order.Remove(e)
}

// ClientKey is the bucket of a request's remote address (host:port): the
// IPv4 address, or the /64 network of an IPv6 address, since one host
// usually holds a whole /64. X-Forwarded-For is not read: a client could
// set it to anything.
func ClientKey(remoteAddr string) string {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	a = a.Unmap()
	if a.Is4() {
		return a.String()
	}
	p, _ := a.WithZone("").Prefix(64)
	return p.String()
}

// TooManyRequests is the error message of a 429.
const TooManyRequests = "rate limit exceeded, retry later"

// Middleware answers 429 {"error":"rate limit exceeded, retry later"} with
// Retry-After (whole seconds, at least 1, until the client's next token)
// to a client over its rate. A nil limiter lets everything through.
func Middleware(l *Limiter) gin.HandlerFunc {
	if l == nil {
		return func(c *gin.Context) { c.Next() }
	}
	return func(c *gin.Context) {
		ok, wait := l.Allow(ClientKey(c.Request.RemoteAddr))
		if !ok {
			c.Header("Retry-After", strconv.Itoa(RetryAfterSeconds(wait)))
			c.AbortWithStatusJSON(http.StatusTooManyRequests, gin.H{"error": TooManyRequests})
			return
		}
		c.Next()
	}
}

// RetryAfterSeconds rounds a wait up to whole seconds, at least 1.
func RetryAfterSeconds(wait time.Duration) int {
	return max(1, int(math.Ceil(wait.Seconds())))
}
