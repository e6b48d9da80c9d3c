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
//	<prefix>:alerts:{N}            list: references to the shard's newest AlertHistory alerts, newest first
//	<prefix>:openalerts:{N}        set: references to the shard's open alerts
//	<prefix>:alerts:{N}:<id>       hash: one device's newest AlertHistory alerts, number → state.Alert (binary)
//	<prefix>:stats:{N}             hash: processed, anomalies, alerts_opened (counters), alerts_open (gauge),
//	                               recent (state.Recent), detector, window; per signal but rps (cpu and the
//	                               named ones) processed:<name>, anomalies:<name> (its values and anomalous
//	                               values), devices:<name> (devices that sent it), recent:<name>, and per
//	                               signal alerts_open:<name>
//	<prefix>:tag:{N}:<key>=<value> set: the ids of the shard's devices whose latest tags include key=value
//	<prefix>:deadletter:{N}        stream: entries that could not be decoded (id, reason, entry), capped
//
// Fleet-wide, in one slot of their own (Registry): <prefix>:{registry}:signals, the named signals the
// fleet tracks; <prefix>:{registry}:tagkeys and <prefix>:{registry}:tagvalues:<key>, the tag keys and
// values it tracks; each set holds at most MAX_FLEET_SIGNALS members.
//
// Alerts. A device numbers its alerts from 1 (state.Device.AlertSeq, in
// its state, so numbers survive restarts and takeovers); an alert's id is
// "<device id>:<number>". A reference is "<opening stream id> <alert
// id>": the opening event's stream id orders the fleet's alerts across
// shards without reading their records. Opening alert n writes record n
// to the device's hash and deletes record n−AlertHistory (unless that
// alert is still open: then its record goes when it closes), pushes the
// reference onto the shard's list (trimmed to AlertHistory), adds it to
// the open set and counts it in alerts_opened and alerts_open; closing it
// rewrites record n, removes the reference from the open set and counts
// alerts_open down. A record is written when its alert opens and when it
// closes; while it is open, the device's state holds its current event
// count, so readers take open alerts from the states.
//
// Writer writes a batch atomically, fenced by the shard's lease and
// acknowledging the batch's stream entries in the same step: states,
// anomalies and alerts are all written, or none; Reader reads what every
// shard holds.
package results
