package systemtest

import (
	"crypto/rand"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/store/storetest"
)

// Cluster is several control planes clustered on one PostgreSQL database,
// as several `switchboard serve --cluster-secret-file F --replica-url U`
// would run, each on its own loopback port. Operator tokens minted by
// any replica's JWT work on all of them.
type Cluster struct {
	Replicas []*Server
	// Secret is the cluster secret the replicas share.
	Secret []byte
	// DSN is their database.
	DSN string
}

// NewCluster starts n clustered replicas that stop when the test ends.
// o.Engine is ignored (clustering needs PostgreSQL); o.Config.Cluster's
// heartbeat and refresh default to fractions of a second here, so a test
// sees the cluster settle quickly.
func NewCluster(t testing.TB, n int, o Options) *Cluster {
	t.Helper()
	c := &Cluster{Secret: []byte(rand.Text() + rand.Text()), DSN: storetest.PostgresDSN(t)}
	jwtSecret := []byte(rand.Text() + rand.Text())
	if o.Config.Cluster.Heartbeat == 0 {
		o.Config.Cluster.Heartbeat = 250 * time.Millisecond
	}
	if o.Config.Cluster.Refresh == 0 {
		o.Config.Cluster.Refresh = 200 * time.Millisecond
	}
	if o.Config.Cluster.StatusInterval == 0 {
		o.Config.Cluster.StatusInterval = 50 * time.Millisecond
	}
	for i := range n {
		ro := o
		ro.Config.Cluster.Secret = c.Secret
		addr := freeAddr(t)
		ro.Config.Cluster.URL = "http://" + addr
		s := newServer(t, ro, c.DSN, jwtSecret)
		s.Logger = s.Logger.With("replica", fmt.Sprint(i))
		s.cfg.Logger = s.Logger
		s.addr, s.URL = addr, "http://"+addr
		s.start(t)
		c.Replicas = append(c.Replicas, s)
	}
	c.WaitReplicas(t, n)
	return c
}

// WaitReplicas waits until every running replica counts n live replicas.
func (c *Cluster) WaitReplicas(t testing.TB, n int) {
	t.Helper()
	deadline := time.Now().Add(startTimeout)
	for _, s := range c.Replicas {
		for s.CP().Cluster().Share() != n {
			if time.Now().After(deadline) {
				t.Fatalf("systemtest: replica %s counts %d live replicas, want %d", s.URL, s.CP().Cluster().Share(), n)
			}
			time.Sleep(pollEvery)
		}
	}
}

// freeAddr reserves a loopback port and returns its address: a replica's
// URL must be known before it listens.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("systemtest: %v", err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}
