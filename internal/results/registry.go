package results

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/pulse-iot/pulse/internal/analysis"
	"github.com/pulse-iot/pulse/internal/shard"
)

// Registry decides which named signals and tag values the fleet tracks:
// at most max names, at most max tag keys and max values per key
// (MAX_FLEET_SIGNALS), first come first served, in sets every analyzer
// shares (shard.Keys.Signals, TagKeys, TagValues). A name or value, once
// tracked, stays tracked, so an analyzer keeps what Redis accepted and
// asks again about refused ones in each batch that carries them. It implements analysis.Tracker for
// the batch it was last prepared with. Not safe for concurrent use.
type Registry struct {
	rdb  redis.UniversalClient
	keys shard.Keys
	max  int

	signals map[string]bool    // tracked names
	tags    map[[2]string]bool // tracked key=value pairs
}

// NewRegistry returns a registry tracking at most max names and values.
func NewRegistry(rdb redis.UniversalClient, keys shard.Keys, max int) *Registry {
	return &Registry{rdb: rdb, keys: keys, max: max, signals: map[string]bool{}, tags: map[[2]string]bool{}}
}

// Prepare asks Redis about the names and tag values of d not known to be
// tracked, in one script call (none when all are known).
func (r *Registry) Prepare(ctx context.Context, d analysis.Decoded) error {
	var names []string
	var pairs [][2]string
	seen := map[string]bool{}
	for i := range d.Events {
		ev := &d.Events[i]
		for _, m := range ev.Metrics {
			if !r.signals[m.Name] && !seen[m.Name] {
				seen[m.Name] = true
				names = append(names, m.Name)
			}
		}
		for _, t := range ev.Tags {
			p := [2]string{t.Key, t.Value}
			if !r.tags[p] && !seen[t.Key+"="+t.Value] {
				seen[t.Key+"="+t.Value] = true
				pairs = append(pairs, p)
			}
		}
	}
	if len(names) == 0 && len(pairs) == 0 {
		return nil
	}
	keys := []string{r.keys.Signals(), r.keys.TagKeys()}
	args := []any{r.max, len(names)}
	for _, n := range names {
		args = append(args, n)
	}
	for _, p := range pairs {
		keys = append(keys, r.keys.TagValues(p[0]))
		args = append(args, p[0], p[1])
	}
	got, err := registerScript.Run(ctx, r.rdb, keys, args...).Int64Slice()
	if err != nil {
		return fmt.Errorf("register signals and tags in %s: %w", r.keys.Signals(), err)
	}
	if len(got) != len(names)+len(pairs) {
		return fmt.Errorf("register signals and tags: %d answers for %d questions", len(got), len(names)+len(pairs))
	}
	for i, n := range names {
		if got[i] == 1 {
			r.signals[n] = true
		}
	}
	for i, p := range pairs {
		if got[len(names)+i] == 1 {
			r.tags[p] = true
		}
	}
	return nil
}

// TrackSignal reports whether the fleet tracks name (Prepare asked).
func (r *Registry) TrackSignal(name string) bool { return r.signals[name] }

// TrackTag reports whether the fleet tracks key=value (Prepare asked).
func (r *Registry) TrackTag(key, value string) bool { return r.tags[[2]string{key, value}] }

// registerScript answers, for each name and then each tag (key, value),
// 1 when the fleet tracks it (it did, or there was room and now does)
// and 0 when it is refused.
// KEYS: the signals set, the tag keys set, then each tag's values set.
// ARGV: max, the number of names, the names, then the tags' key, value.
var registerScript = redis.NewScript(`
local max, nnames = tonumber(ARGV[1]), tonumber(ARGV[2])
local out = {}
local function admit(key, member)
  if redis.call('SISMEMBER', key, member) == 1 then return 1 end
  if redis.call('SCARD', key) >= max then return 0 end
  redis.call('SADD', key, member)
  return 1
end
for i = 1, nnames do
  out[#out + 1] = admit(KEYS[1], ARGV[2 + i])
end
local a = 3 + nnames
for k = 3, #KEYS do
  local ok = admit(KEYS[2], ARGV[a])
  if ok == 1 then ok = admit(KEYS[k], ARGV[a + 1]) end
  out[#out + 1] = ok
  a = a + 2
end
return out
`)
