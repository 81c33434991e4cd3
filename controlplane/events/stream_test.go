package events_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-pbx/switchboard/controlplane/auth"
	"github.com/switchboard-pbx/switchboard/controlplane/events"
	"github.com/switchboard-pbx/switchboard/controlplane/store"
	"github.com/switchboard-pbx/switchboard/protocol"
)

// injector stores batches for a registered agent exactly as the gateway
// does (StoreAgentEvents, then the OnEvents hook), without a tunnel, so
// tests can produce many events fast and from several "sessions" at once.
type injector struct {
	e    *env
	ag   store.Agent
	next uint64
	n    int
}

func (e *env) injector(t testing.TB, number string) *injector {
	t.Helper()
	ag, _, err := e.store().CreateAgent(context.Background(), number, fmt.Sprintf("inject-%d", time.Now().UnixNano()), "")
	if err != nil {
		t.Fatal(err)
	}
	return &injector{e: e, ag: ag, next: 1}
}

// batch stores k events: calls alternate started/ended; pad makes each
// event about pad bytes bigger.
func (in *injector) batch(t testing.TB, k, pad int) []store.StoredEvent {
	return in.store(t, k, pad, true)
}

// store is batch; without hook the service is not told, as when another
// replica stored the batch.
func (in *injector) store(t testing.TB, k, pad int, hook bool) []store.StoredEvent {
	t.Helper()
	evs := make([]protocol.Event, k)
	for i := range evs {
		typ := protocol.EventCallStarted
		if in.n%2 == 1 {
			typ = protocol.EventCallEnded
		}
		evs[i] = protocol.Event{Seq: in.next, Type: typ, Time: time.Now(), CallID: fmt.Sprintf("call-%d", in.n/2),
			From: "150", To: "151", Status: protocol.CallCompleted, Channel: "Local/150@inoffice" + strings.Repeat("x", pad)}
		in.next++
		in.n++
	}
	cp := in.e.current()
	stored, err := cp.st.StoreAgentEvents(context.Background(), in.ag.ID, in.ag.EnterpriseID, evs)
	if err != nil {
		t.Error(err)
		return nil
	}
	if hook {
		cp.svc.OnEvents(in.ag, stored)
	}
	return stored
}

// readSeqs reads events until one with seq >= last, returning their
// sequence numbers (control messages skipped).
func readSeqs(t testing.TB, w *wsClient, last int64) []int64 {
	t.Helper()
	var out []int64
	for {
		m := w.next(t)
		if strings.HasPrefix(m.Type, "stream.") {
			continue
		}
		out = append(out, m.Seq)
		if m.Seq >= last {
			return out
		}
	}
}

func contiguous(seqs []int64, from, to int64) error {
	if int64(len(seqs)) != to-from+1 {
		return fmt.Errorf("got %d events, want %d (%d..%d)", len(seqs), to-from+1, from, to)
	}
	for i, s := range seqs {
		if s != from+int64(i) {
			return fmt.Errorf("event %d has seq %d, want %d", i, s, from+int64(i))
		}
	}
	return nil
}

