package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/switchboard-pbx/switchboard/controlplane/store"
	"github.com/switchboard-pbx/switchboard/controlplane/store/storetest"
	"github.com/switchboard-pbx/switchboard/protocol"
)

// Many PBXs of one enterprise storing at once (on SQLite, group-committed
// together): every caller gets its own events back, the enterprise
// sequence has no gap and no repeat, and a batch the store refuses fails
// alone, not the batches committed with it.
func TestStoreAgentEventsConcurrent(t *testing.T) {
	storetest.ForEachEngine(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		ent, err := s.CreateEnterprise(ctx, "0367", "june")
		if err != nil {
			t.Fatal(err)
		}
		const agents, rounds, perBatch = 24, 5, 3
		ids := make([]string, agents)
		for i := range ids {
			a, _, err := s.CreateAgent(ctx, "0367", fmt.Sprintf("pbx-%d", i), "inoffice")
			if err != nil {
				t.Fatal(err)
			}
			ids[i] = a.ID
		}
		var mu sync.Mutex
		seqs := map[int64]string{}
		var wg sync.WaitGroup
		for i, id := range ids {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for r := 0; r < rounds; r++ {
					var batch []protocol.Event
					for k := 1; k <= perBatch; k++ {
						batch = append(batch, protocol.Event{Seq: uint64(r*perBatch + k), Type: protocol.EventCallStarted, CallID: fmt.Sprintf("c-%d-%d-%d", i, r, k)})
					}
					got, err := s.StoreAgentEvents(ctx, id, ent.ID, batch)
					if err != nil {
						t.Error(err)
						return
					}
					if len(got) != perBatch {
						t.Errorf("agent %s round %d: stored %d events, want %d", id, r, len(got), perBatch)
						return
					}
					mu.Lock()
					for k, se := range got {
						if se.AgentID != id || se.Event.CallID != batch[k].CallID {
							t.Errorf("agent %s got back %+v", id, se)
						}
						if prev, dup := seqs[se.Seq]; dup {
							t.Errorf("seq %d given to %s and %s", se.Seq, prev, id)
						}
						seqs[se.Seq] = id
					}
					mu.Unlock()
				}
			}()
		}
		// Refused batches (an agent of another enterprise) race the good ones.
		other, err := s.CreateEnterprise(ctx, "0368", "other")
		if err != nil {
			t.Fatal(err)
		}
		bad := make([]error, 8)
		for i := range bad {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, bad[i] = s.StoreAgentEvents(ctx, ids[i], other.ID, []protocol.Event{{Seq: 1000, Type: protocol.EventCallStarted}})
			}()
		}
		wg.Wait()
		for i, err := range bad {
			if !errors.Is(err, store.ErrNotFound) {
				t.Errorf("refused batch %d: err = %v, want ErrNotFound", i, err)
			}
		}
		want := agents * rounds * perBatch
		if len(seqs) != want {
			t.Fatalf("%d sequences handed out, want %d", len(seqs), want)
		}
		for seq := int64(1); seq <= int64(want); seq++ {
			if _, ok := seqs[seq]; !ok {
				t.Fatalf("sequence %d missing: the enterprise sequence has a gap", seq)
			}
		}
		stored, err := s.ListEvents(ctx, store.EventFilter{EnterpriseID: ent.ID, Limit: 5000})
		if err != nil {
			t.Fatal(err)
		}
		if len(stored) != want {
			t.Fatalf("%d events stored, want %d", len(stored), want)
		}
		for _, id := range ids {
			if acked, err := s.AgentAckedSeq(ctx, id); err != nil || acked != rounds*perBatch {
				t.Fatalf("agent %s acked = %d, %v; want %d", id, acked, err, rounds*perBatch)
			}
		}
	})
}
