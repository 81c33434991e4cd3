package gateway_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/gateway"
	"github.com/switchboard-pbx/switchboard/controlplane/metrics"
	"github.com/switchboard-pbx/switchboard/controlplane/store"
	"github.com/switchboard-pbx/switchboard/internal/testio"
	"github.com/switchboard-pbx/switchboard/protocol"
	"github.com/switchboard-pbx/switchboard/protocol/tunnel"
)

// scrape returns the metrics text.
func scrape(t testing.TB, m *metrics.Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	return rec.Body.String()
}

// metricValue returns a sample's value, or -1 when absent.
func metricValue(t testing.TB, m *metrics.Metrics, sample string) float64 {
	t.Helper()
	for _, line := range strings.Split(scrape(t, m), "\n") {
		if rest, ok := strings.CutPrefix(line, sample+" "); ok {
			var v float64
			if _, err := fmt.Sscan(rest, &v); err == nil {
				return v
			}
		}
	}
	return -1
}

// withMetrics gives the gateway real metrics.
func withMetrics(m *metrics.Metrics, more func(*gateway.Config)) func(*gateway.Config) {
	return func(c *gateway.Config) {
		c.Observer = m
		if more != nil {
			more(c)
		}
	}
}

// dialHello plays an agent that sends hello.
func (r *rig) dialHello(t *testing.T, ctx context.Context, hello protocol.Hello) (*tunnel.Session, net.Conn) {
	t.Helper()
	sess, err := tunnel.Dial(ctx, tunnel.DialConfig{URL: r.url, Token: r.token})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sess.Close() })
	ctrl, err := sess.Open(ctx, protocol.StreamControl)
	if err != nil {
		t.Fatal(err)
	}
	if err := protocol.WriteFrame(ctrl, hello); err != nil {
		t.Fatal(err)
	}
	var w protocol.Welcome
	if err := protocol.ReadFrame(ctrl, &w, 0); err != nil {
		t.Fatalf("welcome: %v", err)
	}
	return sess, ctrl
}

var refusingHello = protocol.Hello{Protocol: protocol.Version, AgentVersion: "test", Hostname: "pbx", AMI: protocol.AMIUp,
	Capabilities: []string{protocol.OpPing, protocol.CapEventRefusal}}

func events(from, to uint64) protocol.EventBatch {
	var b protocol.EventBatch
	for s := from; s <= to; s++ {
		b.Events = append(b.Events, protocol.Event{Seq: s, Type: protocol.EventCallStarted, CallID: fmt.Sprintf("c%d", s)})
	}
	return b
}

func readAck(t *testing.T, st net.Conn) protocol.Ack {
	t.Helper()
	_ = st.SetReadDeadline(time.Now().Add(10 * time.Second))
	var a protocol.Ack
	if err := protocol.ReadFrame(st, &a, 0); err != nil {
		t.Fatalf("read ack: %v", err)
	}
	return a
}

