package redistest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/pulse-iot/pulse/internal/proctest"
)

// Cluster is a Redis Cluster of redis-server processes on loopback ports:
// masters, each with its replicas, failing over after a second
// (cluster-node-timeout 1000).
type Cluster struct {
	// Nodes are every node in the order they were started; which are
	// masters changes with failovers (see Masters).
	Nodes []*Server
}

// clusterHealthyWithin bounds StartCluster's and Restart's wait for a
// healthy cluster.
const clusterHealthyWithin = 30 * time.Second

// StartCluster starts masters*(1+replicas) nodes, joins them with
// redis-cli --cluster create and waits until the cluster is healthy (see
// WaitHealthy). extra arguments (e.g. "--appendonly", "yes") go to every
// node.
func StartCluster(masters, replicas int, extra ...string) (*Cluster, error) {
	if masters < 3 {
		return nil, errors.New("redis cluster needs at least 3 masters")
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("redis-server not found (apt-get install redis-server): %w", err)
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		return nil, fmt.Errorf("redis-cli not found (apt-get install redis-tools): %w", err)
	}
	c := &Cluster{}
	for i := 0; i < masters*(1+replicas); i++ {
		s, err := startClusterNode(bin, extra)
		if err != nil {
			c.Stop()
			return nil, err
		}
		c.Nodes = append(c.Nodes, s)
	}
	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
	ctx, cancel := context.WithTimeout(context.Background(), clusterHealthyWithin)
	defer cancel()
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil {
		c.Stop()
		return nil, fmt.Errorf("redis-cli --cluster create: %w\n%s", err, out)
	}
	if err := c.WaitHealthy(clusterHealthyWithin); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// NeedCluster skips t where redis-server or redis-cli is missing, except
// in CI (CI set), which must run it: there t fails.
func NeedCluster(t testing.TB) {
	t.Helper()
	for _, bin := range []string{"redis-server", "redis-cli"} {
		if _, err := exec.LookPath(bin); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s not installed: apt-get install redis-server", bin)
			}
			t.Skipf("%s not installed (apt-get install redis-server)", bin)
		}
	}
}

// startClusterNode runs one cluster-enabled redis-server on free loopback
// ports (client and cluster bus: the default bus port, port+10000, may be
// taken or out of range), its files in a new temporary folder.
func startClusterNode(bin string, extra []string) (*Server, error) {
	dir, err := os.MkdirTemp("", "pulse-redis-cluster-")
	if err != nil {
		return nil, err
	}
	return startOnFreePort(dir, func(port int) ([]string, error) {
		bus, err := proctest.FreePort()
		for err == nil && bus == port {
			bus, err = proctest.FreePort()
		}
		if err != nil {
			return nil, err
		}
		return append([]string{bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no", "--dir", dir, "--daemonize", "no", "--loglevel", "warning",
			"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-port", strconv.Itoa(bus),
			"--cluster-node-timeout", "1000", "--logfile", "redis.log",
			// Replicas sync at once instead of waiting 5 s for others.
			"--repl-diskless-sync-delay", "0",
		}, extra...), nil
	})
}

// Addrs returns every node's address: seeds for a cluster client.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.Nodes))
	for i, s := range c.Nodes {
		addrs[i] = s.Addr
	}
	return addrs
}

// Client returns a cluster client of this cluster.
func (c *Cluster) Client() *redis.ClusterClient {
	return redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
}

// Masters returns the live masters that serve slots, ordered by their
// first slot, as a live node sees them.
func (c *Cluster) Masters() ([]*Server, error) {
	for _, s := range c.live() {
		nodes, err := clusterNodes(s)
		if err != nil {
			continue
		}
		var masters []clusterNode
		for _, n := range nodes {
			if n.master && len(n.slots) > 0 && !n.failed {
				masters = append(masters, n)
			}
		}
		sort.Slice(masters, func(i, j int) bool { return masters[i].slots[0] < masters[j].slots[0] })
		out := make([]*Server, 0, len(masters))
		for _, m := range masters {
			srv := c.byAddr(m.addr)
			if srv == nil || srv.cmd == nil {
				return nil, fmt.Errorf("master %s is not a live node of this cluster", m.addr)
			}
			out = append(out, srv)
		}
		return out, nil
	}
	return nil, errors.New("no live node answers CLUSTER NODES")
}

// KillMaster kills the i-th master (by first slot) with SIGKILL, as a
// crash would, and returns it; its replica takes over after the node
// timeout. Restart brings it back, as a replica.
func (c *Cluster) KillMaster(i int) (*Server, error) {
	masters, err := c.Masters()
	if err != nil {
		return nil, err
	}
	if i < 0 || i >= len(masters) {
		return nil, fmt.Errorf("master %d of %d", i, len(masters))
	}
	masters[i].Kill()
	return masters[i], nil
}

