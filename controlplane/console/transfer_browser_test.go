package console_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/switchboard-pbx/switchboard/protocol"
)

// transferButton is the selector of a live row's transfer control.
func transferButton(callID, action string) string {
	return row(callID) + fmt.Sprintf(` button[data-action=%q]`, action)
}

// callEvents are a call's stored events.
func (c *console) callEvents(t *testing.T, id string) []protocol.Event {
	t.Helper()
	var d struct {
		Events []protocol.Event `json:"events"`
	}
	if r := c.s.Do(t, "GET", "/v1/calls/"+id, c.key, nil); r.Status == 200 {
		r.JSON(t, &d)
	}
	return d.Events
}

// waitCallEvent waits until the call's history has an event of type typ.
func (c *console) waitCallEvent(t *testing.T, id, typ string) protocol.Event {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		evs := c.callEvents(t, id)
		if i := slices.IndexFunc(evs, func(e protocol.Event) bool { return e.Type == typ }); i >= 0 {
			return evs[i]
		}
		if time.Now().After(deadline) {
			t.Fatalf("call %s has no %s event: %+v", id, typ, evs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitFakeChannel waits until the fake Asterisk has an answered, bridged
// channel whose name starts with prefix (an attended transfer's
// consultation, connected).
func (c *console) waitFakeChannel(t *testing.T, prefix string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, ch := range c.pbx.AMI.Channels() {
			if strings.HasPrefix(ch.Name, prefix) && ch.State == "Up" && ch.BridgeID != "" {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no bridged channel %s… at the fake Asterisk", prefix)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// hangupAll ends every channel of call id at the fake Asterisk (after a
// transfer its first leg is gone; the customer and the target remain).
func (c *console) hangupAll(t *testing.T, id string) {
	t.Helper()
	for _, ch := range c.pbx.AMI.Channels() {
		if ch.Linkedid == id {
			_ = c.pbx.AMI.Hangup(ch.Uniqueid, 16) // gone already when an earlier hangup ended its peer
		}
	}
}

// testTransfer: a blind transfer from a live row's dialog reaches the
// fake Asterisk as BlindTransfer and the call's events say
// call.transferred; an attended transfer started elsewhere (through the
// API) turns the row's Transfer into Complete / Cancel from the events
// alone; Cancel and Complete from the row.
func (c *console) testTransfer(t *testing.T, tb *tab) {
	tb.t = t
	// The spy calls of the monitor subtest end first, so the screenshot
	// shows the call being transferred.
	for _, ch := range c.pbx.AMI.Channels() {
		if strings.HasPrefix(ch.Name, "Local/151@") {
			_ = c.pbx.AMI.Hangup(ch.Uniqueid, 16)
		}
	}
	tb.goTo("#/live")
	tb.waitJS(10*time.Second, `document.getElementById('stream').dataset.state === 'live'`)
	id := c.originate(t, "106", "+375296254076")
	tb.doWithin(rowWithin, chromedp.WaitVisible(chromedp.CSS(row(id))))
	tb.waitJS(5*time.Second, `document.querySelector(`+jsString(row(id))+`).dataset.status === 'in-progress'`)

	tb.press(transferButton(id, "transfer"))
	tb.do(chromedp.WaitVisible(`//dialog//input[@name="to"]`))
	// The transferer is the call's from by default.
	if got := eval[string](tb, `document.querySelector('dialog input[name="transferer"]').value`); got != "106" {
		t.Errorf("the dialog's Transferer is %q, want the call's from 106", got)
	}
	tb.do(chromedp.SendKeys(`//dialog//input[@name="to"]`, "160"))
	tb.screenshot("transfer-dialog")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	tb.do(chromedp.Click(button("//dialog", "Transfer")))
	bt, err := c.pbx.AMI.WaitAction(ctx, "BlindTransfer")
	if err != nil {
		t.Fatalf("no BlindTransfer at the fake Asterisk: %v", err)
	}
	if bt.Get("Exten") != "160" {
		t.Errorf("BlindTransfer to %q, want 160", bt.Get("Exten"))
	}
	tb.do(chromedp.WaitVisible(`//tr[@data-call-id="` + id + `" and @data-transfer="transferred"]//span[normalize-space()="transferred to 160"]`))
	if x := c.waitCallEvent(t, id, protocol.EventCallTransferred).Transfer; x == nil || x.To != "160" || x.Mode != "blind" || x.Transferer != "106" {
		t.Errorf("call.transferred says %+v", x)
	}
	c.hangupAll(t, id)
	tb.do(chromedp.WaitNotPresent(chromedp.CSS(row(id))))

	c.testAttendedTransfer(t, tb)
}

func (c *console) testAttendedTransfer(t *testing.T, tb *tab) {
	id, err := c.pbx.AMI.StartDialoutCall("150", "+375296254077")
	if err != nil {
		t.Fatal(err)
	}
	tb.do(chromedp.WaitVisible(chromedp.CSS(row(id))))
	tb.waitJS(5*time.Second, `document.querySelector(`+jsString(row(id))+`).dataset.status === 'in-progress'`)
	deadline := time.Now().Add(10 * time.Second)
	for {
		// Started elsewhere: the row learns it from call.transfer_started.
		r := c.s.Do(t, "POST", "/v1/calls/"+id+"/transfer", c.key, map[string]any{"to": "161", "mode": "attended", "transferer": "150"})
		if r.Status == 200 {
			break
		}
		if r.Status != 409 || time.Now().After(deadline) { // 409 call_state: not bridged at the agent yet
			t.Fatalf("attended transfer through the API: %d %s", r.Status, r.Body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	tb.do(chromedp.WaitVisible(chromedp.CSS(transferButton(id, "transfer-cancel"))),
		chromedp.WaitNotVisible(chromedp.CSS(transferButton(id, "transfer"))))
	c.waitFakeChannel(t, "Local/161@")
	tb.phone(func() { tb.fits() })
	tb.press(transferButton(id, "transfer-cancel"))
	tb.do(chromedp.WaitVisible(chromedp.CSS(transferButton(id, "transfer"))))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.pbx.AMI.WaitAction(ctx, "CancelAtxfer"); err != nil {
		t.Fatalf("no CancelAtxfer at the fake Asterisk: %v", err)
	}
	c.waitCallEvent(t, id, protocol.EventCallTransferCanceled)

	// Again from the row, attended, then Complete.
	tb.press(transferButton(id, "transfer"))
	tb.do(
		chromedp.WaitVisible(`//dialog//input[@name="to"]`),
		chromedp.SendKeys(`//dialog//input[@name="to"]`, "162"),
		chromedp.SetValue(`//dialog//select[@name="mode"]`, "attended"),
		chromedp.Click(button("//dialog", "Transfer")),
		chromedp.WaitVisible(chromedp.CSS(transferButton(id, "transfer-complete"))),
	)
	c.waitFakeChannel(t, "Local/162@")
	tb.press(transferButton(id, "transfer-complete"))
	tb.do(chromedp.WaitVisible(`//tr[@data-call-id="` + id + `" and @data-transfer="transferred"]//span[normalize-space()="transferred to 162"]`))
	if x := c.waitCallEvent(t, id, protocol.EventCallTransferred).Transfer; x == nil || x.To != "162" || x.Mode != "attended" {
		t.Errorf("call.transferred says %+v", x)
	}
	c.hangupAll(t, id)
	tb.do(chromedp.WaitNotPresent(chromedp.CSS(row(id))))
}
