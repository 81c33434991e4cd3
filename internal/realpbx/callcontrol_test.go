package realpbx

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-pbx/switchboard/internal/asterisktest"
	"github.com/switchboard-pbx/switchboard/protocol"
	"github.com/switchboard-pbx/switchboard/protocol/ami"
)

// dialoutCall places the call the captures 12-17 use, as a second party
// would (not through the API): Local/<from> answers and runs, in the
// lab's context dialout, Dial(Local/<to>@inoffice,,tT), so the bridge has
// transfer features. It waits until the agent lists both parties bridged.
func (l *lab) dialoutCall(tn *tenant, from, to string) string {
	l.t.Helper()
	c := l.dialAMI(asterisktest.User)
	id := "realpbx-x-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	ctx, cancel := context.WithTimeout(context.Background(), waitShort)
	defer cancel()
	if _, err := c.Originate(ctx, ami.NewAction("Originate", "Channel", "Local/"+from+"@inoffice", "Context", "dialout",
		"Exten", to, "Priority", "1", "Timeout", "30000", "ChannelId", id, "OtherChannelId", id+"-2")); err != nil {
		l.t.Fatalf("originate the dialout call: %v", err)
	}
	l.bridgedInAgent(tn, id)
	return id
}

// bridgedInAgent waits until GET /v1/channels lists two bridged channels
// of call id: the agent's table, which call control resolves parties in.
func (l *lab) bridgedInAgent(tn *tenant, id string) {
	l.t.Helper()
	waitFor(l.t, waitShort, "call "+id+" bridged in the agent's table", func() (bool, string) {
		var v struct {
			Channels []protocol.Channel `json:"channels"`
		}
		code, body := l.do("GET", "/v1/channels", tn.key, nil)
		if code != http.StatusOK || json.Unmarshal(body, &v) != nil {
			return false, string(body)
		}
		n := 0
		for _, ch := range v.Channels {
			if ch.LinkedID == id && ch.BridgeID != "" {
				n++
			}
		}
		return n >= 2, string(body)
	})
}

func prefix(p string) func(asterisktest.Channel) bool {
	return func(c asterisktest.Channel) bool { return strings.HasPrefix(c.Name, p) }
}

// sameBridge waits until Asterisk shows a channel accepted by a and one
// accepted by b in one bridge. Any pair counts: a prefix such as
// "Local/160@inoffice-" accepts both halves of a Local channel, listed in
// no fixed order, and only the ;1 half is bridged.
func (l *lab) sameBridge(what string, a, b func(asterisktest.Channel) bool) {
	l.t.Helper()
	last, err := l.pbx.WaitChannels(l.ctx(), func(cs []asterisktest.Channel) bool {
		for _, x := range cs {
			for _, y := range cs {
				if a(x) && b(y) && x.Name != y.Name && x.BridgeID != "" && x.BridgeID == y.BridgeID {
					return true
				}
			}
		}
		return false
	})
	if err != nil {
		var seen []string
		for _, c := range last {
			seen = append(seen, c.Name+" bridge="+c.BridgeID+" app="+c.Application+"("+c.Data+")")
		}
		bridges, _ := l.pbx.CLI(context.Background(), "bridge show all")
		parking, _ := l.pbx.CLI(context.Background(), "parking show")
		l.t.Fatalf("Asterisk never showed %s: %v\nchannels:\n  %s\nbridge show all:\n%s\nparking show:\n%s",
			what, err, strings.Join(seen, "\n  "), bridges, parking)
	}
}