// Failover kills the i-th master (see KillMaster) and waits up to
// timeout until its replica has taken over and the cluster is healthy.
func (c *Cluster) Failover(i int, timeout time.Duration) (*Server, error) {
	killed, err := c.KillMaster(i)
	if err != nil {
		return nil, err
	}
	return killed, c.WaitHealthy(timeout)
}

// Restart starts a killed node again on its port with its cluster
// configuration, so it rejoins (a former master as a replica of the node
// that replaced it), and waits until the cluster is healthy.
func (c *Cluster) Restart(s *Server) error {
	if err := s.Restart(); err != nil {
		return err
	}
	return c.WaitHealthy(clusterHealthyWithin)
}

// WaitHealthy waits until every live node reports cluster_state:ok with
// all 16384 slots served, every slot's master is live and not failed in
// any live node's view, and every live replica is in sync with its master.
func (c *Cluster) WaitHealthy(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := c.healthy()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cluster not healthy after %v: %w", timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (c *Cluster) healthy() error {
	live := c.live()
	if len(live) == 0 {
		return errors.New("no live node")
	}
	for _, s := range live {
		info, err := nodeCommand(s, "cluster", "info")
		if err != nil {
			return err
		}
		if !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_slots_ok:16384") {
			return fmt.Errorf("%s: cluster state not ok:\n%s", s.Addr, info)
		}
		nodes, err := clusterNodes(s)
		if err != nil {
			return err
		}
		for _, n := range nodes {
			srv := c.byAddr(n.addr)
			if srv == nil {
				return fmt.Errorf("%s knows %s, not a node of this cluster", s.Addr, n.addr)
			}
			if len(n.slots) > 0 && (n.failed || srv.cmd == nil) {
				return fmt.Errorf("%s: slots of %s served by a dead or failed node", s.Addr, n.addr)
			}
			if n.myself && !n.master {
				repl, err := nodeCommand(s, "info", "replication")
				if err != nil {
					return err
				}
				if !strings.Contains(repl, "master_link_status:up") {
					return fmt.Errorf("replica %s not in sync with its master", s.Addr)
				}
			}
		}
	}
	return nil
}

// Logs returns the end of every node's log, for a failed test to show.
func (c *Cluster) Logs() string {
	var b strings.Builder
	for _, s := range c.Nodes {
		log, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
		if len(log) > 2000 {
			log = log[len(log)-2000:]
		}
		fmt.Fprintf(&b, "--- %s\n%s", s.Addr, log)
	}
	return b.String()
}

// Stop kills every node and removes its files.
func (c *Cluster) Stop() {
	for _, s := range c.Nodes {
		s.Stop()
	}
}

func (c *Cluster) live() []*Server {
	var out []*Server
	for _, s := range c.Nodes {
		if s.cmd != nil {
			out = append(out, s)
		}
	}
	return out
}

func (c *Cluster) byAddr(addr string) *Server {
	for _, s := range c.Nodes {
		if s.Addr == addr {
			return s
		}
	}
	return nil
}

// clusterNode is one line of CLUSTER NODES.
type clusterNode struct {
	addr           string
	myself, master bool
	failed         bool // fail or pfail
	slots          []int
}

func clusterNodes(s *Server) ([]clusterNode, error) {
	out, err := nodeCommand(s, "cluster", "nodes")
	if err != nil {
		return nil, err
	}
	var nodes []clusterNode
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 {
			continue
		}
		addr := f[1]
		if i := strings.IndexAny(addr, "@,"); i >= 0 {
			addr = addr[:i]
		}
		n := clusterNode{addr: addr}
		for _, flag := range strings.Split(f[2], ",") {
			switch flag {
			case "myself":
				n.myself = true
			case "master":
				n.master = true
			case "fail", "fail?":
				n.failed = true
			}
		}
		for _, r := range f[8:] {
			if strings.HasPrefix(r, "[") {
				continue // a slot being imported or migrated
			}
			lo, _, _ := strings.Cut(r, "-")
			if v, err := strconv.Atoi(lo); err == nil {
				n.slots = append(n.slots, v)
			}
		}
		nodes = append(nodes, n)
	}
	return nodes, nil
}

// nodeCommand runs one command on s alone and returns its text reply.
func nodeCommand(s *Server, args ...any) (string, error) {
	c := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	out, err := c.Do(ctx, args...).Text()
	if err != nil {
		return "", fmt.Errorf("%s %v: %w", s.Addr, args, err)
	}
	return out, nil
}
