package console_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/switchboard-pbx/switchboard/protocol/ami"
	"github.com/switchboard-pbx/switchboard/protocol/ami/amitest"
)

// member is the selector of a queue member's row, by extension.
func member(ext string) string { return fmt.Sprintf(`tr[data-extension=%q]`, ext) }

// queueMember is one member as GET /v1/queues/inbound says.
type queueMember struct {
	Extension    string `json:"extension"`
	Paused       bool   `json:"paused"`
	PausedReason string `json:"paused_reason"`
	Membership   string `json:"membership"`
}

func (c *console) inbound(t *testing.T) map[string]queueMember {
	t.Helper()
	r := c.s.Do(t, "GET", "/v1/queues/inbound", c.key, nil)
	if r.Status != 200 {
		t.Fatalf("GET /v1/queues/inbound: %d %s", r.Status, r.Body)
	}
	var q struct {
		Members []queueMember `json:"members"`
	}
	r.JSON(t, &q)
	out := map[string]queueMember{}
	for _, m := range q.Members {
		out[m.Extension] = m
	}
	return out
}

// queuePauses counts the QueuePause actions for ext's interface that
// reached the fake Asterisk with paused and reason.
func (c *console) queuePauses(ext string, paused bool, reason string) int {
	n := 0
	for _, m := range c.pbx.AMI.Actions() {
		if strings.EqualFold(m.Get("Action"), "QueuePause") && strings.HasPrefix(m.Get("Interface"), "Local/"+ext+"@") &&
			strings.EqualFold(m.Get("Paused"), fmt.Sprint(paused)) && m.Get("Reason") == reason {
			n++
		}
	}
	return n
}

