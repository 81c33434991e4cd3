package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/switchboard-pbx/switchboard/controlplane/fleet"
	"github.com/switchboard-pbx/switchboard/controlplane/store"
)

// ErrSQLite: clustering asked of a store that cannot share itself.
var ErrSQLite = errors.New("SQLite is single-replica: several replicas need PostgreSQL (--db postgres://…)")

// Cluster is this replica's part in the cluster (or, without a secret,
// a lone replica's heartbeat). Build it with New, Register it before
// serving, Run its workers, and Deregister it after a graceful stop.
type Cluster struct {
	cfg    Config
	log    *slog.Logger
	st     *store.Store
	reg    *fleet.Registry
	signer *signer
	client *http.Client
	self   store.Replica

	// live is the replicas that beat within DeadAfter, by id (self
	// included once registered), refreshed every beat.
	liveMu sync.RWMutex
	live   map[string]store.Replica
	share  atomic.Int32

	owners  owners
	remote  remoteView
	broker  *Broker
	pending pendingEvents

	// ops are the claims and releases ownerLoop writes.
	ops chan ownerOp
}

// New validates cfg and builds the cluster; it touches nothing yet.
func New(cfg Config) (*Cluster, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Store == nil || cfg.Registry == nil {
		return nil, errors.New("cluster: Store and Registry are required")
	}
	if cfg.Clustered() && cfg.Store.Dialect() != "postgres" {
		return nil, fmt.Errorf("cluster: %w", ErrSQLite)
	}
	cfg.fill()
	if cfg.ID == "" {
		var b [8]byte
		_, _ = rand.Read(b[:])
		cfg.ID = "rpl_" + hex.EncodeToString(b[:])
	}
	if cfg.Hostname == "" {
		cfg.Hostname, _ = os.Hostname()
	}
	c := &Cluster{
		cfg: cfg,
		log: cfg.Logger.With("component", "cluster", "replica", cfg.ID),
		st:  cfg.Store,
		reg: cfg.Registry,
		self: store.Replica{ID: cfg.ID, URL: cfg.URL, Hostname: cfg.Hostname, PID: os.Getpid(), Version: cfg.Version,
			Clustered: cfg.Clustered()},
		live: map[string]store.Replica{},
	}
	c.share.Store(1)
	c.owners.init()
	c.remote.init()
	if cfg.Clustered() {
		c.signer = newSigner(cfg.Secret, cfg.SignatureWindow, cfg.Now)
		c.client = &http.Client{Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: cfg.PeerDialTimeout, KeepAlive: 30 * time.Second}).DialContext,
			TLSClientConfig:     cfg.PeerTLS,
			TLSHandshakeTimeout: cfg.PeerDialTimeout,
			MaxIdleConnsPerHost: 256,
			IdleConnTimeout:     90 * time.Second,
		}}
		c.broker = newBroker(c, cfg.Hub)
		c.pending.kick = make(chan struct{}, 1)
		c.ops = make(chan ownerOp, ownerOps)
	}
	return c, nil
}

// ID is this replica's id (rpl_…).
func (c *Cluster) ID() string { return c.cfg.ID }

// Clustered reports whether several replicas may run (a secret was given).
func (c *Cluster) Clustered() bool { return c.cfg.Clustered() }

// Name is how this replica is shown in the fleet view: its URL when
// clustered, else empty (a lone replica shows no owner).
func (c *Cluster) Name() string {
	if !c.Clustered() {
		return ""
	}
	return c.cfg.URL
}

// TicketKey is the key browser tickets are MACed with, the same on every
// replica; nil when not clustered (each process draws its own).
func (c *Cluster) TicketKey() []byte {
	if !c.Clustered() {
		return nil
	}
	return deriveKey(c.cfg.Secret, "event-tickets")
}

// Register records this replica's heartbeat row, refusing to start beside
// a replica it may not run with (see store.RegisterReplica). The error
// then names the live replica and the flags to add.
func (c *Cluster) Register(ctx context.Context) error {
	err := c.st.RegisterReplica(ctx, c.self, c.cfg.DeadAfter())
	var ce *store.ReplicaConflictError
	switch {
	case errors.As(err, &ce) && !c.Clustered():
		return fmt.Errorf("%w\nA second control plane on the same database must run clustered, and so must the one already running: "+
			"start every replica with --cluster-secret-file FILE (the same secret) and --replica-url URL (how the others reach it), "+
			"with --db postgres://…; or stop the other replica first", err)
	case errors.As(err, &ce):
		return fmt.Errorf("%w\nThat replica runs without clustering: restart it with --cluster-secret-file (the same secret as this one) "+
			"and --replica-url, or stop it", err)
	case err != nil:
		return fmt.Errorf("register replica: %w", err)
	}
	if err := c.refreshLive(ctx); err != nil {
		return err
	}
	if c.Clustered() {
		c.notifyReplica(ctx)
	}
	c.log.Info("replica registered", "url", c.cfg.URL, "clustered", c.Clustered(), "replicas_live", c.Share(),
		"heartbeat", c.cfg.Heartbeat, "dead_after", c.cfg.DeadAfter())
	return nil
}

