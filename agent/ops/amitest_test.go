package ops

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/agent/channels"
	"github.com/switchboard-pbx/switchboard/protocol"
	"github.com/switchboard-pbx/switchboard/protocol/ami"
	"github.com/switchboard-pbx/switchboard/protocol/ami/amitest"
)

// pbx is a handler wired to the fake Asterisk over real AMI, with a
// channel table fed by the client's events, as the agent does it.
type pbx struct {
	srv    *amitest.Server
	client *ami.Client
	table  *channels.Table
	h      *Handler
}

func startPBX(t *testing.T) *pbx {
	t.Helper()
	srv := amitest.NewServer(t)
	client, err := ami.New(ami.Config{
		Addr: srv.Addr(), Username: amitest.DefaultUsername, Secret: amitest.DefaultSecret,
		ReconnectMin: 10 * time.Millisecond, ReconnectMax: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	table := channels.New(channels.Config{})
	sub := client.Subscribe(4096)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = client.Run(ctx) })
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case m, ok := <-sub.C():
				if !ok {
					return
				}
				table.Apply(m)
				if m.Event() == ami.EventConnected {
					if res, err := client.List(ctx, ami.NewAction("CoreShowChannels")); err == nil {
						table.Replace(res.Items)
					}
				}
			}
		}
	})
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		sub.Close()
		_ = client.Close()
	})
	h, err := New(Config{AMI: FromClient(client), Channels: table})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	p := &pbx{srv: srv, client: client, table: table, h: h}
	p.eventually(t, "AMI login and first resync", func() bool { return client.Connected() && table.Synced() })
	return p
}

func (p *pbx) eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (p *pbx) do(t *testing.T, op string, args any) protocol.Response {
	t.Helper()
	return call(p.h, request(op, args))
}

func TestAgainstFakeAsterisk(t *testing.T) {
	p := startPBX(t)
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
	if resp := p.do(t, protocol.OpMonitor, protocol.MonitorArgs{Mode: "spy", Target: "777", From: "151"}); resp.Error == nil || resp.Error.Code != protocol.ErrCodeNotFound {
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
	if resp := p.do(t, protocol.OpHangup, protocol.HangupArgs{Channel: "PJSIP/999-deadbeef", Force: true}); resp.Error == nil || resp.Error.Code != protocol.ErrCodeNotFound {
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
	if resp := p.do(t, protocol.OpPing, nil); resp.Error != nil {
		t.Errorf("ping: %+v", resp.Error)
	}
}

func TestFakeAsteriskDown(t *testing.T) {
	p := startPBX(t)
	p.srv.Close()
	p.eventually(t, "the client to notice", func() bool { return !p.client.Connected() })
	for _, tc := range []struct {
		op   string
		args any
	}{
		{protocol.OpPing, nil},
		{protocol.OpOriginate, protocol.OriginateArgs{From: "150", To: "151"}},
		{protocol.OpHangup, protocol.HangupArgs{All: true}},
		{protocol.OpChannels, nil},
	} {
		if resp := p.do(t, tc.op, tc.args); resp.Error == nil || resp.Error.Code != protocol.ErrCodeAMIDown {
			t.Errorf("%s with AMI down: %+v", tc.op, resp)
		}
	}
	// Validation still comes first.
	if resp := p.do(t, protocol.OpOriginate, protocol.OriginateArgs{From: "x", To: "151"}); resp.Error == nil || resp.Error.Code != protocol.ErrCodeInvalid {
		t.Errorf("invalid originate with AMI down: %+v", resp)
	}
	if st := p.h.Status(); st.AMI != protocol.AMIDown {
		t.Errorf("status %+v", st)
	}
}

func TestTimeoutFromFakeAsterisk(t *testing.T) {
	p := startPBX(t)
	p.srv.SetActionDelay("Ping", 2*time.Second)
	req := request(protocol.OpPing, nil)
	req.Deadline = time.Now().Add(100 * time.Millisecond)
	if resp := call(p.h, req); resp.Error == nil || resp.Error.Code != protocol.ErrCodeTimeout {
		t.Errorf("slow ping: %+v", resp)
	}
}
