package main

import (
	"context"
	"encoding/json"
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/pulse-iot/pulse/internal/shard"
	"github.com/pulse-iot/pulse/internal/state"
)

// Results written before ingest bounded rps (an rps near 1e308 was
// accepted then) cannot be made by today's analyzer, which dead-letters
// such entries; so these tests write them with the state codec the
// analyzer uses, under the keys it uses.

// writeDevice stores d as the analyzer does, listed in its shard.
func writeDevice(t *testing.T, rdb *redis.Client, keys shard.Keys, shards int, id string, d *state.Device) {
	t.Helper()
	ctx := context.Background()
	s := shard.For(id, shards)
	if err := rdb.HSet(ctx, keys.DeviceStates(s), id, d.AppendBinary(nil)).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.ZAdd(ctx, keys.Devices(s), redis.Z{Member: id}).Err(); err != nil {
		t.Fatal(err)
	}
}

var rollingAverageLine = regexp.MustCompile(`(?m)^rolling_average_rps (\S+)$`)

// rps near float64's limit overflowed the window sums: /analyze answered
// 200 with an empty body and rolling_average_rps read +Inf.
func TestHugeValuesGiveFiniteAnswers(t *testing.T) {
	t.Parallel()
	prefix := redisSrv.Prefix(t)
	keys := shard.Keys{Prefix: prefix}
	rdb := redisSrv.Client()
	defer rdb.Close()
	ctx := context.Background()

	d := state.NewDevice(defaultAnalysis.Window)
	for i, v := range []float64{1e308, 1.7e308, math.MaxFloat64, 1.2e308} {
		d.RPS.Push(v)
		d.CPU.Push(float64(10 + i))
	}
	d.Total, d.LastID = 4, state.ID{Ms: 1000, Seq: 0}
	d.Last = state.Last{Timestamp: 1.7e9, RPS: 1.2e308, CPU: 13, ZRPS: -0.5, ZCPU: 1}
	writeDevice(t, rdb, keys, defaultAnalysis.Shards, "huge-1", d)
	// The fleet's newest values, in one shard.
	recent := &state.Recent{Size: defaultAnalysis.Window}
	for i, v := range []float64{1e308, 1.7e308, math.MaxFloat64, 5} {
		recent.Add(state.ID{Ms: uint64(1000 + i)}, v)
	}
	if err := rdb.HSet(ctx, keys.Stats(0), "recent", recent.AppendBinary(nil), "processed", 4).Err(); err != nil {
		t.Fatal(err)
	}

	env := apiEnv(redisSrv, prefix, defaultAnalysis)
	a := startAPI(t, env)
	for _, p := range []string{"/analyze", "/analyze?device_id=huge-1", "/devices"} {
		code, body := httpGet(a.URL+p, nil)
		var v map[string]any
		if code != 200 || json.Unmarshal([]byte(body), &v) != nil {
			t.Errorf("GET %s = %d %q, want 200 with a JSON object", p, code, body)
			continue
		}
		if p == "/analyze?device_id=huge-1" {
			if mean, _ := v["mean"].(float64); math.Abs(mean-(1e308+1.7e308+math.MaxFloat64+1.2e308)/4) > 1e295 {
				t.Errorf("device mean = %v, want the true mean", v["mean"])
			}
		}
	}
	_, metrics := httpGet(a.URL+"/prometheus", nil)
	m := rollingAverageLine.FindStringSubmatch(metrics)
	if m == nil {
		t.Fatalf("no rolling_average_rps in\n%s", metrics)
	}
	if v, err := strconv.ParseFloat(m[1], 64); err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
		t.Errorf("rolling_average_rps = %s, want a finite number", m[1])
	}
}

// A value JSON cannot express (here a NaN score, as an older analyzer
// could store) gives a 500 with a JSON error and a log line, never a 200
// with an empty body.
func TestUnencodableAnswerIs500(t *testing.T) {
	t.Parallel()
	prefix := redisSrv.Prefix(t)
	rdb := redisSrv.Client()
	defer rdb.Close()
	d := state.NewDevice(defaultAnalysis.Window)
	d.RPS.Push(1)
	d.CPU.Push(1)
	d.Total, d.LastID = 1, state.ID{Ms: 1}
	d.Last = state.Last{Timestamp: 1.7e9, RPS: 1, CPU: 1, ZRPS: math.NaN(), ZCPU: math.Inf(1)}
	writeDevice(t, rdb, shard.Keys{Prefix: prefix}, defaultAnalysis.Shards, "nan-1", d)

	a := startAPI(t, apiEnv(redisSrv, prefix, defaultAnalysis))
	code, body := httpGet(a.URL+"/analyze?device_id=nan-1", nil)
	if code != 500 || body != `{"error":"internal error"}` {
		t.Errorf("GET /analyze?device_id=nan-1 = %d %q, want 500 {\"error\":\"internal error\"}", code, body)
	}
	stopAPI(t, a)
	var logged bool
	for _, line := range strings.Split(a.Log.String(), "\n") {
		logged = logged || strings.Contains(line, `"level":"error"`) && strings.Contains(line, `"msg":"encode response"`) &&
			strings.Contains(line, `"route":"/analyze"`) && strings.Contains(line, "NaN")
	}
	if !logged {
		t.Errorf("no error log line for the encoding failure:\n%s", a.Log.String())
	}
}
