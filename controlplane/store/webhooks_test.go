package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/store"
	"github.com/switchboard-pbx/switchboard/controlplane/store/storetest"
	"github.com/switchboard-pbx/switchboard/protocol"
)

func TestWebhookCRUD(t *testing.T) {
	t.Parallel()
	storetest.ForEachEngine(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		f := newFixture(t, s)
		w, err := s.CreateWebhook(ctx, store.Webhook{EnterpriseID: f.ent.ID, URL: "https://crm.example/hook",
			EventTypes: []string{protocol.EventCallEnded}, Description: "CRM"})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(w.ID, "whk_") || !strings.HasPrefix(w.Secret, "whsec_") || w.CreatedAt.IsZero() {
			t.Fatalf("created = %+v", w)
		}
		given, err := s.CreateWebhook(ctx, store.Webhook{EnterpriseID: f.ent.ID, URL: "http://b.example/", Secret: "0123456789abcdef"})
		if err != nil || given.Secret != "0123456789abcdef" {
			t.Fatalf("given secret: %+v, %v", given, err)
		}
		got, err := s.WebhookByID(ctx, f.ent.ID, w.ID)
		if err != nil || got.URL != w.URL || got.Secret != w.Secret || fmt.Sprint(got.EventTypes) != "[call.ended]" || got.Description != "CRM" {
			t.Fatalf("WebhookByID = %+v, %v", got, err)
		}
		if _, err := s.WebhookByID(ctx, f.other.ID, w.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("other enterprise reads the webhook: %v", err)
		}
		if err := s.DeleteWebhook(ctx, f.other.ID, w.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("other enterprise deletes the webhook: %v", err)
		}
		list, err := s.ListWebhooks(ctx, f.ent.ID)
		if err != nil || len(list) != 2 || list[0].ID == list[1].ID {
			t.Fatalf("ListWebhooks = %+v, %v", list, err)
		}
		if err := s.DeleteWebhook(ctx, f.ent.ID, w.ID); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteWebhook(ctx, f.ent.ID, w.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("second delete: %v", err)
		}

		for _, tc := range []struct {
			name string
			w    store.Webhook
		}{
			{"no url", store.Webhook{}},
			{"url with space", store.Webhook{URL: "http://a b/"}},
			{"short secret", store.Webhook{URL: "http://a/", Secret: "short"}},
			{"secret with newline", store.Webhook{URL: "http://a/", Secret: "0123456789abcdef\n"}},
			{"bad type", store.Webhook{URL: "http://a/", EventTypes: []string{"a,b"}}},
			{"long description", store.Webhook{URL: "http://a/", Description: strings.Repeat("x", store.MaxWebhookDescriptionLen+1)}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				tc.w.EnterpriseID = f.ent.ID
				if _, err := s.CreateWebhook(ctx, tc.w); !errors.Is(err, store.ErrInvalid) {
					t.Fatalf("CreateWebhook = %v, want ErrInvalid", err)
				}
			})
		}
		for i := len(list) - 1; i < store.MaxWebhooksPerEnterprise; i++ {
			if _, err := s.CreateWebhook(ctx, store.Webhook{EnterpriseID: f.ent.ID, URL: "http://a/"}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.CreateWebhook(ctx, store.Webhook{EnterpriseID: f.ent.ID, URL: "http://a/"}); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("webhook over the limit: %v", err)
		}
	})
}