// testBlindTransfer: POST /v1/calls/{id}/transfer blind moves the customer
// to 160 in Asterisk (its channel runs 160's dialplan; the operator's leg
// is gone); call.transferred names the operator who asked; the call ends
// when the customer does, hung up by who hung the customer up.
func testBlindTransfer(l *lab, tn *tenant) {
	id := l.dialoutCall(tn, "150", "+375296254070")
	code, body := l.do("POST", "/v1/calls/"+id+"/transfer", tn.jwt, map[string]any{"to": "160", "mode": "blind", "transferer": "150"})
	var res struct {
		Status            string `json:"status"`
		TransfereeChannel string `json:"transferee_channel"`
	}
	mustJSON(l.t, "POST transfer blind", code, body, http.StatusOK, &res)
	if res.Status != protocol.TransferDone || !strings.HasPrefix(res.TransfereeChannel, "Local/+375296254070@inoffice-") {
		l.t.Fatalf("transfer answered %s", body)
	}
	cust := l.channel("the customer at 160@inoffice", func(c asterisktest.Channel) bool {
		return c.Name == res.TransfereeChannel && c.Exten == "160" && c.Context == "inoffice"
	})
	l.gone("the operator's leg", prefix("Local/150@inoffice-"))
	xfer := l.waitEvent(tn, "call.transferred", func(e Event) bool { return e.CallID == id && e.Type == protocol.EventCallTransferred })
	if x := xfer.Transfer; x == nil || x.Mode != protocol.TransferBlind || x.To != "160" || x.By != "op-"+tn.name || x.Transferer != "150" {
		l.t.Errorf("call.transferred %s transfer=%+v", xfer, xfer.Transfer)
	}
	code, body = l.do("POST", "/v1/calls/hangup", tn.jwt, map[string]any{"channel": cust.Name})
	mustJSON(l.t, "hang the customer up", code, body, http.StatusOK, nil)
	end := l.waitEvent(tn, "call.ended", func(e Event) bool { return e.CallID == id && e.Type == protocol.EventCallEnded })
	if end.Status != protocol.CallCompleted || end.HungupBy != "op-"+tn.name || end.AnsweredBy != "+375296254070" || !end.EndedAt.After(xfer.Time) {
		l.t.Errorf("call.ended %s hungup_by=%q ended_at=%v (transferred at %v)", end, end.HungupBy, end.EndedAt, xfer.Time)
	}
	l.t.Logf("blind transfer of %s: %v", id, types(l.callEvents(tn, id)))
}

// testAttendedTransfer: an attended transfer completes (the customer ends
// up bridged with 160, the operator gone) and another is cancelled (161
// gone, the operator back with the customer), each checked in Asterisk.
func testAttendedTransfer(l *lab, tn *tenant) {
	consult := func(id, to string) string {
		code, body := l.do("POST", "/v1/calls/"+id+"/transfer", tn.jwt, map[string]any{"to": to, "mode": "attended", "transferer": "150"})
		var res struct {
			Status            string `json:"status"`
			TransfererChannel string `json:"transferer_channel"`
		}
		mustJSON(l.t, "POST transfer attended", code, body, http.StatusOK, &res)
		if res.Status != protocol.TransferConsulting {
			l.t.Fatalf("attended transfer answered %s", body)
		}
		// The consultation forms after features.conf's transferdigittimeout.
		l.sameBridge("the operator consulting "+to, func(c asterisktest.Channel) bool { return c.Name == res.TransfererChannel },
			func(c asterisktest.Channel) bool {
				return strings.HasPrefix(c.Name, "Local/"+to+"@inoffice-") && strings.HasSuffix(c.Name, ";1") && c.State == "Up"
			})
		return res.TransfererChannel
	}
	isCustomer := func(c asterisktest.Channel) bool {
		return strings.HasPrefix(c.Name, "Local/+375296254070@inoffice-") && strings.HasSuffix(c.Name, ";1")
	}

	id := l.dialoutCall(tn, "150", "+375296254070")
	consult(id, "160")
	code, body := l.do("POST", "/v1/calls/"+id+"/transfer/complete", tn.jwt, map[string]any{"transferer": "150"})
	mustJSON(l.t, "POST transfer/complete", code, body, http.StatusOK, nil)
	if !strings.Contains(string(body), `"status":"transferred"`) {
		l.t.Fatalf("complete answered %s", body)
	}
	l.sameBridge("the customer with 160", isCustomer, func(c asterisktest.Channel) bool {
		return strings.HasPrefix(c.Name, "Local/160@inoffice-") && strings.HasSuffix(c.Name, ";1")
	})
	l.gone("the operator's leg", prefix("Local/150@inoffice-"))
	x := l.waitEvent(tn, "call.transferred (attended)", func(e Event) bool { return e.CallID == id && e.Type == protocol.EventCallTransferred })
	if t := x.Transfer; t == nil || t.Mode != protocol.TransferAttended || t.To != "160" || !strings.HasPrefix(t.TargetChannel, "Local/160@inoffice-") {
		l.t.Errorf("call.transferred %+v", x.Transfer)
	}
	l.t.Logf("attended transfer of %s: %v", id, types(l.callEvents(tn, id)))
	l.clean(tn)

	id = l.dialoutCall(tn, "150", "+375296254070")
	operator := consult(id, "161")
	code, body = l.do("POST", "/v1/calls/"+id+"/transfer/cancel", tn.jwt, map[string]any{"transferer": "150"})
	mustJSON(l.t, "POST transfer/cancel", code, body, http.StatusOK, nil)
	if !strings.Contains(string(body), `"status":"canceled"`) {
		l.t.Fatalf("cancel answered %s", body)
	}
	l.gone("161's leg", prefix("Local/161@inoffice-"))
	l.sameBridge("the operator back with the customer", func(c asterisktest.Channel) bool { return c.Name == operator }, isCustomer)
	l.waitEvent(tn, "call.transfer_canceled", func(e Event) bool { return e.CallID == id && e.Type == protocol.EventCallTransferCanceled })
	l.t.Logf("cancelled transfer of %s: %v", id, types(l.callEvents(tn, id)))
}

