package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/store"
	"github.com/switchboard-pbx/switchboard/controlplane/store/storetest"
	"github.com/switchboard-pbx/switchboard/protocol"
)

func evs(types map[uint64]string) []protocol.Event {
	var out []protocol.Event
	for seq := uint64(1); seq <= uint64(len(types)); seq++ {
		out = append(out, protocol.Event{Seq: seq, Type: types[seq], CallID: "c1", Time: time.Date(2026, 11, 24, 10, 0, int(seq), 0, time.UTC)})
	}
	return out
}

func TestStoreAgentEvents(t *testing.T) {
	storetest.ForEachEngine(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		ent, err := s.CreateEnterprise(ctx, "0367", "june")
		if err != nil {
			t.Fatal(err)
		}
		a, _, err := s.CreateAgent(ctx, "0367", "pbx-june", "inoffice")
		if err != nil {
			t.Fatal(err)
		}
		b, _, err := s.CreateAgent(ctx, "0367", "pbx-two", "inoffice")
		if err != nil {
			t.Fatal(err)
		}
		batch := evs(map[uint64]string{1: protocol.EventCallStarted, 2: protocol.EventCallRinging, 3: protocol.EventCallAnswered})
		got, err := s.StoreAgentEvents(ctx, a.ID, ent.ID, batch)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 3 || got[0].Seq != 1 || got[2].Seq != 3 || got[1].Event.Type != protocol.EventCallRinging {
			t.Fatalf("stored = %+v", got)
		}
		if acked, _ := s.AgentAckedSeq(ctx, a.ID); acked != 3 {
			t.Fatalf("acked = %d, want 3", acked)
		}
		// A resend of the same batch plus one new event stores only the new one.
		resend := append(batch, protocol.Event{Seq: 4, Type: protocol.EventCallEnded, CallID: "c1"})
		got, err = s.StoreAgentEvents(ctx, a.ID, ent.ID, resend)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].Seq != 4 || got[0].Event.Seq != 4 {
			t.Fatalf("resend stored = %+v, want only agent seq 4 as enterprise seq 4", got)
		}
		// A second PBX of the same enterprise continues the enterprise sequence.
		got, err = s.StoreAgentEvents(ctx, b.ID, ent.ID, evs(map[uint64]string{1: protocol.EventCallStarted}))
		if err != nil || len(got) != 1 || got[0].Seq != 5 {
			t.Fatalf("second agent = %+v, %v", got, err)
		}
		all, err := s.ListEvents(ctx, store.EventFilter{EnterpriseID: ent.ID, After: 2})
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != 3 || all[0].Seq != 3 || all[2].AgentID != b.ID {
			t.Fatalf("list after 2 = %+v", all)
		}
		only, err := s.ListEvents(ctx, store.EventFilter{EnterpriseID: ent.ID, Types: []string{protocol.EventCallEnded}, AgentID: a.ID})
		if err != nil || len(only) != 1 || only[0].Event.Type != protocol.EventCallEnded {
			t.Fatalf("filtered = %+v, %v", only, err)
		}
		if last, err := s.LastEventSeq(ctx, ent.ID); err != nil || last != 5 {
			t.Fatalf("last seq = %d, %v", last, err)
		}
		// Refusals change nothing.
		if _, err := s.StoreAgentEvents(ctx, "agt_nope", ent.ID, evs(map[uint64]string{1: "x"})); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown agent: %v", err)
		}
		bad := []protocol.Event{{Seq: 9, Type: "x"}, {Seq: 8, Type: "y"}}
		if _, err := s.StoreAgentEvents(ctx, a.ID, ent.ID, bad); !errors.Is(err, store.ErrInvalid) {
			t.Fatalf("decreasing batch: %v", err)
		}
		if last, _ := s.LastEventSeq(ctx, ent.ID); last != 5 {
			t.Fatalf("refused batches moved the sequence to %d", last)
		}
	})
}
