package main

import "github.com/redis/go-redis/v9"

// The Lua scripts that make shard ownership safe. Every script that
// claims entries or writes results first checks that the caller still
// holds the shard's lease ("owner:token", the token growing with each
// grant), so an analyzer that paused past its lease and lost the shard
// cannot claim or write anything of it: a fencing check that runs
// atomically with the change it guards. All keys of one call share
// the shard's hash tag, so the scripts also run on Redis Cluster.

// acquireScript grants the lease when it is free.
// KEYS: lease, fence. ARGV: owner, ttl ms. Returns "owner:token" or nil.
//
// A token is never granted twice, even when Redis loses the fence counter
// (FLUSHALL, a restart without persistence, a replica promoted empty): it
// is the counter plus one, but at least Redis's clock in microseconds, so
// a counter that starts again from nothing starts above every token it
// granted before (unless Redis's clock went back meanwhile). A former
// owner holding an old token can then never match a new lease.
var acquireScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local t = redis.call('TIME')
local now = t[1] .. string.format('%06d', tonumber(t[2]))
if redis.call('INCR', KEYS[2]) < tonumber(now) then redis.call('SET', KEYS[2], now) end
local v = ARGV[1] .. ':' .. redis.call('GET', KEYS[2])
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

// claimScript makes the shard readable and moves every pending entry of
// the shard to the caller, so that entries read by an earlier owner are
// processed before new ones. The consumer group is created again (at 0,
// so every entry in the stream is delivered) when Redis lost it, with
// or without the stream: ingest keeps appending to a stream it recreates
// by its XADDs, and nothing would read it. A group created at 0 next to
// results that survived redelivers entries already applied; they are
// skipped by their ids.
// KEYS: lease, stream. ARGV: value, group, consumer.
// Returns {entries claimed, 1 if the group was created else 0}.
var claimScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return redis.error_reply('FENCED lease lost') end
local created = 1
local g = redis.pcall('XGROUP', 'CREATE', KEYS[2], ARGV[2], '0', 'MKSTREAM')
if type(g) == 'table' and g.err then
  if not string.find(g.err, 'BUSYGROUP', 1, true) then return g end
  created = 0
end
local cursor = '0-0'
local n = 0
repeat
  local r = redis.call('XAUTOCLAIM', KEYS[2], ARGV[2], ARGV[3], 0, cursor, 'COUNT', 1000, 'JUSTID')
  cursor = r[1]
  n = n + #r[2]
until cursor == '0-0'
return {n, created}
`)
