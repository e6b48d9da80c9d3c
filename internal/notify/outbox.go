package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Keys names one shard's keys of alert delivery. All three carry the same
// Redis Cluster hash tag (the shard's, "{7}"), so the analyzer's batch
// script can write them with the shard's other keys, and the sender's
// scripts can read and trim them, atomically.
//
// Layout (docs/ALERTING.md):
//   - Outbox, a stream: one entry per alert change (opened or closed), in
//     the order the analyzer made them, its single field "a" the alert's
//     Record (JSON). The entry ID's milliseconds are Redis's clock when
//     the alert was written: the start of the delivery latency.
//   - Open, a hash: alert id → Record of every open alert, for re-sends.
//   - Meta, a hash: "dropped" → entries the outbox bound removed that no
//     sender has counted yet; "cursor:<Alertmanager>" → the ID of the last
//     entry that Alertmanager accepted.
type Keys struct {
	Outbox string
	Open   string
	Meta   string
}

// KeysFor returns shard's keys under prefix (KEY_PREFIX), tagged as the
// shard's other keys are: prefix:alert-outbox:{7}, prefix:alert-open:{7},
// prefix:alert-meta:{7}.
func KeysFor(prefix string, shard int) Keys {
	tag := ":{" + strconv.Itoa(shard) + "}"
	return Keys{
		Outbox: prefix + ":alert-outbox" + tag,
		Open:   prefix + ":alert-open" + tag,
		Meta:   prefix + ":alert-meta" + tag,
	}
}

// Validate checks the keys are set, distinct and share one hash tag, as
// scripts on Redis Cluster need (a single Redis would not mind; requiring
// it everywhere finds the mistake before a cluster does).
func (k Keys) Validate() error {
	if k.Outbox == "" || k.Open == "" || k.Meta == "" {
		return errors.New("alert keys: outbox, open and meta must be set")
	}
	if k.Outbox == k.Open || k.Outbox == k.Meta || k.Open == k.Meta {
		return fmt.Errorf("alert keys %s, %s, %s: must differ", k.Outbox, k.Open, k.Meta)
	}
	if t := hashTag(k.Outbox); t == "" || hashTag(k.Open) != t || hashTag(k.Meta) != t {
		return fmt.Errorf("alert keys %s, %s, %s: must share one hash tag", k.Outbox, k.Open, k.Meta)
	}
	return nil
}

// hashTag returns key's hash tag: what lies between the first '{' and the
// next '}' when that is not empty (then Redis Cluster hashes only it), else "".
func hashTag(key string) string {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			return key[i+1 : i+1+j]
		}
	}
	return ""
}

// LuaOutbox defines pulse_queue_alerts, the Lua function that writes alert
// changes: the analyzer's batch script includes this text and calls it, so
// alerts enter the outbox in the same atomic write as the device states
// that opened or closed them; Enqueue calls it alone.
//
//	pulse_queue_alerts(outbox, open, meta, maxlen, argv, from, n)
//
// adds n alerts, given as triples (id, state, record) in argv from index
// from, to the outbox stream; an open alert's record is set in the open
// hash and a closed one's removed. The outbox is then trimmed to its
// newest maxlen entries, the count of removed ones added to meta's
// "dropped". maxlen 0 means delivery is off: nothing is written. Returns
// the number dropped.
const LuaOutbox = `
local function pulse_queue_alerts(outbox, open, meta, maxlen, argv, from, n)
  if n <= 0 or maxlen <= 0 then return 0 end
  for i = from, from + 3 * (n - 1), 3 do
    redis.call('XADD', outbox, '*', 'a', argv[i + 2])
    if argv[i + 1] == 'open' then
      redis.call('HSET', open, argv[i], argv[i + 2])
    else
      redis.call('HDEL', open, argv[i])
    end
  end
  local dropped = redis.call('XTRIM', outbox, 'MAXLEN', maxlen)
  if dropped > 0 then redis.call('HINCRBY', meta, 'dropped', dropped) end
  return dropped
end
`

// enqueueScript: KEYS outbox, open, meta; ARGV maxlen, n, then n triples.
var enqueueScript = redis.NewScript(LuaOutbox + `
return pulse_queue_alerts(KEYS[1], KEYS[2], KEYS[3], tonumber(ARGV[1]), ARGV, 3, tonumber(ARGV[2]))
`)

// EnqueueArgs returns the (id, state, record) triples of alerts that
// pulse_queue_alerts reads.
func EnqueueArgs(alerts []Alert) ([]any, error) {
	args := make([]any, 0, 3*len(alerts))
	for _, a := range alerts {
		rec, err := Record(a)
		if err != nil {
			return nil, err
		}
		args = append(args, a.ID, a.State, rec)
	}
	return args, nil
}

// Enqueue writes alerts to the shard's outbox at once, as the batch script
// does, keeping at most maxLen entries; it returns how many old entries
// that dropped.
func Enqueue(ctx context.Context, rdb redis.Scripter, keys Keys, maxLen int, alerts ...Alert) (int64, error) {
	args, err := EnqueueArgs(alerts)
	if err != nil {
		return 0, err
	}
	args = append([]any{maxLen, len(alerts)}, args...)
	n, err := enqueueScript.Run(ctx, rdb, []string{keys.Outbox, keys.Open, keys.Meta}, args...).Int64()
	if err != nil {
		return 0, fmt.Errorf("enqueue alerts to %s: %w", keys.Outbox, err)
	}
	return n, nil
}

// Entry is one outbox entry.
type Entry struct {
	ID     string    // stream entry ID
	Queued time.Time // when it was written, by Redis's clock
	Alert  Alert
	// Err is set when the entry is not a valid record; such an entry is
	// skipped (and counted as rejected) instead of blocking the outbox.
	Err error
}

