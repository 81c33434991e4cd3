package console_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/switchboard-pbx/switchboard/controlplane/auth"
	"github.com/switchboard-pbx/switchboard/internal/systemtest"
	"github.com/switchboard-pbx/switchboard/protocol/ami"
	"github.com/switchboard-pbx/switchboard/protocol/ami/amitest"
)

// rowWithin is how soon an originate through the API must show as a row.
const rowWithin = 2 * time.Second

// console is the whole product a browser test drives: the control plane
// as `switchboard serve` builds it, one enterprise with a PBX (the AMI
// fake behind a real agent), and one headless Chromium.
type console struct {
	s       *systemtest.Server
	pbx     *systemtest.PBX
	entID   int64
	key     string // API key, every scope
	browser context.Context
}

// TestConsoleInBrowser drives the console in headless Chromium through the
// real control plane, as the issue lists: sign in with an API key and see
// an originate as a row; hang it up from the row; an operator without the
// hangup role is not offered it; place a call; the fleet as platform_admin;
// the history with a call's timeline; webhooks and audit; the queues
// (queues_browser_test.go); transfers (transfer_browser_test.go); and the stream
// indicator recovering after a control-plane restart with no event missed.
// It writes the README's screenshots with -update.
func TestConsoleInBrowser(t *testing.T) {
	s := systemtest.New(t, systemtest.Options{Level: slog.LevelWarn})
	ent := s.Enterprise(t, "0367", "june")
	c := &console{s: s, entID: ent.ID}
	// An attended transfer's consultation starts at once, not after
	// Asterisk's 3 s transfer digit timeout.
	c.pbx = s.AddPBX(t, "0367", systemtest.PBXOptions{Name: "pbx-june", Hostname: "pbx-june.example",
		AMI: []amitest.Option{amitest.WithTransferDigitTimeout(30 * time.Millisecond)}})
	c.key = s.APIKey(t, "0367")
	c.browser = newBrowser(t)

	tb := newTab(t, c.browser, s.URL)
	t.Run("sign in with an API key and see a call within 2 s", func(t *testing.T) { c.testLiveRow(t, tb) })
	t.Run("spy asks once for the supervisor's extension", func(t *testing.T) { c.testMonitor(t, tb) })
	t.Run("hang up from the row", func(t *testing.T) { c.testHangup(t, tb) })
	t.Run("place a call", func(t *testing.T) { c.testPlaceCall(t, tb) })
	t.Run("operator without the hangup role", func(t *testing.T) { c.testOperator(t) })
	t.Run("queues: members, pause with a reason, live", func(t *testing.T) { c.testQueues(t, tb) })
	t.Run("transfer from a live row: blind, attended", func(t *testing.T) { c.testTransfer(t, tb) })
	t.Run("without queues:manage or calls:control", func(t *testing.T) { c.testLeastPrivilege(t) })
	t.Run("history and a call's timeline", func(t *testing.T) { c.testHistory(t, tb) })
	t.Run("PBXs, webhooks, audit", func(t *testing.T) { c.testPages(t, tb) })
	t.Run("fleet as platform_admin", func(t *testing.T) { c.testFleet(t) })
	t.Run("sign out", func(t *testing.T) { c.testSignOut(t, tb) })
	// Last: the restarted control plane lives as long as this subtest.
	t.Run("stream recovers after a restart, nothing missed", func(t *testing.T) { c.testRestart(t, tb) })
}

// originate places a call through the API, as a CRM would.
func (c *console) originate(t *testing.T, from, to string) string {
	t.Helper()
	r := c.s.Do(t, "POST", "/v1/calls", c.key, map[string]string{"from": from, "to": to})
	if r.Status != 201 {
		t.Fatalf("originate %s → %s: %d %s", from, to, r.Status, r.Body)
	}
	var out struct {
		CallID string `json:"call_id"`
	}
	r.JSON(t, &out)
	return out.CallID
}

var liveCall string // the call the first subtests share

