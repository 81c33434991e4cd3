package store_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/switchboard-pbx/switchboard/controlplane/store"
	"github.com/switchboard-pbx/switchboard/controlplane/store/storetest"
)

// Concurrent audit inserts are group-committed: every caller gets its own
// id once its row is durable, and every row is there afterwards.
func TestAuditGroupCommit(t *testing.T) {
	storetest.ForEachEngine(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		e, err := s.CreateEnterprise(ctx, "0367", "june")
		if err != nil {
			t.Fatal(err)
		}
		const n = 300
		ids := make(chan int64, n)
		var wg sync.WaitGroup
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got, err := s.InsertAudit(ctx, store.AuditEntry{EnterpriseID: e.ID, ActorType: "api_key", ActorID: "key_x", Action: "asterisk_originate_call", Result: "success"})
				if err != nil {
					t.Error(err)
					return
				}
				ids <- got.ID
			}()
		}
		wg.Wait()
		close(ids)
		seen := map[int64]bool{}
		for id := range ids {
			if id == 0 || seen[id] {
				t.Fatalf("id %d zero or repeated", id)
			}
			seen[id] = true
		}
		var total int
		for cursor := ""; ; {
			page, next, err := s.ListAudit(ctx, e.ID, cursor, 500)
			if err != nil {
				t.Fatal(err)
			}
			for _, row := range page {
				if !seen[row.ID] {
					t.Fatalf("stored row %d was not returned to any caller", row.ID)
				}
			}
			total += len(page)
			if next == "" {
				break
			}
			cursor = next
		}
		if total != n || len(seen) != n {
			t.Fatalf("stored %d rows, callers got %d ids, want %d", total, len(seen), n)
		}
		// A row refused by the database fails alone, not its batch mates.
		var bwg sync.WaitGroup
		errs := make([]error, 20)
		for i := range errs {
			bwg.Add(1)
			go func() {
				defer bwg.Done()
				ent := e.ID
				if i == 7 {
					ent = 999999 // foreign key violation
				}
				_, errs[i] = s.InsertAudit(ctx, store.AuditEntry{EnterpriseID: ent, ActorType: "system", Action: "x", Result: "error"})
			}()
		}
		bwg.Wait()
		for i, err := range errs {
			if (err != nil) != (i == 7) {
				t.Errorf("insert %d: err = %v", i, err)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := s.InsertAudit(ctx, store.AuditEntry{EnterpriseID: e.ID, ActorType: "system", Action: "x", Result: "success"}); !errors.Is(err, store.ErrClosed) {
			t.Fatalf("insert after Close: %v", err)
		}
	})
}
