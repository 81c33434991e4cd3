package ops

import (
	"context"
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

// pbx is a handler on the fake Asterisk over real AMI, wired as the agent
// wires it: one consumer of the main session's events feeds the channel
// table and then the handler's Observe, in wire order, and resyncs the
// table at each login; with setup.dtmf, PlayDTMF runs on a second session
// (events off). It records the call tracker's transfer, park and pickup
// hints.
type pbx struct {
	srv      *amitest.Server
	main     *ami.Client
	dtmf     *ami.Client  // nil without setup.dtmf
	dtmfSent *countingAMI // the actions sent on dtmf
	table    *channels.Table
	h        *Handler
	hints    notes
}

// setup says how startPBX builds its handler: cfg with AMI, Channels and
// (with dtmf) DTMF filled in, and the fake's options.
type setup struct {
	cfg    Config
	server []amitest.Option
	dtmf   bool
}

func startPBX(t testing.TB, s setup) *pbx {
	t.Helper()
	srv := amitest.NewServer(t, s.server...)
	dial := func(events string) *ami.Client {
		c, err := ami.New(ami.Config{Addr: srv.Addr(), Username: amitest.DefaultUsername, Secret: amitest.DefaultSecret, Events: events,
			ReconnectMin: 10 * time.Millisecond, ReconnectMax: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	p := &pbx{srv: srv, main: dial("on"), table: channels.New(channels.Config{})}
	cfg := s.cfg
	cfg.AMI, cfg.Channels = FromClient(p.main), p.table
	if s.dtmf {
		p.dtmf = dial("off")
		p.dtmfSent = &countingAMI{AMI: FromClient(p.dtmf)}
		cfg.DTMF = p.dtmfSent
	}
	p.recordHints(&cfg)
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p.h = h
	sub := p.main.Subscribe(4096)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = p.main.Run(ctx) })
	if p.dtmf != nil {
		wg.Go(func() { _ = p.dtmf.Run(ctx) })
	}
	wg.Go(func() { p.consume(ctx, sub) })
	t.Cleanup(func() {
		h.Close()
		cancel()
		wg.Wait()
		sub.Close()
		_ = p.main.Close()
		if p.dtmf != nil {
			_ = p.dtmf.Close()
		}
	})
	p.eventually(t, "AMI login and the first resync", func() bool {
		return p.main.Connected() && (p.dtmf == nil || p.dtmf.Connected()) && p.table.Synced()
	})
	return p
}

// consume is the agent's event consumer, as far as the handler needs it.
func (p *pbx) consume(ctx context.Context, sub *ami.Subscription) {
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-sub.C():
			if !ok {
				return
			}
			p.table.Apply(m)
			p.h.Observe(m)
			if m.Event() == ami.EventConnected {
				if res, err := p.main.List(ctx, ami.NewAction("CoreShowChannels")); err == nil {
					p.table.Replace(res.Items)
				}
			}
		}
	}
}

// recordHints makes cfg's call-control hooks that cfg leaves unset record
// what they are told.
func (p *pbx) recordHints(cfg *Config) {
	if cfg.ExpectTransfer == nil {
		cfg.ExpectTransfer = func(uid, by, mode, to string) {
			p.hints.add(fmt.Sprintf("transfer %s by=%s %s to=%s", uid, by, mode, to))
		}
	}
	if cfg.ExpectPark == nil {
		cfg.ExpectPark = func(uid, by string) { p.hints.add(fmt.Sprintf("park %s by=%s", uid, by)) }
	}
	if cfg.ExpectPickup == nil {
		cfg.ExpectPickup = func(pick, parked, by string) { p.hints.add(fmt.Sprintf("pickup %s of %s by=%s", pick, parked, by)) }
	}
}

// notes is a log of what happened, safe for concurrent use.
type notes struct {
	mu   sync.Mutex
	list []string
}

func (n *notes) add(s string) {
	n.mu.Lock()
	n.list = append(n.list, s)
	n.mu.Unlock()
}

func (n *notes) all() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.list...)
}

