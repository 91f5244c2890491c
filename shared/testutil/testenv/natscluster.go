package testenv

import (
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/mieweb/pulsevault/shared/testutil/tier"
)

// NATSCluster starts n embedded NATS servers with JetStream, clustered on
// 127.0.0.1, and waits until JetStream has formed over all of them, so
// streams with up to n replicas can be created. It returns a client URL
// listing every server; the servers stop with t.
//
// This is the shape of a production NATS (infra/helm: three nodes), so tests
// can prove that streams and key-value buckets get the replicas asked for.
//
// Under -short (the unit tier) it skips t: a cluster takes seconds to
// elect its leaders.
func NATSCluster(t testing.TB, n int) string {
	t.Helper()
	tier.Slow(t, fmt.Sprintf("a %d-node NATS cluster", n))
	// A JetStream cluster needs its routes configured up front, so the route
	// ports are picked (free ones, held until all are known) before start.
	ports := make([]int, n)
	routes := make([]string, n)
	held := make([]net.Listener, n)
	for i := range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		held[i] = l
		ports[i] = l.Addr().(*net.TCPAddr).Port
		routes[i] = fmt.Sprintf("nats://127.0.0.1:%d", ports[i])
	}
	opts := make([]*server.Options, n)
	for i := range n {
		opts[i] = &server.Options{
			ServerName:         fmt.Sprintf("test-%d", i),
			Host:               "127.0.0.1",
			Port:               server.RANDOM_PORT,
			JetStream:          true,
			StoreDir:           filepath.Join(t.TempDir(), fmt.Sprint(i)),
			NoSigs:             true,
			NoLog:              true,
			JetStreamMaxMemory: 32 << 20,
			Cluster:            server.ClusterOpts{Name: "pulsevault-test", Host: "127.0.0.1", Port: ports[i]},
			Routes:             server.RoutesFromStr(strings.Join(routes, ",")),
		}
	}
	servers := make([]*server.Server, n)
	for i, o := range opts {
		s, err := server.NewServer(o)
		if err != nil {
			t.Fatalf("nats cluster: %v", err)
		}
		servers[i] = s
	}
	// The held ports are released only now, just before the servers bind them.
	for _, l := range held {
		l.Close()
	}
	for _, s := range servers {
		go s.Start()
		t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	}
	urls := make([]string, n)
	for i, s := range servers {
		if !s.ReadyForConnections(20 * time.Second) {
			t.Fatalf("nats cluster: %s not ready in 20s", s.Name())
		}
		urls[i] = s.ClientURL()
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		current, leaders := 0, 0
		for _, s := range servers {
			if s.JetStreamIsCurrent() && s.NumRoutes() >= n-1 {
				current++
			}
			if s.JetStreamIsLeader() {
				leaders++
			}
		}
		if current == n && leaders == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nats cluster: JetStream not formed over %d servers in 30s", n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return strings.Join(urls, ",")
}
