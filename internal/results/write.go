package results

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pulse-iot/pulse/internal/alert"
	"github.com/pulse-iot/pulse/internal/analysis"
	"github.com/pulse-iot/pulse/internal/notify"
	"github.com/pulse-iot/pulse/internal/shard"
	"github.com/pulse-iot/pulse/internal/state"
)

// AnomalyHistory is how many anomalies each device's and each shard's
// list keeps.
const AnomalyHistory = 1000

// AlertHistory is how many alerts each device keeps, and how many
// references to its newest alerts each shard's list keeps.
const AlertHistory = 1000

// Refusals of the scripts that guard a shard.
var (
	// ErrFenced means the caller's lease is not the shard's any more:
	// another analyzer owns the shard now.
	ErrFenced = errors.New("shard lease lost")
	// ErrForeignPending means another consumer holds pending entries of
	// the shard: they must be claimed and applied first, in stream order.
	ErrForeignPending = errors.New("another consumer holds pending entries")
)

// ScriptError turns the refusals of a shard's scripts (replies starting
// FENCED or FOREIGN) into ErrFenced and ErrForeignPending, and wraps
// every error with the operation and key.
func ScriptError(op, key string, err error) error {
	switch {
	case strings.HasPrefix(err.Error(), "FENCED"):
		return fmt.Errorf("%s %s: %w", op, key, ErrFenced)
	case strings.HasPrefix(err.Error(), "FOREIGN"):
		return fmt.Errorf("%s %s: %w: %s", op, key, ErrForeignPending, err)
	}
	return fmt.Errorf("%s %s: %w", op, key, err)
}

// Batch is one applied batch of a shard and who writes it.
type Batch struct {
	Lease    string        // "owner:token"; the write is refused (ErrFenced) unless it is the shard's lease
	Consumer string        // the consumer that read the entries; every pending entry must be its own
	Detector string        // recorded for /analyze's "detectors"
	Window   int           // WINDOW_SIZE, recorded beside the recent values
	LeaseTTL time.Duration // the lease is extended by this
	Recent   *state.Recent // the shard's recent values after the batch
	// OutboxMax is ALERT_OUTBOX_MAX when alerts are delivered to
	// Alertmanager: the batch's alert changes then enter the shard's outbox
	// (notify.KeysFor) in the same write. 0: delivery off, no outbox.
	OutboxMax int
	// Recents are the shard's recent values of the batch's other signals
	// (Result.Signals), after the batch.
	Recents map[string]*state.Recent
	Decoded analysis.Decoded
	Result  analysis.Result
}

// Writer reads and writes one shard's results for its owner. It reuses
// its buffers between batches, so it must not be used by two goroutines.
type Writer struct {
	rdb    redis.UniversalClient
	keys   shard.Keys
	outbox notify.Keys
	shard  int

	args   []any
	recent []byte
	states []byte
}

// nFixedKeys is how many keys the write script has before the per-device
// ones: adding a shard key means adding it to writeArgs and the script's
// unpack, and raising this (a test holds the three together).
const nFixedKeys = 12

// NewWriter returns the writer of shard s's results.
func NewWriter(rdb redis.UniversalClient, keys shard.Keys, s int) *Writer {
	return &Writer{rdb: rdb, keys: keys, outbox: notify.KeysFor(keys.Prefix, s), shard: s}
}

// Recent reads the shard's recent values. Values that cannot be decoded
// give an empty window and an error wrapping state.ErrCorrupt, so the
// caller can carry on.
func (w *Writer) Recent(ctx context.Context, window int) (*state.Recent, error) {
	key := w.keys.Stats(w.shard)
	raw, err := w.rdb.HGet(ctx, key, "recent").Bytes()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("hget %s: %w", key, err)
	}
	r, err := state.DecodeRecent(raw, window)
	if err != nil {
		return &state.Recent{Size: window}, fmt.Errorf("recent values of %s: %w", key, err)
	}
	return r, nil
}

