package redisx

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

func TestNewReturnsAClusterClientOnlyWhenClusterAddrsAreSet(t *testing.T) {
	single := New(Options{Addr: "127.0.0.1:1", Timeout: 3 * time.Second, PoolSize: 7}, prometheus.NewRegistry())
	defer single.Close()
	c, ok := single.(*redis.Client)
	if !ok {
		t.Fatalf("New without ClusterAddrs = %T, want *redis.Client", single)
	}
	// go-redis stores MaxRetries -1 (none) as 0 once the client is made.
	if o := c.Options(); o.Addr != "127.0.0.1:1" || o.MaxRetries != 0 || o.ReadTimeout != 3*time.Second ||
		o.WriteTimeout != 3*time.Second || o.DialTimeout != 3*time.Second || o.PoolSize != 7 {
		t.Errorf("single-node options: %+v", o)
	}

	seeds := []string{"127.0.0.1:1", "127.0.0.1:2"}
	cluster := New(Options{Addr: "127.0.0.1:9", ClusterAddrs: seeds, Password: "pw", Timeout: 3 * time.Second, PoolSize: 7}, prometheus.NewRegistry())
	defer cluster.Close()
	cc, ok := cluster.(*redis.ClusterClient)
	if !ok {
		t.Fatalf("New with ClusterAddrs = %T, want *redis.ClusterClient", cluster)
	}
	o := cc.Options()
	if strings.Join(o.Addrs, ",") != strings.Join(seeds, ",") || o.Password != "pw" {
		t.Errorf("cluster seeds %v password %q", o.Addrs, o.Password)
	}
	if o.MaxRetries != -1 || o.MaxRedirects != maxRedirects || o.ReadOnly || o.RouteByLatency || o.RouteRandomly {
		t.Errorf("cluster retries/routing: MaxRetries=%d MaxRedirects=%d ReadOnly=%v", o.MaxRetries, o.MaxRedirects, o.ReadOnly)
	}
	if o.ReadTimeout != 3*time.Second || o.WriteTimeout != 3*time.Second || o.DialTimeout != 3*time.Second ||
		o.PoolTimeout != 3*time.Second || o.PoolSize != 7 || !o.ContextTimeoutEnabled {
		t.Errorf("cluster timeouts/pool: %+v", o)
	}
}

// fakeNode is a Redis Cluster node that serves every slot, as far as
// CLUSTER SLOTS says, and answers other commands with reply, which may
// close the connection instead (nil reply), as a crash would.
type fakeNode struct {
	t     *testing.T
	ln    net.Listener
	addr  string
	slots string // CLUSTER SLOTS reply; set by newFakeCluster
	reply func(n int, args []string) []byte

	mu  sync.Mutex
	got []string // the commands received, one per call, lower case
}

func newFakeNode(t *testing.T, reply func(n int, args []string) []byte) *fakeNode {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeNode{t: t, ln: ln, addr: ln.Addr().String(), reply: reply}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go f.serve(conn)
		}
	}()
	return f
}

// newFakeCluster makes nodes[0] the owner of every slot.
func newFakeCluster(nodes ...*fakeNode) {
	host, port, _ := net.SplitHostPort(nodes[0].addr)
	slots := fmt.Sprintf("*1\r\n*3\r\n:0\r\n:16383\r\n*3\r\n$%d\r\n%s\r\n:%s\r\n$40\r\n%040d\r\n", len(host), host, port, 1)
	for _, n := range nodes {
		n.slots = slots
	}
}

func (f *fakeNode) serve(conn net.Conn) {
	defer conn.Close()
	r := bufio.NewReader(conn)
	for {
		args, err := readCommand(r)
		if err != nil {
			return
		}
		name := strings.ToLower(args[0])
		var out []byte
		switch {
		case name == "hello":
			out = []byte("-ERR unknown command\r\n")
		case name == "command":
			out = []byte("*0\r\n")
		case name == "client" || name == "asking" || name == "ping":
			out = []byte("+OK\r\n")
		case name == "cluster" && strings.EqualFold(args[1], "slots"):
			out = []byte(f.slots)
		default:
			f.mu.Lock()
			f.got = append(f.got, strings.ToLower(strings.Join(args, " ")))
			n := len(f.got)
			f.mu.Unlock()
			if out = f.reply(n, args); out == nil {
				return // the command may have run: no reply, connection lost
			}
		}
		if _, err := conn.Write(out); err != nil {
			return
		}
	}
}