func (c *console) testLiveRow(t *testing.T, tb *tab) {
	tb.t = t
	tb.signIn(c.key)
	tb.do(chromedp.WaitVisible(`//h1[starts-with(normalize-space(), "Live calls")]`))
	tb.waitJS(10*time.Second, `document.getElementById('stream').dataset.state === 'live'`)
	start := time.Now()
	liveCall = c.originate(t, "150", "+375296254070")
	tb.doWithin(rowWithin-time.Since(start), chromedp.WaitVisible(chromedp.CSS(row(liveCall))))
	t.Logf("the originated call showed as a row %v after POST /v1/calls was sent", time.Since(start).Round(time.Millisecond))
	cells := eval[[]string](tb, `[...document.querySelectorAll(`+jsString(row(liveCall)+" td")+`)].map(td => td.innerText.trim())`)
	if len(cells) < 7 || cells[0] != "150" || cells[1] != "+375296254070" || cells[5] != "pbx-june" {
		t.Fatalf("row cells %q: want from 150, to +375296254070, PBX pbx-june", cells)
	}
	// The duration ticks.
	first := cells[6]
	tb.waitJS(3*time.Second, `document.querySelector(`+jsString(row(liveCall)+` td[data-label="Duration"]`)+`).innerText !== `+jsString(first))
	tb.waitJS(5*time.Second, `document.querySelector(`+jsString(row(liveCall))+`).dataset.status === 'in-progress'`)
	tb.screenshot("live-calls")
	tb.phone(func() { tb.screenshot("live-calls-phone") })
}

