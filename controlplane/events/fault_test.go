package events_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/events"
	"github.com/switchboard-pbx/switchboard/controlplane/store"
	"github.com/switchboard-pbx/switchboard/controlplane/store/storetest"
	"github.com/switchboard-pbx/switchboard/protocol"
	"github.com/switchboard-pbx/switchboard/protocol/ami/amitest"
)

// callGen keeps calls running on the PBXs: it starts one every `every`,
// alternating PBXs, and hangs each up after `hold`.
type callGen struct {
	pbxs  []*pbx
	every time.Duration
	hold  time.Duration

	mu      sync.Mutex
	started []genCall
	cancel  context.CancelFunc
	done    chan struct{}
}

type genCall struct {
	pbx *pbx
	id  string
	at  time.Time
}

func startCalls(t *testing.T, pbxs []*pbx, every, hold time.Duration) *callGen {
	g := &callGen{pbxs: pbxs, every: every, hold: hold, done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	g.cancel = cancel
	go func() {
		defer close(g.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		var live []genCall
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				for _, c := range live {
					_ = c.pbx.AMI.Hangup(c.id, 16)
				}
				return
			case now := <-tick.C:
				p := pbxs[i%len(pbxs)]
				id, err := p.AMI.StartCall(fmt.Sprintf("1%02d", i%100), fmt.Sprintf("2%02d", i%100))
				if err != nil {
					t.Errorf("start call: %v", err)
					return
				}
				c := genCall{pbx: p, id: id, at: now}
				live = append(live, c)
				g.mu.Lock()
				g.started = append(g.started, c)
				g.mu.Unlock()
				for len(live) > 0 && now.Sub(live[0].at) >= hold {
					if err := live[0].pbx.AMI.Hangup(live[0].id, 16); err != nil && !errors.Is(err, amitest.ErrNoSuchChannel) {
						t.Errorf("hang up: %v", err)
					}
					live = live[1:]
				}
			}
		}
	}()
	return g
}

// stop stops starting calls, hangs up the live ones and returns every
// call started.
func (g *callGen) stop() []genCall {
	g.cancel()
	<-g.done
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.started
}

func (g *callGen) count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.started)
}

// TestFault is the fault test: while calls are running, the
// agents' tunnels are killed, then the control plane is restarted (a new
// server and events service on the same database and address), then the
// webhook receiver is stopped for a while. Afterwards every call reached
// history with its whole lifecycle, every event was delivered to the
// webhook at least once, and a WebSocket client that resumed with after=
// saw every event exactly once.
// faultWait bounds the fault test's waits for the system to settle.
const faultWait = time.Minute