// testParkPickup: a call placed through the API is parked (the parker
// defaults to its from), shows in GET /v1/parked and in Asterisk's
// parking lot, and is picked up by 160, bridged with the customer.
func testParkPickup(l *lab, tn *tenant) {
	id := l.originate(tn, "150", "+375296254070")
	l.bridgedInAgent(tn, id)
	code, body := l.do("POST", "/v1/calls/"+id+"/park", tn.jwt, map[string]any{"timeout_s": 120})
	var park struct {
		Lot, Space, Parker, Channel string
	}
	mustJSON(l.t, "POST park", code, body, http.StatusOK, &park)
	if park.Lot != "default" || park.Space == "" || park.Parker != "150" {
		l.t.Fatalf("park answered %s", body)
	}
	out, err := l.pbx.CLI(l.ctx(), "parking show default")
	if err != nil || !strings.Contains(out, park.Channel) {
		l.t.Fatalf("parking show default: %v\n%s", err, out)
	}
	var list struct {
		Parked []protocol.ParkedCall `json:"parked"`
	}
	code, body = l.do("GET", "/v1/parked", tn.jwt, nil)
	mustJSON(l.t, "GET /v1/parked", code, body, http.StatusOK, &list)
	if len(list.Parked) != 1 || list.Parked[0].CallID != id || list.Parked[0].Space != park.Space || list.Parked[0].Channel != park.Channel {
		l.t.Fatalf("GET /v1/parked: %s", body)
	}
	code, body = l.do("POST", "/v1/parked/default/"+park.Space+"/pickup", tn.jwt, map[string]any{"to": "160"})
	mustJSON(l.t, "POST pickup", code, body, http.StatusOK, nil)
	if !strings.Contains(string(body), `"status":"picked_up"`) {
		l.t.Fatalf("pickup answered %s", body)
	}
	l.sameBridge("160 with the parked customer", func(c asterisktest.Channel) bool { return c.Name == park.Channel },
		func(c asterisktest.Channel) bool { return strings.HasPrefix(c.Name, "Local/160@inoffice-") })
	un := l.waitEvent(tn, "call.unparked", func(e Event) bool { return e.CallID == id && e.Type == protocol.EventCallUnparked })
	if p := un.Park; p == nil || p.RetrievedBy != "160" || p.Space != park.Space {
		l.t.Errorf("call.unparked %+v", un.Park)
	}
	code, body = l.do("GET", "/v1/parked", tn.jwt, nil)
	mustJSON(l.t, "GET /v1/parked after the pickup", code, body, http.StatusOK, &list)
	if len(list.Parked) != 0 {
		l.t.Errorf("still parked: %s", body)
	}
	l.t.Logf("parked and picked up %s: %v", id, types(l.callEvents(tn, id)))
}

