package cluster_test

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/cluster"
	"github.com/switchboard-pbx/switchboard/controlplane/fleet"
	"github.com/switchboard-pbx/switchboard/controlplane/store/storetest"
	"github.com/switchboard-pbx/switchboard/internal/systemtest"
	"github.com/switchboard-pbx/switchboard/protocol"
)

// TestCallStoreTooSlow is the rolling restart's 504s in small. While a
// stopped replica's PBXs reconnected elsewhere, the store was too busy to
// answer the owner lookup of a PBX no replica's view held (its holder
// deregistered) within the request's AMI timeout. The lookup's
// context.DeadlineExceeded was wrapped into Call's error, which the API
// maps to 504 ami_timeout: a failure the client must not retry, for a
// request that was never sent. It must be ErrDirectoryDown (503 with
// Retry-After), never a deadline.
func TestCallStoreTooSlow(t *testing.T) {
	t.Parallel()
	dsn := storetest.PostgresDSN(t)
	st := storetest.Open(t, dsn)
	c, err := cluster.New(cluster.Config{Store: st, Registry: fleet.NewRegistry(nil), Secret: []byte(strings.Repeat("s", 32)), URL: "http://127.0.0.1:9"})
	if err != nil {
		t.Fatal(err)
	}
	// Another session holds the ownership table: the lookup waits.
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.Exec(`LOCK TABLE agent_owners IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err = c.Call(ctx, "agt_x", protocol.OpPing, nil, nil)
	if !errors.Is(err, fleet.ErrDirectoryDown) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, fleet.ErrOffline) {
		t.Fatalf("Call with the store too slow to name the holder = %v, want ErrDirectoryDown and no deadline", err)
	}
}

// TestStoppedHolderRefusedWithoutStore: after a replica stops, requests
// for its PBXs that have not reconnected yet are refused at once (503,
// its holder is gone) for DeadAfter, without asking the store who holds
// them: in a rolling restart thousands reconnect then, and the store is
// at its slowest (TestCallStoreTooSlow).
func TestStoppedHolderRefusedWithoutStore(t *testing.T) {
	t.Parallel()
	var o systemtest.Options
	o.Config.Cluster.Heartbeat = time.Second // DeadAfter 3 s
	c := systemtest.NewCluster(t, 3, o)
	r0, r1 := c.Replicas[0], c.Replicas[1]
	r0.Enterprise(t, "0367", "Acme")
	pbx := r0.AddPBX(t, "0367") // knows only replica 0: it stays away
	cl := r1.CP().Cluster()
	waitFor(t, "replica 1 to see the PBX", 10*time.Second, func() bool { _, ok := cl.Get(pbx.ID); return ok })
	r0.Stop()
	waitFor(t, "replica 1 to count two live replicas", 10*time.Second, func() bool { return cl.Share() == 2 })
	time.Sleep(500 * time.Millisecond) // refreshes (every 200 ms) without replica 0's rows
	db, err := sql.Open("pgx", c.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.Exec(`LOCK TABLE agent_owners IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var re *fleet.ReplicaError
	if err := cl.Call(ctx, pbx.ID, protocol.OpPing, nil, nil); !errors.As(err, &re) || re.Sent {
		t.Fatalf("Call for a PBX of the stopped replica = %v, want a ReplicaError at once (nothing sent)", err)
	}
	if ctx.Err() != nil {
		t.Fatal("the refusal waited for the request's deadline")
	}
	// The on-call engineer reads which replica left, by the URL it
	// served on, not its internal id.
	if msg := re.Error(); !strings.Contains(msg, r0.URL) || !strings.Contains(msg, "left the cluster") {
		t.Errorf("refusal says %q, want it to name %s and say it left the cluster", msg, r0.URL)
	}
	// Past DeadAfter the store is asked again: the PBX is not connected.
	_ = tx.Rollback()
	waitFor(t, "the stopped replica's entry to expire", 10*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		err := cl.Call(ctx, pbx.ID, protocol.OpPing, nil, nil)
		return errors.Is(err, fleet.ErrOffline) && !errors.As(err, &re)
	})
}
