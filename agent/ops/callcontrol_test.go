package ops

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/agent/channels"
	"github.com/switchboard-pbx/switchboard/protocol"
	"github.com/switchboard-pbx/switchboard/protocol/ami"
	"github.com/switchboard-pbx/switchboard/protocol/ami/amitest"
)

// ccPBX is a handler on the fake Asterisk with two AMI sessions, as the
// agent runs it: the main one (events, every operation) and the DTMF one
// (events off, PlayDTMF only). Its consumer feeds the channel table and
// Observe in wire order, and it records the tracker hints.
type ccPBX struct {
	srv        *amitest.Server
	main, dtmf *ami.Client
	dtmfSent   *countingAMI
	table      *channels.Table
	h          *Handler

	mu    sync.Mutex
	hints []string
}

func startCallPBX(t testing.TB, shareDTMF bool, mod func(*Config)) *ccPBX {
	t.Helper()
	srv := amitest.NewServer(t, amitest.WithTransferDigitTimeout(30*time.Millisecond), amitest.WithAnswerWait(-1))
	dial := func(events string) *ami.Client {
		c, err := ami.New(ami.Config{Addr: srv.Addr(), Username: amitest.DefaultUsername, Secret: amitest.DefaultSecret, Events: events,
			ReconnectMin: 10 * time.Millisecond, ReconnectMax: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	p := &ccPBX{srv: srv, main: dial("on"), dtmf: dial("off"), table: channels.New(channels.Config{})}
	p.dtmfSent = &countingAMI{AMI: FromClient(p.dtmf)}
	cfg := Config{AMI: FromClient(p.main), Channels: p.table, DTMF: p.dtmfSent,
		CallControl: CallControl{ConfirmTimeout: 2 * time.Second},
		ExpectTransfer: func(uid, by, mode, to string) {
			p.hint(fmt.Sprintf("transfer %s by=%s %s to=%s", uid, by, mode, to))
		},
		ExpectPark:   func(uid, by string) { p.hint(fmt.Sprintf("park %s by=%s", uid, by)) },
		ExpectPickup: func(pick, parked, by string) { p.hint(fmt.Sprintf("pickup %s of %s by=%s", pick, parked, by)) },
	}
	if shareDTMF {
		cfg.DTMF = nil
	}
	if mod != nil {
		mod(&cfg)
	}
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p.h = h
	sub := p.main.Subscribe(4096)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = p.main.Run(ctx) })
	wg.Go(func() { _ = p.dtmf.Run(ctx) })
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case m, ok := <-sub.C():
				if !ok {
					return
				}
				p.table.Apply(m)
				h.Observe(m)
				if m.Event() == ami.EventConnected {
					if res, err := p.main.List(ctx, ami.NewAction("CoreShowChannels")); err == nil {
						p.table.Replace(res.Items)
					}
				}
			}
		}
	})
	t.Cleanup(func() {
		h.Close()
		cancel()
		wg.Wait()
		sub.Close()
		_ = p.main.Close()
		_ = p.dtmf.Close()
	})
	p.eventually(t, "both AMI sessions and the first resync", func() bool {
		return p.main.Connected() && p.dtmf.Connected() && p.table.Synced()
	})
	return p
}

func (p *ccPBX) hint(s string) {
	p.mu.Lock()
	p.hints = append(p.hints, s)
	p.mu.Unlock()
}

func (p *ccPBX) hinted() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.hints...)
}

func (p *ccPBX) eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; fake's channels: %+v", what, names(p.srv.Channels()))
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func names(chans []amitest.ChannelInfo) []string {
	var out []string
	for _, c := range chans {
		out = append(out, fmt.Sprintf("%s[%s %s@%s br=%.8s]", c.Name, c.State, c.Exten, c.Context, c.BridgeID))
	}
	return out
}

