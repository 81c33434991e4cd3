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
