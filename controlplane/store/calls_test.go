package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/store"
	"github.com/switchboard-pbx/switchboard/controlplane/store/storetest"
	"github.com/switchboard-pbx/switchboard/protocol"
)

// fixture is an enterprise with one PBX, and a second enterprise with
// another, for isolation checks.
type fixture struct {
	s          *store.Store
	clk        *clock
	ent, other store.Enterprise
	agent, oth store.Agent
	nextSeq    map[string]uint64
}

func newFixture(t *testing.T, s *store.Store) *fixture {
	t.Helper()
	ctx := context.Background()
	f := &fixture{s: s, clk: newClock(), nextSeq: map[string]uint64{}}
	s.Now = f.clk.Now
	var err error
	if f.ent, err = s.CreateEnterprise(ctx, "0367", "june"); err != nil {
		t.Fatal(err)
	}
	if f.other, err = s.CreateEnterprise(ctx, "0420", "acme"); err != nil {
		t.Fatal(err)
	}
	if f.agent, _, err = s.CreateAgent(ctx, "0367", "pbx-june", ""); err != nil {
		t.Fatal(err)
	}
	if f.oth, _, err = s.CreateAgent(ctx, "0420", "pbx-acme", ""); err != nil {
		t.Fatal(err)
	}
	return f
}

// store numbers evs for agent a and stores them as one batch.
func (f *fixture) store(t *testing.T, a store.Agent, evs ...protocol.Event) []store.StoredEvent {
	t.Helper()
	for i := range evs {
		f.nextSeq[a.ID]++
		evs[i].Seq = f.nextSeq[a.ID]
	}
	got, err := f.s.StoreAgentEvents(context.Background(), a.ID, a.EnterpriseID, evs)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

var t0 = time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)

func at(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }

func answeredCall(id, from, to string, start int) []protocol.Event {
	ans := at(start + 2)
	end := at(start + 12)
	base := protocol.Event{CallID: id, LinkedID: id, Direction: "internal", From: from, To: to, Channel: "Local/" + from + "@inoffice"}
	ev := func(typ, status string, t time.Time) protocol.Event {
		e := base
		e.Type, e.Status, e.Time = typ, status, t
		return e
	}
	started := ev(protocol.EventCallStarted, protocol.CallRinging, at(start))
	ringing := ev(protocol.EventCallRinging, protocol.CallRinging, at(start+1))
	answered := ev(protocol.EventCallAnswered, protocol.CallInProgress, ans)
	answered.AnsweredAt, answered.AnsweredBy, answered.AnsweredChannel = &ans, to, "Local/"+to+"@inoffice-00000001;1"
	mon := ev(protocol.EventMonitorStarted, protocol.CallInProgress, at(start+3))
	ended := ev(protocol.EventCallEnded, protocol.CallCompleted, end)
	ended.AnsweredAt, ended.AnsweredBy = &ans, to
	ended.EndedAt, ended.Cause, ended.CauseText, ended.HungupBy, ended.DurationS, ended.BillsecS = &end, 16, "Normal Clearing", from, 12, 10
	return []protocol.Event{started, ringing, answered, mon, ended}
}

func busyCall(id, from, to string, start int) []protocol.Event {
	end := at(start + 1)
	base := protocol.Event{CallID: id, LinkedID: id, Direction: "outbound", From: from, To: to}
	s := base
	s.Type, s.Status, s.Time = protocol.EventCallStarted, protocol.CallQueued, at(start)
	e := base
	e.Type, e.Status, e.Time, e.EndedAt, e.Cause, e.CauseText, e.DurationS = protocol.EventCallEnded, protocol.CallBusy, end, &end, 17, "User busy", 1
	return []protocol.Event{s, e}
}