// call places a call and waits until the agent's table has it bridged.
func (p *ccPBX) call(t testing.TB, features bool, from, to string) string {
	t.Helper()
	start := p.srv.StartCall
	if features {
		start = p.srv.StartDialoutCall
	}
	id, err := start(from, to)
	if err != nil {
		t.Fatal(err)
	}
	p.eventually(t, "the call bridged in the agent's table", func() bool {
		n := 0
		for _, ch := range p.table.List() {
			if ch.LinkedID == id && ch.BridgeID != "" {
				n++
			}
		}
		return n == 2
	})
	return id
}

// do runs one request as the tunnel does, with a deadline of d.
func (p *ccPBX) do(op string, args any, d time.Duration) protocol.Response {
	req := request(op, args)
	req.Deadline = time.Now().Add(d)
	return call(p.h, req)
}

func (p *ccPBX) sent(action string) int {
	n := 0
	for _, m := range p.srv.Actions() {
		if strings.EqualFold(m.Action(), action) {
			n++
		}
	}
	return n
}

func (p *ccPBX) channel(match func(amitest.ChannelInfo) bool) (amitest.ChannelInfo, bool) {
	for _, c := range p.srv.Channels() {
		if match(c) {
			return c, true
		}
	}
	return amitest.ChannelInfo{}, false
}

func prefixed(prefix string) func(amitest.ChannelInfo) bool {
	return func(c amitest.ChannelInfo) bool { return strings.HasPrefix(c.Name, prefix) }
}

