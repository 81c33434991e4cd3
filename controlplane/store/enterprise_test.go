package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/switchboard-pbx/switchboard/controlplane/store"
	"github.com/switchboard-pbx/switchboard/controlplane/store/storetest"
)

func TestEnterprises(t *testing.T) {
	t.Parallel()
	storetest.ForEachEngine(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		clk := newClock()
		s.Now = clk.Now

		e, err := s.CreateEnterprise(ctx, "0367", "  Acme Telecom ")
		if err != nil {
			t.Fatal(err)
		}
		want := store.Enterprise{ID: e.ID, Number: "0367", Name: "Acme Telecom", Active: true, CreatedAt: clk.Now().Truncate(1000)}
		if e != want || e.ID == 0 {
			t.Fatalf("created %+v, want %+v", e, want)
		}
		byNum, err := s.EnterpriseByNumber(ctx, "0367")
		if err != nil || byNum != want {
			t.Fatalf("EnterpriseByNumber = %+v, %v; want %+v", byNum, err, want)
		}
		byID, err := s.EnterpriseByID(ctx, e.ID)
		if err != nil || byID != want {
			t.Fatalf("EnterpriseByID = %+v, %v; want %+v", byID, err, want)
		}

		// Leading zeros are significant: "367" is another enterprise.
		if _, err := s.CreateEnterprise(ctx, "367", "Other"); err != nil {
			t.Fatal(err)
		}
		_, err = s.CreateEnterprise(ctx, "0367", "Duplicate")
		if !errors.Is(err, store.ErrConflict) {
			t.Fatalf("duplicate number: %v, want ErrConflict", err)
		}

		list, err := s.ListEnterprises(ctx)
		if err != nil || len(list) != 2 || list[0].Number != "0367" || list[1].Number != "367" {
			t.Fatalf("ListEnterprises = %+v, %v", list, err)
		}

		if err := s.SetEnterpriseActive(ctx, e.ID, false); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.EnterpriseByID(ctx, e.ID); got.Active {
			t.Fatal("still active after SetEnterpriseActive(false)")
		}
		if err := s.SetEnterpriseActive(ctx, 999999, false); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("SetEnterpriseActive(unknown) = %v", err)
		}
		if _, err := s.EnterpriseByNumber(ctx, "9999"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("EnterpriseByNumber(unknown) = %v", err)
		}
		if _, err := s.EnterpriseByID(ctx, 999999); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("EnterpriseByID(unknown) = %v", err)
		}
	})
}

func TestEnterpriseValidation(t *testing.T) {
	t.Parallel()
	s := storetest.OpenSQLite(t) // validation runs before any SQL: one engine is enough
	tests := []struct {
		name, number, entName, field string
	}{
		{"empty number", "", "A", "enterprise number"},
		{"letters", "03a7", "A", "enterprise number"},
		{"too long number", strings.Repeat("1", 17), "A", "enterprise number"},
		{"signed", "-1", "A", "enterprise number"},
		{"empty name", "1", "   ", "enterprise name"},
		{"long name", "1", strings.Repeat("é", 101), "enterprise name"},
		{"control char", "1", "a\nb", "enterprise name"},
		{"bad utf8", "1", "a\xffb", "enterprise name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.CreateEnterprise(context.Background(), tc.number, tc.entName)
			var ve *store.ValidationError
			if !errors.As(err, &ve) || ve.Field != tc.field || !errors.Is(err, store.ErrInvalid) {
				t.Fatalf("CreateEnterprise(%q, %q) = %v, want validation error on %s", tc.number, tc.entName, err, tc.field)
			}
		})
	}
	// The limits themselves are accepted.
	if _, err := s.CreateEnterprise(context.Background(), strings.Repeat("9", 16), strings.Repeat("é", 100)); err != nil {
		t.Fatal(err)
	}
	if list, _ := s.ListEnterprises(context.Background()); len(list) != 1 {
		t.Fatalf("rejected input changed the store: %d enterprises", len(list))
	}
}