func (c *console) testHangup(t *testing.T, tb *tab) {
	tb.t = t
	if liveCall == "" {
		t.Fatal("no live call from the previous step")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	before := len(c.pbx.AMI.Actions())
	tb.press(row(liveCall) + ` button[data-action="hangup"]`)
	tb.do(
		chromedp.WaitVisible(`//dialog//h2[normalize-space()="Hang up this call?"]`),
	)
	// Nothing is sent before the confirmation.
	if hangups(c.pbx.AMI.Actions()[before:]) != 0 {
		t.Fatal("a Hangup reached Asterisk before the confirmation")
	}
	tb.do(chromedp.Click(button("//dialog", "Hang up")))
	if _, err := c.pbx.AMI.WaitAction(ctx, "Hangup"); err != nil {
		t.Fatalf("no Hangup at the fake Asterisk: %v", err)
	}
	tb.do(chromedp.WaitNotPresent(chromedp.CSS(row(liveCall))))
	for _, ch := range c.pbx.AMI.Channels() {
		if ch.Uniqueid == liveCall {
			t.Fatalf("channel %s still up at the fake Asterisk", ch.Name)
		}
	}
}

func (c *console) testMonitor(t *testing.T, tb *tab) {
	tb.t = t
	if liveCall == "" {
		t.Fatal("no live call from the previous step")
	}
	spies := func() int {
		n := 0
		for _, m := range c.pbx.AMI.Actions() {
			if strings.EqualFold(m.Get("Action"), "Originate") && m.Get("Application") == "ChanSpy" {
				n++
			}
		}
		return n
	}
	before := spies()
	tb.press(row(liveCall) + ` button[data-action="spy"]`)
	tb.do(
		chromedp.WaitVisible(byLabel("Your extension")),
		chromedp.SendKeys(byLabel("Your extension"), "151"),
		chromedp.Click(button("//dialog", "Spy")),
		chromedp.WaitVisible(`//*[@id="live-status"]//*[starts-with(normalize-space(), "Spy: your extension 151 rings")]`),
	)
	// Remembered: Whisper asks nothing.
	tb.press(row(liveCall) + ` button[data-action="whisper"]`)
	tb.do(
		chromedp.WaitVisible(`//*[@id="live-status"]//*[starts-with(normalize-space(), "Whisper: your extension 151 rings")]`),
	)
	if n := eval[int](tb, `document.querySelectorAll('dialog').length`); n != 0 {
		t.Errorf("%d dialogs open after Whisper: the extension was asked again", n)
	}
	if got := spies() - before; got != 2 {
		t.Errorf("%d ChanSpy originates reached the fake Asterisk, want 2", got)
	}
	for _, m := range c.pbx.AMI.Actions() {
		if m.Get("Application") == "ChanSpy" && !strings.HasPrefix(m.Get("Channel"), "Local/151@") {
			t.Errorf("ChanSpy from %s, want the supervisor's extension 151", m.Get("Channel"))
		}
	}
	// The row says a supervisor is listening (call.monitor_started).
	tb.do(chromedp.WaitVisible(`//tr[@data-call-id="` + liveCall + `"]//span[normalize-space()="monitored"]`))
}

func hangups(msgs []*ami.Message) int {
	n := 0
	for _, m := range msgs {
		if strings.EqualFold(m.Get("Action"), "Hangup") {
			n++
		}
	}
	return n
}

func (c *console) testPlaceCall(t *testing.T, tb *tab) {
	tb.t = t
	tb.do(
		chromedp.SendKeys(byLabel("From"), "101"),
		chromedp.SendKeys(byLabel("To"), "+375 29 625-40-71"),
		chromedp.Click(button("", "Call")),
		chromedp.WaitVisible(`//*[@id="live-status"]//*[starts-with(normalize-space(), "Call placed")]`),
	)
	msg := eval[string](tb, `document.getElementById('live-status').innerText`)
	i := strings.Index(msg, "(call ")
	if i < 0 {
		t.Fatalf("status %q names no call", msg)
	}
	callID := strings.TrimSuffix(strings.TrimSuffix(msg[i+len("(call "):], "."), ")")
	placed := false
	for _, m := range c.pbx.AMI.Actions() {
		if strings.EqualFold(m.Get("Action"), "Originate") && strings.HasPrefix(m.Get("Channel"), "Local/101@inoffice") &&
			strings.Contains(m.Get("Data"), "+375296254071") {
			placed = true
		}
	}
	if !placed {
		t.Fatal("no Originate of Local/101 to +375296254071 reached the fake Asterisk")
	}
	tb.doWithin(rowWithin, chromedp.WaitVisible(chromedp.CSS(row(callID))))
	// End it at the far end: its row goes, from the events alone.
	if err := c.pbx.AMI.Hangup(callID, 16); err != nil {
		t.Fatal(err)
	}
	tb.do(chromedp.WaitNotPresent(chromedp.CSS(row(callID))))
}

func (c *console) testOperator(t *testing.T) {
	tb := newTab(t, c.browser, c.s.URL)
	tb.signIn(c.s.JWT(t, "0367", "op-7", auth.RoleOperator))
	tb.waitJS(10*time.Second, `document.getElementById('stream').dataset.state === 'live'`)
	callID := c.originate(t, "102", "+375296254072")
	tb.doWithin(rowWithin, chromedp.WaitVisible(chromedp.CSS(row(callID))))
	type verdict struct {
		Offered  int    `json:"offered"`
		Disabled bool   `json:"disabled"`
		Title    string `json:"title"`
		Note     string `json:"note"`
	}
	v := eval[verdict](tb, `(() => {
		const b = document.querySelector(`+jsString(row(callID)+` button[data-action="hangup"]`)+`);
		return {
			offered: [...document.querySelectorAll('button')].filter(x => x.textContent.trim() === 'Hang up' && !x.disabled).length,
			disabled: b.disabled, title: b.title,
			note: (document.getElementById('live-denied') || {}).innerText || '',
		};
	})()`)
	const why = "hangup not allowed: requires role supervisor or telecom_admin"
	if v.Offered != 0 || !v.Disabled || v.Title != why || !strings.Contains(v.Note, why) {
		t.Fatalf("operator's Hang up: %+v; want none enabled, the button disabled with the tooltip %q", v, why)
	}
	// An operator may place calls, not monitor them.
	if !eval[bool](tb, `document.querySelector(`+jsString(row(callID)+` button[data-action="spy"]`)+`).disabled`) {
		t.Error("an operator is offered Spy")
	}
	if eval[bool](tb, `[...document.querySelectorAll('button')].find(b => b.textContent === 'Call').disabled`) {
		t.Error("an operator is not offered Call")
	}
	if err := c.pbx.AMI.Hangup(callID, 16); err != nil {
		t.Fatal(err)
	}
	tb.do(chromedp.WaitNotPresent(chromedp.CSS(row(callID))))
}

func (c *console) testHistory(t *testing.T, tb *tab) {
	tb.t = t
	tb.goTo("#/history")
	tb.do(chromedp.WaitVisible(chromedp.CSS(row(liveCall))))
	status := eval[string](tb, `document.querySelector(`+jsString(row(liveCall)+` td[data-label="Status"]`)+`).innerText.trim()`)
	if status != "completed" && status != "canceled" {
		t.Fatalf("the hung-up call's status is %q in the history", status)
	}
	// Filters: the status, through the form; the address keeps them.
	for _, f := range []struct {
		status string
		listed bool
	}{{"busy", false}, {status, true}} {
		tb.do(chromedp.SetValue(byLabel("Status"), f.status), chromedp.Click(button("", "Search")))
		tb.waitJS(5*time.Second, `location.hash === '#/history?status=`+f.status+`'`)
		if f.listed {
			tb.do(chromedp.WaitVisible(chromedp.CSS(row(liveCall))))
		} else {
			tb.do(chromedp.WaitVisible(`//p[normalize-space()="No call matches."]`))
		}
	}
	tb.screenshot("history")
	tb.do(
		chromedp.Click(chromedp.CSS(row(liveCall)+` a`)),
		chromedp.WaitVisible(chromedp.CSS(`#timeline li[data-type="call.ended"]`)),
	)
	types := eval[[]string](tb, `[...document.querySelectorAll('#timeline li')].map(li => li.dataset.type)`)
	want := []string{"call.started", "call.answered", "call.ended"}
	for _, w := range want {
		if !contains(strings.Join(types, " "), w) {
			t.Fatalf("timeline %v lacks %s", types, w)
		}
	}
	// Times are the browser's: its zone, not the server's or UTC.
	type stamp struct{ At, Shown, Foot string }
	st := eval[stamp](tb, `(() => { const t = document.querySelector('#timeline li[data-type="call.ended"] time');
		return {at: t.getAttribute('datetime'), shown: t.innerText, foot: document.getElementById('foot').innerText}; })()`)
	at, err := time.Parse(time.RFC3339Nano, st.At)
	if err != nil {
		t.Fatal(err)
	}
	zone, err := time.LoadLocation(browserZone)
	if err != nil {
		t.Fatal(err)
	}
	if want := at.In(zone).Format("3:04:05"); !strings.HasPrefix(st.Shown, want) || !strings.Contains(st.Foot, browserZone) {
		t.Errorf("event at %s shown as %q (footer %q); want %s in %s", st.At, st.Shown, st.Foot, want, browserZone)
	}
	ended := eval[string](tb, `document.querySelector('#timeline li[data-type="call.ended"]').innerText`)
	if !contains(ended, "cause 16", "Normal Clearing", "hung up by key_") {
		t.Errorf("the end of the timeline says %q; want the cause and who hung up", ended)
	}
	tb.screenshot("call-timeline")
}

func (c *console) testPages(t *testing.T, tb *tab) {
	tb.t = t
	tb.goTo("#/pbxs")
	tb.do(chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`tr[data-pbx=%q]`, c.pbx.ID))))
	if got := eval[string](tb, `document.querySelector('tr[data-pbx] td[data-label="Connection"]').innerText`); !strings.Contains(got, "online") {
		t.Errorf("the PBX shows %q, want online", got)
	}
	tb.screenshot("pbxs")

	tb.goTo("#/webhooks")
	tb.do(
		chromedp.SendKeys(byLabel("URL"), "http://127.0.0.1:9/crm-hook"),
		chromedp.Click(chromedp.CSS(`#evt-call-ended`)),
		chromedp.Click(button("", "Create webhook")),
		chromedp.WaitVisible(chromedp.ID("webhook-secret")),
		chromedp.WaitVisible(`//td[normalize-space()="http://127.0.0.1:9/crm-hook"]`),
	)
	if secret := eval[string](tb, `document.getElementById('webhook-secret').innerText`); len(secret) < 16 {
		t.Errorf("the secret shown once is %q", secret)
	}
	tb.screenshot("webhooks")
	// A call ends: its delivery (to nobody: port 9 refuses) is listed
	// with its failed attempt.
	var hooks struct {
		Webhooks []struct{ ID string } `json:"webhooks"`
	}
	c.s.Do(t, "GET", "/v1/webhooks", c.key, nil).JSON(t, &hooks)
	if len(hooks.Webhooks) != 1 {
		t.Fatalf("webhooks after creating one in the console: %+v", hooks)
	}
	callID := c.originate(t, "103", "+375296254073")
	c.s.WaitChannel(t, c.pbx.ID, callID)
	if err := c.pbx.AMI.Hangup(callID, 16); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		var page struct {
			Deliveries []struct{ Attempts int } `json:"deliveries"`
		}
		c.s.Do(t, "GET", "/v1/webhooks/"+hooks.Webhooks[0].ID+"/deliveries", c.key, nil).JSON(t, &page)
		if len(page.Deliveries) > 0 && page.Deliveries[0].Attempts > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no delivery attempt within 20 s: %+v", page)
		}
		time.Sleep(50 * time.Millisecond)
	}
	tb.do(chromedp.Click(`//a[normalize-space()="Deliveries"]`),
		chromedp.WaitVisible(`//h1[starts-with(normalize-space(), "Deliveries to")]`),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-delivery] ul.attempts li`)))
	if got := eval[string](tb, `document.querySelector('tr[data-delivery]').innerText`); !contains(got, "call.ended", "#1") {
		t.Errorf("delivery row %q", got)
	}

	tb.goTo("#/audit")
	tb.do(chromedp.WaitVisible(`//td[normalize-space()="asterisk_hangup_call"]`))
	actions := eval[string](tb, `[...document.querySelectorAll('td[data-label="Action"]')].map(td => td.innerText).join(' ')`)
	if !contains(actions, "console_sign_in", "asterisk_originate_call", "webhook_create") {
		t.Errorf("audit page lists %q", actions)
	}
	tb.screenshot("audit")
}

