package store_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/store"
	"github.com/switchboard-pbx/switchboard/controlplane/store/storetest"
)

func TestIdempotency(t *testing.T) {
	t.Parallel()
	storetest.ForEachEngine(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		clk := newClock()
		s.Now = clk.Now
		e, _ := s.CreateEnterprise(ctx, "0367", "Acme")
		other, _ := s.CreateEnterprise(ctx, "0400", "Other")

		if _, err := s.GetIdempotent(ctx, e.ID, "k1"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("GetIdempotent(missing) = %v", err)
		}
		first := store.Idempotent{EnterpriseID: e.ID, Key: "k1", RequestHash: "h1", StatusCode: 201, Body: []byte(`{"uniqueid":"1.1"}`)}
		got, err := s.PutIdempotent(ctx, first)
		if err != nil || string(got.Body) != string(first.Body) || got.CreatedAt.IsZero() {
			t.Fatalf("PutIdempotent = %+v, %v", got, err)
		}
		stored, err := s.GetIdempotent(ctx, e.ID, "k1")
		if err != nil || stored.RequestHash != "h1" || stored.StatusCode != 201 || string(stored.Body) != `{"uniqueid":"1.1"}` ||
			!stored.CreatedAt.Equal(got.CreatedAt) || !stored.Matches("h1") || stored.Matches("h2") {
			t.Fatalf("GetIdempotent = %+v, %v", stored, err)
		}

		// Same request again: the first outcome wins and is returned.
		again := first
		again.StatusCode, again.Body = 500, []byte("late")
		got, err = s.PutIdempotent(ctx, again)
		if err != nil || got.StatusCode != 201 || string(got.Body) != string(first.Body) {
			t.Fatalf("replayed put = %+v, %v; want the first outcome", got, err)
		}
		// Different request, same key: detectably refused, first outcome kept.
		diff := first
		diff.RequestHash = "h2"
		got, err = s.PutIdempotent(ctx, diff)
		if !errors.Is(err, store.ErrIdempotencyMismatch) || !errors.Is(err, store.ErrConflict) || got.RequestHash != "h1" {
			t.Fatalf("conflicting put = %+v, %v", got, err)
		}
		// Keys are per enterprise; an empty body round-trips.
		got, err = s.PutIdempotent(ctx, store.Idempotent{EnterpriseID: other.ID, Key: "k1", RequestHash: "h9", StatusCode: 204})
		if err != nil || got.RequestHash != "h9" {
			t.Fatalf("other enterprise: %+v, %v", got, err)
		}
		if got, err := s.GetIdempotent(ctx, other.ID, "k1"); err != nil || len(got.Body) != 0 || got.StatusCode != 204 {
			t.Fatalf("empty body: %+v, %v", got, err)
		}

		// Pruning.
		clk.Advance(time.Hour)
		s.PutIdempotent(ctx, store.Idempotent{EnterpriseID: e.ID, Key: "new", RequestHash: "h", StatusCode: 200})
		n, err := s.DeleteIdempotentBefore(ctx, clk.Now().Add(-time.Minute))
		if err != nil || n != 2 {
			t.Fatalf("DeleteIdempotentBefore = %d, %v; want 2", n, err)
		}
		if _, err := s.GetIdempotent(ctx, e.ID, "new"); err != nil {
			t.Fatalf("recent key pruned: %v", err)
		}
	})
}

func TestIdempotencyFirstWriterWins(t *testing.T) {
	t.Parallel()
	storetest.ForEachEngine(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		e, _ := s.CreateEnterprise(ctx, "0367", "Acme")
		const n = 20
		results := make([]store.Idempotent, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				results[i], errs[i] = s.PutIdempotent(ctx, store.Idempotent{
					EnterpriseID: e.ID, Key: "race", RequestHash: "same", StatusCode: 200 + i, Body: []byte{byte(i)},
				})
			})
		}
		wg.Wait()
		winner, err := s.GetIdempotent(ctx, e.ID, "race")
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			if errs[i] != nil || results[i].StatusCode != winner.StatusCode || string(results[i].Body) != string(winner.Body) {
				t.Fatalf("writer %d got %+v, %v; the stored winner is %+v", i, results[i], errs[i], winner)
			}
		}
	})
}

func TestIdempotencyValidation(t *testing.T) {
	t.Parallel()
	s := storetest.OpenSQLite(t)
	ctx := context.Background()
	e, _ := s.CreateEnterprise(ctx, "0367", "Acme")
	ok := store.Idempotent{EnterpriseID: e.ID, Key: "k", RequestHash: "h", StatusCode: 200}
	tests := []struct {
		name string
		edit func(*store.Idempotent)
	}{
		{"no enterprise", func(r *store.Idempotent) { r.EnterpriseID = 0 }},
		{"empty key", func(r *store.Idempotent) { r.Key = "" }},
		{"long key", func(r *store.Idempotent) { r.Key = strings.Repeat("k", store.MaxIdempotencyKeyLen+1) }},
		{"NUL in key", func(r *store.Idempotent) { r.Key = "a\x00b" }},
		{"no hash", func(r *store.Idempotent) { r.RequestHash = "" }},
		{"status 0", func(r *store.Idempotent) { r.StatusCode = 0 }},
		{"status 600", func(r *store.Idempotent) { r.StatusCode = 600 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := ok
			tc.edit(&r)
			if _, err := s.PutIdempotent(ctx, r); !errors.Is(err, store.ErrInvalid) {
				t.Fatalf("PutIdempotent = %v, want ErrInvalid", err)
			}
		})
	}
	if _, err := s.GetIdempotent(ctx, e.ID, ""); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("GetIdempotent(empty key) = %v", err)
	}
}
