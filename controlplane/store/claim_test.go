package store_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/store"
	"github.com/switchboard-pbx/switchboard/controlplane/store/storetest"
)

// countBy counts claimed deliveries by webhook id.
func countBy(ds []store.Delivery) map[string]int {
	m := map[string]int{}
	for _, d := range ds {
		m[d.WebhookID]++
	}
	return m
}

// fairFixture: enterprise "other" has two webhooks and a backlog of 40
// calls (80 deliveries each), queued before enterprise "ent"'s one
// webhook gets 2 calls (4 deliveries).
type fairFixture struct {
	*fixture
	b1, b2, a1 store.Webhook
}

func newFairFixture(t *testing.T, s *store.Store) *fairFixture {
	t.Helper()
	ctx := context.Background()
	f := &fairFixture{fixture: newFixture(t, s)}
	var err error
	for _, w := range []struct {
		dst *store.Webhook
		ent int64
		url string
	}{{&f.b1, f.other.ID, "http://b1/"}, {&f.b2, f.other.ID, "http://b2/"}, {&f.a1, f.ent.ID, "http://a1/"}} {
		if *w.dst, err = s.CreateWebhook(ctx, store.Webhook{EnterpriseID: w.ent, URL: w.url}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 40 {
		f.store(t, f.oth, busyCall(fmt.Sprintf("b%d", i), "150", "160", i)...)
	}
	f.clk.Advance(time.Second)
	for i := range 2 {
		f.store(t, f.agent, busyCall(fmt.Sprintf("a%d", i), "150", "160", i)...)
	}
	return f
}

// TestClaimRoundRobinAndCaps: a backlog queued first does not starve
// another enterprise's webhook; caps count what is in flight across
// claims; a finished delivery frees its slot; a lease that runs out (a
// dead worker) frees it too.
func TestClaimRoundRobinAndCaps(t *testing.T) {
	t.Parallel()
	storetest.ForEachEngine(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		f := newFairFixture(t, s)
		c := store.Claim{Limit: 10, Lease: time.Minute, PerWebhook: 2, PerEnterprise: 3}

		// Round 1: the oldest of b1, b2, a1; round 2: b1 (other at 3 now),
		// b2 skipped (enterprise cap), a1.
		ds, rep, err := s.ClaimDeliveries(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		got := countBy(ds)
		if got[f.b1.ID]+got[f.b2.ID] != 3 || got[f.a1.ID] != 2 || len(ds) != 5 {
			t.Fatalf("claimed b1 %d, b2 %d, a1 %d (total %d); want 3 of the backlog's enterprise and 2 of a1",
				got[f.b1.ID], got[f.b2.ID], got[f.a1.ID], len(ds))
		}
		if rep.EnterprisesAtCap != 1 {
			t.Fatalf("report = %+v, want the backlog's enterprise at its cap", rep)
		}
		// Nothing finished: every cap is reached.
		more, rep, err := s.ClaimDeliveries(ctx, c)
		if err != nil || len(more) != 0 {
			t.Fatalf("second claim = %d deliveries, %v; want none (caps)", len(more), err)
		}
		if rep.WebhooksAtCap < 1 || rep.EnterprisesAtCap != 1 {
			t.Fatalf("second report = %+v", rep)
		}
		// a1 finishes one: its next delivery goes, the backlog's stay capped.
		for _, d := range ds {
			if d.WebhookID == f.a1.ID {
				if _, err := s.FinishAttempt(ctx, d.ID, store.AttemptOutcome{Attempt: store.DeliveryAttempt{Attempt: 1, StatusCode: 200}, Delivered: true}); err != nil {
					t.Fatal(err)
				}
				break
			}
		}
		more, _, err = s.ClaimDeliveries(ctx, c)
		if err != nil || len(more) != 1 || more[0].WebhookID != f.a1.ID {
			t.Fatalf("after a1 finished one: %+v, %v", countBy(more), err)
		}
		// The workers die: once the leases run out the rows are due again.
		f.clk.Advance(time.Minute + time.Second)
		again, _, err := s.ClaimDeliveries(ctx, c)
		if err != nil || len(again) != 5 {
			t.Fatalf("after the leases expired: %d, %v; want 5", len(again), err)
		}
	})
}

// TestWebhookSuspension: consecutive failures are counted per webhook; a
// suspended webhook's deliveries wait (others go on); after the
// suspension a failing webhook is probed one delivery at a time; a
// success resets it.
func TestWebhookSuspension(t *testing.T) {
	t.Parallel()
	storetest.ForEachEngine(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		f := newFairFixture(t, s)
		c := store.Claim{Limit: 20, Lease: time.Minute, PerWebhook: 4, ProbeAfter: 3}
		ds, _, err := s.ClaimDeliveries(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		var b1 []store.Delivery
		for _, d := range ds {
			if d.WebhookID == f.b1.ID {
				b1 = append(b1, d)
			}
		}
		if len(b1) != 4 {
			t.Fatalf("claimed %d of b1, want its cap of 4", len(b1))
		}
		failed := store.AttemptOutcome{Attempt: store.DeliveryAttempt{Attempt: 1, Error: "timed out"},
			RetryAt: f.clk.Now().Add(time.Hour), ReceiverFailed: true}
		var h store.WebhookHealth
		for _, d := range b1[:3] {
			if h, err = s.FinishAttempt(ctx, d.ID, failed); err != nil {
				t.Fatal(err)
			}
		}
		if h.Failures != 3 || h.Suspended {
			t.Fatalf("health = %+v after 3 failed attempts", h)
		}
		if ok, err := s.SuspendWebhook(ctx, f.b1.ID, f.clk.Now().Add(30*time.Second)); err != nil || !ok {
			t.Fatalf("SuspendWebhook = %v, %v", ok, err)
		}
		if ok, err := s.SuspendWebhook(ctx, f.b1.ID, f.clk.Now().Add(time.Hour)); err != nil || ok {
			t.Fatalf("second SuspendWebhook = %v, %v; want false: already suspended", ok, err)
		}
		// An attempt started before the suspension fails: same outage, not counted.
		if h, err = s.FinishAttempt(ctx, b1[3].ID, failed); err != nil || h.Failures != 3 || !h.Suspended {
			t.Fatalf("health = %+v, %v; want 3 failures, suspended", h, err)
		}
		// Release everything else's leases.
		for _, d := range ds {
			if d.WebhookID != f.b1.ID {
				if _, err := s.FinishAttempt(ctx, d.ID, store.AttemptOutcome{Attempt: store.DeliveryAttempt{Attempt: 1, StatusCode: 204}, Delivered: true}); err != nil {
					t.Fatal(err)
				}
			}
		}
		ds, _, err = s.ClaimDeliveries(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		if n := countBy(ds)[f.b1.ID]; n != 0 || len(ds) == 0 {
			t.Fatalf("while suspended: b1 %d of %d claimed", n, len(ds))
		}
		hook, err := s.WebhookByID(ctx, f.other.ID, f.b1.ID)
		if err != nil || hook.Failures != 3 || !hook.SuspendedUntil.After(f.clk.Now()) {
			t.Fatalf("webhook = failures %d, suspended until %v; %v", hook.Failures, hook.SuspendedUntil, err)
		}
		for _, d := range ds {
			if _, err := s.FinishAttempt(ctx, d.ID, store.AttemptOutcome{Attempt: store.DeliveryAttempt{Attempt: 1, StatusCode: 204}, Delivered: true}); err != nil {
				t.Fatal(err)
			}
		}
		// Suspension over: one probe at a time.
		f.clk.Advance(31 * time.Second)
		ds, _, err = s.ClaimDeliveries(ctx, c)
		if err != nil || countBy(ds)[f.b1.ID] != 1 {
			t.Fatalf("after the suspension: b1 %d claimed (want one probe), %v", countBy(ds)[f.b1.ID], err)
		}
		for _, d := range ds {
			if d.WebhookID == f.b1.ID {
				if h, err := s.FinishAttempt(ctx, d.ID, store.AttemptOutcome{Attempt: store.DeliveryAttempt{Attempt: 1, StatusCode: 200}, Delivered: true}); err != nil || h != (store.WebhookHealth{}) {
					t.Fatalf("probe delivered: health %+v, %v", h, err)
				}
			}
		}
		ds, _, err = s.ClaimDeliveries(ctx, c)
		if err != nil || countBy(ds)[f.b1.ID] != 4 {
			t.Fatalf("recovered: b1 %d claimed, want its cap of 4; %v", countBy(ds)[f.b1.ID], err)
		}
	})
}

// TestClaimCapsConcurrent: workers claiming at once (replicas on
// PostgreSQL, serialised by the advisory lock) never exceed a cap and
// never get the same delivery.
func TestClaimCapsConcurrent(t *testing.T) {
	t.Parallel()
	storetest.ForEachEngine(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		f := newFairFixture(t, s)
		c := store.Claim{Limit: 3, Lease: time.Minute, PerWebhook: 5, PerEnterprise: 7}
		var (
			mu   sync.Mutex
			seen = map[int64]int{}
			wg   sync.WaitGroup
		)
		for range 6 {
			wg.Go(func() {
				for range 5 {
					ds, _, err := s.ClaimDeliveries(ctx, c)
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					for _, d := range ds {
						seen[d.ID]++
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		byHook, byEnt := map[string]int{}, map[int64]int{}
		ds, _, err := s.ClaimDeliveries(ctx, store.Claim{Limit: 1, Lease: time.Minute}) // uncapped: one more proves rows remain
		if err != nil || len(ds) != 1 {
			t.Fatalf("uncapped claim = %d, %v", len(ds), err)
		}
		for id, n := range seen {
			if n != 1 {
				t.Fatalf("delivery %d claimed %d times", id, n)
			}
		}
		for _, w := range []store.Webhook{f.b1, f.b2, f.a1} {
			list, _, err := s.ListDeliveries(ctx, store.DeliveryFilter{EnterpriseID: w.EnterpriseID, WebhookID: w.ID, Limit: 500})
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range list {
				if seen[d.ID] > 0 {
					byHook[w.ID]++
					byEnt[w.EnterpriseID]++
				}
			}
		}
		for h, n := range byHook {
			if n > c.PerWebhook {
				t.Fatalf("webhook %s has %d in flight, cap %d", h, n, c.PerWebhook)
			}
		}
		if byEnt[f.other.ID] != c.PerEnterprise || byHook[f.a1.ID] != 4 {
			t.Fatalf("in flight: backlog enterprise %d (cap %d), a1 %d (all 4 of its deliveries)", byEnt[f.other.ID], c.PerEnterprise, byHook[f.a1.ID])
		}
	})
}
