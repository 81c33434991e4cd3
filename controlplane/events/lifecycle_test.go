package events_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/auth"
	"github.com/switchboard-pbx/switchboard/controlplane/store/storetest"
	"github.com/switchboard-pbx/switchboard/protocol"
	"github.com/switchboard-pbx/switchboard/protocol/ami/amitest"
)

// callEvents collects the stream's events per call.
type callEvents struct {
	ws     *wsClient
	byCall map[string][]msg
	seqs   []int64
}

func newCallEvents(ws *wsClient) *callEvents { return &callEvents{ws: ws, byCall: map[string][]msg{}} }

// waitFor reads the stream until call id has an event of type typ.
func (c *callEvents) waitFor(t *testing.T, id, typ string) []msg {
	t.Helper()
	for !slices.ContainsFunc(c.byCall[id], func(m msg) bool { return m.Type == typ }) {
		m := c.ws.next(t)
		if m.CallID == "" {
			continue
		}
		c.byCall[m.CallID] = append(c.byCall[m.CallID], m)
		c.seqs = append(c.seqs, m.Seq)
	}
	return c.byCall[id]
}

func types(ms []msg) string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Type)
	}
	return strings.Join(out, " ")
}

// callDetail is GET /v1/calls/{id} as a client decodes it.
type callDetail struct {
	CallID     string     `json:"call_id"`
	PBX        string     `json:"pbx"`
	Status     string     `json:"status"`
	Direction  string     `json:"direction"`
	From       string     `json:"from"`
	To         string     `json:"to"`
	AnsweredAt *time.Time `json:"answered_at"`
	AnsweredBy string     `json:"answered_by"`
	EndedAt    *time.Time `json:"ended_at"`
	Cause      *int       `json:"cause"`
	HungupBy   string     `json:"hungup_by"`
	DurationS  *int       `json:"duration_s"`
	Monitored  bool       `json:"monitored"`
	LastSeq    int64      `json:"last_seq"`
	Events     []msg      `json:"events"`
}

func (e *env) call(t *testing.T, key, id string) callDetail {
	t.Helper()
	r := e.do(t, "GET", "/v1/calls/"+id, key, nil)
	if r.status != 200 {
		t.Fatalf("GET /v1/calls/%s = %d %s", id, r.status, r.body)
	}
	var d callDetail
	r.decode(t, &d)
	return d
}

func (e *env) originate(t *testing.T, key string, body map[string]any) string {
	t.Helper()
	r := e.do(t, "POST", "/v1/calls", key, body)
	if r.status != 201 {
		t.Fatalf("POST /v1/calls %v = %d %s", body, r.status, r.body)
	}
	var res struct {
		CallID string `json:"call_id"`
	}
	r.decode(t, &res)
	return res.CallID
}

func (e *env) hangup(t *testing.T, key, id string) {
	t.Helper()
	if r := e.do(t, "DELETE", "/v1/calls/"+id, key, nil); r.status != 200 {
		t.Fatalf("DELETE /v1/calls/%s = %d %s", id, r.status, r.body)
	}
}

