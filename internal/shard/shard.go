// Package shard maps devices to shards and names the Redis keys of a shard.
//
// Every key of a shard carries the shard number as a Redis Cluster hash tag
// ("{7}"), so a shard's stream, lease, results and devices live in one slot
// and one Lua script can update them atomically, on one node or a cluster.
package shard

import (
	"strconv"
)

// For returns the shard of deviceID among n shards: FNV-1a 32 of the id,
// modulo n. The hash is part of the storage format: changing it moves
// devices between shards.
func For(deviceID string, n int) int {
	const (
		offset32 = 2166136261
		prime32  = 16777619
	)
	h := uint32(offset32)
	for i := 0; i < len(deviceID); i++ {
		h ^= uint32(deviceID[i])
		h *= prime32
	}
	return int(h % uint32(n))
}

// Group is the consumer group every analyzer joins.
const Group = "analyzers"

// Keys names the Redis keys under one prefix.
type Keys struct{ Prefix string }

func (k Keys) tagged(kind string, s int) string {
	return k.Prefix + ":" + kind + ":{" + strconv.Itoa(s) + "}"
}

// Stream is shard s's event stream.
func (k Keys) Stream(s int) string { return k.tagged("metrics", s) }

// Lease holds "owner:token" of the analyzer that owns shard s.
func (k Keys) Lease(s int) string { return k.tagged("lease", s) }

// Fence holds the last lease token granted on shard s (a counter, kept at
// least at Redis's clock in microseconds so tokens never repeat).
func (k Keys) Fence(s int) string { return k.tagged("fence", s) }

// Stats is shard s's hash of counters and its recent-values window.
func (k Keys) Stats(s int) string { return k.tagged("stats", s) }

// Devices is the sorted set of device ids seen in shard s.
func (k Keys) Devices(s int) string { return k.tagged("devices", s) }

// Anomalies is shard s's list of its newest anomalies.
func (k Keys) Anomalies(s int) string { return k.tagged("anomalies", s) }

// DeadLetter is shard s's stream of entries that could not be applied.
func (k Keys) DeadLetter(s int) string { return k.tagged("deadletter", s) }

// DeviceStates is shard s's hash of device id → analysis state: one hash
// per shard, so a batch reads and writes all its devices in one command.
func (k Keys) DeviceStates(s int) string { return k.tagged("states", s) }

// DeviceAnomalies is one device's list of its newest anomalies.
func (k Keys) DeviceAnomalies(s int, id string) string { return k.tagged("anomalies", s) + ":" + id }

// Alerts is shard s's list of references to its newest alerts, newest
// first (package results has the layout).
func (k Keys) Alerts(s int) string { return k.tagged("alerts", s) }

// OpenAlerts is shard s's set of references to its open alerts.
func (k Keys) OpenAlerts(s int) string { return k.tagged("openalerts", s) }

// DeviceAlerts is one device's hash of its newest alerts by number.
func (k Keys) DeviceAlerts(s int, id string) string { return k.tagged("alerts", s) + ":" + id }

// TagMembers is shard s's set of the ids of its devices tagged key=value.
func (k Keys) TagMembers(s int, key, value string) string {
	return k.tagged("tag", s) + ":" + key + "=" + value
}

// The fleet's registry of the signal names and tag values it tracks
// (MAX_FLEET_SIGNALS): one hash tag, so one script decides a batch's new
// names on Redis Cluster too.
const registryTag = "{registry}"

// Signals is the set of the named signals the fleet tracks.
func (k Keys) Signals() string { return k.Prefix + ":" + registryTag + ":signals" }

// TagKeys is the set of the tag keys the fleet tracks.
func (k Keys) TagKeys() string { return k.Prefix + ":" + registryTag + ":tagkeys" }

// TagValues is the set of the values of tag key the fleet tracks.
func (k Keys) TagValues(key string) string { return k.Prefix + ":" + registryTag + ":tagvalues:" + key }

// Members is the sorted set of live analyzers, scored by expiry.
func (k Keys) Members() string { return k.Prefix + ":analyzers" }

// Owner returns which of members owns shard s by rendezvous hashing: each
// member scores hash(member, s) and the highest wins. When a member joins
// or leaves, only the shards it wins or won move. members may be in any
// order; Owner returns "" when there are none.
func Owner(members []string, s int) string {
	var best string
	var bestScore uint64
	for _, m := range members {
		score := rendezvous(m, s)
		if best == "" || score > bestScore || score == bestScore && m < best {
			best, bestScore = m, score
		}
	}
	return best
}

func rendezvous(member string, s int) uint64 {
	const (
		offset64 = 14695981039346656037
		prime64  = 1099511628211
	)
	h := uint64(offset64)
	for i := 0; i < len(member); i++ {
		h ^= uint64(member[i])
		h *= prime64
	}
	h ^= uint64(s) + 0x9e3779b97f4a7c15
	h *= prime64
	// A final mix, so that similar names do not win similar shards.
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	return h
}
