package cluster_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/cluster"
	"github.com/switchboard-pbx/switchboard/internal/systemtest"
	"github.com/switchboard-pbx/switchboard/protocol/ami/amitest"
)

// TestRemoteViewKeptWhileUnchanged: another replica's PBX keeps its view
// (the same *fleet.Conn, whose encoded fleet row is cached) across
// refreshes while its row does not change, and gets a new one, showing
// the change, when it does.
func TestRemoteViewKeptWhileUnchanged(t *testing.T) {
	t.Parallel()
	c := systemtest.NewCluster(t, 2, systemtest.Options{})
	r0, r1 := c.Replicas[0], c.Replicas[1]
	r0.Enterprise(t, "0367", "Acme")
	key := r0.APIKey(t, "0367")
	pbx := r0.AddPBX(t, "0367", systemtest.PBXOptions{AMI: []amitest.Option{amitest.WithAnswerWait(time.Minute)}})
	dir := r1.CP().Cluster()
	// The row changes once more after the claim: when the agent's first
	// status is written (the claim carries none). From then on it is
	// unchanged until the status changes or a minute passes.
	waitFor(t, "replica 1 to read the PBX's row with its first status", 10*time.Second, func() bool {
		v, ok := dir.Get(pbx.ID)
		if !ok || v.SessionID == "" {
			return false
		}
		_, at := v.Status()
		return !at.IsZero()
	})
	first, _ := dir.Get(pbx.ID)
	// Several refreshes (every 200 ms here) of an unchanged row.
	time.Sleep(time.Second)
	if v, _ := dir.Get(pbx.ID); v != first {
		t.Fatalf("the view of an unchanged row was replaced")
	}
	if r := originate(t, r1, key, pbx.ID, "150", "+375296254070"); r.Status != 201 {
		t.Fatalf("originate: %d %s", r.Status, r.Body)
	}
	waitFor(t, "replica 1 to show the PBX's live call", 10*time.Second, func() bool {
		v, ok := dir.Get(pbx.ID)
		st, _ := v.Status()
		return ok && v != first && st.LiveChannels > 0
	})
}

// TestRefreshWhileClaimsArrive: the refresh reads the remote view while
// announced claims write to it (run with -race; a concurrent map read and
// write also stops the process).
func TestRefreshWhileClaimsArrive(t *testing.T) {
	t.Parallel()
	c := systemtest.NewCluster(t, 2, systemtest.Options{})
	r0, r1 := c.Replicas[0], c.Replicas[1]
	r0.Enterprise(t, "0367", "Acme")
	pbx := r0.AddPBX(t, "0367")
	cl := r1.CP().Cluster()
	waitFor(t, "replica 1 to read the PBX's row", 10*time.Second, func() bool {
		v, ok := cl.Get(pbx.ID)
		return ok && v.SessionID != ""
	})
	// Refreshes run every 200 ms here: a second of claims spans several.
	end := time.Now().Add(time.Second)
	for i := 0; time.Now().Before(end); i++ {
		cluster.SetRemoteOwner(cl, fmt.Sprintf("agt_claim%d", i%1000), r0.CP().Cluster().ID(), int64(i))
		if i%1000 == 999 {
			time.Sleep(10 * time.Millisecond)
		}
	}
	if _, ok := cl.Get(pbx.ID); !ok {
		t.Fatal("the PBX is gone from replica 1's view")
	}
}
