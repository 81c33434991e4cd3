package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/store"
	"github.com/switchboard-pbx/switchboard/controlplane/store/storetest"
)

func hangupAudit(entID int64, n int) store.AuditEntry {
	return store.AuditEntry{
		EnterpriseID: entID, ActorType: store.ActorOperator, ActorID: "op-7", Action: "asterisk_hangup_call",
		AgentID: "agt_x", Channel: fmt.Sprintf("PJSIP/150-%08d", n), UniqueID: fmt.Sprintf("1700000000.%d", n),
		Reason: "customer asked", Result: store.ResultSuccess, RequestID: "req-1", ClientAddr: "192.0.2.7",
	}
}

func TestAudit(t *testing.T) {
	t.Parallel()
	storetest.ForEachEngine(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		clk := newClock()
		s.Now = clk.Now
		e, _ := s.CreateEnterprise(ctx, "0367", "Acme")
		other, _ := s.CreateEnterprise(ctx, "0400", "Other")

		full := store.AuditEntry{
			EnterpriseID: e.ID, ActorType: store.ActorAPIKey, ActorID: "key_abc", Action: "asterisk_originate_call",
			AgentID: "agt_1", Channel: "Local/150@inoffice", UniqueID: "1700000000.1", FromExt: "150",
			ToNumber: "+375296254070", Reason: "callback", Result: store.ResultError, ErrorCode: "ami_timeout",
			RequestID: "req-42", ClientAddr: "198.51.100.4", Details: json.RawMessage(`{"cause":16}`),
		}
		stored, err := s.InsertAudit(ctx, full)
		if err != nil {
			t.Fatal(err)
		}
		if stored.ID == 0 || !stored.At.Equal(clk.Now().Truncate(time.Microsecond)) {
			t.Fatalf("stored %+v", stored)
		}
		// A system row with no enterprise and no optional fields.
		clk.Advance(time.Second)
		sys, err := s.InsertAudit(ctx, store.AuditEntry{ActorType: store.ActorSystem, Action: "agent_revoked", Result: store.ResultSuccess})
		if err != nil {
			t.Fatal(err)
		}
		explicit := clk.Now().Add(-time.Hour)
		o := hangupAudit(other.ID, 1)
		o.At = explicit
		if o, err = s.InsertAudit(ctx, o); err != nil || !o.At.Equal(explicit) {
			t.Fatalf("explicit time: %+v, %v", o, err)
		}

		page, next, err := s.ListAudit(ctx, e.ID, "", 10)
		if err != nil || next != "" || len(page) != 1 {
			t.Fatalf("ListAudit(enterprise) = %+v, %q, %v", page, next, err)
		}
		if got := page[0]; fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", stored) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, stored)
		}
		all, _, err := s.ListAudit(ctx, 0, "", 0)
		if err != nil || len(all) != 3 || all[0].ID != o.ID || all[1].ID != sys.ID || all[1].EnterpriseID != 0 || all[1].Details != nil {
			t.Fatalf("ListAudit(all) = %+v, %v", all, err)
		}
	})
}

func TestAuditPagination(t *testing.T) {
	t.Parallel()
	storetest.ForEachEngine(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		e, _ := s.CreateEnterprise(ctx, "0367", "Acme")
		other, _ := s.CreateEnterprise(ctx, "0400", "Other")
		var ids []int64
		for i := range 23 {
			row, err := s.InsertAudit(ctx, hangupAudit(e.ID, i))
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, row.ID)
			if i%5 == 0 { // interleave another tenant's rows
				if _, err := s.InsertAudit(ctx, hangupAudit(other.ID, i)); err != nil {
					t.Fatal(err)
				}
			}
		}
		var got []int64
		cursor, pages := "", 0
		for {
			page, next, err := s.ListAudit(ctx, e.ID, cursor, 10)
			if err != nil {
				t.Fatal(err)
			}
			pages++
			for _, r := range page {
				if r.EnterpriseID != e.ID {
					t.Fatalf("row of enterprise %d leaked into %d's audit", r.EnterpriseID, e.ID)
				}
				got = append(got, r.ID)
			}
			if next == "" {
				break
			}
			cursor = next
		}
		if pages != 3 || len(got) != len(ids) {
			t.Fatalf("%d pages, %d rows; want 3 pages, %d rows", pages, len(got), len(ids))
		}
		for i := range got { // newest first
			if got[i] != ids[len(ids)-1-i] {
				t.Fatalf("row %d: id %d, want %d", i, got[i], ids[len(ids)-1-i])
			}
		}
		// An exact multiple of the page size ends with an empty next cursor.
		page, next, err := s.ListAudit(ctx, e.ID, "", 23)
		if err != nil || len(page) != 23 || next != "" {
			t.Fatalf("full page: %d rows, next %q, %v", len(page), next, err)
		}
		// Limits.
		page, _, err = s.ListAudit(ctx, 0, "", store.MaxAuditPageSize+100)
		if err != nil || len(page) != 28 {
			t.Fatalf("capped limit: %d rows, %v", len(page), err)
		}
		for _, bad := range []string{"abc", "-1", "0", "1.5"} {
			if _, _, err := s.ListAudit(ctx, 0, bad, 10); !errors.Is(err, store.ErrInvalid) {
				t.Errorf("cursor %q: %v, want ErrInvalid", bad, err)
			}
		}
		if _, _, err := s.ListAudit(ctx, 0, "", -1); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("negative limit: %v", err)
		}
	})
}

