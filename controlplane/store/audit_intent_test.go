package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/store"
	"github.com/switchboard-pbx/switchboard/controlplane/store/storetest"
)

// TestAuditIntents: the intent of an action is durable before the action;
// its outcome replaces it; one left by a control plane that stopped in
// between becomes a row saying the outcome is unknown; rows handed over
// without waiting are written before Close returns.
func TestAuditIntents(t *testing.T) {
	for _, engine := range storetest.Engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			dsn := storetest.SQLiteDSN(t)
			if engine != "sqlite" {
				dsn = storetest.PostgresDSN(t)
			}
			ctx := context.Background()
			s, err := store.Open(ctx, dsn, nil)
			if err != nil {
				t.Fatal(err)
			}
			ent, err := s.CreateEnterprise(ctx, "0367", "june")
			if err != nil {
				t.Fatal(err)
			}
			row := store.AuditEntry{EnterpriseID: ent.ID, ActorType: store.ActorAPIKey, ActorID: "key_x", Action: "asterisk_originate_call",
				FromExt: "150", ToNumber: "151", RequestID: "req-1"}
			// An intent whose outcome comes: one row, the outcome's.
			id, err := s.InsertAuditIntent(ctx, row)
			if err != nil || id == 0 {
				t.Fatalf("intent: %d, %v", id, err)
			}
			done := row
			done.Result, done.UniqueID, done.IntentID = store.ResultSuccess, "sb-1", id
			if err := s.QueueAudit(done); err != nil {
				t.Fatal(err)
			}
			// An intent whose control plane stopped before the outcome.
			lost := row
			lost.RequestID = "req-2"
			if _, err := s.InsertAuditIntent(ctx, lost); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil { // drains the queued outcome
				t.Fatal(err)
			}
			s, err = store.Open(ctx, dsn, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			rows, _, err := s.ListAudit(ctx, ent.ID, "", 10)
			if err != nil || len(rows) != 1 || rows[0].RequestID != "req-1" || rows[0].Result != store.ResultSuccess || rows[0].UniqueID != "sb-1" {
				t.Fatalf("after the restart: %+v, %v", rows, err)
			}
			// Recent intents are left alone: their requests may still run.
			if n, err := s.ResolveAuditIntents(ctx, time.Now().Add(-time.Minute)); err != nil || n != 0 {
				t.Fatalf("resolving recent intents: %d, %v", n, err)
			}
			if n, err := s.ResolveAuditIntents(ctx, time.Now().Add(time.Second)); err != nil || n != 1 {
				t.Fatalf("resolve: %d, %v", n, err)
			}
			rows, _, err = s.ListAudit(ctx, ent.ID, "", 10)
			if err != nil || len(rows) != 2 || rows[0].RequestID != "req-2" || rows[0].Result != store.ResultError ||
				rows[0].ErrorCode != store.ErrorOutcomeUnknown || rows[0].FromExt != "150" {
				t.Fatalf("resolved intent: %+v, %v", rows, err)
			}
			if n, err := s.ResolveAuditIntents(ctx, time.Now().Add(time.Second)); err != nil || n != 0 {
				t.Fatalf("resolved twice: %d, %v", n, err)
			}
		})
	}
}
