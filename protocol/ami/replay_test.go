package ami

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

// These tests talk to a server that answers with the exact bytes a real
// Asterisk 22 sent in testdata/transcripts, ActionIDs rewritten to ours.

func TestReplayLogin(t *testing.T) {
	tests := []struct {
		capture string
		events  string
		wantErr error
	}{
		{"01-banner-login", "", nil},
		{"01e-login-events-off", "off", nil},
		{"01b-login-wrong-secret", "", ErrAuth},
		{"01c-login-unknown-user", "", ErrAuth},
	}
	for _, tc := range tests {
		t.Run(tc.capture, func(t *testing.T) {
			srv, received := replayServer(t, loadCapture(t, tc.capture))
			var logs logBuffer
			cfg := testConfig(srv.Addr(), &logs)
			cfg.Events = tc.events
			c, err := Dial(ctxT(t), cfg)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Dial err = %v, want %v", err, tc.wantErr)
			}
			if err == nil {
				defer c.Close()
				if !c.Connected() || c.Info().AMIVersion != "11.0.0" || c.Info().ConnectedAt.IsZero() {
					t.Errorf("Connected %v, Info %+v", c.Connected(), c.Info())
				}
			}
			login := received()[0]
			wantEvents := tc.events
			if wantEvents == "" {
				wantEvents = "on"
			}
			if login.Get("Events") != wantEvents || login.Get("Secret") != cfg.Secret || login.Get("Username") != cfg.Username {
				t.Errorf("Login sent = %q", login.String())
			}
			if !strings.HasPrefix(login.ActionID(), "sb-") {
				t.Errorf("Login ActionID %q is not ours", login.ActionID())
			}
			if strings.Contains(logs.String(), cfg.Secret) {
				t.Errorf("the secret appears in the logs:\n%s", logs.String())
			}
		})
	}
}

func TestReplayLoginEvents(t *testing.T) {
	srv, _ := replayServer(t, loadCapture(t, "01-banner-login"))
	r := startRun(t, testConfig(srv.Addr(), nil))
	// FullyBooted then SuccessfulAuth, in wire order, after our Connected.
	if m := <-r.sub.C(); m.Event() != "FullyBooted" || m.Get("Status") != "Fully Booted" {
		t.Fatalf("first event %q", m.String())
	}
	if m := <-r.sub.C(); m.Event() != "SuccessfulAuth" || m.Get("AccountID") != "switchboard" {
		t.Fatalf("second event %q", m.String())
	}
}

func TestReplayPing(t *testing.T) {
	srv, received := replayServer(t, loadCapture(t, "02-ping"))
	c, err := Dial(ctxT(t), testConfig(srv.Addr(), nil))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The capture has 9 pings; the one sent without an ActionID is replayed
	// unprompted, and its response (no ActionID) must be ignored. Two of
	// them were pipelined in one write, so ours run concurrently.
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		go func() {
			_, err := c.Ping(ctxT(t))
			errs <- err
		}()
	}
	for i := 0; i < 8; i++ {
		if err := <-errs; err != nil {
			t.Fatalf("ping: %v", err)
		}
	}
	got := received()
	if len(got) != 9 { // Login + 8 pings
		t.Errorf("server received %d actions", len(got))
	}
	ids := map[string]bool{}
	for _, m := range got {
		if ids[m.ActionID()] {
			t.Errorf("ActionID %q used twice", m.ActionID())
		}
		ids[m.ActionID()] = true
	}
}