func (f *fakeNode) received() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.got...)
}

func readCommand(r *bufio.Reader) ([]string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(line, "*") {
		return nil, errors.New("not an array")
	}
	n, err := strconv.Atoi(strings.TrimSpace(line[1:]))
	if err != nil {
		return nil, err
	}
	args := make([]string, n)
	for i := range args {
		line, err := r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		size, err := strconv.Atoi(strings.TrimSpace(line[1:]))
		if err != nil {
			return nil, err
		}
		buf := make([]byte, size+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		args[i] = string(buf[:size])
	}
	return args, nil
}

func newTestCluster(t *testing.T, nodes ...*fakeNode) *redis.ClusterClient {
	t.Helper()
	newFakeCluster(nodes...)
	c := New(Options{ClusterAddrs: []string{nodes[0].addr}, Timeout: time.Second}, prometheus.NewRegistry()).(*redis.ClusterClient)
	t.Cleanup(func() { c.Close() })
	return c
}

func xadd(ctx context.Context, c redis.Cmdable, n int) *redis.StringCmd {
	return c.XAdd(ctx, &redis.XAddArgs{Stream: "s:{1}", Values: []string{"n", strconv.Itoa(n)}})
}

// A command that may have run is never sent again: go-redis alone would
// re-send it after a lost connection, storing an event twice.
func TestClusterNeverResendsACommandThatMayHaveRun(t *testing.T) {
	ctx := context.Background()
	lost := func(int, []string) []byte { return nil }

	t.Run("command", func(t *testing.T) {
		node := newFakeNode(t, lost)
		c := newTestCluster(t, node)
		if err := xadd(ctx, c, 1).Err(); err == nil {
			t.Errorf("XADD on a lost connection: no error, want one")
		}
		if got := node.received(); len(got) != 1 {
			t.Errorf("node received %q, want one XADD", got)
		}
	})

	t.Run("pipeline", func(t *testing.T) {
		// The first XADD is answered, then the connection is lost.
		node := newFakeNode(t, func(n int, _ []string) []byte {
			if n == 1 {
				return []byte("$3\r\n1-1\r\n")
			}
			return nil
		})
		c := newTestCluster(t, node)
		pipe := c.Pipeline()
		cmds := []*redis.StringCmd{xadd(ctx, pipe, 1), xadd(ctx, pipe, 2), xadd(ctx, pipe, 3)}
		if _, err := pipe.Exec(ctx); err == nil {
			t.Error("pipeline on a lost connection succeeded")
		}
		if id, err := cmds[0].Result(); id != "1-1" || err != nil {
			t.Errorf("first XADD = %q %v, want 1-1", id, err)
		}
		if cmds[1].Err() == nil || cmds[2].Err() == nil {
			t.Errorf("unanswered XADDs: %v %v, want errors", cmds[1].Err(), cmds[2].Err())
		}
		// The node stops reading at the lost connection: it sees the
		// first two XADDs, each once.
		if got := node.received(); len(got) != 2 || got[0] == got[1] {
			t.Errorf("node received %q, want the first 2 XADDs once", got)
		}
	})

	t.Run("pipeline after CLUSTERDOWN", func(t *testing.T) {
		// go-redis re-sends a node's whole batch when its first reply is
		// CLUSTERDOWN, though the others ran.
		node := newFakeNode(t, func(n int, _ []string) []byte {
			if n == 1 {
				return []byte("-CLUSTERDOWN The cluster is down\r\n")
			}
			return []byte("$3\r\n1-" + strconv.Itoa(n) + "\r\n")
		})
		c := newTestCluster(t, node)
		pipe := c.Pipeline()
		cmds := []*redis.StringCmd{xadd(ctx, pipe, 1), xadd(ctx, pipe, 2)}
		pipe.Exec(ctx)
		if err := cmds[0].Err(); err == nil || !strings.HasPrefix(err.Error(), "CLUSTERDOWN") {
			t.Errorf("first XADD: %v, want CLUSTERDOWN", err)
		}
		if id := cmds[1].Val(); id != "1-2" {
			t.Errorf("second XADD = %q, want 1-2", id)
		}
		if got := node.received(); len(got) != 2 {
			t.Errorf("node received %q, want the 2 XADDs once", got)
		}
	})

	t.Run("go-redis alone", func(t *testing.T) {
		// Why noRetryHook exists: without it, the same lost connection
		// makes go-redis send the XADD again (redis/go-redis#1481).
		node := newFakeNode(t, lost)
		newFakeCluster(node)
		c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{node.addr}, MaxRedirects: maxRedirects})
		defer c.Close()
		xadd(ctx, c, 1)
		if got := node.received(); len(got) < 2 {
			t.Errorf("go-redis sent the XADD %d times; if it no longer re-sends, noRetryHook may go", len(got))
		}
	})
}

