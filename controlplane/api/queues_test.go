package api_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/auth"
	"github.com/switchboard-pbx/switchboard/internal/systemtest"
	"github.com/switchboard-pbx/switchboard/protocol"
	"github.com/switchboard-pbx/switchboard/protocol/ami"
	"github.com/switchboard-pbx/switchboard/protocol/ami/amitest"
)

type memberView struct {
	Queue        string `json:"queue"`
	Name         string `json:"name"`
	Extension    string `json:"extension"`
	Interface    string `json:"interface"`
	Status       string `json:"status"`
	Paused       bool   `json:"paused"`
	PausedReason string `json:"paused_reason"`
	Penalty      int    `json:"penalty"`
	Membership   string `json:"membership"`
}

type membersBody struct {
	PBX     string       `json:"pbx"`
	Members []memberView `json:"members"`
}

// storedEvent is an event as GET /v1/events shows it.
type storedEvent struct {
	PBX string `json:"pbx"`
	protocol.Event
}

// waitEvent polls GET /v1/events for an event of typ that match accepts.
func waitEvent(t *testing.T, s *systemtest.Server, token, typ string, match func(storedEvent) bool) storedEvent {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		var page struct {
			Events []storedEvent `json:"events"`
		}
		s.Do(t, "GET", "/v1/events?types="+typ, token, nil).JSON(t, &page)
		for _, e := range page.Events {
			if match(e) {
				return e
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no %s event", typ)
	return storedEvent{}
}

func TestQueuesAPI(t *testing.T) {
	s := systemtest.New(t, systemtest.Options{})
	s.Enterprise(t, "0367", "june")
	s.Enterprise(t, "0420", "acme")
	pbx := s.AddPBX(t, "0367")
	operator := s.JWT(t, "0367", "op-1", auth.RoleOperator)
	supervisor := s.JWT(t, "0367", "sup-1", auth.RoleSupervisor)
	readKey := s.APIKey(t, "0367", auth.ScopeQueuesRead)
	manageKey := s.APIKey(t, "0367", auth.ScopeQueuesManage)
	events := s.APIKey(t, "0367", auth.ScopeEventsRead, auth.ScopeAuditRead)
	other := s.JWT(t, "0420", "sup-2", auth.RoleSupervisor)

	// Queue reads: an operator's everyday work, a key with queues:read.
	var list struct {
		PBXs []struct {
			PBX    string           `json:"pbx"`
			Queues []protocol.Queue `json:"queues"`
		} `json:"pbxs"`
	}
	r := s.Do(t, "GET", "/v1/queues", operator, nil)
	r.JSON(t, &list)
	if r.Status != http.StatusOK || len(list.PBXs) != 1 || list.PBXs[0].PBX != pbx.ID || len(list.PBXs[0].Queues) != 1 ||
		list.PBXs[0].Queues[0].Name != "inbound" || list.PBXs[0].Queues[0].Strategy != "ringall" || list.PBXs[0].Queues[0].LoggedIn != 2 {
		t.Fatalf("GET /v1/queues: %d %s", r.Status, r.Body)
	}
	var one struct {
		PBX     string                 `json:"pbx"`
		Name    string                 `json:"name"`
		Members []memberView           `json:"members"`
		Waiting []protocol.QueueCaller `json:"waiting"`
	}
	r = s.Do(t, "GET", "/v1/queues/inbound", readKey, nil)
	r.JSON(t, &one)
	if r.Status != http.StatusOK || one.Name != "inbound" || len(one.Members) != 2 || one.Waiting == nil {
		t.Fatalf("GET /v1/queues/inbound: %d %s", r.Status, r.Body)
	}
	if r := s.Do(t, "GET", "/v1/queues/nosuchqueue", readKey, nil); r.Status != http.StatusNotFound {
		t.Errorf("unknown queue: %d %s", r.Status, r.Body)
	}
	if r := s.Do(t, "GET", "/v1/queues", manageKey, nil); r.Status != http.StatusForbidden {
		t.Errorf("GET with queues:manage only: %d", r.Status)
	}

	// Member changes: a supervisor's, a key with queues:manage.
	add := map[string]any{"extension": "103", "name": "Operator 103", "penalty": 2, "paused": true, "reason": "training"}
	for _, tok := range []string{operator, readKey} {
		if r := s.Do(t, "POST", "/v1/queues/inbound/members", tok, add); r.Status != http.StatusForbidden {
			t.Errorf("member add without the right: %d %s", r.Status, r.Body)
		}
	}
	var added membersBody
	r = s.Do(t, "POST", "/v1/queues/inbound/members", supervisor, add)
	r.JSON(t, &added)
	if r.Status != http.StatusCreated || len(added.Members) != 1 || added.Members[0].Interface != "Local/103@from-queue/n" ||
		!added.Members[0].Paused || added.Members[0].Membership != "dynamic" {
		t.Fatalf("POST members: %d %s", r.Status, r.Body)
	}
	waitEvent(t, s, events, protocol.EventQueueMemberAdded, func(e storedEvent) bool { return e.Extension == "103" && e.Queue == "inbound" })
	if r := s.Do(t, "POST", "/v1/queues/inbound/members", manageKey, add); r.Status != http.StatusConflict || errCode(t, r) != "conflict" {
		t.Errorf("adding 103 twice: %d %s", r.Status, r.Body)
	}

	// A static member cannot be removed through AMI.
	if r := s.Do(t, "DELETE", "/v1/queues/inbound/members/101", manageKey, nil); r.Status != http.StatusConflict || errCode(t, r) != "member_not_dynamic" {
		t.Errorf("removing static 101: %d %s", r.Status, r.Body)
	}

	// Pause in every queue (the route without {queue}), with a reason.
	var paused membersBody
	r = s.Do(t, "POST", "/v1/queues/members/101/pause", supervisor, map[string]any{"paused": true, "reason": "lunch"})
	r.JSON(t, &paused)
	if r.Status != http.StatusOK || len(paused.Members) != 1 || !paused.Members[0].Paused || paused.Members[0].PausedReason != "lunch" {
		t.Fatalf("pause 101: %d %s", r.Status, r.Body)
	}
	ev := waitEvent(t, s, events, protocol.EventQueueMemberPaused, func(e storedEvent) bool { return e.Extension == "101" })
	if ev.Reason != "lunch" || ev.PBX != pbx.ID {
		t.Errorf("queue.member_paused %+v", ev)
	}
	r = s.Do(t, "POST", "/v1/queues/inbound/members/101/pause", supervisor, map[string]any{"paused": false})
	if r.Status != http.StatusOK {
		t.Fatalf("unpause 101: %d %s", r.Status, r.Body)
	}
	waitEvent(t, s, events, protocol.EventQueueMemberUnpaused, func(e storedEvent) bool { return e.Extension == "101" })

	var pen membersBody
	r = s.Do(t, "PUT", "/v1/queues/inbound/members/103/penalty", supervisor, map[string]any{"penalty": 5})
	r.JSON(t, &pen)
	if r.Status != http.StatusOK || pen.Members[0].Penalty != 5 {
		t.Fatalf("penalty: %d %s", r.Status, r.Body)
	}
	r = s.Do(t, "DELETE", "/v1/queues/inbound/members/103", supervisor, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("remove 103: %d %s", r.Status, r.Body)
	}
	waitEvent(t, s, events, protocol.EventQueueMemberRemoved, func(e storedEvent) bool { return e.Extension == "103" })

	// Bad input is refused before anything reaches the PBX.
	before := len(pbx.AMI.Actions())
	for _, tc := range []struct {
		method, path string
		body         any
	}{
		{"POST", "/v1/queues/inbound/members", map[string]any{"extension": "PJSIP/103"}},
		{"POST", "/v1/queues/inbound/members", map[string]any{"extension": "103", "interface": "PJSIP/666"}},
		{"POST", "/v1/queues/inbound/members/101/pause", map[string]any{"reason": "no paused field"}},
		{"PUT", "/v1/queues/inbound/members/101/penalty", map[string]any{"penalty": -1}},
		{"PUT", "/v1/queues/inbound/members/101/penalty", map[string]any{}},
		{"DELETE", "/v1/queues/inbound/members/10%401", nil},
	} {
		if r := s.Do(t, tc.method, tc.path, supervisor, tc.body); r.Status != http.StatusBadRequest {
			t.Errorf("%s %s %v: %d %s", tc.method, tc.path, tc.body, r.Status, r.Body)
		}
	}
	if n := len(pbx.AMI.Actions()) - before; n != 0 {
		t.Errorf("%d actions reached Asterisk for refused requests", n)
	}

	// Another enterprise sees no queue of this PBX.
	if r := s.Do(t, "GET", "/v1/queues?pbx="+pbx.ID, other, nil); r.Status != http.StatusNotFound {
		t.Errorf("another enterprise: %d %s", r.Status, r.Body)
	}

	// Every change is audited, refusals included.
	var audit struct {
		Entries []struct {
			Action    string `json:"action"`
			Result    string `json:"result"`
			From      string `json:"from"`
			ErrorCode string `json:"error_code"`
		} `json:"entries"`
	}
	s.Do(t, "GET", "/v1/audit?limit=100", events, nil).JSON(t, &audit)
	var seen []string
	for _, e := range audit.Entries {
		if strings.HasPrefix(e.Action, "queue_member_") {
			seen = append(seen, e.Action+":"+e.Result+":"+e.From+":"+e.ErrorCode)
		}
	}
	for _, want := range []string{"queue_member_add:success:103:", "queue_member_add:error:103:forbidden", "queue_member_add:error:103:conflict",
		"queue_member_remove:error:101:member_not_dynamic", "queue_member_pause:success:101:", "queue_member_penalty:success:103:",
		"queue_member_remove:success:103:"} {
		if !slices.Contains(seen, want) {
			t.Errorf("audit lacks %s (has %v)", want, seen)
		}
	}
}

// An agent of protocol 2 answers agent_too_old for each queue and
// recording operation, per request, and keeps its tunnel for the rest.
func TestCallCentreOpsAgentTooOld(t *testing.T) {
	s := systemtest.New(t, systemtest.Options{})
	s.Enterprise(t, "0367", "june")
	pbx := s.AddPBX(t, "0367", systemtest.PBXOptions{Protocol: 2})
	sup := s.JWT(t, "0367", "sup-1", auth.RoleSupervisor)
	before := len(pbx.AMI.Actions())
	for _, tc := range []struct {
		method, path string
		body         any
	}{
		{"GET", "/v1/queues?pbx=" + pbx.ID, nil},
		{"GET", "/v1/queues/inbound", nil},
		{"POST", "/v1/queues/inbound/members", map[string]any{"extension": "103"}},
		{"DELETE", "/v1/queues/inbound/members/103", nil},
		{"POST", "/v1/queues/inbound/members/101/pause", map[string]any{"paused": true}},
		{"POST", "/v1/queues/members/101/pause", map[string]any{"paused": true}},
		{"PUT", "/v1/queues/inbound/members/101/penalty", map[string]any{"penalty": 1}},
		{"POST", "/v1/calls/1.2/recording/start", nil},
		{"POST", "/v1/calls/1.2/recording/stop", nil},
		{"POST", "/v1/calls/1.2/recording/mute", map[string]any{"direction": "both", "muted": true}},
		{"GET", "/v1/recordings/" + pbx.ID + ".rec-20261206-0123456789abcdef", nil},
	} {
		r := s.Do(t, tc.method, tc.path, sup, tc.body)
		if r.Status != http.StatusConflict || errCode(t, r) != "agent_too_old" || !strings.Contains(string(r.Body), "protocol 2") {
			t.Errorf("%s %s: %d %s", tc.method, tc.path, r.Status, r.Body)
		}
	}
	if n := len(pbx.AMI.Actions()) - before; n != 0 {
		t.Errorf("%d actions reached Asterisk", n)
	}
	// The tunnel still serves what protocol 2 has.
	if r := s.Do(t, "GET", "/v1/channels", sup, nil); r.Status != http.StatusOK {
		t.Errorf("GET /v1/channels on the old agent: %d %s", r.Status, r.Body)
	}
}

// An operation the PBX's agent leaves out of its ops = … is refused there.
func TestCallCentreOpDisabled(t *testing.T) {
	s := systemtest.New(t, systemtest.Options{})
	s.Enterprise(t, "0367", "june")
	s.AddPBX(t, "0367", systemtest.PBXOptions{Ops: []string{protocol.OpQueues, protocol.OpPing, protocol.OpChannels}})
	sup := s.JWT(t, "0367", "sup-1", auth.RoleSupervisor)
	if r := s.Do(t, "GET", "/v1/queues/inbound", sup, nil); r.Status != http.StatusOK {
		t.Errorf("allowed op: %d %s", r.Status, r.Body)
	}
	for _, path := range []string{"/v1/queues/inbound/members", "/v1/calls/1.2/recording/start"} {
		body := map[string]any{"extension": "103"}
		if strings.Contains(path, "recording") {
			body = nil
		}
		if r := s.Do(t, "POST", path, sup, body); r.Status != http.StatusForbidden || errCode(t, r) != "op_disabled" {
			t.Errorf("POST %s: %d %s", path, r.Status, r.Body)
		}
	}
}

// The fake PBX's queue inbound: with 101 paused through the API, the next
// caller rings 102 only, and call.answered names 102 (the real-Asterisk
// suite checks the same against Asterisk). Unpaused, 101 would answer
// first.
func TestQueuePauseSendsCallerTo102(t *testing.T) {
	s := systemtest.New(t, systemtest.Options{})
	s.Enterprise(t, "0367", "june")
	pbx := s.AddPBX(t, "0367")
	pbx.AMI.SetOutcome("101", amitest.Answer.AfterRinging(10*time.Millisecond))
	pbx.AMI.SetOutcome("102", amitest.Answer.AfterRinging(50*time.Millisecond))
	sup := s.JWT(t, "0367", "sup-1", auth.RoleSupervisor)
	reader := s.APIKey(t, "0367", auth.ScopeEventsRead)
	if r := s.Do(t, "POST", "/v1/queues/members/101/pause", sup, map[string]any{"paused": true, "reason": "lunch"}); r.Status != http.StatusOK {
		t.Fatalf("pause 101: %d %s", r.Status, r.Body)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := ami.Dial(ctx, ami.Config{Addr: pbx.AMI.Addr(), Username: amitest.DefaultUsername, Secret: amitest.DefaultSecret, Events: "off"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Originate(ctx, ami.NewAction("Originate", "Channel", "Local/inbound@queues", "Application", "Wait", "Data", "600",
		"CallerID", `"Customer" <+375291112233>`, "ChannelId", "q-caller-1")); err != nil {
		t.Fatal(err)
	}
	ans := waitEvent(t, s, reader, protocol.EventCallAnswered, func(e storedEvent) bool { return e.CallID == "q-caller-1" })
	if ans.AnsweredBy != "102" || ans.From != "+375291112233" {
		t.Errorf("call.answered %+v: want answered_by 102 while 101 is paused", ans.Event)
	}
	left := waitEvent(t, s, reader, protocol.EventQueueCallerLeft, func(e storedEvent) bool { return e.CallID == "q-caller-1" })
	if left.Reason != protocol.LeftAnswered || left.AnsweredBy != "102" || left.Queue != "inbound" {
		t.Errorf("queue.caller_left %+v", left.Event)
	}
}
