package ops

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/protocol"
)

func code(err error) string {
	if err == nil {
		return ""
	}
	return ErrorFor(err).Code
}

func TestQueuesAgainstFakeAsterisk(t *testing.T) {
	p := startPBX(t, setup{})
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
	p := startPBX(t, setup{})
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
			if resp := p.do(tc.op, tc.args, 5*time.Second); resp.Error == nil || resp.Error.Code != protocol.ErrCodeInvalid {
				t.Fatalf("%+v", resp)
			}
		})
	}
	if after := len(p.srv.Actions()); after != before {
		t.Errorf("%d actions reached Asterisk for refused requests", after-before)
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