// Peek returns up to n outbox entries after the entry ID after (all from
// the oldest when after is ""), oldest first.
func Peek(ctx context.Context, rdb redis.Cmdable, keys Keys, after string, n int) ([]Entry, error) {
	start := "-"
	if after != "" {
		start = "(" + after
	}
	msgs, err := rdb.XRangeN(ctx, keys.Outbox, start, "+", int64(n)).Result()
	if err != nil {
		return nil, fmt.Errorf("xrange %s: %w", keys.Outbox, err)
	}
	out := make([]Entry, len(msgs))
	for i, m := range msgs {
		e := Entry{ID: m.ID, Queued: idTime(m.ID)}
		rec, _ := m.Values["a"].(string)
		if err := json.Unmarshal([]byte(rec), &e.Alert); err != nil {
			e.Err = fmt.Errorf("outbox %s entry %s: %w", keys.Outbox, m.ID, err)
		}
		out[i] = e
	}
	return out, nil
}

// idTime returns the time in a stream entry ID ("ms-seq").
func idTime(id string) time.Time {
	ms, _, _ := strings.Cut(id, "-")
	n, err := strconv.ParseInt(ms, 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.UnixMilli(n)
}

// cursorField is meta's field of an Alertmanager's cursor; name is its
// URL without password.
func cursorField(name string) string { return "cursor:" + name }

// Cursor returns the ID of the last entry the Alertmanager named name
// accepted, "" when none.
func Cursor(ctx context.Context, rdb redis.Cmdable, keys Keys, name string) (string, error) {
	c, err := rdb.HGet(ctx, keys.Meta, cursorField(name)).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("hget %s: %w", keys.Meta, err)
	}
	return c, nil
}

// ackScript records that one Alertmanager accepted every entry up to an
// ID and deletes the entries every Alertmanager has accepted.
// KEYS: outbox, meta. ARGV: this Alertmanager's cursor field, the ID, then
// the cursor fields of every configured Alertmanager. Cursors only move
// forward. Returns the outbox's length.
var ackScript = redis.NewScript(`
local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq), ms
end
local function less(a, b)
  local am, as = parse(a)
  local bm, bs = parse(b)
  return am < bm or (am == bm and as < bs)
end
local cur = redis.call('HGET', KEYS[2], ARGV[1])
if not cur or less(cur, ARGV[2]) then redis.call('HSET', KEYS[2], ARGV[1], ARGV[2]) end
local low = nil
for i = 3, #ARGV do
  local c = redis.call('HGET', KEYS[2], ARGV[i])
  if not c then low = nil break end
  if not low or less(c, low) then low = c end
end
if low then
  local _, seq, ms = parse(low)
  redis.call('XTRIM', KEYS[1], 'MINID', ms .. '-' .. string.format('%.0f', seq + 1))
end
return redis.call('XLEN', KEYS[1])
`)

// Ack records that the Alertmanager named name accepted every entry up to
// id, and deletes the entries that every one of names (the configured
// Alertmanagers) has accepted. It returns the outbox's length.
func Ack(ctx context.Context, rdb redis.Scripter, keys Keys, name, id string, names []string) (int64, error) {
	args := make([]any, 0, 2+len(names))
	args = append(args, cursorField(name), id)
	for _, n := range names {
		args = append(args, cursorField(n))
	}
	n, err := ackScript.Run(ctx, rdb, []string{keys.Outbox, keys.Meta}, args...).Int64()
	if err != nil {
		return 0, fmt.Errorf("ack %s up to %s: %w", keys.Outbox, id, err)
	}
	return n, nil
}

// statsScript returns {dropped entries not yet counted, outbox length}
// and resets the former, so that each drop is counted once, by whichever
// sender reads it. KEYS: outbox, meta.
var statsScript = redis.NewScript(`
local d = redis.call('HGET', KEYS[2], 'dropped')
if d then redis.call('HDEL', KEYS[2], 'dropped') else d = 0 end
return {tonumber(d), redis.call('XLEN', KEYS[1])}
`)

// TakeStats returns the entries dropped since the last call (resetting the
// count) and the outbox's length.
func TakeStats(ctx context.Context, rdb redis.Scripter, keys Keys) (dropped, size int64, err error) {
	v, err := statsScript.Run(ctx, rdb, []string{keys.Outbox, keys.Meta}).Int64Slice()
	if err != nil {
		return 0, 0, fmt.Errorf("outbox stats of %s: %w", keys.Outbox, err)
	}
	if len(v) != 2 {
		return 0, 0, fmt.Errorf("outbox stats of %s: %d values", keys.Outbox, len(v))
	}
	return v[0], v[1], nil
}

// OpenAlerts calls fn with the open alerts of the shard, up to n at a
// time, read with HSCAN: each call's alerts are read just before it.
// Records that do not parse are skipped and counted in the result.
func OpenAlerts(ctx context.Context, rdb redis.Cmdable, keys Keys, n int, fn func([]Alert) error) (bad int, err error) {
	var cursor uint64
	for {
		kv, next, err := rdb.HScan(ctx, keys.Open, cursor, "", int64(n)).Result()
		if err != nil {
			return bad, fmt.Errorf("hscan %s: %w", keys.Open, err)
		}
		alerts := make([]Alert, 0, len(kv)/2)
		for i := 1; i < len(kv); i += 2 {
			var a Alert
			if json.Unmarshal([]byte(kv[i]), &a) != nil {
				bad++
				continue
			}
			alerts = append(alerts, a)
		}
		for len(alerts) > 0 {
			chunk := alerts[:min(n, len(alerts))]
			alerts = alerts[len(chunk):]
			if err := fn(chunk); err != nil {
				return bad, err
			}
		}
		if next == 0 {
			return bad, nil
		}
		cursor = next
	}
}
