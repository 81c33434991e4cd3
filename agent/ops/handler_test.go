package ops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/agent/channels"
	"github.com/switchboard-pbx/switchboard/protocol"
	"github.com/switchboard-pbx/switchboard/protocol/ami"
)

// fakeAMI is a small stand-in for the AMI client, for the error paths
// amitest cannot produce on demand (timeouts, lost connections).
type fakeAMI struct {
	mu        sync.Mutex
	connected bool
	sent      []*ami.Message
	// err answers every action when set.
	err error
	// list answers List.
	list *ami.ListResult
	// results feeds the Wait of queued originates.
	results chan *ami.OriginateResult
}

func newFakeAMI() *fakeAMI {
	return &fakeAMI{connected: true, results: make(chan *ami.OriginateResult, 100)}
}

func (f *fakeAMI) record(m *ami.Message) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sent = append(f.sent, m)
	return f.err
}

func (f *fakeAMI) Action(ctx context.Context, m *ami.Message) (*ami.Message, error) {
	if err := f.record(m); err != nil {
		return nil, err
	}
	return ami.NewAction("x", "Response", "Success"), nil
}

func (f *fakeAMI) List(ctx context.Context, m *ami.Message) (*ami.ListResult, error) {
	if err := f.record(m); err != nil {
		return nil, err
	}
	return f.list, nil
}

func (f *fakeAMI) Originate(ctx context.Context, m *ami.Message) (Pending, error) {
	if err := f.record(m); err != nil {
		return nil, err
	}
	return fakePending{f.results}, nil
}

func (f *fakeAMI) Ping(ctx context.Context) (time.Duration, error) {
	if err := f.record(ami.NewAction("Ping")); err != nil {
		return 0, err
	}
	return 70 * time.Microsecond, nil
}

func (f *fakeAMI) Connected() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.connected
}

func (f *fakeAMI) actions() []*ami.Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*ami.Message(nil), f.sent...)
}

type fakePending struct{ results chan *ami.OriginateResult }