// TestLifecycles places calls through the API (and one nobody placed)
// against the fake Asterisk and checks the events each produced, live on
// the WebSocket, and the history row and timeline each left.
func TestLifecycles(t *testing.T) {
	t.Parallel()
	for _, engine := range storetest.Engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOptions{engine: engine})
			tn := e.tenant(t, "0367")
			p := e.addPBX(t, "0367")
			p.AMI.SetOutcome("151", amitest.Answer.AfterRinging(30*time.Millisecond))
			p.AMI.SetOutcome("152", amitest.Busy)
			p.AMI.SetOutcome("156", amitest.NoAnswer)
			p.AMI.SetOutcome("154", amitest.Congestion)
			ce := newCallEvents(e.mustDial(t, tn.key, ""))
			if m := ce.ws.next(t); m.Type != "stream.live" {
				t.Fatalf("first message %+v, want stream.live", m)
			}

			// A call ended through the API names its credential.
			keyID, _ := auth.ParseAPIKeyID(tn.key)
			type want struct {
				types, status, answeredBy, hungupBy, direction string
				cause                                          int
				monitored                                      bool
			}
			cases := []struct {
				name string
				run  func(t *testing.T) string // places the call, ends it, returns its id
				want want
			}{
				{"answered, hung up by the API", func(t *testing.T) string {
					id := e.originate(t, tn.key, map[string]any{"from": "150", "to": "151"})
					ce.waitFor(t, id, protocol.EventCallBridged)
					e.hangup(t, tn.key, id)
					return id
				}, want{types: "call.started call.ringing call.answered call.bridged call.ended", status: "completed", answeredBy: "151", hungupBy: keyID, direction: "originate", cause: 16}},
				{"answered, hung up by the callee", func(t *testing.T) string {
					id := e.originate(t, tn.key, map[string]any{"from": "150", "to": "151"})
					evs := ce.waitFor(t, id, protocol.EventCallBridged)
					if err := p.AMI.Hangup(evs[len(evs)-1].AnsweredChannel, 16); err != nil {
						t.Fatal(err)
					}
					return id
				}, want{types: "call.started call.ringing call.answered call.bridged call.ended", status: "completed", answeredBy: "151", hungupBy: "151", direction: "originate", cause: 16}},
				{"busy", func(t *testing.T) string {
					return e.originate(t, tn.key, map[string]any{"from": "150", "to": "152"})
				}, want{types: "call.started call.ended", status: "busy", direction: "originate", cause: 17}},
				{"no answer", func(t *testing.T) string {
					return e.originate(t, tn.key, map[string]any{"from": "156", "to": "151", "timeout_s": 1})
				}, want{types: "call.started call.ended", status: "no-answer", direction: "originate", cause: 19}},
				{"congestion", func(t *testing.T) string {
					return e.originate(t, tn.key, map[string]any{"from": "150", "to": "154"})
				}, want{types: "call.started call.ended", status: "failed", direction: "originate", cause: 34}},
				{"monitored", func(t *testing.T) string {
					id := e.originate(t, tn.key, map[string]any{"from": "157", "to": "158"})
					ce.waitFor(t, id, protocol.EventCallBridged)
					r := e.do(t, "POST", "/v1/monitor", tn.key, map[string]any{"mode": "spy", "target": "157", "from": "159"})
					if r.status != 201 {
						t.Fatalf("POST /v1/monitor = %d %s", r.status, r.body)
					}
					var mon struct {
						CallID string `json:"call_id"`
					}
					r.decode(t, &mon)
					ce.waitFor(t, id, protocol.EventMonitorStarted)
					// The supervisor puts the phone down. (An AMI Hangup of a
					// listening ChanSpy on Local channels takes effect only
					// when its target goes: capture 19.)
					if err := p.AMI.Hangup(mon.CallID, 16); err != nil {
						t.Fatal(err)
					}
					ce.waitFor(t, id, protocol.EventMonitorStopped)
					e.hangup(t, tn.key, id)
					ce.waitFor(t, mon.CallID, protocol.EventCallEnded)
					if spy := e.call(t, tn.key, mon.CallID); spy.Status != "completed" || spy.From != "159" {
						t.Errorf("spy call = %+v", spy)
					}
					return id
				}, want{types: "call.started call.answered call.bridged call.monitor_started call.monitor_stopped call.ended", status: "completed", answeredBy: "158", hungupBy: keyID, direction: "originate", cause: 16, monitored: true}},
				{"placed by nobody through the API", func(t *testing.T) string {
					id, err := p.AMI.StartCall("160", "161")
					if err != nil {
						t.Fatal(err)
					}
					ce.waitFor(t, id, protocol.EventCallBridged)
					if err := p.AMI.Hangup(id, 16); err != nil {
						t.Fatal(err)
					}
					return id
				}, want{types: "call.started call.answered call.bridged call.ended", status: "completed", answeredBy: "161", hungupBy: "160", direction: "originate", cause: 16}},
			}
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					id := tc.run(t)
					evs := ce.waitFor(t, id, protocol.EventCallEnded)
					if got := types(evs); got != tc.want.types {
						t.Errorf("events = %s\nwant     %s", got, tc.want.types)
					}
					end := evs[len(evs)-1]
					if end.Status != tc.want.status || end.Cause != tc.want.cause || end.AnsweredBy != tc.want.answeredBy || end.PBX != p.ID {
						t.Errorf("call.ended = %+v", end.Event)
					}
					d := e.call(t, tn.key, id)
					if d.Status != tc.want.status || d.AnsweredBy != tc.want.answeredBy || d.HungupBy != tc.want.hungupBy ||
						d.Direction != tc.want.direction || d.Monitored != tc.want.monitored || d.Cause == nil || *d.Cause != tc.want.cause ||
						d.EndedAt == nil || d.DurationS == nil || d.PBX != p.ID || d.LastSeq != end.Seq {
						t.Errorf("history = %+v\nwant %+v", d, tc.want)
					}
					if (tc.want.answeredBy != "") != (d.AnsweredAt != nil) {
						t.Errorf("answered_at = %v with answered_by %q", d.AnsweredAt, tc.want.answeredBy)
					}
					// The timeline is the same events, same sequence numbers.
					if fmt.Sprint(seqsOf(d.Events)) != fmt.Sprint(seqsOf(evs)) || types(d.Events) != types(evs) {
						t.Errorf("timeline %v %s\nlive     %v %s", seqsOf(d.Events), types(d.Events), seqsOf(evs), types(evs))
					}
				})
			}
			// Live delivery had no gap and no duplicate.
			for i := 1; i < len(ce.seqs); i++ {
				if ce.seqs[i] != ce.seqs[i-1]+1 {
					t.Fatalf("live sequence not contiguous at %d: %v", i, ce.seqs)
				}
			}
		})
	}
}

func seqsOf(ms []msg) []int64 {
	out := make([]int64, len(ms))
	for i, m := range ms {
		out[i] = m.Seq
	}
	return out
}