func TestAuditValidationAndCleaning(t *testing.T) {
	t.Parallel()
	storetest.ForEachEngine(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		ok := hangupAudit(0, 1)
		tests := []struct {
			name  string
			edit  func(*store.AuditEntry)
			field string
		}{
			{"actor type", func(e *store.AuditEntry) { e.ActorType = "root" }, "audit actor type"},
			{"result", func(e *store.AuditEntry) { e.Result = "ok" }, "audit result"},
			{"action", func(e *store.AuditEntry) { e.Action = " " }, "audit action"},
			{"details json", func(e *store.AuditEntry) { e.Details = json.RawMessage(`{`) }, "audit details"},
			{"details size", func(e *store.AuditEntry) {
				e.Details = json.RawMessage(`"` + strings.Repeat("x", store.MaxAuditDetailsLen) + `"`)
			}, "audit details"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				e := ok
				tc.edit(&e)
				_, err := s.InsertAudit(ctx, e)
				var ve *store.ValidationError
				if !errors.As(err, &ve) || ve.Field != tc.field {
					t.Fatalf("InsertAudit = %v, want validation error on %s", err, tc.field)
				}
			})
		}
		// Hostile text is stored, cleaned, not refused: the call happened.
		e := ok
		e.Reason = "bad\x00utf8\xff" + strings.Repeat("é", store.MaxAuditFieldLen)
		row, err := s.InsertAudit(ctx, e)
		if err != nil {
			t.Fatal(err)
		}
		page, _, _ := s.ListAudit(ctx, 0, "", 0)
		if len(page) != 1 || page[0].Reason != row.Reason || len(row.Reason) > store.MaxAuditFieldLen ||
			!strings.HasPrefix(row.Reason, "badutf8\uFFFD") {
			t.Fatalf("cleaned reason %q (stored %q)", row.Reason, page[0].Reason)
		}
	})
}

func TestHangupAttempts(t *testing.T) {
	t.Parallel()
	storetest.ForEachEngine(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		clk := newClock()
		s.Now = clk.Now
		e, _ := s.CreateEnterprise(ctx, "0367", "Acme")
		h := store.HangupAttempt{EnterpriseID: e.ID, ActorID: "op-7", AgentID: "agt_1", Channel: "PJSIP/150-1",
			Reason: "stuck", ErrorCode: "channel_not_found", Message: "no such channel", RequestID: "req-9"}
		got, err := s.InsertHangupAttempt(ctx, h)
		if err != nil || got.ID == 0 || !got.At.Equal(clk.Now().Truncate(time.Microsecond)) {
			t.Fatalf("InsertHangupAttempt = %+v, %v", got, err)
		}
		clk.Advance(time.Second)
		second, err := s.InsertHangupAttempt(ctx, store.HangupAttempt{ErrorCode: "ami_timeout"})
		if err != nil {
			t.Fatal(err)
		}
		list, err := s.ListHangupAttempts(ctx, e.ID, 0)
		if err != nil || len(list) != 1 || list[0] != got {
			t.Fatalf("ListHangupAttempts(enterprise) = %+v, %v; want [%+v]", list, err, got)
		}
		list, err = s.ListHangupAttempts(ctx, 0, 1)
		if err != nil || len(list) != 1 || list[0] != second {
			t.Fatalf("ListHangupAttempts(all, 1) = %+v, %v", list, err)
		}
		if _, err := s.InsertHangupAttempt(ctx, store.HangupAttempt{}); !errors.Is(err, store.ErrInvalid) {
			t.Fatalf("no error code: %v", err)
		}
		if _, err := s.ListHangupAttempts(ctx, 0, -1); !errors.Is(err, store.ErrInvalid) {
			t.Fatalf("negative limit: %v", err)
		}
	})
}

// SQLite has one writer at a time; concurrent writers must queue, not fail
// with SQLITE_BUSY. PostgreSQL runs the same test for parity.
func TestConcurrentWriters(t *testing.T) {
	t.Parallel()
	storetest.ForEachEngine(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		e, _ := s.CreateEnterprise(ctx, "0367", "Acme")
		a, _, _ := s.CreateAgent(ctx, "0367", "pbx", "")
		const writers, each = 50, 2
		var wg sync.WaitGroup
		errs := make(chan error, writers*each*2)
		for w := range writers {
			wg.Go(func() {
				for i := range each {
					if _, err := s.InsertAudit(ctx, hangupAudit(e.ID, w*each+i)); err != nil {
						errs <- err
					}
					// Mixed with reads and other writes on the same rows.
					if err := s.SetAgentAckedSeq(ctx, a.ID, int64(w*each+i)); err != nil {
						errs <- err
					}
					if _, _, err := s.ListAudit(ctx, e.ID, "", 5); err != nil {
						errs <- err
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		page, _, err := s.ListAudit(ctx, e.ID, "", store.MaxAuditPageSize)
		if err != nil || len(page) != writers*each {
			t.Fatalf("%d audit rows, %v; want %d", len(page), err, writers*each)
		}
		if seq, _ := s.AgentAckedSeq(ctx, a.ID); seq != writers*each-1 {
			t.Fatalf("acked seq %d, want the maximum %d", seq, writers*each-1)
		}
	})
}

// An audit row records something that already happened: a caller whose
// deadline has passed still gets it written.
func TestAuditWrittenPastDeadline(t *testing.T) {
	t.Parallel()
	storetest.ForEachEngine(t, func(t *testing.T, s *store.Store) {
		e, _ := s.CreateEnterprise(context.Background(), "0367", "Acme")
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		stored, err := s.InsertAudit(ctx, hangupAudit(e.ID, 1))
		if err != nil || stored.ID == 0 {
			t.Fatalf("InsertAudit with a cancelled context = %+v, %v; want the row written", stored, err)
		}
		page, _, err := s.ListAudit(context.Background(), e.ID, "", 10)
		if err != nil || len(page) != 1 || page[0].ID != stored.ID {
			t.Fatalf("ListAudit = %+v, %v", page, err)
		}
	})
}