// SignalRecents reads the shard's recent values of signals names (other
// than rps). Values that cannot be decoded give an empty window, as
// Recent's do, and are logged by nobody: the next batch rewrites them.
func (w *Writer) SignalRecents(ctx context.Context, names []string, window int) (map[string]*state.Recent, error) {
	key := w.keys.Stats(w.shard)
	fields := make([]string, len(names))
	for i, n := range names {
		fields[i] = "recent:" + n
	}
	vals, err := w.rdb.HMGet(ctx, key, fields...).Result()
	if err != nil {
		return nil, fmt.Errorf("hmget %s: %w", key, err)
	}
	out := make(map[string]*state.Recent, len(names))
	for i, n := range names {
		raw, _ := vals[i].(string)
		r, err := state.DecodeRecent([]byte(raw), window)
		if err != nil {
			r = &state.Recent{Size: window}
		}
		out[n] = r
	}
	return out, nil
}

// States reads the states of devices ids; devices never seen are absent
// from the map. corrupt lists the devices whose state cannot be decoded:
// they start anew rather than stop the shard for good.
func (w *Writer) States(ctx context.Context, ids []string, window int) (states map[string]*state.Device, corrupt []string, err error) {
	states = make(map[string]*state.Device, len(ids))
	if len(ids) == 0 {
		return states, nil, nil
	}
	key := w.keys.DeviceStates(w.shard)
	vals, err := w.rdb.HMGet(ctx, key, ids...).Result()
	if err != nil {
		return nil, nil, fmt.Errorf("hmget %s: %w", key, err)
	}
	for i, v := range vals {
		s, ok := v.(string)
		if !ok {
			continue // a device never seen
		}
		st, err := state.DecodeDevice([]byte(s), window)
		if err != nil {
			corrupt = append(corrupt, ids[i])
			continue
		}
		states[ids[i]] = st
	}
	return states, corrupt, nil
}

// Write applies b in one atomic script: device states, new devices,
// anomaly lists, shard counters and recent values, dead letters, the
// acknowledgement of every entry and the trim of what is processed. It
// returns ErrFenced or ErrForeignPending (wrapped) when the script
// refuses.
func (w *Writer) Write(ctx context.Context, b Batch) error {
	keys, args, err := w.writeArgs(b)
	if err != nil {
		return fmt.Errorf("write %s: %w", w.keys.Stream(w.shard), err)
	}
	if err := writeScript.Run(ctx, w.rdb, keys, args...).Err(); err != nil {
		return ScriptError("write", w.keys.Stream(w.shard), err)
	}
	return nil
}

