package ops

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/agent/channels"
	"github.com/switchboard-pbx/switchboard/protocol"
	"github.com/switchboard-pbx/switchboard/protocol/ami"
	"github.com/switchboard-pbx/switchboard/protocol/ami/amitest"
)

// startCC is startPBX for the call-centre operations: the handler also
// observes every event, as the agent's consumer makes it.
func startCC(t *testing.T, cfg Config, opts ...amitest.Option) *pbx {
	t.Helper()
	srv := amitest.NewServer(t, opts...)
	client, err := ami.New(ami.Config{
		Addr: srv.Addr(), Username: amitest.DefaultUsername, Secret: amitest.DefaultSecret,
		ReconnectMin: 10 * time.Millisecond, ReconnectMax: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	table := channels.New(channels.Config{})
	cfg.AMI, cfg.Channels = FromClient(client), table
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
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
				h.ObserveQueues(m)
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
		h.Close()
	})
	p := &pbx{srv: srv, client: client, table: table, h: h}
	p.eventually(t, "AMI login and first resync", func() bool { return client.Connected() && table.Synced() })
	return p
}

func code(err error) string {
	if err == nil {
		return ""
	}
	return ErrorFor(err).Code
}

func TestQueuesAgainstFakeAsterisk(t *testing.T) {
	p := startCC(t, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	all, err := p.h.Queues(ctx, protocol.QueuesArgs{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all.Queues) != 1 || all.Queues[0].Name != "inbound" || all.Queues[0].Strategy != "ringall" ||
		all.Queues[0].LoggedIn != 2 || all.Queues[0].Available != 2 || all.Queues[0].Members != nil {
		t.Fatalf("queues %+v", all)
	}
	one, err := p.h.Queues(ctx, protocol.QueuesArgs{Queue: "inbound"})
	if err != nil {
		t.Fatal(err)
	}
	exts := func(ms []protocol.QueueMember) []string {
		var out []string
		for _, m := range ms {
			out = append(out, m.Extension+":"+m.Membership+":"+m.Status)
		}
		slices.Sort(out)
		return out
	}
	if got := exts(one.Queues[0].Members); !slices.Equal(got, []string{"101:static:not_in_use", "102:static:not_in_use"}) ||
		one.Queues[0].Waiting == nil {
		t.Fatalf("members %v, waiting %v", got, one.Queues[0].Waiting)
	}
	if _, err := p.h.Queues(ctx, protocol.QueuesArgs{Queue: "nosuchqueue"}); code(err) != protocol.ErrCodeNotFound {
		t.Fatalf("unknown queue: %v", err)
	}

	// Add 103 paused: confirmed by QueueMemberAdded, with the template's
	// interface.
	add, err := p.h.QueueMemberAdd(ctx, protocol.QueueMemberAddArgs{Queue: "inbound", Extension: "103", Name: "Operator 103",
		Penalty: 2, Paused: true, Reason: "training"})
	if err != nil {
		t.Fatal(err)
	}
	if m := add.Members[0]; m.Interface != "Local/103@from-queue/n" || m.Extension != "103" || !m.Paused ||
		m.PausedReason != "training" || m.Penalty != 2 || m.Membership != "dynamic" {
		t.Fatalf("added %+v", m)
	}
	sent, _ := p.srv.WaitAction(ctx, "QueueAdd")
	if sent.Get("Interface") != "Local/103@from-queue/n" || sent.Get("MemberName") != "Operator 103" {
		t.Errorf("QueueAdd sent %s", sent)
	}
	if _, err := p.h.QueueMemberAdd(ctx, protocol.QueueMemberAddArgs{Queue: "inbound", Extension: "103"}); code(err) != protocol.ErrCodeConflict {
		t.Errorf("adding 103 again: %v", err)
	}
	if _, err := p.h.QueueMemberAdd(ctx, protocol.QueueMemberAddArgs{Queue: "nosuchqueue", Extension: "103"}); code(err) != protocol.ErrCodeNotFound {
		t.Errorf("adding to an unknown queue: %v", err)
	}

	// Pause 101 in every queue: the agent learns its queues first and
	// waits for one QueueMemberPause per queue.
	pause, err := p.h.QueueMemberPause(ctx, protocol.QueueMemberPauseArgs{Extension: "101", Paused: true, Reason: "lunch"})
	if err != nil {
		t.Fatal(err)
	}
	if len(pause.Members) != 1 || !pause.Members[0].Paused || pause.Members[0].PausedReason != "lunch" {
		t.Fatalf("paused %+v", pause)
	}
	if _, err := p.h.QueueMemberPause(ctx, protocol.QueueMemberPauseArgs{Extension: "177", Paused: true}); code(err) != protocol.ErrCodeNotFound {
		t.Errorf("pausing a member of no queue: %v", err)
	}
	unpause, err := p.h.QueueMemberPause(ctx, protocol.QueueMemberPauseArgs{Queue: "inbound", Extension: "101"})
	if err != nil || unpause.Members[0].Paused {
		t.Fatalf("unpause: %+v, %v", unpause, err)
	}

	pen, err := p.h.QueuePenalty(ctx, protocol.QueuePenaltyArgs{Queue: "inbound", Extension: "103", Penalty: 5})
	if err != nil || pen.Members[0].Penalty != 5 {
		t.Fatalf("penalty: %+v, %v", pen, err)
	}

	// A static member cannot leave through AMI; 103 can.
	if _, err := p.h.QueueMemberRemove(ctx, protocol.QueueMemberRemoveArgs{Queue: "inbound", Extension: "101"}); code(err) != protocol.ErrCodeMemberNotDynamic {
		t.Errorf("removing static 101: %v", err)
	}
	rm, err := p.h.QueueMemberRemove(ctx, protocol.QueueMemberRemoveArgs{Queue: "inbound", Extension: "103"})
	if err != nil || rm.Members[0].Extension != "103" {
		t.Fatalf("remove 103: %+v, %v", rm, err)
	}
	if _, err := p.h.QueueMemberRemove(ctx, protocol.QueueMemberRemoveArgs{Queue: "inbound", Extension: "103"}); code(err) != protocol.ErrCodeNotFound {
		t.Errorf("removing 103 again: %v", err)
	}
}

func TestQueueValidationBeforeAMI(t *testing.T) {
	p := startCC(t, Config{})
	before := len(p.srv.Actions())
	for _, tc := range []struct {
		name string
		op   string
		args any
	}{
		{"queue with a CR", protocol.OpQueueMemberAdd, protocol.QueueMemberAddArgs{Queue: "inbound\r\nAction: Hangup", Extension: "103"}},
		{"no queue", protocol.OpQueueMemberAdd, protocol.QueueMemberAddArgs{Extension: "103"}},
		{"extension that is an interface", protocol.OpQueueMemberAdd, protocol.QueueMemberAddArgs{Queue: "inbound", Extension: "PJSIP/103"}},
		{"extension with @", protocol.OpQueueMemberDel, protocol.QueueMemberRemoveArgs{Queue: "inbound", Extension: "103@evil"}},
		{"name with a LF", protocol.OpQueueMemberAdd, protocol.QueueMemberAddArgs{Queue: "inbound", Extension: "103", Name: "a\nb"}},
		{"reason with |", protocol.OpQueueMemberPause, protocol.QueueMemberPauseArgs{Extension: "101", Paused: true, Reason: "a|b"}},
		{"reason on an unpause", protocol.OpQueueMemberPause, protocol.QueueMemberPauseArgs{Extension: "101", Reason: "x"}},
		{"negative penalty", protocol.OpQueuePenalty, protocol.QueuePenaltyArgs{Extension: "101", Penalty: -1}},
		{"huge penalty", protocol.OpQueuePenalty, protocol.QueuePenaltyArgs{Extension: "101", Penalty: 1 << 30}},
		{"queue name with a space", protocol.OpQueues, protocol.QueuesArgs{Queue: "in bound"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if resp := p.do(t, tc.op, tc.args); resp.Error == nil || resp.Error.Code != protocol.ErrCodeInvalid {
				t.Fatalf("%+v", resp)
			}
		})
	}
	if after := len(p.srv.Actions()); after != before {
		t.Errorf("%d actions reached Asterisk for refused requests", after-before)
	}
}

// confirmAMI answers every action Success and sends no event, as
// Asterisk does for the actions that do nothing (README item 22).
type confirmAMI struct {
	*fakeAMI
	actions atomic.Int32
}

func (c *confirmAMI) Action(ctx context.Context, m *ami.Message) (*ami.Message, error) {
	c.actions.Add(1)
	return ami.NewAction("x", "Response", "Success"), nil
}

func TestQueueChangeNotConfirmed(t *testing.T) {
	f := &confirmAMI{fakeAMI: newFakeAMI()}
	h, err := New(Config{AMI: f, Channels: channels.New(channels.Config{}), ConfirmTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	start := time.Now()
	_, err = h.QueueMemberAdd(context.Background(), protocol.QueueMemberAddArgs{Queue: "inbound", Extension: "555"})
	if !errors.Is(err, ErrUnconfirmed) || code(err) != protocol.ErrCodeNotConfirmed || !strings.Contains(err.Error(), "QueueMemberAdded") {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("gave up after %v, before the confirmation timeout", d)
	}
	if h.CallCentreUnconfirmed() != 1 || f.actions.Load() != 1 {
		t.Errorf("unconfirmed %d, actions %d", h.CallCentreUnconfirmed(), f.actions.Load())
	}
	if n := len(h.waits.list); n != 0 {
		t.Errorf("%d waiters left behind", n)
	}
}

func TestMemberInterfaceTemplate(t *testing.T) {
	for _, tc := range []struct {
		tmpl, ext, iface string
	}{
		{"", "103", "Local/103@from-queue/n"},
		{"PJSIP/{ext}", "103", "PJSIP/103"},
		{"Local/{ext}@agents", "2001", "Local/2001@agents"},
	} {
		c := QueueConfig{MemberInterface: tc.tmpl}
		if err := c.Validate(); err != nil {
			t.Fatalf("%q: %v", tc.tmpl, err)
		}
		c.fill()
		if got := c.memberInterface(tc.ext); got != tc.iface {
			t.Errorf("%q(%s) = %q, want %q", tc.tmpl, tc.ext, got, tc.iface)
		}
		if got := c.extensionOf(tc.iface); got != tc.ext {
			t.Errorf("extension of %q = %q, want %q", tc.iface, got, tc.ext)
		}
	}
	if got := (QueueConfig{MemberInterface: DefaultQueueMemberInterface}).extensionOf("NoSuchTech/555"); got != "" {
		t.Errorf("extension of another interface: %q", got)
	}
	for _, bad := range []string{"PJSIP/103", "{ext}", "PJSIP/{ext}{ext}", "PJSIP/{ext},x", "PJSIP/{ext}\r\n", "PJSIP/{ex}t}"} {
		if err := (QueueConfig{MemberInterface: bad}).Validate(); err == nil {
			t.Errorf("template %q accepted", bad)
		}
	}
}

// The AMI connection drops while an operation waits for its confirmation:
// it may or may not have happened, and the answer says so (ami_down), at
// once rather than at the confirmation timeout.
func TestConfirmationLostWithAMI(t *testing.T) {
	f := &confirmAMI{fakeAMI: newFakeAMI()}
	h, err := New(Config{AMI: f, Channels: channels.New(channels.Config{}), ConfirmTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	done := make(chan error, 1)
	go func() {
		_, err := h.QueueMemberAdd(context.Background(), protocol.QueueMemberAddArgs{Queue: "inbound", Extension: "555"})
		done <- err
	}()
	for f.actions.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	h.ObserveQueues(ami.NewAction("x", "Event", ami.EventDisconnected, "Error", "EOF"))
	select {
	case err := <-done:
		if pe := ErrorFor(err); pe.Code != protocol.ErrCodeAMIDown || !strings.Contains(pe.Message, "may or may not") {
			t.Fatalf("err = %v (%+v)", err, pe)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("still waiting after the AMI connection dropped")
	}
}