func decode[T any](t *testing.T, resp protocol.Response) T {
	t.Helper()
	var v T
	if resp.Error != nil {
		t.Fatalf("error %+v", resp.Error)
	}
	if err := json.Unmarshal(resp.Result, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func wantCode(t *testing.T, what string, resp protocol.Response, code, contains string) {
	t.Helper()
	if resp.Error == nil || resp.Error.Code != code || !strings.Contains(resp.Error.Message, contains) {
		t.Fatalf("%s: %+v, want code %s with %q", what, resp.Error, code, contains)
	}
}

func TestBlindTransfer(t *testing.T) {
	p := startCallPBX(t, false, nil)
	id := p.call(t, true, "150", "+375296254070")
	res := decode[protocol.TransferResult](t, p.do(protocol.OpTransfer,
		protocol.TransferArgs{CallID: id, Transferer: "150", To: "160", Mode: protocol.TransferBlind, By: "key_1"}, 4*time.Second))
	if res.Status != protocol.TransferDone || !strings.HasPrefix(res.TransfererChannel, "Local/150@inoffice-") ||
		!strings.HasPrefix(res.TransfereeChannel, "Local/+375296254070@inoffice-") {
		t.Fatalf("result %+v", res)
	}
	// In Asterisk: the customer now runs 160's dialplan, the operator is gone.
	p.eventually(t, "the customer at 160 and the operator gone", func() bool {
		cust, ok := p.channel(func(c amitest.ChannelInfo) bool { return c.Name == res.TransfereeChannel })
		_, op := p.channel(prefixed("Local/150@"))
		return ok && cust.Exten == "160" && cust.Context == "inoffice" && !op
	})
	if h := p.hinted(); len(h) != 1 || !strings.Contains(h[0], "by=key_1 blind to=160") {
		t.Errorf("tracker hints %q", h)
	}
	if p.sent("ShowDialPlan") != 1 || p.sent("BlindTransfer") != 1 {
		t.Errorf("actions %d ShowDialPlan, %d BlindTransfer", p.sent("ShowDialPlan"), p.sent("BlindTransfer"))
	}
}

// TestTransferRefusedBeforeAMI: every refusal that the agent can decide
// itself sends no transfer action at all.
func TestTransferRefusedBeforeAMI(t *testing.T) {
	p := startCallPBX(t, false, nil)
	id := p.call(t, true, "150", "+375296254070")
	plain := p.call(t, false, "151", "+375296254071")
	for _, tc := range []struct {
		name string
		args protocol.TransferArgs
		code string
		msg  string
	}{
		{"target not in the dialplan", protocol.TransferArgs{CallID: id, Transferer: "150", To: "*99", Mode: protocol.TransferBlind}, protocol.ErrCodeInvalid, "does not exist in the PBX's dialplan context inoffice"},
		{"bad mode", protocol.TransferArgs{CallID: id, Transferer: "150", To: "160", Mode: "warm"}, protocol.ErrCodeInvalid, "mode"},
		{"bad target", protocol.TransferArgs{CallID: id, Transferer: "150", To: "160@evil", Mode: protocol.TransferBlind}, protocol.ErrCodeInvalid, "to"},
		{"unknown call", protocol.TransferArgs{CallID: "1.2", Transferer: "150", To: "160", Mode: protocol.TransferBlind}, protocol.ErrCodeNotFound, "no live channel"},
		{"not a party", protocol.TransferArgs{CallID: id, Transferer: "199", To: "160", Mode: protocol.TransferBlind}, protocol.ErrCodeNotFound, "not a party"},
		{"a channel of another call", protocol.TransferArgs{CallID: id, Transferer: "Local/151@inoffice-00000002;1", To: "160", Mode: protocol.TransferBlind}, protocol.ErrCodeNotFound, "not a channel of call"},
		{"no transfer features", protocol.TransferArgs{CallID: plain, Transferer: "151", To: "160", Mode: protocol.TransferAttended}, protocol.ErrCodeFeatureMissing, "without option T"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantCode(t, tc.name, p.do(protocol.OpTransfer, tc.args, 4*time.Second), tc.code, tc.msg)
		})
	}
	for _, a := range []string{"BlindTransfer", "Atxfer", "Redirect"} {
		if n := p.sent(a); n != 0 {
			t.Errorf("%d %s sent for refused transfers", n, a)
		}
	}
	// Complete or cancel with no transfer in progress: refused, and
	// CancelAtxfer (whose digits would reach the customer) is never sent.
	for _, op := range []string{protocol.OpTransferComplete, protocol.OpTransferCancel} {
		wantCode(t, op, p.do(op, protocol.TransferControlArgs{CallID: id, Transferer: "150"}, 4*time.Second), protocol.ErrCodeCallState, "no attended transfer")
	}
	if n := p.sent("CancelAtxfer"); n != 0 {
		t.Errorf("%d CancelAtxfer sent", n)
	}
}

func TestAttendedTransferCancelThenComplete(t *testing.T) {
	p := startCallPBX(t, false, nil)
	id := p.call(t, true, "150", "+375296254070")
	attended := func(to string) protocol.TransferResult {
		t.Helper()
		res := decode[protocol.TransferResult](t, p.do(protocol.OpTransfer,
			protocol.TransferArgs{CallID: id, Transferer: "150", To: to, Mode: protocol.TransferAttended, By: "op-7"}, 4*time.Second))
		if res.Status != protocol.TransferConsulting {
			t.Fatalf("result %+v", res)
		}
		return res
	}
	res := attended("160")
	// A second one while it runs, and a completion before the
	// consultation is up, are refused.
	wantCode(t, "second transfer", p.do(protocol.OpTransfer,
		protocol.TransferArgs{CallID: id, Transferer: "150", To: "161", Mode: protocol.TransferAttended}, 4*time.Second), protocol.ErrCodeCallState, "already in progress")
	consulting := func(to string) {
		p.eventually(t, "the consultation with "+to, func() bool {
			op, _ := p.table.ByName(res.TransfererChannel)
			peer, ok := p.h.peer(op)
			return ok && strings.HasPrefix(peer.Channel, "Local/"+to+"@")
		})
	}
	consulting("160")
	c := decode[protocol.TransferControlResult](t, p.do(protocol.OpTransferCancel, protocol.TransferControlArgs{CallID: id, Transferer: "150"}, 4*time.Second))
	if c.Status != protocol.TransferCanceled || !strings.HasPrefix(c.TargetChannel, "Local/160@") {
		t.Fatalf("cancel %+v", c)
	}
	p.eventually(t, "160 gone, the operator back with the customer", func() bool {
		_, target := p.channel(prefixed("Local/160@"))
		op, _ := p.channel(func(ci amitest.ChannelInfo) bool { return ci.Name == res.TransfererChannel })
		cust, _ := p.channel(func(ci amitest.ChannelInfo) bool { return ci.Name == res.TransfereeChannel })
		return !target && op.BridgeID != "" && op.BridgeID == cust.BridgeID
	})

	attended("161")
	consulting("161")
	done := decode[protocol.TransferControlResult](t, p.do(protocol.OpTransferComplete, protocol.TransferControlArgs{CallID: id, Transferer: "150"}, 4*time.Second))
	if done.Status != protocol.TransferDone || done.To != "161" || !strings.HasPrefix(done.TargetChannel, "Local/161@") {
		t.Fatalf("complete %+v", done)
	}
	p.eventually(t, "the customer with 161, the operator gone", func() bool {
		target, ok := p.channel(func(ci amitest.ChannelInfo) bool { return ci.Name == done.TargetChannel })
		cust, _ := p.channel(func(ci amitest.ChannelInfo) bool { return ci.Name == res.TransfereeChannel })
		_, op := p.channel(prefixed("Local/150@"))
		return ok && target.BridgeID != "" && target.BridgeID == cust.BridgeID && !op
	})
	if st := p.h.Stats(); st.Transfers != 0 || len(st.Unconfirmed) != 0 {
		t.Errorf("stats after the transfers %+v", st)
	}
}

func TestParkParkedPickup(t *testing.T) {
	p := startCallPBX(t, false, nil)
	id := p.call(t, false, "150", "+375296254070")
	wantCode(t, "unknown lot", p.do(protocol.OpPark, protocol.ParkArgs{CallID: id, Parker: "150", Lot: "nosuchlot"}, 4*time.Second),
		protocol.ErrCodeInvalid, "its lots: default, operators")
	if n := p.sent("Park"); n != 0 {
		t.Fatalf("Park sent for an unknown lot")
	}
	pr := decode[protocol.ParkResult](t, p.do(protocol.OpPark, protocol.ParkArgs{CallID: id, Parker: "150", Lot: "default", TimeoutS: 120, By: "op-7"}, 4*time.Second))
	if pr.Lot != "default" || pr.Space != "701" || pr.TimeoutS != 120 || !strings.HasPrefix(pr.Channel, "Local/+375296254070@") {
		t.Fatalf("park %+v", pr)
	}
	list := decode[protocol.ParkedResult](t, p.do(protocol.OpParked, nil, 4*time.Second))
	if len(list.Parked) != 1 || list.Parked[0].CallID != id || list.Parked[0].Space != "701" || list.Parked[0].Parker != "Local/150@inoffice" {
		t.Fatalf("parked %+v", list)
	}
	wantCode(t, "empty space", p.do(protocol.OpParkedPickup, protocol.ParkedPickupArgs{Lot: "default", Space: "702", To: "160"}, 4*time.Second),
		protocol.ErrCodeNotFound, "no call is parked")
	pick := decode[protocol.ParkedPickupResult](t, p.do(protocol.OpParkedPickup, protocol.ParkedPickupArgs{Lot: "default", Space: "701", To: "160", By: "op-7"}, 4*time.Second))
	if pick.Status != protocol.PickupDone || pick.CallID != id || pick.PickupCallID == "" {
		t.Fatalf("pickup %+v", pick)
	}
	p.eventually(t, "160 bridged with the customer", func() bool {
		picker, ok := p.channel(func(c amitest.ChannelInfo) bool { return c.Uniqueid == pick.PickupCallID })
		cust, _ := p.channel(func(c amitest.ChannelInfo) bool { return c.Name == pr.Channel })
		return ok && picker.BridgeID != "" && picker.BridgeID == cust.BridgeID
	})
	if list := decode[protocol.ParkedResult](t, p.do(protocol.OpParked, protocol.ParkedArgs{Lot: "default"}, 4*time.Second)); len(list.Parked) != 0 {
		t.Errorf("still parked: %+v", list)
	}
	h := p.hinted()
	if len(h) != 2 || !strings.HasPrefix(h[0], "park ") || !strings.Contains(h[1], "pickup "+pick.PickupCallID+" of "+id+" by=op-7") {
		t.Errorf("hints %q", h)
	}
}

func TestMute(t *testing.T) {
	p := startCallPBX(t, false, nil)
	id := p.call(t, false, "150", "+375296254070")
	res := decode[protocol.MuteResult](t, p.do(protocol.OpMute, protocol.MuteArgs{CallID: id, Party: "150", Direction: protocol.MuteIn, Muted: true}, 4*time.Second))
	if !res.Muted || !strings.HasPrefix(res.Channel, "Local/150@inoffice-") {
		t.Fatalf("mute %+v", res)
	}
	wantCode(t, "upper case", p.do(protocol.OpMute, protocol.MuteArgs{CallID: id, Party: "150", Direction: "IN", Muted: true}, 4*time.Second), protocol.ErrCodeInvalid, "direction")
	var got []string
	for _, m := range p.srv.Actions() {
		if m.Action() == "MuteAudio" {
			got = append(got, m.Get("Direction")+"/"+m.Get("State"))
		}
	}
	if len(got) != 1 || got[0] != "in/on" {
		t.Errorf("MuteAudio sent %q", got)
	}
}

// countingAMI logs the actions sent on the DTMF session, when they are
// answered, and what the test notes between.
type countingAMI struct {
	AMI
	mu   sync.Mutex
	sent []string
}

func (c *countingAMI) Action(ctx context.Context, m *ami.Message) (*ami.Message, error) {
	what := m.Action() + " " + m.Get("Digit")
	c.note(what)
	r, err := c.AMI.Action(ctx, m)
	if m.Get("Duration") == "2000" {
		c.note("answered " + what)
	}
	return r, err
}

func (c *countingAMI) note(s string) {
	c.mu.Lock()
	c.sent = append(c.sent, s)
	c.mu.Unlock()
}

func (c *countingAMI) actions() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.sent...)
}

