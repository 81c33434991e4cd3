package store_test

import (
	"context"
	"testing"

	"github.com/switchboard-pbx/switchboard/controlplane/store"
	"github.com/switchboard-pbx/switchboard/controlplane/store/storetest"
)

// go test -run '^$' -bench . ./controlplane/store/

func BenchmarkAgentByToken(b *testing.B) {
	storetest.BenchEachEngine(b, func(b *testing.B, s *store.Store) {
		ctx := context.Background()
		if _, err := s.CreateEnterprise(ctx, "0367", "Acme"); err != nil {
			b.Fatal(err)
		}
		_, token, err := s.CreateAgent(ctx, "0367", "pbx", "")
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.AgentByToken(ctx, token); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkAgentByTokenParallel(b *testing.B) {
	storetest.BenchEachEngine(b, func(b *testing.B, s *store.Store) {
		ctx := context.Background()
		s.CreateEnterprise(ctx, "0367", "Acme")
		_, token, err := s.CreateAgent(ctx, "0367", "pbx", "")
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := s.AgentByToken(ctx, token); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

func BenchmarkInsertAudit(b *testing.B) {
	storetest.BenchEachEngine(b, func(b *testing.B, s *store.Store) {
		ctx := context.Background()
		e, err := s.CreateEnterprise(ctx, "0367", "Acme")
		if err != nil {
			b.Fatal(err)
		}
		entry := hangupAudit(e.ID, 1)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.InsertAudit(ctx, entry); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkInsertAuditParallel(b *testing.B) {
	storetest.BenchEachEngine(b, func(b *testing.B, s *store.Store) {
		ctx := context.Background()
		e, _ := s.CreateEnterprise(ctx, "0367", "Acme")
		entry := hangupAudit(e.ID, 1)
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := s.InsertAudit(ctx, entry); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