func TestCallHistory(t *testing.T) {
	t.Parallel()
	storetest.ForEachEngine(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		f := newFixture(t, s)
		// The answered call arrives in two batches, as agents send it.
		ac := answeredCall("1700.1", "150", "151", 0)
		f.store(t, f.agent, ac[:2]...)
		f.store(t, f.agent, ac[2:]...)
		f.store(t, f.agent, busyCall("1700.5", "150", "+375296254070", 20)...)
		f.store(t, f.agent, protocol.Event{Type: protocol.EventGap, Lost: 3}) // no call
		f.store(t, f.oth, busyCall("1700.1", "150", "200", 30)...)            // same id, other enterprise

		c, err := s.CallByID(ctx, f.ent.ID, "", "1700.1")
		if err != nil {
			t.Fatal(err)
		}
		want := store.Call{EnterpriseID: f.ent.ID, AgentID: f.agent.ID, CallID: "1700.1", Status: protocol.CallCompleted,
			Direction: "internal", From: "150", To: "151", Channel: "Local/150@inoffice", StartedAt: at(0), AnsweredAt: at(2),
			AnsweredBy: "151", AnsweredChannel: "Local/151@inoffice-00000001;1", EndedAt: at(12), CauseText: "Normal Clearing",
			HungupBy: "150", Monitored: true, FirstSeq: 1, LastSeq: 5}
		if c.Status != want.Status || c.Direction != want.Direction || c.From != want.From || c.To != want.To ||
			c.Channel != want.Channel || !c.StartedAt.Equal(want.StartedAt) || !c.AnsweredAt.Equal(want.AnsweredAt) ||
			c.AnsweredBy != want.AnsweredBy || c.AnsweredChannel != want.AnsweredChannel || !c.EndedAt.Equal(want.EndedAt) ||
			c.CauseText != want.CauseText || c.HungupBy != want.HungupBy || !c.Monitored || c.FirstSeq != 1 || c.LastSeq != 5 ||
			c.Cause == nil || *c.Cause != 16 || c.DurationS == nil || *c.DurationS != 12 || c.BillsecS == nil || *c.BillsecS != 10 ||
			c.AgentID != f.agent.ID {
			t.Fatalf("answered call = %+v\nwant %+v", c, want)
		}
		b, err := s.CallByID(ctx, f.ent.ID, f.agent.ID, "1700.5")
		if err != nil || b.Status != protocol.CallBusy || *b.Cause != 17 || b.AnsweredBy != "" || !b.AnsweredAt.IsZero() || b.Monitored {
			t.Fatalf("busy call = %+v, %v", b, err)
		}
		// Tenancy: the other enterprise's call of the same id is its own.
		o, err := s.CallByID(ctx, f.other.ID, "", "1700.1")
		if err != nil || o.To != "200" || o.Status != protocol.CallBusy {
			t.Fatalf("other enterprise's call = %+v, %v", o, err)
		}
		if _, err := s.CallByID(ctx, f.other.ID, "", "1700.5"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("other enterprise sees our call: %v", err)
		}
		if _, err := s.CallByID(ctx, f.ent.ID, f.oth.ID, "1700.1"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("PBX of another enterprise matched: %v", err)
		}

		for _, tc := range []struct {
			name string
			f    store.CallFilter
			want []string
		}{
			{"all newest first", store.CallFilter{}, []string{"1700.5", "1700.1"}},
			{"status", store.CallFilter{Statuses: []string{protocol.CallBusy}}, []string{"1700.5"}},
			{"two statuses", store.CallFilter{Statuses: []string{protocol.CallBusy, protocol.CallCompleted}}, []string{"1700.5", "1700.1"}},
			{"extension answered", store.CallFilter{Extension: "151"}, []string{"1700.1"}},
			{"extension caller", store.CallFilter{Extension: "150"}, []string{"1700.5", "1700.1"}},
			{"number", store.CallFilter{Number: "+375296254070"}, []string{"1700.5"}},
			{"number does not match answered_by", store.CallFilter{Number: "151", Statuses: []string{protocol.CallBusy}}, nil},
			{"since", store.CallFilter{Since: at(10)}, []string{"1700.5"}},
			{"until", store.CallFilter{Until: at(10)}, []string{"1700.1"}},
			{"pbx", store.CallFilter{AgentID: f.agent.ID}, []string{"1700.5", "1700.1"}},
			{"pbx of other enterprise", store.CallFilter{AgentID: f.oth.ID}, nil},
			{"direction", store.CallFilter{Direction: "outbound"}, []string{"1700.5"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				tc.f.EnterpriseID = f.ent.ID
				got, next, err := s.ListCalls(ctx, tc.f)
				if err != nil {
					t.Fatal(err)
				}
				var ids []string
				for _, c := range got {
					ids = append(ids, c.CallID)
				}
				if fmt.Sprint(ids) != fmt.Sprint(tc.want) || next != "" {
					t.Fatalf("ids = %v next %q, want %v", ids, next, tc.want)
				}
			})
		}
	})
}

