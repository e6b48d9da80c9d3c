// Package results is the contract between the analyzers, which write the
// results of every batch, and the api, which reads them: the Redis layout,
// the encodings (package state) and the one script that writes a batch.
//
// Per shard N (every key carries the shard's hash tag, so one script can
// write them all on Redis Cluster; names from shard.Keys):
//
//	<prefix>:states:{N}            hash: device id → state.Device (binary)
//	<prefix>:devices:{N}           sorted set (score 0): the shard's device ids, for paging in id order
//	<prefix>:anomalies:{N}         list: the shard's newest AnomalyHistory anomalies (state.Anomaly), newest first
//	<prefix>:anomalies:{N}:<id>    list: one device's newest AnomalyHistory anomalies, newest first
//	<prefix>:stats:{N}             hash: processed, anomalies (counters), recent (state.Recent), detector, window
//	<prefix>:deadletter:{N}        stream: entries that could not be decoded (id, reason, entry), capped
//
// Writer writes a batch atomically, fenced by the shard's lease and
// acknowledging the batch's stream entries in the same step; Reader reads
// what every shard holds.
package results