// writeArgs is the script's KEYS and ARGV: the header (header's order),
// then the variable parts, as writeScript reads them.
func (w *Writer) writeArgs(b Batch) ([]string, []any, error) {
	s, res, d := w.shard, b.Result, b.Decoded
	keys := []string{w.keys.Lease(s), w.keys.Stats(s), w.keys.Stream(s), w.keys.Devices(s),
		w.keys.Anomalies(s), w.keys.DeadLetter(s), w.keys.DeviceStates(s), w.keys.Alerts(s), w.keys.OpenAlerts(s),
		w.outbox.Outbox, w.outbox.Open, w.outbox.Meta}
	var newDevices, anomalous, alerting int
	for _, u := range res.Updates {
		if u.New {
			newDevices++
		}
		if len(u.Anomalies) > 0 {
			anomalous++
			keys = append(keys, w.keys.DeviceAnomalies(s, u.DeviceID))
		}
	}
	for _, u := range res.Updates {
		if len(u.Alerts) > 0 {
			alerting++
			keys = append(keys, w.keys.DeviceAlerts(s, u.DeviceID))
		}
	}
	tagKeys, tagOps := w.tagMoves(res)
	keys = append(keys, tagKeys...)
	signals := slices.Sorted(maps.Keys(res.Signals))
	w.recent = b.Recent.AppendBinary(w.recent[:0])
	args := append(w.args[:0],
		b.Lease, shard.Group, b.Consumer, b.Detector, res.Processed, res.AnomalousEvents,
		w.recent, AnomalyHistory, b.Window, b.LeaseTTL.Milliseconds(),
		len(res.Updates), newDevices, anomalous, len(res.Anomalies), len(d.Acks), len(d.Dead),
		alerting, len(res.Alerts), AlertHistory, b.OutboxMax, len(signals), len(tagKeys), len(tagOps)/3)
	// All states in one buffer, reused between batches; the buffer is
	// sized first so the slices handed to args stay valid.
	size := 0
	for _, u := range res.Updates {
		size += u.State.BinarySize()
	}
	if cap(w.states) < size {
		w.states = make([]byte, 0, size)
	}
	buf := w.states[:0]
	for _, u := range res.Updates {
		start := len(buf)
		buf = u.State.AppendBinary(buf)
		args = append(args, u.DeviceID, buf[start:len(buf):len(buf)])
	}
	for _, u := range res.Updates {
		if u.New {
			args = append(args, 0, u.DeviceID)
		}
	}
	for _, u := range res.Updates {
		if len(u.Anomalies) == 0 {
			continue
		}
		args = append(args, len(u.Anomalies))
		for _, a := range u.Anomalies {
			args = append(args, a.AppendBinary(nil))
		}
	}
	for _, a := range res.Anomalies {
		args = append(args, a.AppendBinary(nil))
	}
	for _, id := range d.Acks {
		args = append(args, id)
	}
	for _, dl := range d.Dead {
		payload, _ := json.Marshal(dl.Values)
		args = append(args, dl.ID, dl.Reason, payload)
	}
	for _, name := range signals {
		sb := res.Signals[name]
		var recent []byte // none given: the stored values stay
		if r := b.Recents[name]; r != nil {
			recent = r.AppendBinary(nil)
		}
		args = append(args, name, sb.Processed, sb.Anomalies, sb.NewDevices, recent)
	}
	args = append(args, tagOps...)
	args = appendAlertArgs(args, res, AlertHistory)
	if b.OutboxMax > 0 && len(res.Alerts) > 0 {
		var err error
		if args, err = appendOutboxArgs(args, res); err != nil {
			return nil, nil, err
		}
	}
	w.args = args[:0]
	return keys, args, nil
}

// tagMoves returns the shard's tag sets the batch's devices join or leave
// and the moves, each (index of its set among them from 1, "+" or "-",
// device id).
func (w *Writer) tagMoves(res analysis.Result) (keys []string, ops []any) {
	index := map[string]int{}
	move := func(t state.Tag, op, deviceID string) {
		key := w.keys.TagMembers(w.shard, t.Key, t.Value)
		i, ok := index[key]
		if !ok {
			keys = append(keys, key)
			i = len(keys)
			index[key] = i
		}
		ops = append(ops, i, op, deviceID)
	}
	for _, u := range res.Updates {
		if !u.TagsChanged() {
			continue
		}
		for _, t := range u.TagsBefore {
			if !slices.Contains(u.State.Tags, t) {
				move(t, "-", u.DeviceID)
			}
		}
		for _, t := range u.State.Tags {
			if !slices.Contains(u.TagsBefore, t) {
				move(t, "+", u.DeviceID)
			}
		}
	}
	return keys, ops
}