func TestCallPaginationAndPrune(t *testing.T) {
	t.Parallel()
	storetest.ForEachEngine(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		f := newFixture(t, s)
		const n = 7
		for i := range n {
			// Two calls share each start second, so the cursor's tie-break
			// on id is exercised.
			f.store(t, f.agent, busyCall(fmt.Sprintf("c%d", i), "150", "160", i/2)...)
		}
		var seen []string
		cursor := ""
		for page := 0; ; page++ {
			got, next, err := s.ListCalls(ctx, store.CallFilter{EnterpriseID: f.ent.ID, Limit: 3, Cursor: cursor})
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range got {
				seen = append(seen, c.CallID)
			}
			if next == "" {
				break
			}
			if page > n {
				t.Fatal("pagination does not end")
			}
			cursor = next
		}
		if fmt.Sprint(seen) != "[c6 c5 c4 c3 c2 c1 c0]" {
			t.Fatalf("pages = %v", seen)
		}
		for _, bad := range []store.CallFilter{
			{Cursor: "nope!"}, {Limit: -1}, {Statuses: []string{"done"}}, {Since: at(5), Until: at(1)},
		} {
			bad.EnterpriseID = f.ent.ID
			if _, _, err := s.ListCalls(ctx, bad); !errors.Is(err, store.ErrInvalid) {
				t.Errorf("ListCalls(%+v) = %v, want ErrInvalid", bad, err)
			}
		}

		if old, err := s.OldestEventSeq(ctx, f.ent.ID); err != nil || old != 1 {
			t.Fatalf("OldestEventSeq = %d, %v", old, err)
		}
		// Events were received at the fixture clock's time; prune what is
		// older than a minute later: all of them. Calls started at t0+0..3s.
		f.clk.Advance(time.Hour)
		if n, err := s.PruneEvents(ctx, f.clk.Now()); err != nil || n != 14 {
			t.Fatalf("PruneEvents = %d, %v; want 14", n, err)
		}
		if n, err := s.PruneCalls(ctx, at(2)); err != nil || n != 4 {
			t.Fatalf("PruneCalls = %d, %v; want 4 (c0-c3)", n, err)
		}
		if old, err := s.OldestEventSeq(ctx, f.ent.ID); err != nil || old != 0 {
			t.Fatalf("OldestEventSeq after prune = %d, %v", old, err)
		}
		if last, _ := s.LastEventSeq(ctx, f.ent.ID); last != 14 {
			t.Fatalf("LastEventSeq after prune = %d: the sequence must survive pruning", last)
		}
		got, _, _ := s.ListCalls(ctx, store.CallFilter{EnterpriseID: f.ent.ID})
		if len(got) != 3 {
			t.Fatalf("calls left = %d, want 3", len(got))
		}
	})
}

// TestCallFoldMatchesUpsert: a call's events stored in one batch (folded
// in Go) and one event per batch (merged by the upsert) give the same row.
func TestCallFoldMatchesUpsert(t *testing.T) {
	t.Parallel()
	storetest.ForEachEngine(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		f := newFixture(t, s)
		f.store(t, f.agent, answeredCall("one", "150", "151", 0)...)
		for _, e := range answeredCall("many", "150", "151", 0) {
			f.store(t, f.agent, e)
		}
		a, err := s.CallByID(ctx, f.ent.ID, "", "one")
		if err != nil {
			t.Fatal(err)
		}
		b, err := s.CallByID(ctx, f.ent.ID, "", "many")
		if err != nil {
			t.Fatal(err)
		}
		norm := func(c store.Call) string {
			return fmt.Sprintf("%s %s %s %s %s %v %v %s %s %v %d %s %s %d %d %v", c.Status, c.Direction, c.From, c.To, c.Channel,
				c.StartedAt, c.AnsweredAt, c.AnsweredBy, c.AnsweredChannel, c.EndedAt, *c.Cause, c.CauseText, c.HungupBy,
				*c.DurationS, *c.BillsecS, c.Monitored)
		}
		if norm(a) != norm(b) || a.LastSeq-a.FirstSeq != 4 || b.LastSeq-b.FirstSeq != 4 {
			t.Fatalf("one batch:  %s\nper event: %s", norm(a), norm(b))
		}
	})
}
