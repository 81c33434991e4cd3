package cluster_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-pbx/switchboard/controlplane/events"
	"github.com/switchboard-pbx/switchboard/controlplane/store"
	"github.com/switchboard-pbx/switchboard/internal/systemtest"
	"github.com/switchboard-pbx/switchboard/protocol"
)

// settledSeq waits until the enterprise's latest sequence stops moving
// (the calls placed have ended) and returns it.
func settledSeq(t *testing.T, s *systemtest.Server, enterpriseID int64, atLeast int64) int64 {
	t.Helper()
	var last, prev int64 = -1, -2
	deadline := time.Now().Add(20 * time.Second)
	for last != prev || last < atLeast {
		if time.Now().After(deadline) {
			t.Fatalf("events did not settle: last seq %d (want at least %d)", last, atLeast)
		}
		prev = last
		time.Sleep(300 * time.Millisecond)
		var err error
		if last, err = s.Store().LastEventSeq(context.Background(), enterpriseID); err != nil {
			t.Fatal(err)
		}
	}
	return last
}

// calls places n calls via s on each PBX, which answer and end by
// themselves (the fake's defaults).
func calls(t *testing.T, s *systemtest.Server, key string, n int, pbxs ...*systemtest.PBX) {
	t.Helper()
	for i := range n {
		for _, p := range pbxs {
			if r := originate(t, s, key, p.ID, "150", fmt.Sprintf("+3752962540%02d", i)); r.Status != http.StatusCreated {
				t.Fatalf("originate: %d %s", r.Status, r.Body)
			}
		}
	}
	for _, p := range pbxs {
		for _, ch := range p.AMI.Channels() {
			_ = p.AMI.Hangup(ch.Uniqueid, 16)
		}
	}
}