// Redirections are still followed: the command did not run where it was
// refused.
func TestClusterFollowsRedirections(t *testing.T) {
	ctx := context.Background()
	for _, redirect := range []string{"MOVED", "ASK"} {
		t.Run(redirect, func(t *testing.T) {
			target := newFakeNode(t, func(n int, _ []string) []byte { return []byte("$3\r\n1-1\r\n") })
			first := newFakeNode(t, func(n int, _ []string) []byte {
				return []byte("-" + redirect + " 9842 " + target.addr + "\r\n")
			})
			c := newTestCluster(t, first, target)
			if id, err := xadd(ctx, c, 1).Result(); id != "1-1" || err != nil {
				t.Errorf("XADD after %s = %q %v", redirect, id, err)
			}
			pipe := c.Pipeline()
			cmd := xadd(ctx, pipe, 2)
			if _, err := pipe.Exec(ctx); err != nil || cmd.Val() != "1-1" {
				t.Errorf("pipelined XADD after %s = %q %v", redirect, cmd.Val(), err)
			}
			if got := first.received(); len(got) != 2 {
				t.Errorf("first node received %q, want 2 XADDs", got)
			}
			if got := target.received(); len(got) != 2 {
				t.Errorf("target node received %q, want 2 XADDs", got)
			}
		})
	}
}

func TestClusterMetricsCountEachCommandOnce(t *testing.T) {
	ctx := context.Background()
	target := newFakeNode(t, func(n int, args []string) []byte {
		if strings.EqualFold(args[0], "get") {
			return []byte("$-1\r\n")
		}
		return []byte("$3\r\n1-1\r\n")
	})
	first := newFakeNode(t, func(n int, _ []string) []byte { return []byte("-MOVED 9842 " + target.addr + "\r\n") })
	newFakeCluster(first, target)
	reg := prometheus.NewRegistry()
	c := New(Options{ClusterAddrs: []string{first.addr}, Timeout: time.Second}, reg)
	defer c.Close()
	xadd(ctx, c, 1) // redirected once
	if err := c.Get(ctx, "missing:{1}").Err(); err != redis.Nil {
		t.Fatalf("GET = %v, want redis.Nil (not counted as an error)", err)
	}
	samples := map[string]uint64{}
	errs := map[string]float64{}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range families {
		for _, m := range mf.GetMetric() {
			op := m.GetLabel()[0].GetValue()
			switch mf.GetName() {
			case "pulse_redis_duration_seconds":
				samples[op] = m.GetHistogram().GetSampleCount()
			case "pulse_redis_errors_total":
				errs[op] = m.GetCounter().GetValue()
			}
		}
	}
	if samples["xadd"] != 1 || samples["get"] != 1 {
		t.Errorf("observations %v, want xadd once (across its redirection) and get once", samples)
	}
	if len(errs) != 0 {
		t.Errorf("errors %v, want none", errs)
	}
}