func (r *rig) storedCount(t *testing.T) int {
	t.Helper()
	evs, err := r.st.ListEvents(context.Background(), store.EventFilter{EnterpriseID: r.agent.EnterpriseID, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return len(evs)
}

// failingStore is the real store whose event writes can be made to fail,
// as with a full disk.
type failingStore struct {
	*store.Store
	fail  atomic.Bool
	tries atomic.Int64
}

var errDiskFull = errors.New("database or disk is full (SQLITE_FULL)")

func (f *failingStore) StoreAgentEvents(ctx context.Context, agentID string, enterpriseID int64, evs []protocol.Event) ([]store.StoredEvent, error) {
	f.tries.Add(1)
	if f.fail.Load() {
		return nil, errDiskFull
	}
	return f.Store.StoreAgentEvents(ctx, agentID, enterpriseID, evs)
}

// TestStoreFailureKeepsSession replays the review's full disk: before,
// every batch that failed to store ended the agent's session, so PBXs
// flapped and originates got 503. Now the batch is held unacknowledged
// and retried on the same session; status and requests go on; StoreFailing
// and a metric say so; once the store recovers the batch is stored once
// and acknowledged.
func TestStoreFailureKeepsSession(t *testing.T) {
	m := metrics.New(func() int { return 0 })
	var fs *failingStore
	r := newRigWith(t, withMetrics(m, func(c *gateway.Config) {
		fs = &failingStore{Store: c.Store.(*store.Store)}
		c.Store = fs
		c.StoreRetryMin, c.StoreRetryMax = 10*time.Millisecond, 40*time.Millisecond
	}))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sess, ctrl := r.dialHello(t, ctx, refusingHello)
	go func() {
		_ = tunnel.ServeRequests(ctx, sess, func(context.Context, protocol.Request) (any, error) {
			return protocol.PingResult{AMIRoundTripMicros: 7}, nil
		}, tunnel.ServeConfig{})
	}()
	evs, err := sess.Open(ctx, protocol.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	fs.fail.Store(true)
	if err := protocol.WriteFrame(evs, events(1, 5)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "several failed attempts", func() bool { return fs.tries.Load() >= 3 })
	if failing, err := r.gw.StoreFailing(); !failing || !errors.Is(err, errDiskFull) {
		t.Fatalf("StoreFailing() = %v, %v; want true, the store's error", failing, err)
	}
	if v := metricValue(t, m, "switchboard_event_batches_held"); v != 1 {
		t.Fatalf("switchboard_event_batches_held = %v, want 1", v)
	}
	if v := metricValue(t, m, "switchboard_event_store_failures_total"); v < 3 {
		t.Fatalf("switchboard_event_store_failures_total = %v, want >= 3", v)
	}
	// The session is up: a request goes through and a status arrives.
	var ping protocol.PingResult
	cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
	defer ccancel()
	if err := r.reg.Call(cctx, r.agent.ID, protocol.OpPing, nil, &ping); err != nil || ping.AMIRoundTripMicros != 7 {
		t.Fatalf("request while the store fails: %+v, %v", ping, err)
	}
	if err := protocol.WriteFrame(ctrl, protocol.Status{AMI: protocol.AMIUp, LiveCalls: 3}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "status while the store fails", func() bool {
		c, _ := r.reg.Get(r.agent.ID)
		st, _ := c.Status()
		return st.LiveCalls == 3
	})
	// No ack while the batch is not stored.
	_ = evs.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	var early protocol.Ack
	if err := protocol.ReadFrame(evs, &early, 0); err == nil {
		t.Fatalf("acknowledged %+v while the store refused it", early)
	}
	if n := r.storedCount(t); n != 0 {
		t.Fatalf("%d events stored while the store failed", n)
	}

	fs.fail.Store(false)
	if a := readAck(t, evs); a.Seq != 5 {
		t.Fatalf("ack after recovery = %+v, want 5", a)
	}
	if n := r.storedCount(t); n != 5 {
		t.Fatalf("%d events stored after recovery, want 5", n)
	}
	if failing, _ := r.gw.StoreFailing(); failing {
		t.Fatal("StoreFailing still true after the batch was stored")
	}
	if v := metricValue(t, m, "switchboard_event_batches_held"); v != 0 {
		t.Fatalf("switchboard_event_batches_held = %v after recovery", v)
	}
	select {
	case <-sess.Done():
		t.Fatal("the session ended")
	default:
	}
}

// TestEventRateBackpressure replays the review's event flood (38,000
// events in 15 s from one agent): past its rate the agent's batches are
// stored later, not refused: the ack waits, the agent keeps its events,
// nothing is dropped, and the metric counts the waits.
func TestEventRateBackpressure(t *testing.T) {
	m := metrics.New(func() int { return 0 })
	r := newRigWith(t, withMetrics(m, func(c *gateway.Config) { c.EventRate, c.EventBurst = 50, 20 }))
	ctx := context.Background()
	sess, _ := r.dialHello(t, ctx, refusingHello)
	evs, err := sess.Open(ctx, protocol.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	if err := protocol.WriteFrame(evs, events(1, 20)); err != nil {
		t.Fatal(err)
	}
	if a := readAck(t, evs); a.Seq != 20 {
		t.Fatalf("ack = %+v", a)
	}
	if v := metricValue(t, m, "switchboard_agent_events_throttled_total"); v != 0 {
		t.Fatalf("throttled within the burst: %v", v)
	}
	// 30 more events: 0.6 s at 50/s.
	if err := protocol.WriteFrame(evs, events(21, 50)); err != nil {
		t.Fatal(err)
	}
	if a := readAck(t, evs); a.Seq != 50 {
		t.Fatalf("ack = %+v", a)
	}
	if v := metricValue(t, m, "switchboard_agent_events_throttled_total"); v != 1 {
		t.Fatalf("switchboard_agent_events_throttled_total = %v, want 1", v)
	}
	// The limiter's own reckoning of the wait: 30 events over a burst of
	// 20 at 50/s is at most 0.6 s, less what refilled while the test ran.
	if v := metricValue(t, m, "switchboard_agent_events_throttled_seconds_total"); v <= 0 || v > 0.61 {
		t.Fatalf("waited %v s for 30 events at 50/s", v)
	}
	if n := r.storedCount(t); n != 50 {
		t.Fatalf("%d stored, want all 50", n)
	}
}

// TestOversizedFrameRefused: an events frame over the limit is skipped
// unread and refused in an ack; frames the agent sent after it are
// ignored until it resends the events after the ack, smaller; the session
// stays. An agent that did not announce it can resend ends its session.
func TestOversizedFrameRefused(t *testing.T) {
	m := metrics.New(func() int { return 0 })
	r := newRigWith(t, withMetrics(m, func(c *gateway.Config) { c.MaxFrameBytes = gateway.MinMaxFrameBytes }))
	ctx := context.Background()
	sess, _ := r.dialHello(t, ctx, refusingHello)
	evs, err := sess.Open(ctx, protocol.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	if err := protocol.WriteFrame(evs, events(1, 2)); err != nil {
		t.Fatal(err)
	}
	if a := readAck(t, evs); a.Seq != 2 || a.Refused != nil {
		t.Fatalf("ack = %+v", a)
	}
	big := events(3, 4)
	big.Events[0].From = strings.Repeat("7", 200<<10)
	for _, b := range []protocol.EventBatch{big, events(5, 6)} { // the second is pipelined behind the first
		if err := protocol.WriteFrame(evs, b); err != nil {
			t.Fatal(err)
		}
	}
	a := readAck(t, evs)
	if a.Seq != 2 || a.Refused == nil || a.Refused.MaxBytes != gateway.MinMaxFrameBytes || a.Refused.FrameBytes < 200<<10 {
		t.Fatalf("refusal = %+v (refused %+v)", a, a.Refused)
	}
	// The resend, in frames that fit.
	for _, b := range []protocol.EventBatch{events(3, 4), events(5, 6)} {
		if err := protocol.WriteFrame(evs, b); err != nil {
			t.Fatal(err)
		}
	}
	for a := readAck(t, evs); a.Seq != 6; a = readAck(t, evs) { // the two may share a transaction
		if a.Seq != 4 || a.Refused != nil {
			t.Fatalf("ack of the resend = %+v", a)
		}
	}
	if n := r.storedCount(t); n != 6 {
		t.Fatalf("%d stored, want 6", n)
	}
	if v := metricValue(t, m, `switchboard_agent_limit_violations_total{reason="frame_too_large"}`); v != 1 {
		t.Fatalf("frame_too_large = %v", v)
	}

	// An agent without the capability: the session ends, as before.
	old, _, _ := r.dial(t, ctx)
	oevs, err := old.Open(ctx, protocol.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	if err := protocol.WriteFrame(oevs, big); err != nil {
		t.Fatal(err)
	}
	select {
	case <-old.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("session of an agent that cannot resend kept after an oversized frame")
	}
}

// TestUnexpectedStreamEndsSession: an agent opens control and events;
// anything else (the review parked 256 streams of 256 KB) ends the
// session, and is counted.
func TestUnexpectedStreamEndsSession(t *testing.T) {
	m := metrics.New(func() int { return 0 })
	r := newRigWith(t, withMetrics(m, nil))
	ctx := context.Background()
	sess, _ := r.dialHello(t, ctx, refusingHello)
	if _, err := sess.Open(ctx, protocol.StreamRequest); err != nil {
		t.Fatal(err)
	}
	select {
	case <-sess.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("session kept after the agent opened a request stream")
	}
	if v := metricValue(t, m, `switchboard_agent_limit_violations_total{reason="unexpected_stream"}`); v != 1 {
		t.Fatalf("unexpected_stream = %v", v)
	}
}

// TestParkedStreamsBounded: streams opened after the events stream are
// never accepted; past StreamBacklog yamux resets them, so what an agent
// can park is StreamBacklog stream windows, not one per stream it opens.
func TestParkedStreamsBounded(t *testing.T) {
	const backlog = 3
	r := newRigWith(t, func(c *gateway.Config) { c.StreamBacklog = backlog })
	ctx := context.Background()
	sess, _ := r.dialHello(t, ctx, refusingHello)
	if _, err := sess.Open(ctx, protocol.StreamEvents); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "registration", func() bool { return r.reg.Len() == 1 })
	const opened = 12
	var reset atomic.Int32
	done := make(chan struct{}, opened)
	for range opened {
		st, err := sess.Open(ctx, protocol.StreamEvents)
		if err != nil && strings.Contains(err.Error(), "connection reset") {
			// Reset before its kind byte went out: the backlog was full.
			reset.Add(1)
			done <- struct{}{}
			continue
		}
		if err != nil {
			// Reset already, before its kind byte was written: the
			// backlog was full when it arrived.
			if !strings.Contains(err.Error(), "connection reset") {
				t.Fatal(err)
			}
			reset.Add(1)
			done <- struct{}{}
			continue
		}
		go func() {
			defer func() { done <- struct{}{} }()
			_ = st.SetReadDeadline(time.Now().Add(2 * time.Second))
			if _, err := st.Read(make([]byte, 1)); err != nil && !errors.Is(err, io.EOF) && !isTimeout(err) {
				reset.Add(1) // the gateway reset it
			}
		}()
	}
	for range opened {
		<-done
	}
	if got := int(reset.Load()); got < opened-backlog {
		t.Fatalf("%d of %d parked streams reset, want at least %d (backlog %d)", got, opened, opened-backlog, backlog)
	}
	select {
	case <-sess.Done():
		t.Fatal("the session ended: the resets were not the backlog's")
	default:
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestHelloAndStatusBounded: a hello frame over the control frame limit
// (the review's 1 MB hostname) is refused; long fields in a smaller one are
// cut and logged by name and length, never by value.
func TestHelloAndStatusBounded(t *testing.T) {
	m := metrics.New(func() int { return 0 })
	logs := &testio.Buffer{}
	r := newRigWith(t, withMetrics(m, func(c *gateway.Config) { c.Logger = slog.New(slog.NewTextHandler(logs, nil)) }))
	ctx := context.Background()

	huge := protocol.Hello{Protocol: protocol.Version, AgentVersion: "test", Hostname: strings.Repeat("h", 1<<20), AMI: protocol.AMIUp}
	sess, err := tunnel.Dial(ctx, tunnel.DialConfig{URL: r.url, Token: r.token})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	ctrl, err := sess.Open(ctx, protocol.StreamControl)
	if err != nil {
		t.Fatal(err)
	}
	_ = protocol.WriteFrame(ctrl, huge) // may fail once the gateway resets the stream
	select {
	case <-sess.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("session kept after a 1 MB hello")
	}
	waitFor(t, "the refused hello counted", func() bool {
		return metricValue(t, m, `switchboard_agent_limit_violations_total{reason="control_frame_too_large"}`) == 1
	})

	long := strings.Repeat("x", 5000)
	_, ctrl2 := r.dialHello(t, ctx, protocol.Hello{Protocol: protocol.Version, AgentVersion: long, Hostname: "pbx." + long, AMI: "sideways",
		Capabilities: []string{long}})
	waitFor(t, "registration", func() bool { return r.reg.Len() == 1 })
	c, _ := r.reg.Get(r.agent.ID)
	if h := c.Hello; len(h.Hostname) != gateway.DefaultMaxHelloFieldBytes || len(h.AgentVersion) != gateway.DefaultMaxHelloFieldBytes ||
		len(h.Capabilities[0]) != gateway.DefaultMaxHelloFieldBytes || h.AMI != protocol.AMIDown {
		t.Fatalf("hello kept: hostname %d bytes, version %d, capability %d, ami %q", len(h.Hostname), len(h.AgentVersion), len(h.Capabilities[0]), h.AMI)
	}
	for range 3 {
		if err := protocol.WriteFrame(ctrl2, protocol.Status{AMI: protocol.AMIDown, AMIError: long, LiveCalls: -4}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "status", func() bool {
		st, _ := c.Status()
		return len(st.AMIError) == gateway.DefaultMaxHelloFieldBytes && st.LiveCalls == 0
	})
	// The status reader may still be on the second and third frame.
	waitFor(t, "every cut counted", func() bool {
		return metricValue(t, m, `switchboard_agent_limit_violations_total{reason="field_truncated"}`) >= 4
	})
	out := logs.String()
	if strings.Contains(out, strings.Repeat("x", 300)) || strings.Contains(out, strings.Repeat("h", 300)) {
		t.Fatal("a long value reached the log")
	}
	for _, want := range []string{"field=hostname bytes=5004", "field=agent_version bytes=5000", "field=capabilities", "field=ami_error bytes=5000"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q", want)
		}
	}
	if n := strings.Count(out, "field=ami_error"); n != 1 {
		t.Errorf("status cut logged %d times, want once per session", n)
	}
	// The hello and three statuses (read one after another: the last may
	// still be on its way).
	waitFor(t, "field_truncated for the hello and three statuses", func() bool {
		return metricValue(t, m, `switchboard_agent_limit_violations_total{reason="field_truncated"}`) >= 4
	})
}