// callQueue sends a customer into queue inbound, as the dialplan of
// capture 14 does, and returns the call's id.
func (c *console) callQueue(t *testing.T, id string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := ami.Dial(ctx, ami.Config{Addr: c.pbx.AMI.Addr(), Username: amitest.DefaultUsername, Secret: amitest.DefaultSecret, Events: "off"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Originate(ctx, ami.NewAction("Originate", "Channel", "Local/inbound@queues", "Application", "Wait", "Data", "600",
		"CallerID", `"Customer" <+375291112233>`, "ChannelId", id)); err != nil {
		t.Fatal(err)
	}
	return id
}

// testQueues: the Queues page lists queue inbound with its members; the
// pause toggle asks for a reason and pauses the member at the PBX; the
// page follows changes made elsewhere from the event stream alone (a
// pause through the API, a caller joining and leaving); a waiting
// caller's time ticks; members are added and removed.
func (c *console) testQueues(t *testing.T, tb *tab) {
	tb.t = t
	tb.goTo("#/queues")
	list := fmt.Sprintf(`section[data-pbx=%q] tr[data-queue="inbound"]`, c.pbx.ID)
	tb.do(chromedp.WaitVisible(chromedp.CSS(list)))
	cells := eval[[]string](tb, `[...document.querySelector(`+jsString(list)+`).cells].map(td => td.innerText.trim())`)
	if len(cells) < 5 || cells[0] != "inbound" || cells[1] != "ringall" || cells[2] != "0" || cells[4] != "2 of 2" {
		t.Fatalf("queue row %q: want inbound, ringall, nobody waiting, 2 of 2 available", cells)
	}

	tb.do(chromedp.Click(chromedp.CSS(list+` a`)),
		chromedp.WaitVisible(`//h1[starts-with(normalize-space(), "Queue inbound")]`),
		chromedp.WaitVisible(chromedp.CSS(member("101"))), chromedp.WaitVisible(chromedp.CSS(member("102"))))
	tb.waitJS(10*time.Second, `document.getElementById('stream').dataset.state === 'live'`)
	if got := eval[string](tb, `document.querySelector(`+jsString(member("101"))+`).innerText`); !contains(got, "Operator 101", "Local/101@from-queue/n", "not in use") {
		t.Errorf("member 101's row says %q", got)
	}

	// Pause 101 from the page, with a reason, from the keyboard: the
	// dialog's field has the focus and Enter sends it.
	tb.do(
		chromedp.Click(chromedp.CSS(member("101")+` button[data-action="pause"]`)),
		chromedp.WaitVisible(byLabel("Reason (optional)")),
	)
	tb.waitJS(2*time.Second, `document.activeElement && document.activeElement.name === 'reason'`)
	tb.do(
		chromedp.KeyEvent("lunch"+kb.Enter),
		chromedp.WaitVisible(chromedp.CSS(member("101")+`[data-paused="true"]`)),
	)
	if got := eval[string](tb, `document.querySelector(`+jsString(member("101")+` td[data-label="Paused"]`)+`).innerText`); !contains(got, "paused", "lunch") {
		t.Errorf("101's Paused cell says %q, want paused and lunch", got)
	}
	if n := c.queuePauses("101", true, "lunch"); n != 1 {
		t.Errorf("%d QueuePause actions for 101 with reason lunch reached the fake Asterisk, want 1", n)
	}
	if m := c.inbound(t)["101"]; !m.Paused || m.PausedReason != "lunch" {
		t.Errorf("the API says 101 is %+v", m)
	}

	// Elsewhere: 102 paused through the API. The page learns it from
	// queue.member_paused (first, the read that 101's own event causes is
	// let pass, so it cannot be what shows 102).
	time.Sleep(time.Second)
	// Whoever was on 101's toggle from the keyboard stays there when the
	// page redraws.
	unpause101 := member("101") + ` button[data-action="pause"]`
	tb.do(chromedp.Focus(chromedp.CSS(unpause101)))
	if r := c.s.Do(t, "POST", "/v1/queues/inbound/members/102/pause", c.key, map[string]any{"paused": true, "reason": "training"}); r.Status != 200 {
		t.Fatalf("pause 102: %d %s", r.Status, r.Body)
	}
	tb.do(chromedp.WaitVisible(chromedp.CSS(member("102") + `[data-paused="true"]`)))
	if !eval[bool](tb, `document.activeElement === document.querySelector(`+jsString(unpause101)+`)`) {
		t.Errorf("the focus moved to %q when the page redrew", eval[string](tb, `document.activeElement.tagName + ' ' + (document.activeElement.getAttribute('aria-label') || '')`))
	}

	// Nobody takes calls: a caller waits, and the wait ticks.
	caller := c.callQueue(t, "q-console-1")
	tb.do(chromedp.WaitVisible(chromedp.CSS(`tr[data-caller] td[data-label="Waiting"]`)))
	waiting := `document.querySelector('tr[data-caller] td[data-label="Waiting"]').innerText`
	first := eval[string](tb, waiting)
	tb.waitJS(3*time.Second, waiting+` !== `+jsString(first))
	if got := eval[string](tb, `document.querySelector('tr[data-caller]').innerText`); !contains(got, "+375291112233", caller) {
		t.Errorf("the waiting caller's row says %q", got)
	}
	tb.screenshot("queues")
	tb.phone(func() { tb.fits(); tb.labelled() })

	// Unpause 101 from the page (Enter on its toggle): no question; the queue rings 101, which
	// answers, and the caller leaves the waiting list.
	tb.press(unpause101)
	tb.do(chromedp.WaitVisible(chromedp.CSS(member("101") + `[data-paused="false"]`)))
	if n := c.queuePauses("101", false, ""); n != 1 {
		t.Errorf("%d QueuePause actions unpausing 101 reached the fake Asterisk, want 1", n)
	}
	tb.doWithin(10*time.Second, chromedp.WaitNotPresent(chromedp.CSS(`tr[data-caller]`)))
	if err := c.pbx.AMI.Hangup(caller, 16); err != nil {
		t.Fatal(err)
	}
	if r := c.s.Do(t, "POST", "/v1/queues/inbound/members/102/pause", c.key, map[string]any{"paused": false}); r.Status != 200 {
		t.Fatalf("unpause 102: %d %s", r.Status, r.Body)
	}
	tb.do(chromedp.WaitVisible(chromedp.CSS(member("102") + `[data-paused="false"]`)))

	c.testQueueMembers(t, tb)
}

// testQueueMembers adds member 103 through the form and removes it; a
// static member is not offered Remove, and says why.
func (c *console) testQueueMembers(t *testing.T, tb *tab) {
	if title := eval[string](tb, `document.querySelector(`+jsString(member("101")+` button[data-action="remove"]`)+`).title`); !strings.Contains(title, "static member") {
		t.Errorf("a static member's Remove says %q", title)
	}
	tb.do(
		chromedp.SendKeys(byLabel("Extension"), "103"),
		chromedp.SendKeys(byLabel("Name"), "Operator 103"),
		chromedp.Click(button("", "Add member")),
		chromedp.WaitVisible(chromedp.CSS(member("103"))),
	)
	if m, ok := c.inbound(t)["103"]; !ok || m.Membership != "dynamic" {
		t.Fatalf("103 at the API after Add member: %+v", m)
	}
	tb.do(
		chromedp.Click(chromedp.CSS(member("103")+` button[data-action="remove"]`)),
		chromedp.WaitVisible(`//dialog//h2[normalize-space()="Remove Operator 103?"]`),
		chromedp.Click(button("//dialog", "Remove")),
		chromedp.WaitNotPresent(chromedp.CSS(member("103"))),
	)
	if _, ok := c.inbound(t)["103"]; ok {
		t.Error("103 is still a member after Remove")
	}
	// An error from the API is shown as its message: adding 101 again.
	tb.do(
		chromedp.SendKeys(byLabel("Extension"), "101"),
		chromedp.Click(button("", "Add member")),
		chromedp.WaitVisible(chromedp.CSS(`#queue-status .error`)),
	)
	if got := eval[string](tb, `document.querySelector('#queue-status .error').innerText`); got == "" || strings.Contains(got, "409") {
		t.Errorf("a refused add shows %q, want the API's message", got)
	}
}

// testLeastPrivilege: a key that may read queues and events but not
// manage members nor control calls is not offered those controls, and
// each says why (the reason GET /v1/me gives).
func (c *console) testLeastPrivilege(t *testing.T) {
	key := c.s.APIKey(t, "0367", "events:read", "channels:read", "queues:read")
	var me struct {
		Actions map[string]struct {
			Allowed bool   `json:"allowed"`
			Reason  string `json:"reason"`
		} `json:"actions"`
	}
	c.s.Do(t, "GET", "/v1/me", key, nil).JSON(t, &me)
	manage := me.Actions["queues:manage"]
	if manage.Allowed || manage.Reason == "" {
		t.Fatalf("the key's queues:manage: %+v", manage)
	}
	tb := newTab(t, c.browser, c.s.URL)
	tb.signIn(key)
	tb.goTo("#/queues/inbound?pbx=" + c.pbx.ID)
	tb.do(chromedp.WaitVisible(chromedp.CSS(member("101"))))
	type control struct {
		Action   string `json:"action"`
		Disabled bool   `json:"disabled"`
		Title    string `json:"title"`
	}
	controls := eval[[]control](tb, `[...document.querySelectorAll('#queue button[data-action]')].map(b => ({action: b.dataset.action, disabled: b.disabled, title: b.title}))`)
	if len(controls) == 0 {
		t.Fatal("no member buttons on the queue page")
	}
	for _, b := range controls {
		if !b.Disabled || b.Title != manage.Reason {
			t.Errorf("member button %+v: want disabled with the tooltip %q", b, manage.Reason)
		}
	}
	add := eval[control](tb, `(() => { const b = [...document.querySelectorAll('button')].find(b => b.textContent === 'Add member'); return {disabled: b.disabled, title: b.title}; })()`)
	if !add.Disabled || add.Title != manage.Reason {
		t.Errorf("Add member: %+v, want disabled with %q", add, manage.Reason)
	}
	if note := eval[string](tb, `document.getElementById('queue-denied').innerText`); !strings.Contains(note, manage.Reason) {
		t.Errorf("the page's note says %q", note)
	}

	// Live calls: no Transfer.
	callsControl := me.Actions["calls:control"]
	if callsControl.Allowed || callsControl.Reason == "" {
		t.Fatalf("the key's calls:control: %+v", callsControl)
	}
	tb.goTo("#/live")
	tb.waitJS(10*time.Second, `document.getElementById('stream').dataset.state === 'live'`)
	id := c.originate(t, "107", "+375296254078")
	tb.doWithin(rowWithin, chromedp.WaitVisible(chromedp.CSS(row(id))))
	transfer := eval[control](tb, `(() => { const b = document.querySelector(`+jsString(transferButton(id, "transfer"))+`); return {disabled: b.disabled, title: b.title}; })()`)
	if !transfer.Disabled || transfer.Title != callsControl.Reason {
		t.Errorf("Transfer: %+v, want disabled with %q", transfer, callsControl.Reason)
	}
	if n := eval[int](tb, `[...document.querySelectorAll('button')].filter(b => b.textContent.includes('transfer') && !b.disabled).length`); n != 0 {
		t.Errorf("%d transfer controls offered", n)
	}
	if note := eval[string](tb, `document.getElementById('live-denied').innerText`); !strings.Contains(note, "Transfer ("+callsControl.Reason+")") {
		t.Errorf("the live page's note says %q", note)
	}
	if err := c.pbx.AMI.Hangup(id, 16); err != nil {
		t.Fatal(err)
	}
	tb.do(chromedp.WaitNotPresent(chromedp.CSS(row(id))))
}