// Deregister deletes this replica's row and releases whatever ownership
// it still records: called after its tunnels closed, on a graceful stop.
func (c *Cluster) Deregister(ctx context.Context) error {
	if err := c.st.DeregisterReplica(ctx, c.cfg.ID); err != nil {
		return fmt.Errorf("deregister replica: %w", err)
	}
	if c.Clustered() {
		c.notifyReplica(ctx)
	}
	c.log.Info("replica deregistered")
	return nil
}

func (c *Cluster) notifyReplica(ctx context.Context) {
	if err := c.st.Notify(ctx, Channel, []string{replicaMessage(c.cfg.ID)}); err != nil {
		c.log.Warn("announce replica", "err", err)
	}
}

// Run beats this replica's row and, when clustered, runs the LISTEN
// loop, the NOTIFY batcher, the status writer and the refresh of the
// other replicas' agents, until ctx ends.
func (c *Cluster) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { c.beatLoop(ctx); return nil })
	if c.Clustered() {
		g.Go(func() error { c.listenLoop(ctx); return nil })
		g.Go(func() error { c.notifyLoop(ctx); return nil })
		g.Go(func() error { c.statusLoop(ctx); return nil })
		g.Go(func() error { c.refreshLoop(ctx); return nil })
		g.Go(func() error { c.broker.run(ctx); return nil })
		g.Go(func() error { c.ownerLoop(ctx); return nil })
	}
	return g.Wait()
}

// beatLoop beats every Heartbeat. A replica whose row vanished (deleted
// as dead while it could not reach the store) registers again.
func (c *Cluster) beatLoop(ctx context.Context) {
	t := time.NewTicker(c.cfg.Heartbeat)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		bctx, cancel := context.WithTimeout(ctx, c.cfg.Heartbeat)
		err := c.st.HeartbeatReplica(bctx, c.cfg.ID)
		if errors.Is(err, store.ErrNotFound) {
			c.log.Warn("this replica's row is gone (counted dead?): registering again")
			err = c.st.RegisterReplica(bctx, c.self, c.cfg.DeadAfter())
		}
		if err == nil {
			err = c.refreshLive(bctx)
		}
		cancel()
		switch {
		case err != nil && ctx.Err() != nil:
			return
		case err != nil && !failing:
			c.log.Warn("replica heartbeat failed; the other replicas count this one dead after "+c.cfg.DeadAfter().String(), "err", err)
			failing = true
		case err == nil && failing:
			c.log.Info("replica heartbeat works again")
			failing = false
		}
	}
}

// refreshLive reads the live replicas.
func (c *Cluster) refreshLive(ctx context.Context) error {
	rs, err := c.st.LiveReplicas(ctx, c.cfg.DeadAfter())
	if err != nil {
		return err
	}
	live := make(map[string]store.Replica, len(rs))
	for _, r := range rs {
		live[r.ID] = r
	}
	c.liveMu.Lock()
	prev := len(c.live)
	c.live = live
	c.liveMu.Unlock()
	n := max(1, len(live))
	c.share.Store(int32(n))
	if prev != 0 && prev != len(live) {
		c.log.Info("live replicas changed", "replicas_live", len(live))
	}
	return nil
}

// replica returns a live replica by id.
func (c *Cluster) replica(id string) (store.Replica, bool) {
	c.liveMu.RLock()
	defer c.liveMu.RUnlock()
	r, ok := c.live[id]
	return r, ok
}

// peers lists the live replicas other than this one.
func (c *Cluster) peers() []store.Replica {
	c.liveMu.RLock()
	defer c.liveMu.RUnlock()
	out := make([]store.Replica, 0, len(c.live))
	for id, r := range c.live {
		if id != c.cfg.ID {
			out = append(out, r)
		}
	}
	return out
}

// Share is the number of live replicas (at least 1): each enforces
// 1/Share of a cluster-wide rate limit.
func (c *Cluster) Share() int { return int(c.share.Load()) }