func TestWebhookOutbox(t *testing.T) {
	t.Parallel()
	storetest.ForEachEngine(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		f := newFixture(t, s)
		all, err := s.CreateWebhook(ctx, store.Webhook{EnterpriseID: f.ent.ID, URL: "http://all/"})
		if err != nil {
			t.Fatal(err)
		}
		ended, err := s.CreateWebhook(ctx, store.Webhook{EnterpriseID: f.ent.ID, URL: "http://ended/", EventTypes: []string{protocol.EventCallEnded}})
		if err != nil {
			t.Fatal(err)
		}
		otherPBX, err := s.CreateWebhook(ctx, store.Webhook{EnterpriseID: f.ent.ID, URL: "http://pbx/", AgentID: "agt_elsewhere"})
		if err != nil {
			t.Fatal(err)
		}
		foreign, err := s.CreateWebhook(ctx, store.Webhook{EnterpriseID: f.other.ID, URL: "http://foreign/"})
		if err != nil {
			t.Fatal(err)
		}
		f.store(t, f.agent, busyCall("c1", "150", "160", 0)...) // started + ended: 2 for all, 1 for ended

		// A resend of stored events adds nothing to the outbox.
		if _, err := s.StoreAgentEvents(ctx, f.agent.ID, f.ent.ID, []protocol.Event{{Seq: 2, Type: protocol.EventCallEnded, CallID: "c1"}}); err != nil {
			t.Fatal(err)
		}
		claimed, err := claimN(ctx, s, 10)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, d := range claimed {
			got = append(got, fmt.Sprintf("%s:%d:%s", d.Webhook.URL, d.Seq, d.EventType))
			if d.Event == nil || d.Event.Seq != d.Seq || d.Event.AgentID != f.agent.ID || d.Event.Event.CallID != "c1" || d.Webhook.Secret == "" {
				t.Fatalf("claimed delivery lacks its event or secret: %+v", d)
			}
		}
		if fmt.Sprint(got) != "[http://all/:1:call.started http://all/:2:call.ended http://ended/:2:call.ended]" &&
			fmt.Sprint(got) != "[http://all/:1:call.started http://ended/:2:call.ended http://all/:2:call.ended]" {
			t.Fatalf("claimed = %v", got)
		}
		slices.SortFunc(claimed, func(a, b store.Delivery) int {
			return strings.Compare(a.Webhook.URL+fmt.Sprint(a.Seq), b.Webhook.URL+fmt.Sprint(b.Seq))
		})
		_ = otherPBX
		_ = foreign
		// Leased: a second claim gets nothing until the lease ends.
		if again, err := claimN(ctx, s, 10); err != nil || len(again) != 0 {
			t.Fatalf("second claim = %d, %v", len(again), err)
		}
		d0, d1, d2 := claimed[0], claimed[1], claimed[2]
		f.clk.Advance(time.Second)
		retryAt := f.clk.Now().Add(10 * time.Second)
		mustFinish := func(id int64, o store.AttemptOutcome) {
			t.Helper()
			if _, err := s.FinishAttempt(ctx, id, o); err != nil {
				t.Fatal(err)
			}
		}
		mustFinish(d0.ID, store.AttemptOutcome{Attempt: store.DeliveryAttempt{Attempt: 1, Duration: 12 * time.Millisecond, StatusCode: 500, Error: "HTTP 500"}, RetryAt: retryAt})
		mustFinish(d1.ID, store.AttemptOutcome{Attempt: store.DeliveryAttempt{Attempt: 1, StatusCode: 204}, Delivered: true})
		mustFinish(d2.ID, store.AttemptOutcome{Attempt: store.DeliveryAttempt{Attempt: 1, Error: "connection refused"}})

		f.clk.Advance(5 * time.Second)
		if c, _ := claimN(ctx, s, 10); len(c) != 0 {
			t.Fatalf("claimed %d before the retry time", len(c))
		}
		f.clk.Advance(6 * time.Second)
		c, err := claimN(ctx, s, 10)
		if err != nil || len(c) != 1 || c[0].ID != d0.ID || c[0].Attempts != 1 {
			t.Fatalf("retry claim = %+v, %v", c, err)
		}
		mustFinish(d0.ID, store.AttemptOutcome{Attempt: store.DeliveryAttempt{Attempt: 2, StatusCode: 200}, Delivered: true})

		ds, next, err := s.ListDeliveries(ctx, store.DeliveryFilter{EnterpriseID: f.ent.ID, WebhookID: all.ID})
		if err != nil || next != 0 || len(ds) != 2 {
			t.Fatalf("ListDeliveries = %+v, %d, %v", ds, next, err)
		}
		first := ds[1] // newest first
		if first.Seq != 1 || first.Status != store.DeliveryDelivered || first.Attempts != 2 || first.LastStatusCode != 200 ||
			len(first.AttemptLog) != 2 || first.AttemptLog[0].StatusCode != 500 || first.AttemptLog[0].Error != "HTTP 500" ||
			first.AttemptLog[0].Duration != 12*time.Millisecond || first.AttemptLog[1].Attempt != 2 || first.FinishedAt.IsZero() {
			t.Fatalf("delivery = %+v", first)
		}
		fd, _, err := s.ListDeliveries(ctx, store.DeliveryFilter{EnterpriseID: f.ent.ID, WebhookID: ended.ID, Status: store.DeliveryFailed})
		if err != nil || len(fd) != 1 || fd[0].LastError != "connection refused" || fd[0].LastStatusCode != 0 {
			t.Fatalf("failed deliveries = %+v, %v", fd, err)
		}
		if _, _, err := s.ListDeliveries(ctx, store.DeliveryFilter{EnterpriseID: f.other.ID, WebhookID: all.ID}); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("other enterprise lists deliveries: %v", err)
		}
		if _, _, err := s.ListDeliveries(ctx, store.DeliveryFilter{EnterpriseID: f.ent.ID, WebhookID: all.ID, Status: "sent"}); !errors.Is(err, store.ErrInvalid) {
			t.Fatalf("bad status: %v", err)
		}
		// Pagination.
		p1, next, err := s.ListDeliveries(ctx, store.DeliveryFilter{EnterpriseID: f.ent.ID, WebhookID: all.ID, Limit: 1})
		if err != nil || len(p1) != 1 || next == 0 {
			t.Fatalf("page 1 = %d, next %d, %v", len(p1), next, err)
		}
		p2, next, err := s.ListDeliveries(ctx, store.DeliveryFilter{EnterpriseID: f.ent.ID, WebhookID: all.ID, Limit: 1, Before: next})
		if err != nil || len(p2) != 1 || next != 0 || p2[0].ID == p1[0].ID {
			t.Fatalf("page 2 = %+v, next %d, %v", p2, next, err)
		}

		// Finished deliveries are pruned; deleting a webhook takes its rows.
		f.clk.Advance(time.Hour)
		if n, err := s.PruneDeliveries(ctx, f.clk.Now()); err != nil || n != 3 {
			t.Fatalf("PruneDeliveries = %d, %v", n, err)
		}
		f.store(t, f.agent, busyCall("c2", "150", "160", 5)...)
		if err := s.DeleteWebhook(ctx, f.ent.ID, all.ID); err != nil {
			t.Fatal(err)
		}
		c, err = claimN(ctx, s, 10)
		if err != nil || len(c) != 1 || c[0].WebhookID != ended.ID {
			t.Fatalf("after delete, claim = %+v, %v", c, err)
		}
	})
}

