package shard

import (
	"fmt"
	"hash/fnv"
	"math"
	"testing"
)

func TestForIsStable(t *testing.T) {
	// Golden values: a change here moves every stored device to another shard.
	tests := []struct {
		id   string
		n    int
		want int
	}{
		{"device_1", 16, 15},
		{"device_2", 16, 2},
		{"sensor-42", 16, 0},
		{"a", 16, 12},
		{"a", 1, 0},
		{"device_1", 1024, 431},
	}
	for _, tt := range tests {
		if got := For(tt.id, tt.n); got != tt.want {
			t.Errorf("For(%q, %d) = %d, want %d", tt.id, tt.n, got, tt.want)
		}
	}
}

func TestForIsFNV1a(t *testing.T) {
	for i := 0; i < 1000; i++ {
		id := fmt.Sprintf("dev-%d", i)
		h := fnv.New32a()
		h.Write([]byte(id))
		if got, want := For(id, 16), int(h.Sum32()%16); got != want {
			t.Fatalf("For(%q) = %d, want FNV-1a %d", id, got, want)
		}
	}
}

func TestForSpreadsEvenly(t *testing.T) {
	for _, n := range []int{2, 3, 16, 64} {
		counts := make([]int, n)
		const devices = 64000
		for i := 0; i < devices; i++ {
			counts[For(fmt.Sprintf("device_%d", i), n)]++
		}
		want := float64(devices) / float64(n)
		for s, c := range counts {
			if math.Abs(float64(c)-want) > 0.1*want {
				t.Errorf("n=%d shard %d got %d devices, want %.0f ± 10%%", n, s, c, want)
			}
		}
	}
}

func TestKeysShareTheShardHashTag(t *testing.T) {
	k := Keys{Prefix: "pulse"}
	tests := []struct{ got, want string }{
		{k.Stream(7), "pulse:metrics:{7}"},
		{k.Lease(7), "pulse:lease:{7}"},
		{k.Fence(7), "pulse:fence:{7}"},
		{k.Stats(7), "pulse:stats:{7}"},
		{k.Devices(7), "pulse:devices:{7}"},
		{k.Anomalies(7), "pulse:anomalies:{7}"},
		{k.DeadLetter(7), "pulse:deadletter:{7}"},
		{k.DeviceStates(7), "pulse:states:{7}"},
		{k.DeviceAnomalies(7, "d1"), "pulse:anomalies:{7}:d1"},
		{k.Alerts(7), "pulse:alerts:{7}"},
		{k.OpenAlerts(7), "pulse:openalerts:{7}"},
		{k.DeviceAlerts(7, "d1"), "pulse:alerts:{7}:d1"},
		{k.Members(), "pulse:analyzers"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("key %q, want %q", tt.got, tt.want)
		}
	}
}

func TestOwnerSpreadsAndMovesLittle(t *testing.T) {
	const shards = 16
	members := []string{"analyzer-a", "analyzer-b", "analyzer-c"}
	before := map[int]string{}
	counts := map[string]int{}
	for s := 0; s < shards; s++ {
		before[s] = Owner(members, s)
		counts[before[s]]++
	}
	for _, m := range members {
		if counts[m] < 2 {
			t.Errorf("%s owns %d of %d shards; want a fair share", m, counts[m], shards)
		}
	}
	// Order of members does not matter.
	for s := 0; s < shards; s++ {
		if got := Owner([]string{"analyzer-c", "analyzer-a", "analyzer-b"}, s); got != before[s] {
			t.Errorf("shard %d: owner depends on member order (%s vs %s)", s, got, before[s])
		}
	}
	// When b leaves, only b's shards move.
	for s := 0; s < shards; s++ {
		got := Owner([]string{"analyzer-a", "analyzer-c"}, s)
		if before[s] != "analyzer-b" && got != before[s] {
			t.Errorf("shard %d moved from %s to %s though its owner stayed", s, before[s], got)
		}
		if got == "analyzer-b" {
			t.Errorf("shard %d still owned by the member that left", s)
		}
	}
	if Owner(nil, 0) != "" {
		t.Error("Owner of no members should be empty")
	}
}

func TestOwnerGivesEveryMemberShardsWhenEnough(t *testing.T) {
	for n := 1; n <= 16; n *= 2 {
		var members []string
		for i := 0; i < n; i++ {
			members = append(members, fmt.Sprintf("analyzer-%d", i))
		}
		owned := map[string]int{}
		for s := 0; s < 1024; s++ {
			owned[Owner(members, s)]++
		}
		for _, m := range members {
			if want := 1024 / n; math.Abs(float64(owned[m]-want)) > 0.35*float64(want) {
				t.Errorf("%d members: %s owns %d of 1024 shards, want about %d", n, m, owned[m], want)
			}
		}
	}
}
