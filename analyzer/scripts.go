package main

import "github.com/redis/go-redis/v9"

// The Lua scripts that make shard ownership safe. Every script that
// changes a shard's consumer group or results first checks that the caller
// still holds the shard's lease ("owner:token", the token growing with
// each grant), so an analyzer that paused past its lease and lost the
// shard cannot read, claim or write anything of it: a fencing check that
// runs atomically with the change it guards. All keys of one call share
// the shard's hash tag, so the scripts also run on Redis Cluster.

// acquireScript grants the lease when it is free.
// KEYS: lease, fence. ARGV: owner, ttl ms. Returns "owner:token" or nil.
var acquireScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local v = ARGV[1] .. ':' .. redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], v, 'PX', ARGV[2])
return v
`)

// renewScript extends a lease still held. KEYS: lease. ARGV: value, ttl ms.
var renewScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`)

// releaseScript frees a lease still held. KEYS: lease. ARGV: value.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])
`)

// heartbeatScript records a live analyzer and returns the live ones, by
// Redis's clock so that analyzers' clocks need not agree.
// KEYS: members. ARGV: name, ttl ms, "leave" to deregister.
var heartbeatScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if ARGV[3] == 'leave' then
  redis.call('ZREM', KEYS[1], ARGV[1])
else
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
end
return redis.call('ZRANGE', KEYS[1], 0, -1)
`)

// claimScript moves every pending entry of the shard to the caller, so
// that entries read by an earlier owner are processed before new ones.
// KEYS: lease, stream. ARGV: value, group, consumer.
var claimScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return redis.error_reply('FENCED lease lost') end
local cursor = '0-0'
local n = 0
repeat
  local r = redis.call('XAUTOCLAIM', KEYS[2], ARGV[2], ARGV[3], 0, cursor, 'COUNT', 1000, 'JUSTID')
  cursor = r[1]
  n = n + #r[2]
until cursor == '0-0'
return n
`)

// readScript reads a batch for the caller: its own pending entries when
// ARGV[5] is "0", new ones when it is ">". With nothing new it returns
// {false, last-delivered-id} so the caller can block on XREAD from there.
// KEYS: lease, stream. ARGV: value, group, consumer, count, id.
var readScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return redis.error_reply('FENCED lease lost') end
local r = redis.call('XREADGROUP', 'GROUP', ARGV[2], ARGV[3], 'COUNT', ARGV[4], 'STREAMS', KEYS[2], ARGV[5])
if r and #r[1][2] > 0 then return r[1][2] end
local last = '0-0'
for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[2])) do
  local name, id
  for i = 1, #g, 2 do
    if g[i] == 'name' then name = g[i+1] elseif g[i] == 'last-delivered-id' then id = g[i+1] end
  end
  if name == ARGV[2] then last = id end
end
return {false, last}
`)

// writeScript applies one batch atomically: device states, anomaly
// lists, new devices, shard counters and recent values, dead letters, the
// acknowledgement of every entry, and the trim of what is processed.
//
// KEYS: lease, stats, stream, devices, shard anomalies, dead letters, then
// for each device its state key and its anomalies key.
// ARGV: value, group, detector, processed, anomalous events, recent,
// keep (anomalies kept per list), window, ndev, nshard, nack, ndead,
// lease ttl ms (a successful write renews the lease), then
// for each device: state, device id, new (1/0), count, anomalies…; then
// the shard's anomalies in stream order; then the ids to ack; then for
// each dead letter: id, reason, payload.
var writeScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return redis.error_reply('FENCED lease lost') end
local keep = tonumber(ARGV[7])
local ndev, nshard, nack, ndead = tonumber(ARGV[9]), tonumber(ARGV[10]), tonumber(ARGV[11]), tonumber(ARGV[12])
local a = 14
local function push(key, from, n)
  local i = from
  while i < from + n do
    local j = math.min(i + 999, from + n - 1)
    redis.call('LPUSH', key, unpack(ARGV, i, j))
    i = j + 1
  end
  redis.call('LTRIM', key, 0, keep - 1)
end
for d = 0, ndev - 1 do
  redis.call('SET', KEYS[7 + 2 * d], ARGV[a])
  if ARGV[a + 2] == '1' then redis.call('ZADD', KEYS[4], 0, ARGV[a + 1]) end
  local n = tonumber(ARGV[a + 3])
  a = a + 4
  if n > 0 then push(KEYS[8 + 2 * d], a, n) end
  a = a + n
end
if nshard > 0 then push(KEYS[5], a, nshard) end
a = a + nshard
redis.call('HINCRBY', KEYS[2], 'processed', ARGV[4])
redis.call('HINCRBY', KEYS[2], 'anomalies', ARGV[5])
redis.call('HSET', KEYS[2], 'recent', ARGV[6], 'detector', ARGV[3], 'window', ARGV[8])
local maxid = '0-0'
local i = a
while i < a + nack do
  local j = math.min(i + 999, a + nack - 1)
  redis.call('XACK', KEYS[3], ARGV[2], unpack(ARGV, i, j))
  i = j + 1
end
if nack > 0 then maxid = ARGV[a + nack - 1] end
a = a + nack
for d = 0, ndead - 1 do
  redis.call('XADD', KEYS[6], 'MAXLEN', '~', 100000, '*', 'id', ARGV[a], 'reason', ARGV[a + 1], 'entry', ARGV[a + 2])
  a = a + 3
end
-- Everything below the oldest entry still pending is processed.
local p = redis.call('XPENDING', KEYS[3], ARGV[2])
local minid = maxid
if p[1] > 0 then minid = p[2] end
if minid ~= '0-0' then redis.call('XTRIM', KEYS[3], 'MINID', '~', minid) end
redis.call('PEXPIRE', KEYS[1], ARGV[13])
return 'OK'
`)