func (c *console) testFleet(t *testing.T) {
	tb := newTab(t, c.browser, c.s.URL)
	tb.signIn(c.s.JWT(t, "", "root", auth.RolePlatformAdmin))
	// The fleet is the only page a platform_admin without an enterprise reads.
	tb.do(chromedp.WaitVisible(`//h1[normalize-space()="Fleet"]`), chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`tr[data-pbx=%q]`, c.pbx.ID))))
	if got := eval[string](tb, `document.querySelector('tr[data-pbx]').innerText`); !contains(got, "pbx-june", "0367", "online") {
		t.Errorf("fleet row %q", got)
	}
	if denied := eval[string](tb, `document.querySelector('#nav .nav-denied').title`); !strings.Contains(denied, "not bound to an enterprise") {
		t.Errorf("a page the platform view cannot read says %q", denied)
	}
	tb.screenshot("fleet")
	search := func(q string) {
		tb.do(chromedp.SetValue(byLabel("Search"), q), chromedp.Click(button("", "Show")))
	}
	search("nothing-like-it")
	tb.do(chromedp.WaitVisible(`//p[normalize-space()="No PBX matches."]`))
	search("JUNE.EXAMPLE") // its host name, any case
	tb.do(chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`tr[data-pbx=%q]`, c.pbx.ID))))
}