// testDTMFUnderLoad: a DTMF digit of 2 s plays while 50 other requests
// run (25 mutes, which are AMI actions on the agent's main session, and 25
// channel lists). PlayDTMF holds the AMI session it runs on for the
// digit's duration; the agent plays it on its second session, so each of
// the 50 is answered while the digit still plays, at the latency it has
// without DTMF (both logged), and the digit is confirmed by its DTMFEnd.
func testDTMFUnderLoad(l *lab, tn *tenant) {
	id := l.originate(tn, "150", "+375296254070")
	l.bridgedInAgent(tn, id)
	// Five operators: the per-credential rate limit (burst 40) is not
	// what this measures.
	tokens := make([]string, 5)
	for i := range tokens {
		tokens[i] = l.run("jwt", "mint", "--secret-file", l.jwtFile, "--sub", fmt.Sprintf("load-%d", i), "--enterprise", tn.number, "--roles", "operator")["token"].(string)
	}
	burst := func() (lat []time.Duration, done []time.Time) {
		var mu sync.Mutex
		var wg sync.WaitGroup
		for i := range 50 {
			wg.Go(func() {
				start := time.Now()
				var code int
				var body []byte
				if i%2 == 0 {
					code, body = l.do("POST", "/v1/calls/"+id+"/mute", tokens[i%5], map[string]any{"party": "150", "direction": "out", "muted": i%4 == 0})
				} else {
					code, body = l.do("GET", "/v1/channels", tokens[i%5], nil)
				}
				if code != http.StatusOK {
					l.t.Errorf("request %d during DTMF: %d %s", i, code, body)
				}
				mu.Lock()
				lat, done = append(lat, time.Since(start)), append(done, time.Now())
				mu.Unlock()
			})
		}
		wg.Wait()
		return lat, done
	}
	idle, _ := burst()
	time.Sleep(3 * time.Second) // the rate limiter's buckets refill

	const digit = 2 * time.Second
	dtmfStart := time.Now()
	dtmfDone := make(chan []byte, 1)
	go func() {
		code, body := l.do("POST", "/v1/calls/"+id+"/dtmf", tn.jwt, map[string]any{"digits": "5", "duration_ms": digit.Milliseconds(), "party": "+375296254070"})
		if code != http.StatusOK {
			l.t.Errorf("POST dtmf: %d %s", code, body)
		}
		dtmfDone <- body
	}()
	time.Sleep(300 * time.Millisecond) // the digit is playing
	busy, done := burst()
	body := <-dtmfDone
	if !strings.Contains(string(body), `"digits":"5"`) {
		l.t.Fatalf("dtmf answered %s", body)
	}
	digitEnd := dtmfStart.Add(digit)
	for i, at := range done {
		if !at.Before(digitEnd) {
			l.t.Errorf("request %d was answered %v after the digit's end: it waited for PlayDTMF", i, at.Sub(digitEnd))
		}
	}
	l.t.Logf("50 requests (25 mutes, 25 channel lists): without DTMF p50 %v max %v; while a %v digit plays p50 %v max %v",
		percentile(idle, 50), percentile(idle, 100), digit, percentile(busy, 50), percentile(busy, 100))
}

// farEndWaits waits until the number called is past Answer() and in
// Wait(600): a Local channel in Answer() waits for media and reads no
// DTMF, so a digit played to it then is lost (and the agent rightly
// answers not_confirmed).
func farEndWaits(l *lab) {
	l.t.Helper()
	l.channel("the number called in Wait()", func(c asterisktest.Channel) bool {
		return strings.HasPrefix(c.Name, "Local/+375296254070@inoffice-") && strings.HasSuffix(c.Name, ";2") && c.Application == "Wait"
	})
}

// percentile is the p-th percentile of ds.
func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(i-1, 0)].Round(100 * time.Microsecond)
}