func TestDTMF(t *testing.T) {
	p := startCallPBX(t, false, nil)
	id := p.call(t, false, "150", "+375296254070")
	res := decode[protocol.DTMFResult](t, p.do(protocol.OpDTMF, protocol.DTMFArgs{CallID: id, Party: "+375296254070", Digits: "12#", DurationMS: 50}, 4*time.Second))
	if res.Digits != "12#" || res.DurationMS != 50 || !strings.HasPrefix(res.Channel, "Local/+375296254070@") {
		t.Fatalf("dtmf %+v", res)
	}
	if got := strings.Join(p.dtmfSent.actions(), ","); got != "PlayDTMF 1,PlayDTMF 2,PlayDTMF #" {
		t.Errorf("on the DTMF session: %s", got)
	}
	for _, tc := range []struct {
		args protocol.DTMFArgs
		msg  string
	}{
		{protocol.DTMFArgs{CallID: id, Party: "150", Digits: "12X"}, "digits"},
		{protocol.DTMFArgs{CallID: id, Party: "150", Digits: "1", DurationMS: 5}, "duration_ms"},
		{protocol.DTMFArgs{CallID: id, Party: "150", Digits: strings.Repeat("1", 33)}, "digits"},
		// 30 digits of 2 s cannot fit a 4 s deadline: refused up front.
		{protocol.DTMFArgs{CallID: id, Party: "150", Digits: strings.Repeat("1", 30), DurationMS: 2000}, "longer than the request's deadline"},
	} {
		wantCode(t, tc.args.Digits, p.do(protocol.OpDTMF, tc.args, 4*time.Second), protocol.ErrCodeInvalid, tc.msg)
	}
	if n := len(p.dtmfSent.actions()); n != 3 {
		t.Errorf("%d PlayDTMF sent, want only the first request's 3", n)
	}
}