func TestFault(t *testing.T) {
	t.Parallel()
	for _, engine := range storetest.Engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			cfg := fastRetries
			cfg.AttemptTimeout, cfg.DeliveryLease = time.Second, 1500*time.Millisecond
			e := newEnv(t, envOptions{engine: engine, quiet: true, cfg: cfg})
			tn := e.tenant(t, "0367")
			pbxs := []*pbx{e.addPBX(t, "0367"), e.addPBX(t, "0367")}
			rcv := newReceiver(t, 0)
			r := e.do(t, "POST", "/v1/webhooks", tn.key, map[string]any{"url": rcv.url()})
			if r.status != 201 {
				t.Fatalf("create webhook = %d %s", r.status, r.body)
			}
			var wh struct{ ID, Secret string }
			r.decode(t, &wh)
			rcv.setSecret(wh.Secret)

			ws := e.mustDial(t, tn.key, "after=0")
			var seen []int64 // every event seq the WebSocket clients received, in order
			collect := func(w *wsClient) {
				for {
					select {
					case m := <-w.msgs:
						if m.CallID != "" || m.Type == protocol.EventGap {
							seen = append(seen, m.Seq)
						}
						continue
					default:
					}
					return
				}
			}
			gen := startCalls(t, pbxs, 8*time.Millisecond, 40*time.Millisecond)
			phase := func(what string, d time.Duration) {
				n := gen.count()
				time.Sleep(d) // calls keep running through each phase
				t.Logf("%s: %d calls started during it", what, gen.count()-n)
			}
			phase("steady", 200*time.Millisecond)

			// 1. Kill the tunnels, server side, while calls run.
			for _, p := range pbxs {
				if c, ok := e.current().srv.Registry().Get(p.ID); ok {
					c.Close()
				}
			}
			phase("tunnels killed", 200*time.Millisecond)
			for _, p := range pbxs {
				e.waitConnected(t, p)
			}

			// 2. Restart the control plane. The WebSocket client is cut off
			// and resumes from the last sequence it saw.
			before, _ := e.store().LastEventSeq(context.Background(), tn.ent.ID)
			t.Logf("control plane restart: %d events stored before it", before)
			e.restart(t)
			if err := ws.closed(t); err == nil {
				t.Fatal("the stream survived the restart")
			}
			collect(ws)
			resumeAfter := int64(0)
			if len(seen) > 0 {
				resumeAfter = seen[len(seen)-1]
			}
			phase("control plane restarted", 100*time.Millisecond)
			ws2 := e.mustDial(t, tn.key, fmt.Sprintf("after=%d", resumeAfter))
			for _, p := range pbxs {
				e.waitConnected(t, p)
			}

			// 3. Stop the webhook receiver for a while.
			rcv.stop()
			phase("receiver down", 400*time.Millisecond)
			rcv.start()
			phase("receiver back", 100*time.Millisecond)
			calls := gen.stop()

			// Every call ends in history.
			ctx := context.Background()
			pending := map[genCall]bool{}
			for _, c := range calls {
				pending[c] = true
			}
			eventuallyWithin(t, "every call ended in history", faultWait, func() bool {
				for c := range pending {
					row, err := e.store().CallByID(ctx, tn.ent.ID, c.pbx.ID, c.id)
					if err == nil && row.Ended() {
						if row.Status != protocol.CallCompleted || row.AnsweredBy == "" {
							t.Fatalf("call %s ended as %+v", c.id, row)
						}
						delete(pending, c)
					}
				}
				return len(pending) == 0
			})
			last, err := e.store().LastEventSeq(ctx, tn.ent.ID)
			if err != nil {
				t.Fatal(err)
			}
			// The store's sequence has no hole, and each call has its whole
			// lifecycle (started … ended), once.
			var stored []store.StoredEvent
			for after := int64(0); ; {
				page, err := e.store().ListEvents(ctx, store.EventFilter{EnterpriseID: tn.ent.ID, After: after, Limit: 5000})
				if err != nil {
					t.Fatal(err)
				}
				stored = append(stored, page...)
				if len(page) < 5000 {
					break
				}
				after = page[len(page)-1].Seq
			}
			perCall := map[string][]string{}
			gaps := 0
			for i, se := range stored {
				if se.Seq != int64(i+1) {
					t.Fatalf("stored sequence has a hole at %d (seq %d)", i+1, se.Seq)
				}
				if se.Event.Type == protocol.EventGap {
					gaps++
				}
				k := se.AgentID + "/" + se.Event.CallID
				perCall[k] = append(perCall[k], se.Event.Type)
			}
			if gaps != 0 {
				t.Fatalf("%d agent gap events: the agents lost events", gaps)
			}
			for _, c := range calls {
				ts := perCall[c.pbx.ID+"/"+c.id]
				if len(ts) < 2 || ts[0] != protocol.EventCallStarted || ts[len(ts)-1] != protocol.EventCallEnded || countOf(ts, protocol.EventCallEnded) != 1 {
					t.Fatalf("call %s events %v", c.id, ts)
				}
			}
			if int64(len(stored)) != last {
				t.Fatalf("%d events stored, last seq %d", len(stored), last)
			}

			// Every event was delivered to the webhook at least once.
			eventuallyWithin(t, "every event delivered to the webhook", faultWait, func() bool {
				ids, _, _ := rcv.snapshot()
				for seq := int64(1); seq <= last; seq++ {
					if _, ok := ids[events.DeliveryID(wh.ID, seq)]; !ok {
						return false
					}
				}
				return true
			})
			eventually(t, "no delivery pending", func() bool {
				for _, st := range []string{store.DeliveryPending, store.DeliveryFailed} {
					d, _, err := e.store().ListDeliveries(ctx, store.DeliveryFilter{EnterpriseID: tn.ent.ID, WebhookID: wh.ID, Status: st, Limit: 1})
					if err != nil || len(d) > 0 {
						return false
					}
				}
				return true
			})
			ids, bad, requests := rcv.snapshot()
			dups := 0
			for _, bodies := range ids {
				dups += len(bodies) - 1
			}

			// The WebSocket: before the restart plus after the resume is every
			// sequence exactly once.
			for len(seen) == 0 || seen[len(seen)-1] < last {
				m := ws2.next(t)
				if m.CallID != "" || m.Type == protocol.EventGap {
					seen = append(seen, m.Seq)
				}
			}
			if err := contiguous(seen, 1, last); err != nil {
				t.Fatalf("WebSocket client across the restart: %v", err)
			}
			t.Logf("calls %d, events %d (history rows %d, all ended), webhook: %d events delivered in %d requests (%d repeats, %d bad signatures), WebSocket: %d events before the restart + %d after resuming with after=%d, no gap, no duplicate",
				len(calls), last, len(calls), len(ids), requests, dups, bad, resumeAfter, last-resumeAfter, resumeAfter)
			if bad != 0 || int64(len(ids)) != last {
				t.Fatalf("receiver: %d ids for %d events, %d bad signatures", len(ids), last, bad)
			}
		})
	}
}

func countOf(ss []string, s string) int {
	n := 0
	for _, x := range ss {
		if x == s {
			n++
		}
	}
	return n
}