func (p *pbx) eventually(t testing.TB, what string, cond func() bool) {
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

// do runs one request as the tunnel does, with a deadline of d.
func (p *pbx) do(op string, args any, d time.Duration) protocol.Response {
	req := request(op, args)
	req.Deadline = time.Now().Add(d)
	return call(p.h, req)
}

func TestAgainstFakeAsterisk(t *testing.T) {
	p := startPBX(t, setup{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	// Originate: a well-formed action reaches Asterisk and the call id we
	// return is the uniqueid of the call's first channel.
	res, err := p.h.Originate(ctx, protocol.OriginateArgs{
		From: "150", To: "+375296254070", CallerID: "Desk 150 <150>",
		Variables: map[string]string{"CRM_ID": "42"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(res.CallID, "sb-") || res.Channel != "Local/150@inoffice" || res.Status != "queued" || res.ActionID == "" {
		t.Fatalf("originate result %+v", res)
	}
	sent, err := p.srv.WaitAction(ctx, "Originate")
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{
		"Channel": "Local/150@inoffice", "Application": "Dial", "Data": "Local/+375296254070@inoffice",
		"CallerID": `"Desk 150" <150>`, "Timeout": "30000", "Async": "true",
		"ChannelId": res.CallID, "OtherChannelId": res.CallID + "-2", "Variable": "CRM_ID=42",
	} {
		if got := sent.Get(k); got != want {
			t.Errorf("Originate %s: %q, want %q", k, got, want)
		}
	}
	p.eventually(t, "the call's channels", func() bool {
		ch, ok := p.table.ByUniqueID(res.CallID)
		_, far := p.table.LiveForExtension("+375296254070")
		return ok && ch.Channel != "" && far
	})

	// Monitor: ChanSpy on 150's live channel.
	mres, err := p.h.Monitor(ctx, protocol.MonitorArgs{Mode: protocol.MonitorWhisper, Target: "150", From: "151"})
	if err != nil {
		t.Fatal(err)
	}
	spy, err := p.srv.WaitAction(ctx, "Originate")
	if err != nil {
		t.Fatal(err)
	}
	if spy.Get("Application") != "ChanSpy" || spy.Get("Data") != mres.TargetPrefix+",bqw" ||
		!strings.HasPrefix(mres.TargetChannel, "Local/150@inoffice-") || spy.Get("ChannelId") != mres.SpyCallID {
		t.Errorf("monitor %+v sent %s", mres, spy)
	}

	// Monitor of an extension with no call: not found, nothing sent.
	before := len(p.srv.Actions())
	if resp := p.do(protocol.OpMonitor, protocol.MonitorArgs{Mode: "spy", Target: "777", From: "151"}, 5*time.Second); resp.Error == nil || resp.Error.Code != protocol.ErrCodeNotFound {
		t.Errorf("monitor of idle 777: %+v", resp)
	}
	if after := len(p.srv.Actions()); after != before {
		t.Errorf("%d actions sent for a refused monitor", after-before)
	}

	// Hangup by uniqueid resolves through the table.
	hres, err := p.h.Hangup(ctx, protocol.HangupArgs{UniqueID: res.CallID})
	if err != nil {
		t.Fatal(err)
	}
	if len(hres.Hungup) != 1 || hres.Hungup[0].UniqueID != res.CallID || !strings.HasPrefix(hres.Hungup[0].Channel, "Local/150@inoffice-") {
		t.Errorf("hangup result %+v", hres)
	}
	p.eventually(t, "the hung-up channel to leave the table", func() bool {
		_, ok := p.table.ByUniqueID(res.CallID)
		return !ok
	})

	// Asterisk's "No such channel" for a forced hangup.
	if resp := p.do(protocol.OpHangup, protocol.HangupArgs{Channel: "PJSIP/999-deadbeef", Force: true}, 5*time.Second); resp.Error == nil || resp.Error.Code != protocol.ErrCodeNotFound {
		t.Errorf("forced hangup of unknown channel: %+v", resp)
	}

	// Hangup all: one regex Hangup; what Asterisk hung up comes back.
	if _, err := p.srv.StartCall("160", "161"); err != nil {
		t.Fatal(err)
	}
	p.eventually(t, "the second call", func() bool { _, ok := p.table.LiveForExtension("160"); return ok })
	all, err := p.h.Hangup(ctx, protocol.HangupArgs{All: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(all.Hungup) == 0 {
		t.Fatal("hangup all ended nothing")
	}
	p.eventually(t, "every channel to end", func() bool { return len(p.srv.Channels()) == 0 && len(p.table.List()) == 0 })

	// Ping is a real AMI round trip.
	if resp := p.do(protocol.OpPing, nil, 5*time.Second); resp.Error != nil {
		t.Errorf("ping: %+v", resp.Error)
	}
}

func TestFakeAsteriskDown(t *testing.T) {
	p := startPBX(t, setup{})
	p.srv.Close()
	p.eventually(t, "the client to notice", func() bool { return !p.main.Connected() })
	for _, tc := range []struct {
		op   string
		args any
	}{
		{protocol.OpPing, nil},
		{protocol.OpOriginate, protocol.OriginateArgs{From: "150", To: "151"}},
		{protocol.OpHangup, protocol.HangupArgs{All: true}},
		{protocol.OpChannels, nil},
	} {
		if resp := p.do(tc.op, tc.args, 5*time.Second); resp.Error == nil || resp.Error.Code != protocol.ErrCodeAMIDown {
			t.Errorf("%s with AMI down: %+v", tc.op, resp)
		}
	}
	// Validation still comes first.
	if resp := p.do(protocol.OpOriginate, protocol.OriginateArgs{From: "x", To: "151"}, 5*time.Second); resp.Error == nil || resp.Error.Code != protocol.ErrCodeInvalid {
		t.Errorf("invalid originate with AMI down: %+v", resp)
	}
	if st := p.h.Status(); st.AMI != protocol.AMIDown {
		t.Errorf("status %+v", st)
	}
}

func TestTimeoutFromFakeAsterisk(t *testing.T) {
	p := startPBX(t, setup{})
	p.srv.SetActionDelay("Ping", 2*time.Second)
	req := request(protocol.OpPing, nil)
	req.Deadline = time.Now().Add(100 * time.Millisecond)
	if resp := call(p.h, req); resp.Error == nil || resp.Error.Code != protocol.ErrCodeTimeout {
		t.Errorf("slow ping: %+v", resp)
	}
}