// appendAlertArgs appends the batch's alert changes in stream order, each
// as (device, number, state, record, ref, drop, signal): device is the
// index (from 1) of the device's alert hash among the script's per-device
// alert keys, drop the number of a record to delete with the change (0:
// none), signal counts the signal's open alerts (alerts_open:<signal>).
//
// Each device keeps its newest keep alerts: opening number n deletes
// number n−keep, unless that alert is still open (an open alert's record
// stays: it is what GET /alerts?state=open shows); such an alert's record
// is deleted when it closes instead.
func appendAlertArgs(args []any, res analysis.Result, keep uint64) []any {
	if len(res.Alerts) == 0 {
		return args
	}
	index := map[string]int{}
	open := map[string]map[uint64]bool{} // per device, the alerts open at this point of the batch
	for _, u := range res.Updates {
		if len(u.Alerts) == 0 {
			continue
		}
		index[u.DeviceID] = len(index) + 1
		// Open before the batch: open at its end and not opened by it, or
		// closed by it and not opened by it.
		opened := map[uint64]bool{}
		for _, c := range u.Alerts {
			if c.Change == alert.Opened {
				opened[c.Alert.Seq] = true
			}
		}
		before := map[uint64]bool{}
		for _, a := range u.State.OpenAlerts(u.DeviceID) {
			if !opened[a.Seq] {
				before[a.Seq] = true
			}
		}
		for _, c := range u.Alerts {
			if c.Change == alert.Closed && !opened[c.Alert.Seq] {
				before[c.Alert.Seq] = true
			}
		}
		open[u.DeviceID] = before
	}
	for _, c := range res.Alerts {
		a := c.Alert
		o := open[a.DeviceID]
		var drop uint64
		st := "closed"
		if c.Change == alert.Opened {
			st = "open"
			o[a.Seq] = true
			if a.Seq > keep && !o[a.Seq-keep] {
				drop = a.Seq - keep
			}
		} else {
			delete(o, a.Seq)
			if a.Seq+keep <= c.Newest {
				drop = a.Seq
			}
		}
		args = append(args, index[a.DeviceID], a.Seq, st, a.AppendBinary(nil), alertRef(a), drop, a.Signal)
	}
	return args
}

// appendOutboxArgs appends the batch's alert changes as the outbox's
// (id, state, record) triples, in stream order, for pulse_queue_alerts.
func appendOutboxArgs(args []any, res analysis.Result) ([]any, error) {
	// Alertmanager gets the device's tags as labels (site, model…), to
	// route and group by; they are the device's as of the batch's end.
	tags := map[string]map[string]string{}
	for _, u := range res.Updates {
		if len(u.Alerts) > 0 && len(u.State.Tags) > 0 {
			m := make(map[string]string, len(u.State.Tags))
			for _, t := range u.State.Tags {
				m[t.Key] = t.Value
			}
			tags[u.DeviceID] = m
		}
	}
	alerts := make([]notify.Alert, len(res.Alerts))
	for i, c := range res.Alerts {
		alerts[i] = AlertRecord(c.Alert)
		alerts[i].Tags = tags[c.Alert.DeviceID]
	}
	triples, err := notify.EnqueueArgs(alerts)
	if err != nil {
		return nil, err
	}
	return append(args, triples...), nil
}

// AlertRecord is a as GET /alerts shows it and as Alertmanager is told
// about it (the outbox's record): one shape for both.
func AlertRecord(a state.Alert) notify.Alert {
	n := notify.Alert{ID: a.ID(), DeviceID: a.DeviceID, Signal: a.Signal, State: notify.StateOpen, OpenedAt: a.OpenedAt,
		Score: a.Score, ZScore: a.Z, Value: a.Value, Expected: notify.Band{Low: a.Low, High: a.High}, Events: int(a.Events)}
	if !a.Open {
		closed := a.ClosedAt
		n.State, n.ClosedAt = notify.StateClosed, &closed
	}
	return n
}

// header names the write script's fixed arguments in ARGV order, as
// writeArgs appends them and the script unpacks them (a test holds the
// three together).
var header = []string{"lease", "group", "consumer", "detector", "processed", "anomalous",
	"recent", "keep", "window", "ttl", "nstates", "nnew", "nanom", "nshard", "nack", "ndead",
	"nalertdev", "nalerts", "alertkeep", "alertmax", "nsignals", "ntagkeys", "ntagops"}