// TestEventsAcrossReplicas: a subscriber on one replica gets every event
// of its enterprise once, in order, whichever replica stored it; after=
// resumes on any replica; and a dropped LISTEN connection loses nothing.
func TestEventsAcrossReplicas(t *testing.T) {
	t.Parallel()
	c := systemtest.NewCluster(t, 3, systemtest.Options{})
	r0, r1, r2 := c.Replicas[0], c.Replicas[1], c.Replicas[2]
	ent := r0.Enterprise(t, "0367", "Acme")
	key := r0.APIKey(t, "0367")
	pbxA := r0.AddPBX(t, "0367", systemtest.PBXOptions{Name: "pbx-a"})
	pbxB := r2.AddPBX(t, "0367", systemtest.PBXOptions{Name: "pbx-b"})

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, wsURL(r1, "/v1/events?after=0"), &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + key}}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()

	calls(t, r0, key, 5, pbxA, pbxB)
	last := settledSeq(t, r0, ent.ID, 10)
	got := readUntil(t, ctx, ws, 1, last)
	stored := map[string]int{}
	for _, e := range got {
		stored[e.PBX]++
	}
	if stored[pbxA.ID] == 0 || stored[pbxB.ID] == 0 {
		t.Fatalf("events by PBX = %v: both replicas' batches should reach replica 1", stored)
	}

	// after= resumes on another replica.
	var page struct {
		Events []event `json:"events"`
	}
	r := r2.Do(t, "GET", fmt.Sprintf("/v1/events?after=%d&limit=1000", last-3), key, nil)
	r.JSON(t, &page)
	if len(page.Events) != 3 || page.Events[0].Seq != last-2 || page.Events[2].Seq != last {
		t.Fatalf("after=%d on replica 2: %+v", last-3, page.Events)
	}

	// Every replica's LISTEN connection drops; what is stored meanwhile
	// still reaches the subscriber, once and in order.
	db, err := sql.Open("pgx", c.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'LISTEN %'`); err != nil {
		t.Fatal(err)
	}
	calls(t, r0, key, 3, pbxA, pbxB)
	last2 := settledSeq(t, r0, ent.ID, last+6)
	readUntil(t, ctx, ws, last+1, last2)
	waitFor(t, "replica 1 to count its lost LISTEN connection", 5*time.Second, func() bool {
		return r1.Metric(t, "switchboard_cluster_listen_lost_total") >= 1
	})
	// Batches were announced in fewer NOTIFYs than events.
	notifies := r0.Metric(t, "switchboard_cluster_notify_statements_total") + r2.Metric(t, "switchboard_cluster_notify_statements_total")
	if notifies == 0 || notifies > float64(last2) {
		t.Fatalf("%v NOTIFY statements for %d events", notifies, last2)
	}
}

// TestWebhooksOneDeliverer: each delivery is made by one replica; those a
// replica claimed and never finished (it died) are taken over after the
// lease, and still delivered once.
func TestWebhooksOneDeliverer(t *testing.T) {
	t.Parallel()
	var o systemtest.Options
	// Workers claim when woken by a stored batch or a finished attempt, not
	// on a timer: the test decides when the dead replica's lease is seen.
	o.Config.Events.DeliveryPollInterval = time.Hour
	c := systemtest.NewCluster(t, 3, o)
	r0 := c.Replicas[0]
	ent := r0.Enterprise(t, "0367", "Acme")
	key := r0.APIKey(t, "0367")

	var mu sync.Mutex
	bySeq := map[int64]int{}
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var e event
		if json.Unmarshal(b, &e) == nil {
			mu.Lock()
			bySeq[e.Seq]++
			mu.Unlock()
		}
	}))
	defer recv.Close()
	if r := c.Replicas[1].Do(t, "POST", "/v1/webhooks", key, map[string]any{"url": recv.URL}); r.Status != http.StatusCreated {
		t.Fatalf("create webhook: %d %s", r.Status, r.Body)
	}
	delivered := func(upTo int64) bool {
		mu.Lock()
		defer mu.Unlock()
		for s := int64(1); s <= upTo; s++ {
			if bySeq[s] == 0 {
				return false
			}
		}
		return true
	}
	var pbxs []*systemtest.PBX
	for i, s := range c.Replicas {
		pbxs = append(pbxs, s.AddPBX(t, "0367", systemtest.PBXOptions{Name: fmt.Sprintf("pbx-%d", i)}))
	}
	calls(t, r0, key, 3, pbxs...)
	last := settledSeq(t, r0, ent.ID, 9)
	waitFor(t, "every event delivered", 20*time.Second, func() bool { return delivered(last) })

	// A replica stores a batch, claims its deliveries and dies.
	ctx := context.Background()
	ghost, _, err := r0.Store().CreateAgent(ctx, "0367", "pbx-ghost", "")
	if err != nil {
		t.Fatal(err)
	}
	evs := []protocol.Event{{Seq: 1, Type: protocol.EventCallStarted, CallID: "ghost-1"}, {Seq: 2, Type: protocol.EventCallEnded, CallID: "ghost-1"}}
	if _, err := r0.Store().StoreAgentEvents(ctx, ghost.ID, ent.ID, evs); err != nil {
		t.Fatal(err)
	}
	const lease = 2 * time.Second
	claimed, _, err := r0.Store().ClaimDeliveries(ctx, store.Claim{Limit: 10, Lease: lease})
	if err != nil || len(claimed) != 2 {
		t.Fatalf("the dying replica claimed %d deliveries, %v; want 2", len(claimed), err)
	}
	leased := time.Now().Add(lease)
	ghostDelivered := func() int {
		mu.Lock()
		defer mu.Unlock()
		return bySeq[claimed[0].Seq] + bySeq[claimed[1].Seq]
	}
	// While leased, a worker woken by another batch leaves them alone.
	calls(t, r0, key, 1, pbxs[0])
	last = settledSeq(t, r0, ent.ID, last+3)
	waitFor(t, "the new batch delivered", 20*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return bySeq[last] == 1
	})
	if n := ghostDelivered(); n != 0 && time.Now().Before(leased) {
		t.Fatalf("%d leased deliveries of the dead replica were delivered during their lease", n)
	}
	// Once the lease ran out, a live replica's worker (woken by the next
	// stored batch) takes them over.
	time.Sleep(time.Until(leased))
	calls(t, r0, key, 1, pbxs[0])
	last = settledSeq(t, r0, ent.ID, last+3)
	waitFor(t, "the dead replica's deliveries taken over", 20*time.Second, func() bool { return delivered(last) })
	time.Sleep(200 * time.Millisecond) // a duplicate would have arrived by now
	mu.Lock()
	defer mu.Unlock()
	for s := int64(1); s <= last; s++ {
		if bySeq[s] != 1 {
			t.Fatalf("seq %d delivered %d times, want once (deliveries: %v)", s, bySeq[s], bySeq)
		}
	}
}

// TestNotifyAtOnceThenRateBound: a batch stored after a quiet spell is
// announced at once, not after NotifyDelay; batches stored within
// NotifyDelay of the last NOTIFY go together in the next one.
func TestNotifyAtOnceThenRateBound(t *testing.T) {
	t.Parallel()
	var o systemtest.Options
	o.Config.Cluster.NotifyDelay = 2 * time.Second
	c := systemtest.NewCluster(t, 2, o)
	r0 := c.Replicas[0]
	ent := r0.Enterprise(t, "0367", "Acme")
	b := r0.CP().Cluster().Broker()
	notifies := func() float64 { return r0.Metric(t, "switchboard_cluster_notify_statements_total") }
	start := time.Now()
	b.Publish(events.Batch{EnterpriseID: ent.ID, First: 1, Last: 1})
	waitFor(t, "the first batch's NOTIFY", time.Second, func() bool { return notifies() == 1 })
	if took := time.Since(start); took >= o.Config.Cluster.NotifyDelay {
		t.Fatalf("the first batch was announced after %v, the whole NotifyDelay", took)
	}
	for i := range int64(20) {
		b.Publish(events.Batch{EnterpriseID: ent.ID, First: 2 + i, Last: 2 + i})
	}
	if n := notifies(); n != 1 {
		t.Fatalf("%v NOTIFYs right after 20 more batches, want 1 (they wait for NotifyDelay after the first)", n)
	}
	waitFor(t, "the 20 batches' one NOTIFY", 5*time.Second, func() bool { return notifies() >= 2 })
	time.Sleep(500 * time.Millisecond)
	if n := notifies(); n != 2 {
		t.Fatalf("%v NOTIFYs for 21 batches, want 2", n)
	}
}