// testCallControlPrivileges measures the AMI classes call control needs
// (packaging/manager.conf.example): with read = system,call,cdr,dtmf and
// write = originate,call,reporting a transfer, a park, a pickup and DTMF
// work, and mute is refused by Asterisk (MuteAudio needs write = system)
// with an answer that says so; with read = system,call,cdr (no dtmf) the
// DTMF is played but never confirmed (DTMFEnd is of class dtmf), and the
// request says what the user lacks. Both users are this test's own, so
// what it measures does not move with the lab's or asterisktest's users.
func testCallControlPrivileges(l *lab, _ *tenant) {
	conf := filepath.Join(l.pbx.Dir(), "etc", "manager.conf")
	f, err := os.OpenFile(conf, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		l.t.Fatal(err)
	}
	user := func(name, read string) string {
		return "\n[" + name + "]\nsecret = " + asterisktest.Secret + "\ndeny = 0.0.0.0/0.0.0.0\npermit = 127.0.0.1/255.255.255.255\n" +
			"read = " + read + "\nwrite = originate,call,reporting\nwritetimeout = 1000\n"
	}
	_, err = f.WriteString(user("switchboard-cc", "system,call,cdr,dtmf") + user("switchboard-nodtmf", "system,call,cdr"))
	f.Close()
	if err != nil {
		l.t.Fatal(err)
	}
	if out, err := l.pbx.CLI(l.ctx(), "manager reload"); err != nil {
		l.t.Fatalf("manager reload: %v %s", err, out)
	}
	cc := l.newTenant("0369", "ccpriv")
	l.startAgent(cc, "switchboard-cc")

	id := l.dialoutCall(cc, "150", "+375296254070")
	farEndWaits(l)
	code, body := l.do("POST", "/v1/calls/"+id+"/dtmf", cc.jwt, map[string]any{"digits": "1#", "party": "+375296254070"})
	mustJSON(l.t, "dtmf with read=dtmf", code, body, http.StatusOK, nil)
	code, body = l.do("POST", "/v1/calls/"+id+"/mute", cc.jwt, map[string]any{"party": "150", "direction": "in", "muted": true})
	if code != http.StatusBadGateway || !strings.Contains(string(body), "needs write=system") {
		l.t.Errorf("mute without write=system: %d %s", code, body)
	}
	code, body = l.do("POST", "/v1/calls/"+id+"/transfer", cc.jwt, map[string]any{"to": "160", "mode": "attended", "transferer": "150"})
	mustJSON(l.t, "attended transfer", code, body, http.StatusOK, nil)
	waitFor(l.t, waitShort, "the consultation, then its completion", func() (bool, string) {
		code, body := l.do("POST", "/v1/calls/"+id+"/transfer/complete", cc.jwt, map[string]any{"transferer": "150"})
		return code == http.StatusOK, string(body)
	})
	l.clean(cc)

	id = l.originate(cc, "151", "+375296254071")
	l.bridgedInAgent(cc, id)
	code, body = l.do("POST", "/v1/calls/"+id+"/park", cc.jwt, map[string]any{"lot": "operators"})
	var park struct{ Space string }
	mustJSON(l.t, "park", code, body, http.StatusOK, &park)
	code, body = l.do("POST", "/v1/parked/operators/"+park.Space+"/pickup", cc.jwt, map[string]any{"to": "152"})
	mustJSON(l.t, "pickup", code, body, http.StatusOK, nil)
	l.clean(cc)

	minimal := l.newTenant("0370", "ccnodtmf")
	l.startAgent(minimal, "switchboard-nodtmf")
	id = l.dialoutCall(minimal, "150", "+375296254070")
	farEndWaits(l)
	code, body = l.do("POST", "/v1/calls/"+id+"/dtmf", minimal.jwt, map[string]any{"digits": "1", "party": "+375296254070"})
	if code != http.StatusBadGateway || !strings.Contains(string(body), "not_confirmed") || !strings.Contains(string(body), "read=dtmf") {
		l.t.Errorf("dtmf without read=dtmf: %d %s", code, body)
	}
	code, body = l.do("POST", "/v1/calls/"+id+"/transfer", minimal.jwt, map[string]any{"to": "160", "mode": "blind", "transferer": "150"})
	mustJSON(l.t, "blind transfer with write = originate,call,reporting", code, body, http.StatusOK, nil)
	l.clean(minimal, cc)
}