// writeScript applies one batch atomically. It refuses while the lease is
// not the caller's (FENCED) or while another consumer holds pending
// entries (FOREIGN): those are older than the batch and must be applied
// first.
//
// KEYS: lease, stats, stream, devices, shard anomalies, dead letters,
// device states, shard alerts, open alerts, and the alert outbox's outbox,
// open and meta (notify.Keys) (nFixedKeys); then the anomaly
// list of each of the nanom devices with anomalies; then the alert hash of
// each of the nalertdev devices with alert changes; then the ntagkeys tag
// sets (shard.Keys.TagMembers) devices join or leave.
// ARGV: the header (above); then nstates pairs (device id, state); nnew
// pairs (0, device id); for each of the nanom devices with anomalies its
// count and records; the shard's nshard records in stream order; nack
// ids; ndead triples (id, reason, payload); nsignals quintuples (name,
// values, anomalous values, new devices, recent values) of the signals
// but rps, counted in the stats hash as processed:<name>,
// anomalies:<name> and devices:<name> beside recent:<name>; ntagops
// triples (tag set index, "+" or "-", device id); nalerts alert changes in
// stream order, each (device, number, state, record, ref, drop, signal) as
// appendAlertArgs describes; when alertmax > 0 (delivery on), nalerts
// triples (id, state, record) for the outbox, as appendOutboxArgs writes
// them.
var writeScript = redis.NewScript(notify.LuaOutbox + writeSource)