// TestStreamResume: two "sessions" of one enterprise store batches
// concurrently (so hooks can run out of sequence order) while clients
// connect live, resume with after= mid-stream, and filter. Each sees
// exactly its events, in order, without gap or duplicate.
func TestStreamResume(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{quiet: true})
	tn := e.tenant(t, "0367")
	a, b := e.injector(t, "0367"), e.injector(t, "0367")
	live := e.mustDial(t, tn.key, "")
	if m := live.next(t); m.Type != events.MsgLive || m.Seq != 0 {
		t.Fatalf("first message = %+v", m)
	}
	const batches = 150
	var stored atomic.Int64
	var wg sync.WaitGroup
	for _, in := range []*injector{a, b} {
		wg.Go(func() {
			for i := range batches {
				got := in.batch(t, 1+i%4, 0)
				stored.Add(int64(len(got)))
			}
		})
	}
	// Resume from the middle of what is stored so far, while writes go on.
	eventually(t, "some events stored", func() bool { return stored.Load() > 100 })
	after := stored.Load() / 2
	resumed := e.mustDial(t, tn.key, fmt.Sprintf("after=%d", after))
	filtered := e.mustDial(t, tn.key, "after=0&types=call.ended&pbx="+a.ag.ID)
	wg.Wait()
	last, err := e.store().LastEventSeq(context.Background(), tn.ent.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := contiguous(readSeqs(t, live, last), 1, last); err != nil {
		t.Errorf("live client: %v", err)
	}
	if err := contiguous(readSeqs(t, resumed, last), after+1, last); err != nil {
		t.Errorf("resumed client: %v", err)
	}
	want, err := e.store().ListEvents(context.Background(), store.EventFilter{EnterpriseID: tn.ent.ID, AgentID: a.ag.ID,
		Types: []string{protocol.EventCallEnded}, Limit: 5000})
	if err != nil {
		t.Fatal(err)
	}
	got := readSeqs(t, filtered, want[len(want)-1].Seq)
	if len(got) != len(want) {
		t.Fatalf("filtered client got %d events, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i].Seq {
			t.Fatalf("filtered event %d: seq %d, want %d", i, got[i], want[i].Seq)
		}
	}
	t.Logf("%d events from 2 concurrent sessions; live %d, resumed after %d, filtered %d", last, last, after, len(got))
}

// TestStreamHoleFromStore: a batch whose hook never comes (stored by
// another replica) is read from the store once the next live batch shows
// the hole, after HoleGrace.
func TestStreamHoleFromStore(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{quiet: true, cfg: events.Config{HoleGrace: 20 * time.Millisecond}})
	tn := e.tenant(t, "0367")
	a, b := e.injector(t, "0367"), e.injector(t, "0367")
	w := e.mustDial(t, tn.key, "")
	w.next(t)
	a.store(t, 3, 0, false) // seqs 1-3, no hook
	b.batch(t, 2, 0)        // seqs 4-5
	if got := readSeqs(t, w, 5); fmt.Sprint(got) != "[1 2 3 4 5]" {
		t.Fatalf("got %v", got)
	}
	// And a hook that comes late (within the grace) is not read twice.
	a.batch(t, 1, 0) // 6
	late := b.store(t, 1, 0, false)
	b2 := b.store(t, 1, 0, false)
	e.current().svc.OnEvents(b.ag, b2) // 8 arrives before 7
	e.current().svc.OnEvents(b.ag, late)
	b.batch(t, 1, 0) // 9
	if got := readSeqs(t, w, 9); fmt.Sprint(got) != "[6 7 8 9]" {
		t.Fatalf("got %v", got)
	}
}

// TestSlowClient: a client that stops reading is disconnected with a
// close reason saying why and where to resume; a client reading at the
// same time gets every event.
func TestSlowClient(t *testing.T) {
	t.Parallel()
	// WriteTimeout is long so the slow client's close frame is still
	// sendable when the test drains it, however slow the machine.
	e := newEnv(t, envOptions{quiet: true, cfg: events.Config{SubscriberBuffer: 100, WriteTimeout: time.Minute}})
	tn := e.tenant(t, "0367")
	in := e.injector(t, "0367")
	fast := e.mustDial(t, tn.key, "")
	fast.next(t)
	// The slow client reads the first message, then nothing: with a small
	// receive buffer its TCP window closes soon.
	slow := dialUnread(t, e, tn.key)
	// 1000 events of ~8 KiB: more than the socket buffers and the
	// subscriber buffer hold. The fast client reads each batch before the
	// next is stored, so it is never behind.
	const batches, per = 50, 20
	var fastSeqs []int64
	for range batches {
		got := in.batch(t, per, 8000)
		fastSeqs = append(fastSeqs, readSeqs(t, fast, got[len(got)-1].Seq)...)
	}
	if err := contiguous(fastSeqs, 1, batches*per); err != nil {
		t.Fatalf("fast client: %v", err)
	}
	// Drain the slow client: events, then the close frame with its reason.
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	var n int
	for {
		_, _, err := slow.Read(ctx)
		if err == nil {
			n++
			continue
		}
		var ce websocket.CloseError
		if !errors.As(err, &ce) {
			t.Fatalf("slow client ended with %v, want a close frame", err)
		}
		if ce.Code != websocket.StatusPolicyViolation || !strings.Contains(ce.Reason, "slow consumer") || !strings.Contains(ce.Reason, "after=") {
			t.Fatalf("close = %d %q", ce.Code, ce.Reason)
		}
		t.Logf("slow client: %d events, then closed %d %q", n, ce.Code, ce.Reason)
		break
	}
	if n >= batches*per {
		t.Fatalf("slow client received all %d events: it was never slow", n)
	}
	eventually(t, "slow subscriber removed", func() bool { return e.current().svc.Broker().(*events.Hub).Len() == 1 })
}