func (p fakePending) ActionID() string { return "fake-1" }
func (p fakePending) Wait(ctx context.Context) (*ami.OriginateResult, error) {
	select {
	case r := <-p.results:
		return r, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func item(kv ...string) *ami.Message {
	m := &ami.Message{}
	for i := 0; i+1 < len(kv); i += 2 {
		m.Add(kv[i], kv[i+1])
	}
	return m
}

// liveTable is 05's call: 150 talking to +375296254070.
func liveTable(now time.Time) *channels.Table {
	tab := channels.New(channels.Config{Now: func() time.Time { return now }})
	csc := func(name, id, state, dur string) *ami.Message {
		return item("Event", "CoreShowChannel", "Channel", name, "Uniqueid", id, "Linkedid", "1795337025.18",
			"ChannelStateDesc", state, "Duration", dur)
	}
	tab.Replace([]*ami.Message{
		csc("Local/150@inoffice-00000009;1", "1795337025.18", "Up", "00:01:00"),
		csc("Local/150@inoffice-00000009;2", "1795337025.19", "Up", "00:01:00"),
		csc("Local/+375296254070@inoffice-0000000a;1", "1795337025.20", "Up", "00:00:50"),
		csc("Local/+375296254070@inoffice-0000000a;2", "1795337025.21", "Up", "00:00:50"),
	})
	return tab
}

func newTestHandler(t *testing.T, f *fakeAMI, mod func(*Config)) *Handler {
	t.Helper()
	now := time.Date(2026, 11, 22, 8, 44, 0, 0, time.UTC)
	cfg := Config{
		AMI:       f,
		Channels:  liveTable(now),
		NewCallID: func() string { return "sb-1-0001" },
		Now:       func() time.Time { return now },
	}
	if mod != nil {
		mod(&cfg)
	}
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

func request(op string, args any) protocol.Request {
	raw, _ := json.Marshal(args)
	if args == nil {
		raw = nil
	}
	return protocol.Request{ID: "r1", Op: op, Deadline: time.Now().Add(5 * time.Second), Args: raw}
}

func TestHandleErrors(t *testing.T) {
	cases := []struct {
		name string
		fake func(*fakeAMI)
		req  protocol.Request
		code string
	}{
		{"unknown op", nil, request("exec", map[string]string{"cmd": "rm -rf /"}), protocol.ErrCodeUnsupported},
		{"missing args", nil, request(protocol.OpOriginate, nil), protocol.ErrCodeInvalid},
		{"wrong arg types", nil, protocol.Request{Op: protocol.OpOriginate, Deadline: time.Now().Add(time.Second), Args: json.RawMessage(`{"from":150}`)}, protocol.ErrCodeInvalid},
		{"invalid number", nil, request(protocol.OpOriginate, protocol.OriginateArgs{From: "150", To: "x"}), protocol.ErrCodeInvalid},
		{"deadline passed", nil, protocol.Request{Op: protocol.OpPing, Deadline: time.Now().Add(-time.Second)}, protocol.ErrCodeTimeout},
		{"ami down originate", func(f *fakeAMI) { f.connected = false }, request(protocol.OpOriginate, protocol.OriginateArgs{From: "150", To: "151"}), protocol.ErrCodeAMIDown},
		{"ami down channels", func(f *fakeAMI) { f.connected = false }, request(protocol.OpChannels, nil), protocol.ErrCodeAMIDown},
		{"ami down hangup", func(f *fakeAMI) { f.connected = false }, request(protocol.OpHangup, protocol.HangupArgs{UniqueID: "1795337025.18"}), protocol.ErrCodeAMIDown},
		{"not connected race", func(f *fakeAMI) { f.err = ami.ErrNotConnected }, request(protocol.OpPing, nil), protocol.ErrCodeAMIDown},
		{"lost in flight", func(f *fakeAMI) { f.err = fmt.Errorf("originate: %w", ami.ErrDisconnected) }, request(protocol.OpOriginate, protocol.OriginateArgs{From: "150", To: "151"}), protocol.ErrCodeAMIDown},
		{"ami timeout", func(f *fakeAMI) { f.err = fmt.Errorf("%w: %w", ami.ErrTimeout, context.DeadlineExceeded) }, request(protocol.OpPing, nil), protocol.ErrCodeTimeout},
		{"asterisk error", func(f *fakeAMI) { f.err = &ami.ResponseError{Action: "Originate", Message: "Originate failed"} }, request(protocol.OpOriginate, protocol.OriginateArgs{From: "150", To: "151"}), protocol.ErrCodeAMIError},
		{"no such channel", func(f *fakeAMI) { f.err = &ami.ResponseError{Action: "Hangup", Message: "No such channel"} }, request(protocol.OpHangup, protocol.HangupArgs{Channel: "PJSIP/9-1", Force: true}), protocol.ErrCodeNotFound},
		{"unknown uniqueid", nil, request(protocol.OpHangup, protocol.HangupArgs{UniqueID: "1.999"}), protocol.ErrCodeNotFound},
		{"unknown channel", nil, request(protocol.OpHangup, protocol.HangupArgs{Channel: "PJSIP/9-1"}), protocol.ErrCodeNotFound},
		{"channel and uniqueid disagree", nil, request(protocol.OpHangup, protocol.HangupArgs{Channel: "Local/150@inoffice-00000009;2", UniqueID: "1795337025.18"}), protocol.ErrCodeInvalid},
		{"monitor no live call", nil, request(protocol.OpMonitor, protocol.MonitorArgs{Mode: "spy", Target: "777", From: "151"}), protocol.ErrCodeNotFound},
		{"call id in use", nil, request(protocol.OpOriginate, protocol.OriginateArgs{From: "150", To: "151", CallID: "1795337025.18"}), protocol.ErrCodeInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeAMI()
			if tc.fake != nil {
				tc.fake(f)
			}
			h := newTestHandler(t, f, nil)
			resp := call(h, tc.req)
			if resp.Error == nil || resp.Error.Code != tc.code {
				t.Fatalf("response %+v (error %v), want code %s", resp, resp.Error, tc.code)
			}
			if resp.Result != nil {
				t.Errorf("error response carries a result: %s", resp.Result)
			}
			if tc.code == protocol.ErrCodeInvalid || tc.code == protocol.ErrCodeUnsupported {
				if n := len(f.actions()); n != 0 {
					t.Errorf("%d actions reached AMI for a refused request", n)
				}
			}
		})
	}
}

// TestEveryOpDispatched: every operation of the protocol reaches its
// handler, which refuses it without arguments unless all of its
// arguments are optional.
func TestEveryOpDispatched(t *testing.T) {
	optional := map[string]bool{protocol.OpChannels: true, protocol.OpStatus: true, protocol.OpPing: true,
		protocol.OpQueues: true, protocol.OpParked: true}
	f := newFakeAMI()
	f.connected = false // nothing an operation might send reaches the fake
	h := newTestHandler(t, f, nil)
	for _, op := range protocol.Ops {
		resp := call(h, request(op, nil))
		switch {
		case resp.Error != nil && resp.Error.Code == protocol.ErrCodeUnsupported:
			t.Errorf("%s: not dispatched: %s", op, resp.Error.Message)
		case optional[op]:
			if resp.Error != nil && resp.Error.Code == protocol.ErrCodeInvalid {
				t.Errorf("%s without arguments: %s", op, resp.Error.Message)
			}
		case resp.Error == nil || resp.Error.Code != protocol.ErrCodeInvalid || resp.Error.Message != "args: are required":
			t.Errorf("%s without arguments: %+v, want invalid args: are required", op, resp.Error)
		}
	}
}

func TestOriginateBusyAndRelease(t *testing.T) {
	f := newFakeAMI()
	h := newTestHandler(t, f, func(c *Config) { c.MaxConcurrentOriginates = 2 })
	args := protocol.OriginateArgs{From: "150", To: "151"}
	for i := range 2 {
		if _, err := h.Originate(context.Background(), args); err != nil {
			t.Fatalf("originate %d: %v", i, err)
		}
	}
	_, err := h.Originate(context.Background(), args)
	if pe := ErrorFor(err); pe.Code != protocol.ErrCodeBusy {
		t.Fatalf("third originate: %v, want busy", err)
	}
	if n := len(f.actions()); n != 2 {
		t.Errorf("%d originates reached AMI, want 2", n)
	}
	// A monitor is an originate too.
	_, err = h.Monitor(context.Background(), protocol.MonitorArgs{Mode: "spy", Target: "150", From: "151"})
	if !errors.Is(err, ErrBusy) {
		t.Fatalf("monitor while full: %v, want busy", err)
	}
	// Asterisk answers one: its slot comes back.
	f.results <- &ami.OriginateResult{Success: true, Reason: 4}
	deadline := time.Now().Add(5 * time.Second)
	for h.InFlightOriginates() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("slot not released: %d in flight", h.InFlightOriginates())
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := h.Originate(context.Background(), args); err != nil {
		t.Fatalf("originate after release: %v", err)
	}
}

func TestOriginateFailureReleasesSlot(t *testing.T) {
	f := newFakeAMI()
	f.err = &ami.ResponseError{Action: "Originate", Message: "Originate failed"}
	h := newTestHandler(t, f, func(c *Config) { c.MaxConcurrentOriginates = 1 })
	for range 3 {
		if _, err := h.Originate(context.Background(), protocol.OriginateArgs{From: "150", To: "151"}); ErrorFor(err).Code != protocol.ErrCodeAMIError {
			t.Fatalf("err = %v", err)
		}
	}
	if n := h.InFlightOriginates(); n != 0 {
		t.Errorf("%d slots held after failures", n)
	}
}

func TestHangupResults(t *testing.T) {
	f := newFakeAMI()
	h := newTestHandler(t, f, nil)

	res, err := h.Hangup(context.Background(), protocol.HangupArgs{UniqueID: "1795337025.18", Cause: 17})
	if err != nil {
		t.Fatal(err)
	}
	got := res.Hungup
	if len(got) != 1 || got[0].Channel != "Local/150@inoffice-00000009;1" || got[0].DurationMS != 60000 || got[0].LinkedID != "1795337025.18" {
		t.Fatalf("hungup = %+v", got)
	}
	sent := f.actions()[0]
	if sent.Action() != "Hangup" || sent.Get("Channel") != "Local/150@inoffice-00000009;1" || sent.Get("Cause") != "17" {
		t.Errorf("sent %s", sent)
	}

	res, err = h.Hangup(context.Background(), protocol.HangupArgs{Channel: "PJSIP/gone-1", Force: true})
	if err != nil || len(res.Hungup) != 1 || res.Hungup[0].Channel != "PJSIP/gone-1" || res.Hungup[0].DurationMS != 0 {
		t.Fatalf("forced hangup = %+v, %v", res, err)
	}

	f.list = &ami.ListResult{Items: []*ami.Message{
		item("Event", "ChannelHungup", "Channel", "Local/150@inoffice-00000009;2"),
		item("Event", "ChannelHungup", "Channel", "Local/+375296254070@inoffice-0000000a;1"),
		item("Event", "ChannelHungup", "Channel", "PJSIP/new-0000000f"),
	}}
	res, err = h.Hangup(context.Background(), protocol.HangupArgs{All: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Hungup) != 3 || res.Hungup[0].UniqueID != "1795337025.19" || res.Hungup[1].DurationMS != 50000 || res.Hungup[2].UniqueID != "" {
		t.Fatalf("hangup all = %+v", res.Hungup)
	}
	all := f.actions()[2]
	if all.Get("Channel") != "/.*/" || all.Get("Cause") != "16" {
		t.Errorf("hangup all sent %s", all)
	}
}

func TestMonitorBuildsChanSpy(t *testing.T) {
	for mode, opts := range map[string]string{"spy": "bq", "whisper": "bqw", "barge": "Bbqw"} {
		t.Run(mode, func(t *testing.T) {
			f := newFakeAMI()
			h := newTestHandler(t, f, nil)
			res, err := h.Monitor(context.Background(), protocol.MonitorArgs{Mode: mode, Target: "150", From: "151", CallerID: "Spy <151>"})
			if err != nil {
				t.Fatal(err)
			}
			want := protocol.MonitorResult{
				TargetChannel: "Local/150@inoffice-00000009;1", TargetPrefix: "Local/150@inoffice-00000009",
				SpyChannel: "Local/151@inoffice", SpyCallID: "sb-1-0001", ChanSpyOptions: opts,
			}
			if res != want {
				t.Errorf("result %+v, want %+v", res, want)
			}
			m := f.actions()[0]
			if m.Get("Channel") != "Local/151@inoffice" || m.Get("Application") != "ChanSpy" ||
				m.Get("Data") != "Local/150@inoffice-00000009,"+opts || m.Get("ChannelId") != "sb-1-0001" ||
				m.Get("CallerID") != `"Spy" <151>` {
				t.Errorf("sent %s", m)
			}
		})
	}
}

func TestChannelsStatusPing(t *testing.T) {
	f := newFakeAMI()
	h := newTestHandler(t, f, nil)
	resp := call(h, request(protocol.OpChannels, nil))
	var ch protocol.ChannelsResult
	if resp.Error != nil || json.Unmarshal(resp.Result, &ch) != nil || len(ch.Channels) != 4 {
		t.Fatalf("channels: %+v", resp)
	}
	resp = call(h, request(protocol.OpStatus, nil))
	var st protocol.Status
	if resp.Error != nil || json.Unmarshal(resp.Result, &st) != nil || st.AMI != protocol.AMIUp || st.LiveChannels != 4 || st.LiveCalls != 1 {
		t.Fatalf("status: %+v %s", resp, resp.Result)
	}
	resp = call(h, request(protocol.OpPing, nil))
	var p protocol.PingResult
	if resp.Error != nil || json.Unmarshal(resp.Result, &p) != nil || p.AMIRoundTripMicros != 70 {
		t.Fatalf("ping: %+v", resp)
	}
}

func TestConfigValidate(t *testing.T) {
	cases := []Config{
		{},
		{AMI: newFakeAMI()},
		{AMI: newFakeAMI(), Channels: channels.New(channels.Config{}), Context: "in office"},
		{AMI: newFakeAMI(), Channels: channels.New(channels.Config{}), MaxConcurrentOriginates: -1},
	}
	for _, c := range cases {
		if _, err := New(c); err == nil {
			t.Errorf("New(%+v) accepted", c)
		}
	}
}

// TestTrackerHints: the tracker learns about a call before its Originate
// is sent, and not at all when the request is refused.
func TestTrackerHints(t *testing.T) {
	f := newFakeAMI()
	var hints []string
	h := newTestHandler(t, f, func(c *Config) {
		c.MaxConcurrentOriginates = 2
		c.ExpectOriginate = func(id, from, to string) {
			hints = append(hints, fmt.Sprintf("originate %s %s→%s after %d actions", id, from, to, len(f.actions())))
		}
		c.ExpectMonitor = func(id, target string) {
			hints = append(hints, fmt.Sprintf("monitor %s on %s after %d actions", id, target, len(f.actions())))
		}
	})
	if _, err := h.Originate(context.Background(), protocol.OriginateArgs{From: "150", To: "151", CallID: "crm-1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Monitor(context.Background(), protocol.MonitorArgs{Mode: "spy", Target: "150", From: "152"}); err != nil {
		t.Fatal(err)
	}
	_, _ = h.Originate(context.Background(), protocol.OriginateArgs{From: "150", To: "x"})   // invalid
	_, _ = h.Originate(context.Background(), protocol.OriginateArgs{From: "150", To: "153"}) // busy
	want := []string{"originate crm-1 150→151 after 0 actions", "monitor sb-1-0001 on 150 after 1 actions"}
	if !slices.Equal(hints, want) {
		t.Errorf("hints %q, want %q", hints, want)
	}
}

// TestOpsAllowList: an operation left out of the agent's ops = … is
// refused per request with op_disabled, and nothing reaches AMI; an
// unknown name in the list is a configuration error.
func TestOpsAllowList(t *testing.T) {
	f := newFakeAMI()
	h := newTestHandler(t, f, func(c *Config) { c.Ops = []string{protocol.OpChannels, protocol.OpPing} })
	resp := call(h, request(protocol.OpOriginate, protocol.OriginateArgs{From: "150", To: "151"}))
	if resp.Error == nil || resp.Error.Code != protocol.ErrCodeOpDisabled || !strings.Contains(resp.Error.Message, "ops = channels,ping") {
		t.Fatalf("disabled originate: %+v", resp.Error)
	}
	if n := len(f.actions()); n != 0 {
		t.Fatalf("%d actions reached AMI", n)
	}
	if resp := call(h, request(protocol.OpPing, nil)); resp.Error != nil {
		t.Fatalf("allowed ping: %+v", resp.Error)
	}
	// An op this build does not know stays "unsupported", not "disabled".
	if resp := call(h, request("reboot", nil)); resp.Error == nil || resp.Error.Code != protocol.ErrCodeUnsupported {
		t.Fatalf("unknown op: %+v", resp.Error)
	}
	if err := (Config{AMI: f, Channels: h.cfg.Channels, Ops: []string{"originat"}}).Validate(); err == nil || !strings.Contains(err.Error(), `unknown operation "originat"`) {
		t.Fatalf("Validate with a typo: %v", err)
	}
}
