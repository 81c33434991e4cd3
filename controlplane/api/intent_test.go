package api_test

import (
	"context"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/api"
	"github.com/switchboard-pbx/switchboard/controlplane/store"
)

// testIntentBeforeAction: when the PBX receives an originate, the audit
// intent of the request is already durable. The test plays the control
// plane that died at that moment: resolving the intents then yields the
// request's row, "outcome unknown", naming what was asked.
func testIntentBeforeAction(t *testing.T, e *env) {
	tn := e.slow // its PBX answers Originate after 2 s
	done := make(chan string, 1)
	go func() {
		r, err := e.s.DoErr("POST", "/v1/calls", tn.key, map[string]any{"from": "177", "to": "+375296254070"})
		if err != nil {
			done <- ""
			return
		}
		done <- r.Header.Get(api.RequestIDHeader)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for { // earlier tests' originates on this PBX come first
		m, err := tn.pbx.AMI.WaitAction(ctx, "Originate")
		if err != nil {
			t.Fatal(err)
		}
		if m.Get("Channel") == "Local/177@inoffice" {
			break
		}
	}
	n, err := e.s.Store().ResolveAuditIntents(ctx, time.Now().Add(time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("intents when the PBX got the request: %d, %v", n, err)
	}
	rid := <-done
	// The request's own outcome row still follows (the test took its
	// intent away, so it is a second row).
	var unknown, outcome bool
	deadline := time.Now().Add(5 * time.Second)
	for !(unknown && outcome) && time.Now().Before(deadline) {
		rows, _, err := e.s.Store().ListAudit(ctx, tn.ent.ID, "", store.MaxAuditPageSize)
		must(t, err)
		for _, r := range rows {
			if r.RequestID != rid {
				continue
			}
			if r.ErrorCode == store.ErrorOutcomeUnknown {
				unknown = r.FromExt == "177" && r.ToNumber == "+375296254070" && r.AgentID == tn.pbx.ID && r.Action == api.AuditOriginate
			} else {
				outcome = true
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !unknown || !outcome {
		rows, _, _ := e.s.Store().ListAudit(ctx, tn.ent.ID, "", 5)
		t.Fatalf("request %s: outcome-unknown row %v, outcome row %v: %+v", rid, unknown, outcome, rows)
	}
}