// dialUnread opens a stream with a 4 KiB socket receive buffer and reads
// only its first message.
func dialUnread(t *testing.T, e *env, token string) *websocket.Conn {
	t.Helper()
	d := &net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return errors.Join(err, serr)
	}}
	hc := &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(e.url(), "http")+"/v1/events",
		&websocket.DialOptions{HTTPClient: hc, HTTPHeader: http.Header{"Authorization": {"Bearer " + token}}})
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadLimit(1 << 20)
	t.Cleanup(func() { c.CloseNow() })
	if _, b, err := c.Read(ctx); err != nil || !strings.Contains(string(b), events.MsgLive) {
		t.Fatalf("first message %s, %v", b, err)
	}
	return c
}

// TestStreamAuthAndFilters: credentials (header, ticket), scopes, query
// validation and tenant isolation.
func TestStreamAuthAndFilters(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{quiet: true})
	a, b := e.tenant(t, "0367"), e.tenant(t, "0420")
	ina, inb := e.injector(t, "0367"), e.injector(t, "0420")
	noEvents := e.apiKey(t, "0367", auth.ScopeOriginate)
	operator := e.jwt(t, "0367", "op-1", auth.RoleOperator)

	for _, tc := range []struct {
		name, token, query string
		status             int
	}{
		{"no credentials", "", "", 401},
		{"bad key", "sbk_key_nope_secret", "", 401},
		{"key without events:read", noEvents, "", 403},
		{"unknown type", a.key, "types=call.exploded", 400},
		{"bad after", a.key, "after=-1", 400},
		{"after beyond the latest", a.key, "after=999999", 400},
		{"pbx of another enterprise", a.key, "pbx=" + inb.ag.ID, 404},
		{"unknown pbx", a.key, "pbx=agt_nope", 404},
		{"bad ticket", "", "ticket=sbt_forged", 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.dial(t, tc.token, tc.query)
			if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("HTTP %d", tc.status)) {
				t.Fatalf("dial = %v, want HTTP %d", err, tc.status)
			}
			// The same checks answer the JSON form with the v1 envelope.
			r := e.do(t, "GET", "/v1/events?"+tc.query, tc.token, nil)
			if r.status != tc.status || !strings.Contains(string(r.body), `"error":{"code":`) {
				t.Fatalf("GET = %d %s, want %d", r.status, r.body, tc.status)
			}
		})
	}

	// An operator JWT streams; enterprise B's client sees none of A's.
	wa := e.mustDial(t, operator, "")
	wb := e.mustDial(t, b.key, "")
	wa.next(t)
	wb.next(t)
	sa := ina.batch(t, 3, 0)
	sb := inb.batch(t, 2, 0)
	if got := readSeqs(t, wa, sa[2].Seq); fmt.Sprint(got) != "[1 2 3]" {
		t.Fatalf("enterprise A got %v", got)
	}
	for _, m := range wb.until(t, func(m msg) bool { return m.Seq == sb[1].Seq }) {
		if m.PBX != inb.ag.ID {
			t.Fatalf("enterprise B got %+v", m)
		}
	}

	// Tickets: issued to a credential with events:read, single use, for
	// GET /v1/events only.
	r := e.do(t, "POST", "/v1/events/ticket", a.key, nil)
	if r.status != 201 {
		t.Fatalf("ticket = %d %s", r.status, r.body)
	}
	var tk struct {
		Ticket string `json:"ticket"`
	}
	r.decode(t, &tk)
	if r := e.do(t, "GET", "/v1/calls?ticket="+url.QueryEscape(tk.Ticket), "", nil); r.status != 400 {
		t.Fatalf("ticket on another route = %d %s", r.status, r.body)
	}
	wt := e.mustDial(t, "", "after=0&types=call.ended&ticket="+url.QueryEscape(tk.Ticket))
	if got := readSeqs(t, wt, 2); fmt.Sprint(got) != "[2]" {
		t.Fatalf("ticket client got %v", got)
	}
	if _, err := e.dial(t, "", "ticket="+url.QueryEscape(tk.Ticket)); err == nil || !strings.Contains(err.Error(), "HTTP 401") {
		t.Fatalf("second use of the ticket: %v", err)
	}
	if r := e.do(t, "POST", "/v1/events/ticket", noEvents, nil); r.status != 403 {
		t.Fatalf("ticket for a key without events:read = %d", r.status)
	}
}