// TestDTMFDoesNotStallOtherRequests: DTMF runs while 50 other requests
// run. PlayDTMF holds its AMI session for the digit's duration (the fake,
// like Asterisk, answers nothing else on that session meanwhile), so the
// agent plays digits on its second session: the 50 requests, sent while a
// 2 s digit plays, are all answered before that digit is, and an event
// made meanwhile reaches the channel table at once.
// (BenchmarkRequestsDuringDTMF measures their latency.)
func TestDTMFDoesNotStallOtherRequests(t *testing.T) {
	p := startCallPBX(t, false, nil)
	id := p.call(t, false, "150", "+375296254070")
	dtmfDone := make(chan protocol.Response, 1)
	go func() {
		dtmfDone <- p.do(protocol.OpDTMF, protocol.DTMFArgs{CallID: id, Party: "150", Digits: "5", DurationMS: 2000}, 10*time.Second)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := p.srv.WaitAction(ctx, "PlayDTMF"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan string, 50)
	for i := range 50 {
		wg.Go(func() {
			var resp protocol.Response
			switch i % 3 {
			case 0:
				resp = p.do(protocol.OpPing, nil, 4*time.Second)
			case 1:
				resp = p.do(protocol.OpChannels, nil, 4*time.Second)
			default:
				resp = p.do(protocol.OpMute, protocol.MuteArgs{CallID: id, Party: "150", Direction: protocol.MuteOut, Muted: i%2 == 0}, 4*time.Second)
			}
			if resp.Error != nil {
				errs <- fmt.Sprintf("request %d: %+v", i, resp.Error)
			}
			p.dtmfSent.note("request answered")
		})
	}
	// An event made while the digit plays reaches the table.
	if _, err := p.srv.StartCall("152", "153"); err != nil {
		t.Fatal(err)
	}
	p.eventually(t, "the new call in the table", func() bool { _, ok := p.table.LiveForExtension("152"); return ok })
	p.dtmfSent.note("event seen")
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if resp := <-dtmfDone; resp.Error != nil {
		t.Fatalf("dtmf: %+v", resp.Error)
	}
	log := p.dtmfSent.actions()
	if len(log) != 53 || log[0] != "PlayDTMF 5" || log[len(log)-1] != "answered PlayDTMF 5" {
		t.Fatalf("order of what happened: %q", log)
	}
}

// TestNotConfirmed: Asterisk answers Success but the event that must
// follow never comes (the fake AMI below answers every action and sends no
// event): not_confirmed, counted per op.
func TestNotConfirmed(t *testing.T) {
	f := newFakeAMI()
	f.list = &ami.ListResult{Items: []*ami.Message{item("Event", "ListDialplan", "Extension", "_1XX")}}
	tab := channels.New(channels.Config{})
	bridge := "b1"
	tab.Replace([]*ami.Message{
		item("Event", "CoreShowChannel", "Channel", "Local/150@inoffice-00000001;1", "Uniqueid", "9.1", "Linkedid", "9.1", "ChannelStateDesc", "Up", "BridgeId", bridge),
		item("Event", "CoreShowChannel", "Channel", "Local/+375296254070@inoffice-00000002;1", "Uniqueid", "9.3", "Linkedid", "9.1", "ChannelStateDesc", "Up", "BridgeId", bridge),
	})
	h, err := New(Config{AMI: f, Channels: tab, CallControl: CallControl{ConfirmTimeout: 100 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	for _, tc := range []struct {
		op   string
		args any
	}{
		{protocol.OpTransfer, protocol.TransferArgs{CallID: "9.1", Transferer: "150", To: "160", Mode: protocol.TransferBlind}},
		{protocol.OpPark, protocol.ParkArgs{CallID: "9.1", Parker: "150"}},
		{protocol.OpDTMF, protocol.DTMFArgs{CallID: "9.1", Party: "150", Digits: "5"}},
	} {
		wantCode(t, tc.op, call(h, request(tc.op, tc.args)), protocol.ErrCodeNotConfirmed, "it may not have happened")
	}
	if u := h.Stats().Unconfirmed; u[protocol.OpTransfer] != 1 || u[protocol.OpPark] != 1 || u[protocol.OpDTMF] != 1 {
		t.Errorf("unconfirmed %v", u)
	}
}

// TestCallControlLostWithAMI: when the AMI connection drops while an
// operation waits for the events that confirm it, the operation answers
// ami_down (it may or may not have run) at once instead of waiting out
// its confirmation timeout and calling it not_confirmed.
func TestCallControlLostWithAMI(t *testing.T) {
	f := newFakeAMI()
	f.list = &ami.ListResult{Items: []*ami.Message{item("Event", "ListDialplan", "Extension", "_1XX")}}
	tab := channels.New(channels.Config{})
	tab.Replace([]*ami.Message{
		item("Event", "CoreShowChannel", "Channel", "Local/150@inoffice-00000001;1", "Uniqueid", "9.1", "Linkedid", "9.1", "ChannelStateDesc", "Up", "BridgeId", "b1"),
		item("Event", "CoreShowChannel", "Channel", "Local/+375296254070@inoffice-00000002;1", "Uniqueid", "9.3", "Linkedid", "9.1", "ChannelStateDesc", "Up", "BridgeId", "b1"),
	})
	const timeout = 30 * time.Second
	h, err := New(Config{AMI: f, Channels: tab, CallControl: CallControl{ConfirmTimeout: timeout}})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	for _, tc := range []struct {
		op   string
		args any
	}{
		{protocol.OpTransfer, protocol.TransferArgs{CallID: "9.1", Transferer: "150", To: "160", Mode: protocol.TransferBlind}},
		{protocol.OpPark, protocol.ParkArgs{CallID: "9.1", Parker: "150"}},
		{protocol.OpDTMF, protocol.DTMFArgs{CallID: "9.1", Party: "150", Digits: "5"}},
	} {
		req := request(tc.op, tc.args)
		req.Deadline = time.Now().Add(2 * timeout)
		got := make(chan protocol.Response, 1)
		start := time.Now()
		go func() { got <- call(h, req) }()
		for h.watch.n.Load() == 0 {
			time.Sleep(time.Millisecond)
		}
		h.Observe(item("Event", ami.EventDisconnected, "Error", "read: connection reset by peer"))
		resp := <-got
		wantCode(t, tc.op, resp, protocol.ErrCodeAMIDown, "may or may not have run")
		if d := time.Since(start); d > timeout/2 {
			t.Errorf("%s answered after %v: it waited for its confirmation", tc.op, d)
		}
	}
	if u := h.Stats().Unconfirmed; len(u) != 0 {
		t.Errorf("unconfirmed %v: a lost connection is not an unconfirmed operation", u)
	}
}

// FuzzCallControlArgs: whatever the control plane sends, a value the agent
// accepts for an AMI header is one line and never a Hangup-style regex.
func FuzzCallControlArgs(f *testing.F) {
	f.Add("1796529630.38", "150", "160", "blind", "12#", "default")
	f.Add("sb-1-ab", "Local/150@inoffice-00000013;1", "+375296254070", "attended", "*", "operators")
	f.Add("x\r\nAction: Hangup", "/.*/", "1\r\n", "blind", "1\n", "a\rb")
	var l Limits
	l.fill()
	f.Fuzz(func(t *testing.T, callID, party, to, mode, digits, lot string) {
		if c, err := l.parseTransfer(protocol.TransferArgs{CallID: callID, Transferer: party, To: to, Mode: mode}); err == nil {
			for _, v := range []string{c.callID, c.transferer, c.to} {
				if strings.ContainsAny(v, "\r\n\x00") || strings.HasPrefix(v, "/") {
					t.Fatalf("accepted %q", v)
				}
			}
		}
		if checkLot(lot, true) == nil && strings.ContainsAny(lot, "\r\n\x00,") {
			t.Fatalf("accepted lot %q", lot)
		}
		if dtmfRe.MatchString(digits) && strings.ContainsAny(digits, "\r\n\x00") {
			t.Fatalf("accepted digits %q", digits)
		}
	})
}