const writeSource = `
local leaseKey, statsKey, streamKey, devicesKey, anomaliesKey, deadKey, statesKey, alertsKey, openAlertsKey, outboxKey, outboxOpenKey, outboxMetaKey = unpack(KEYS, 1, 12)
local nfixed = 12 -- keys before the per-device ones
local lease, group, consumer, detector, processed, anomalous, recent, keep, window, ttl, nstates, nnew, nanom, nshard, nack, ndead, nalertdev, nalerts, alertkeep, alertmax, nsignals, ntagkeys, ntagops = unpack(ARGV, 1, 23)
if redis.call('GET', leaseKey) ~= lease then return redis.error_reply('FENCED lease lost') end
local pend = redis.call('XPENDING', streamKey, group)
if pend[4] then
  for _, c in ipairs(pend[4]) do
    if c[1] ~= consumer then return redis.error_reply('FOREIGN pending entries held by ' .. c[1]) end
  end
end
keep = tonumber(keep)
nstates, nnew, nanom = tonumber(nstates), tonumber(nnew), tonumber(nanom)
nalertdev, nsignals, ntagkeys, ntagops = tonumber(nalertdev), tonumber(nsignals), tonumber(ntagkeys), tonumber(ntagops)
if #KEYS ~= nfixed + nanom + nalertdev + ntagkeys then return redis.error_reply('ERR ' .. #KEYS .. ' keys for ' .. nanom .. ' anomaly lists, ' .. nalertdev .. ' alert hashes and ' .. ntagkeys .. ' tag sets') end
nshard, nack, ndead = tonumber(nshard), tonumber(nack), tonumber(ndead)
nalerts, alertkeep = tonumber(nalerts), tonumber(alertkeep)
-- Calls with many arguments go in chunks: unpack is bounded by Lua's stack.
local function chunks(from, n, per, fn)
  local step = math.floor(4000 / per) * per
  local last = from + n * per - 1
  local i = from
  while i <= last do
    local j = math.min(i + step - 1, last)
    fn(i, j)
    i = j + 1
  end
end
local a = 24 -- the first argument after the header
chunks(a, nstates, 2, function(i, j) redis.call('HSET', statesKey, unpack(ARGV, i, j)) end)
a = a + 2 * nstates
chunks(a, nnew, 2, function(i, j) redis.call('ZADD', devicesKey, unpack(ARGV, i, j)) end)
a = a + 2 * nnew
for d = 1, nanom do
  local n = tonumber(ARGV[a])
  chunks(a + 1, n, 1, function(i, j) redis.call('LPUSH', KEYS[nfixed + d], unpack(ARGV, i, j)) end)
  redis.call('LTRIM', KEYS[nfixed + d], 0, keep - 1)
  a = a + 1 + n
end
if nshard > 0 then
  chunks(a, nshard, 1, function(i, j) redis.call('LPUSH', anomaliesKey, unpack(ARGV, i, j)) end)
  redis.call('LTRIM', anomaliesKey, 0, keep - 1)
end
a = a + nshard
redis.call('HINCRBY', statsKey, 'processed', processed)
redis.call('HINCRBY', statsKey, 'anomalies', anomalous)
redis.call('HSET', statsKey, 'recent', recent, 'detector', detector, 'window', window)
local maxid = '0-0'
if nack > 0 then
  chunks(a, nack, 1, function(i, j) redis.call('XACK', streamKey, group, unpack(ARGV, i, j)) end)
  maxid = ARGV[a + nack - 1]
end
a = a + nack
for d = 1, ndead do
  redis.call('XADD', deadKey, 'MAXLEN', '~', 100000, '*', 'id', ARGV[a], 'reason', ARGV[a + 1], 'entry', ARGV[a + 2])
  a = a + 3
end
for i = 1, nsignals do
  local name = ARGV[a]
  redis.call('HINCRBY', statsKey, 'processed:' .. name, ARGV[a + 1])
  if ARGV[a + 2] ~= '0' then redis.call('HINCRBY', statsKey, 'anomalies:' .. name, ARGV[a + 2]) end
  if ARGV[a + 3] ~= '0' then redis.call('HINCRBY', statsKey, 'devices:' .. name, ARGV[a + 3]) end
  if ARGV[a + 4] ~= '' then redis.call('HSET', statsKey, 'recent:' .. name, ARGV[a + 4]) end
  a = a + 5
end
for i = 1, ntagops do
  local key = KEYS[nfixed + nanom + nalertdev + tonumber(ARGV[a])]
  if ARGV[a + 1] == '+' then redis.call('SADD', key, ARGV[a + 2]) else redis.call('SREM', key, ARGV[a + 2]) end
  a = a + 3
end
-- Alert changes, in stream order: each device's hash by number, the
-- shard's newest references and open set, the counters.
local opened, closed = 0, 0
for i = 1, nalerts do
  local key = KEYS[nfixed + nanom + tonumber(ARGV[a])]
  local n, st, rec, ref, drop, sig = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4], ARGV[a + 5], ARGV[a + 6]
  redis.call('HSET', key, n, rec)
  if drop ~= '0' then redis.call('HDEL', key, drop) end
  if st == 'open' then
    opened = opened + 1
    redis.call('LPUSH', alertsKey, ref)
    redis.call('SADD', openAlertsKey, ref)
    redis.call('HINCRBY', statsKey, 'alerts_open:' .. sig, 1)
  else
    closed = closed + 1
    redis.call('SREM', openAlertsKey, ref)
    redis.call('HINCRBY', statsKey, 'alerts_open:' .. sig, -1)
  end
  a = a + 7
end
if opened > 0 then
  redis.call('LTRIM', alertsKey, 0, alertkeep - 1)
  redis.call('HINCRBY', statsKey, 'alerts_opened', opened)
end
if opened ~= closed then redis.call('HINCRBY', statsKey, 'alerts_open', opened - closed) end
-- The same changes, for Alertmanager (a no-op while delivery is off).
pulse_queue_alerts(outboxKey, outboxOpenKey, outboxMetaKey, tonumber(alertmax), ARGV, a, nalerts)
-- Everything below the oldest entry still pending is processed.
pend = redis.call('XPENDING', streamKey, group)
local minid = maxid
if pend[1] > 0 then minid = pend[2] end
if minid ~= '0-0' then redis.call('XTRIM', streamKey, 'MINID', '~', minid) end
redis.call('PEXPIRE', leaseKey, ttl)
return 'OK'
`