// TestPolling: GET /v1/events without an upgrade pages through the store.
func TestPolling(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{quiet: true})
	tn := e.tenant(t, "0367")
	in := e.injector(t, "0367")
	in.batch(t, 5, 0)
	type page struct {
		Events    []msg `json:"events"`
		NextAfter int64 `json:"next_after"`
		HasMore   bool  `json:"has_more"`
		Truncated bool  `json:"truncated"`
	}
	get := func(q string) page {
		t.Helper()
		r := e.do(t, "GET", "/v1/events?"+q, tn.key, nil)
		if r.status != 200 {
			t.Fatalf("GET /v1/events?%s = %d %s", q, r.status, r.body)
		}
		var p page
		r.decode(t, &p)
		return p
	}
	p := get("after=0&limit=2")
	if len(p.Events) != 2 || p.Events[0].Seq != 1 || !p.HasMore || p.NextAfter != 2 || p.Truncated {
		t.Fatalf("page 1 = %+v", p)
	}
	p = get("after=2&limit=10")
	if len(p.Events) != 3 || p.HasMore || p.NextAfter != 5 {
		t.Fatalf("page 2 = %+v", p)
	}
	// A filter that matches nothing still moves the cursor on.
	p = get("after=0&types=call.bridged")
	if len(p.Events) != 0 || p.NextAfter != 5 {
		t.Fatalf("filtered page = %+v", p)
	}
	if r := e.do(t, "GET", "/v1/events?limit=0", tn.key, nil); r.status != 400 {
		t.Fatalf("limit=0 = %d", r.status)
	}
}

// TestRetentionTruncated: a client resuming from before what retention
// kept is told so, then gets what is left.
func TestRetentionTruncated(t *testing.T) {
	t.Parallel()
	var offset atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	e := newEnv(t, envOptions{quiet: true, cfg: events.Config{EventRetention: time.Hour, MaxDeliveryAge: 30 * time.Minute, Now: now}})
	tn := e.tenant(t, "0367")
	in := e.injector(t, "0367")
	in.batch(t, 4, 0)
	offset.Store(int64(2 * time.Hour))
	e.current().svc.Prune(context.Background())
	offset.Store(0)
	in.batch(t, 2, 0) // seqs 5, 6 survive
	w := e.mustDial(t, tn.key, "after=1")
	m := w.next(t)
	if m.Type != events.MsgTruncated || m.RequestedAfter != 1 || m.OldestSeq != 5 || m.Seq != 4 || !strings.Contains(m.Message, "retention") {
		t.Fatalf("first message = %+v", m)
	}
	if got := readSeqs(t, w, 6); fmt.Sprint(got) != "[5 6]" {
		t.Fatalf("after truncation got %v", got)
	}
	r := e.do(t, "GET", "/v1/events?after=0", tn.key, nil)
	if !strings.Contains(string(r.body), `"truncated":true`) || !strings.Contains(string(r.body), `"oldest_seq":5`) {
		t.Fatalf("polling page = %s", r.body)
	}
	// Resuming from where retention begins is not truncated.
	w2 := e.mustDial(t, tn.key, "after=4")
	if m := w2.next(t); m.Type != "call.started" || m.Seq != 5 {
		t.Fatalf("after=4 first message = %+v", m)
	}
}