func (c *console) testRestart(t *testing.T, tb *tab) {
	tb.t = t
	tb.signIn(c.key)
	tb.waitJS(10*time.Second, `document.getElementById('stream').dataset.state === 'live'`)
	downs := eval[string](tb, `document.getElementById('stream').dataset.downs`)
	before := c.originate(t, "104", "+375296254074")
	tb.doWithin(rowWithin, chromedp.WaitVisible(chromedp.CSS(row(before))))

	// While the control plane is down, the call ends at the PBX: the agent
	// keeps the events and sends them to the new control plane, and the
	// console must get them by resuming, not by reloading.
	addr := strings.TrimPrefix(c.s.URL, "http://")
	restarted := make(chan struct{})
	hungUp := make(chan string, 1)
	go func() {
		for {
			select {
			case <-restarted:
				hungUp <- "after the restart (the window was missed)"
				return
			default:
			}
			if conn, err := net.DialTimeout("tcp", addr, 50*time.Millisecond); err != nil {
				hungUp <- "while the control plane was down"
				return
			} else {
				conn.Close()
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	stop := make(chan struct{})
	go func() {
		defer close(stop)
		when := <-hungUp
		if err := c.pbx.AMI.Hangup(before, 16); err != nil {
			t.Errorf("hang up at the PBX: %v", err)
		}
		t.Logf("call %s hung up at the PBX %s", before, when)
	}()
	c.s.Restart(t)
	close(restarted)
	<-stop
	c.s.WaitReady(t, c.pbx)
	after := c.originate(t, "105", "+375296254075")

	tb.waitJS(20*time.Second, `(() => { const s = document.getElementById('stream').dataset;
		return s.state === 'live' && Number(s.downs) > `+downs+`; })()`)
	tb.do(chromedp.WaitNotPresent(chromedp.CSS(row(before))), chromedp.WaitVisible(chromedp.CSS(row(after))))
	indicator := eval[string](tb, `document.getElementById('stream').innerText`)
	if !strings.HasPrefix(indicator, "Live — resumed after") {
		t.Errorf("indicator says %q after the restart", indicator)
	}
	// Every event is there, once: the console's last sequence reaches the
	// store's, and it never skipped one.
	deadline := time.Now().Add(10 * time.Second)
	for {
		last, err := c.s.Store().LastEventSeq(context.Background(), c.entID)
		if err != nil {
			t.Fatal(err)
		}
		got := eval[string](tb, `document.getElementById('stream').dataset.lastSeq`)
		if got == fmt.Sprint(last) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the console's last event is %s, the store's %d", got, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if missed := eval[string](tb, `document.getElementById('stream').dataset.missed`); missed != "0" {
		t.Errorf("the console missed %s events", missed)
	}
	if err := c.pbx.AMI.Hangup(after, 16); err != nil {
		t.Fatal(err)
	}
	tb.do(chromedp.WaitNotPresent(chromedp.CSS(row(after))))
}

func (c *console) testSignOut(t *testing.T, tb *tab) {
	tb.t = t
	tb.do(chromedp.Click(button("", "Sign out")), chromedp.WaitVisible(byLabel("API key or token")))
	tb.screenshot("sign-in")
	// The cookie is gone with its session: a reload asks to sign in again.
	tb.open("")
	tb.do(chromedp.WaitVisible(byLabel("API key or token")))
}