// TestClaimDeliveriesConcurrent: workers claiming at once (replicas on
// PostgreSQL) never get the same delivery.
func TestClaimDeliveriesConcurrent(t *testing.T) {
	t.Parallel()
	storetest.ForEachEngine(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		f := newFixture(t, s)
		if _, err := s.CreateWebhook(ctx, store.Webhook{EnterpriseID: f.ent.ID, URL: "http://all/"}); err != nil {
			t.Fatal(err)
		}
		const calls = 50
		for i := range calls {
			f.store(t, f.agent, busyCall(fmt.Sprintf("c%d", i), "150", "160", i)...)
		}
		var (
			mu   sync.Mutex
			seen = map[int64]int{}
			wg   sync.WaitGroup
		)
		for range 4 {
			wg.Go(func() {
				for {
					c, err := claimN(ctx, s, 7)
					if err != nil {
						t.Error(err)
						return
					}
					if len(c) == 0 {
						return
					}
					mu.Lock()
					for _, d := range c {
						seen[d.ID]++
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if len(seen) != 2*calls {
			t.Fatalf("claimed %d distinct deliveries, want %d", len(seen), 2*calls)
		}
		for id, n := range seen {
			if n != 1 {
				t.Fatalf("delivery %d claimed %d times", id, n)
			}
		}
	})
}

// claimN claims up to n deliveries with no caps and a minute's lease.
func claimN(ctx context.Context, s *store.Store, n int) ([]store.Delivery, error) {
	ds, _, err := s.ClaimDeliveries(ctx, store.Claim{Limit: n, Lease: time.Minute})
	return ds, err
}