func TestReplayOriginateAnswered(t *testing.T) {
	srv, received := replayServer(t, loadCapture(t, "03-originate-dial-bridge"))
	r := startRun(t, testConfig(srv.Addr(), nil))
	orig := NewAction("Originate", "Channel", "Local/150@inoffice", "Application", "Dial",
		"Data", "Local/+375296254070@inoffice", "CallerID", `"Desk 150" <150>`, "Timeout", "30000")
	o, err := r.Originate(ctxT(t), orig)
	if err != nil {
		t.Fatal(err)
	}
	if orig.Get("Async") != "" {
		t.Error("Originate modified the caller's message")
	}
	res, err := o.Wait(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	want := OriginateResult{Success: true, Reason: ReasonAnswered, Channel: "Local/150@inoffice-00000000;1", Uniqueid: "1795337002.0"}
	if res.Success != want.Success || res.Reason != want.Reason || res.Channel != want.Channel || res.Uniqueid != want.Uniqueid {
		t.Errorf("result %+v, want %+v", res, want)
	}
	if res.Raw.ActionID() != o.ActionID() {
		t.Errorf("OriginateResponse ActionID %q, Originating %q", res.Raw.ActionID(), o.ActionID())
	}
	sent := received()[1]
	if sent.Get("Async") != "true" || sent.ActionID() != o.ActionID() {
		t.Errorf("sent %q", sent.String())
	}
	// Subscribers see the call's events too, OriginateResponse included.
	r.next(t, "Newchannel")
	r.next(t, "OriginateResponse")
	r.next(t, "BridgeEnter")
}

func TestReplayOriginateOutcomes(t *testing.T) {
	srv, _ := replayServer(t, loadCapture(t, "04-originate-failures"))
	c, err := Dial(ctxT(t), testConfig(srv.Addr(), nil))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	async := []struct {
		name, channel string
		reason        int
	}{
		{"busy", "Local/busy@inoffice", ReasonBusy},
		{"noanswer", "Local/noanswer@inoffice", ReasonNoAnswer},
		{"congestion", "Local/congestion@inoffice", ReasonCongestion},
		{"no such extension", "Local/nosuchexten@inoffice", ReasonFailure},
		{"bad technology", "Foo/bar", ReasonFailure},
	}
	for _, tc := range async {
		t.Run(tc.name, func(t *testing.T) {
			o, err := c.Originate(ctxT(t), NewAction("Originate", "Channel", tc.channel, "Application", "Wait", "Data", "600", "Timeout", "3000"))
			if err != nil {
				t.Fatal(err)
			}
			res, err := o.Wait(ctxT(t))
			if err != nil {
				t.Fatal(err)
			}
			if res.Success || res.Reason != tc.reason || res.Channel != tc.channel || res.Uniqueid != "<unknown>" {
				t.Errorf("result %+v", res)
			}
		})
	}
	// The sync variants: an error response, then a success (both without Async).
	_, err = c.Action(ctxT(t), NewAction("Originate", "Channel", "Local/busy@inoffice", "Application", "Wait", "Data", "600", "Timeout", "3000"))
	var re *ResponseError
	if !errors.As(err, &re) || re.Message != "Originate failed" || re.Action != "Originate" || !errors.Is(err, ErrActionFailed) {
		t.Fatalf("sync busy: %v", err)
	}
	if _, err = c.Action(ctxT(t), NewAction("Originate", "Channel", "Local/noanswer@inoffice", "Context", "inoffice", "Exten", "151", "Priority", "1", "Timeout", "3000")); !errors.As(err, &re) {
		t.Fatalf("sync noanswer: %v", err)
	}
	m, err := c.Action(ctxT(t), NewAction("Originate", "Channel", "Local/152@inoffice", "Application", "Wait", "Data", "600", "Timeout", "3000"))
	if err != nil || m.Get("Message") != "Originate successfully queued" {
		t.Fatalf("sync success: %v %v", m, err)
	}
}

func TestReplayLists(t *testing.T) {
	srv, _ := replayServer(t, loadCapture(t, "05-coreshowchannels"))
	c, err := Dial(ctxT(t), testConfig(srv.Addr(), nil))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tests := []struct {
		action       string
		kv           []string
		items        int
		itemEvent    string
		completeName string
	}{
		{"CoreShowChannels", nil, 4, "CoreShowChannel", "CoreShowChannelsComplete"},
		{"Status", nil, 4, "Status", "StatusComplete"},
		{"BridgeList", nil, 1, "BridgeListItem", "BridgeListComplete"},
		{"BridgeInfo", []string{"BridgeUniqueid", "68863277-3149-422b-8f00-483f1470420b"}, 2, "BridgeInfoChannel", "BridgeInfoComplete"},
	}
	for _, tc := range tests {
		t.Run(tc.action, func(t *testing.T) {
			res, err := c.List(ctxT(t), NewAction(tc.action, tc.kv...))
			if err != nil {
				t.Fatal(err)
			}
			if res.Response.Get("EventList") != "start" || len(res.Items) != tc.items || res.Complete.Event() != tc.completeName {
				t.Fatalf("list %d items, response %q, complete %q", len(res.Items), res.Response.String(), res.Complete.String())
			}
			for _, it := range res.Items {
				if it.Event() != tc.itemEvent {
					t.Errorf("item %q", it.Event())
				}
			}
			if res.Complete.Get("ListItems") != strconv.Itoa(tc.items) {
				t.Errorf("ListItems %q, items %d", res.Complete.Get("ListItems"), tc.items)
			}
		})
	}
}

func TestReplayStatusGetvar(t *testing.T) {
	srv, _ := replayServer(t, loadCapture(t, "06-status-getvar"))
	r := startRun(t, testConfig(srv.Addr(), nil))
	ctx := ctxT(t)
	const ch = "Local/150@inoffice-00000009;1"
	res, err := r.List(ctx, NewAction("Status", "Channel", ch))
	if err != nil || len(res.Items) != 1 || res.Items[0].Get("Channel") != ch {
		t.Fatalf("Status: %v %+v", err, res)
	}
	// Status items carry ActionID last: still ours, still a list item.
	item := res.Items[0]
	if last := item.Headers[len(item.Headers)-1]; last.Key != "ActionID" {
		t.Fatalf("capture changed: last header %q", last.Key)
	}
	res, err = r.List(ctx, NewAction("Status", "Channel", ch, "Variables", "BRIDGEPEER,DIALSTATUS"))
	if err != nil || len(res.Items) != 1 {
		t.Fatalf("Status with Variables: %v", err)
	}
	if v := res.Items[0].Values("Variable"); len(v) != 2 || v[1] != "DIALSTATUS=ANSWER" {
		t.Errorf("Variable headers %q", v)
	}
	_, err = r.List(ctx, NewAction("Status", "Channel", "Local/999@inoffice-deadbeef;1"))
	var re *ResponseError
	if !errors.As(err, &re) || re.Message != "No such channel" {
		t.Fatalf("Status unknown channel: %v", err)
	}
	getvars := []struct {
		kv        []string
		value     string
		errMsg    string
		errAction string
	}{
		{[]string{"Channel", ch, "Variable", "BRIDGEPEER"}, "Local/+375296254070@inoffice-0000000a;1", "", ""},
		{[]string{"Channel", ch, "Variable", "DIALSTATUS"}, "ANSWER", "", ""},
		{[]string{"Channel", ch, "Variable", "CALLERID(num)"}, "", "", ""},
		{[]string{"Channel", ch, "Variable", "CHANNEL(state)"}, "Up", "", ""},
		{[]string{"Channel", ch, "Variable", "NO_SUCH_VARIABLE"}, "", "", ""},
		{[]string{"Variable", "EPOCH"}, "1795337029", "", ""},
		{[]string{"Channel", "Local/999@inoffice-deadbeef;1", "Variable", "BRIDGEPEER"}, "", "No such channel", "Getvar"},
		{[]string{"Channel", ch}, "", "No variable specified", "Getvar"},
	}
	for i, g := range getvars {
		m, err := r.Action(ctx, NewAction("Getvar", g.kv...))
		if g.errMsg != "" {
			if !errors.As(err, &re) || re.Message != g.errMsg || re.Action != g.errAction {
				t.Errorf("getvar %d: %v", i, err)
			}
			continue
		}
		if err != nil || m.Get("Value") != g.value {
			t.Errorf("getvar %d: %v %v", i, m, err)
		}
	}
	if _, err := r.Action(ctx, NewAction("Setvar", "Channel", ch, "Variable", "SWITCHBOARD_TAG", "Value", "hello world")); err != nil {
		t.Fatal(err)
	}
	if m := r.next(t, "VarSet"); m.Get("Value") != "hello world" {
		t.Errorf("VarSet %q", m.String())
	}
	if m, err := r.Action(ctx, NewAction("Getvar", "Channel", ch, "Variable", "SWITCHBOARD_TAG")); err != nil || m.Get("Value") != "hello world" {
		t.Errorf("getvar after setvar: %v %v", m, err)
	}
}

func TestReplayHangup(t *testing.T) {
	srv, _ := replayServer(t, loadCapture(t, "08-hangup"))
	c, err := Dial(ctxT(t), testConfig(srv.Addr(), nil))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := ctxT(t)
	var re *ResponseError
	if m, err := c.Action(ctx, NewAction("Hangup", "Channel", "Local/150@inoffice-00000009;1", "Cause", "16")); err != nil || m.Get("Message") != "Channel Hungup" {
		t.Fatalf("by name: %v %v", m, err)
	}
	if _, err := c.Action(ctx, NewAction("Hangup", "Channel", "Local/999@inoffice-deadbeef;1")); !errors.As(err, &re) || re.Message != "No such channel" {
		t.Fatalf("unknown: %v", err)
	}
	if _, err := c.Action(ctx, NewAction("Hangup")); !errors.As(err, &re) || re.Message != "No channel specified" {
		t.Fatalf("no channel: %v", err)
	}
	res, err := c.List(ctx, NewAction("Hangup", "Channel", `/^Local\/150.*/`, "Cause", "16"))
	if err != nil || len(res.Items) != 2 || res.Complete.Event() != "ChannelsHungupListComplete" || res.Items[0].Event() != "ChannelHungup" {
		t.Fatalf("regex: %v %+v", err, res)
	}
	if res, err = c.List(ctx, NewAction("Hangup", "Channel", `/^Local\/999.*/`)); err != nil || len(res.Items) != 0 || res.Complete.Get("ListItems") != "0" {
		t.Fatalf("regex none: %v %+v", err, res)
	}
	if _, err = c.List(ctx, NewAction("Hangup", "Channel", `/^Local\/(150.*/`)); !errors.As(err, &re) || re.Message != `Regex compile failed on: /^Local\/(150.*/` {
		t.Fatalf("bad regex: %v", err)
	}
	if res, err = c.List(ctx, NewAction("Hangup", "Channel", `/^Local\/15[1-9]@/`)); err != nil || len(res.Items) != 12 {
		t.Fatalf("regex spies: %v %+v", err, res)
	}
	// A hangup by name through List: a plain Success, no list.
	if res, err = c.List(ctx, NewAction("Hangup", "Channel", "Local/150@inoffice-00000013;1", "Cause", "NORMAL_CLEARING")); err != nil || res.Complete != nil || res.Response.Get("Message") != "Channel Hungup" {
		t.Fatalf("text cause: %v %+v", err, res)
	}
}

func TestReplayErrors(t *testing.T) {
	srv, _ := replayServer(t, loadCapture(t, "09-errors-injection"))
	c, err := Dial(ctxT(t), testConfig(srv.Addr(), nil))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tests := []struct {
		m   *Message
		msg string
	}{
		{NewAction("Frobnicate"), "Invalid/unknown command: Frobnicate. Use Action: ListCommands to show available commands."},
		{NewAction("Originate", "Application", "Wait", "Data", "5"), "Channel not specified"},
		{NewAction("Originate", "Channel", "Local/150@inoffice"), "Originate with 'Exten' requires 'Context' and 'Priority'"},
		{NewAction("Originate", "Channel", "Local/150@inoffice", "Exten", "151", "Priority", "1"), "Extension does not exist."},
		{NewAction("Originate", "Channel", "garbage", "Application", "Wait", "Data", "5"), "Invalid channel"},
	}
	for _, tc := range tests {
		t.Run(tc.msg, func(t *testing.T) {
			_, err := c.Action(ctxT(t), tc.m)
			var re *ResponseError
			if !errors.As(err, &re) || re.Message != tc.msg || re.Action != tc.m.Action() {
				t.Fatalf("err = %v", err)
			}
		})
	}
}

func TestReplayLogoffAndCommand(t *testing.T) {
	t.Run("command", func(t *testing.T) {
		srv, _ := replayServer(t, loadCapture(t, "11-misc-command-settings"))
		c, err := Dial(ctxT(t), testConfig(srv.Addr(), nil))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		m, err := c.Action(ctxT(t), NewAction("Command", "Command", "core show version"))
		if err != nil || len(m.Values("Output")) == 0 || !strings.HasPrefix(m.Get("Output"), "Asterisk 22") {
			t.Fatalf("%v %v", m, err)
		}
		_, err = c.Action(ctxT(t), NewAction("Command", "Command", "no such cli command"))
		var re *ResponseError
		if !errors.As(err, &re) || re.Message != "Command output follows" {
			t.Fatalf("unknown CLI command: %v", err)
		}
	})
	t.Run("logoff", func(t *testing.T) {
		srv, _ := replayServer(t, loadCapture(t, "10-logoff"))
		r := startRun(t, testConfig(srv.Addr(), nil))
		m, err := r.Action(ctxT(t), NewAction("Logoff"))
		if err != nil || m.Response() != "Goodbye" {
			t.Fatalf("%v %v", m, err)
		}
		// Asterisk closes the socket after Goodbye: the owner hears it.
		if d := r.next(t, EventDisconnected); d.Get("Error") == "" {
			t.Errorf("Disconnected without Error: %q", d.String())
		}
	})
}
