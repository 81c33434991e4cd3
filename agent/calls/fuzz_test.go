package calls

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/protocol"
	"github.com/switchboard-pbx/switchboard/protocol/ami"
)

// fuzzNames are the channel names the generator picks from: Local pairs,
// phones and trunks, so Local-pair merging and name parsing get exercised.
var fuzzNames = []string{
	"Local/150@inoffice-00000001;1", "Local/150@inoffice-00000001;2",
	"Local/+375296254070@inoffice-00000002;1", "Local/+375296254070@inoffice-00000002;2",
	"PJSIP/101-00000003", "PJSIP/trunk-00000004", "Local/busy@inoffice-00000005;1",
	"Local/busy@inoffice-00000005;2", "", "Local/;", "PJSIP/-zz",
}

var fuzzEvents = []string{
	"Newchannel", "Newchannel", "Newstate", "NewCallerid", "Rename", "DialBegin", "DialState",
	"DialEnd", "BridgeEnter", "BridgeLeave", "HangupRequest", "SoftHangupRequest", "Hangup",
	"Hangup", "Cdr", "ChanSpyStart", "ChanSpyStop", "OriginateResponse", EventDisconnected,
	EventConnected, "CEL", "resync", "expect-originate", "expect-monitor",
}

var fuzzDialStatus = []string{"ANSWER", "BUSY", "NOANSWER", "CONGESTION", "CHANUNAVAIL", "CANCEL", "RINGING", "PROGRESS", ""}

// FuzzTrackerHandle drives a Tracker with arbitrary sequences of AMI
// events about a small set of channels — any order, any state, cause or
// status — and checks it never panics and keeps its promises: per call
// started first, each lifecycle event at most once and in causal order,
// at most one call.ended, monitors paired, Live() consistent and bounded
// memory. Uniqueids are never reused, as in Asterisk.
func FuzzTrackerHandle(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 1, 1, 0, 4, 5, 1, 0, 0, 7, 1, 0, 0, 12, 0, 16, 0, 12, 1, 17, 0})
	f.Add([]byte{0, 4, 0, 4, 1, 5, 0, 0, 5, 0, 1, 0, 7, 0, 1, 1, 8, 0, 1, 0, 8, 1, 1, 0, 12, 0, 16, 0})
	f.Add([]byte{0, 0, 0, 0, 17, 0, 0, 3, 12, 0, 17, 0, 21, 0, 0, 0, 18, 0, 0, 0, 21, 1, 0, 0})
	f.Add(bytes.Repeat([]byte{0, 2, 1, 6, 15, 0, 1, 0, 16, 0, 1, 0, 22, 0, 0, 0}, 8))
	f.Fuzz(func(t *testing.T, data []byte) {
		clk := newClock()
		tr := NewTracker(Config{Now: clk.Now, MaxCalls: 4, MaxLegsPerCall: 3, MaxExpectations: 2, ExpectTTL: time.Second})
		var uids, linked, names []string
		dead := map[int]bool{} // hung up, or left out of a Resync: never listed live again
		nextUID := 0
		var evs []protocol.Event
		pick := func(i byte) int {
			if len(uids) == 0 {
				return -1
			}
			return int(i) % len(uids)
		}
		for len(data) >= 4 {
			op, a, b, c := data[0], data[1], data[2], data[3]
			data = data[4:]
			clk.now = clk.now.Add(time.Duration(c) * 100 * time.Millisecond)
			kind := fuzzEvents[int(op)%len(fuzzEvents)]
			m := &ami.Message{}
			m.Add("Event", kind)
			ref := func(prefix string, i int) {
				if i < 0 {
					return
				}
				m.Add(prefix+"Channel", names[i])
				m.Add(prefix+"ChannelState", strconv.Itoa(int(c%8)))
				m.Add(prefix+"Uniqueid", uids[i])
				m.Add(prefix+"Linkedid", linked[i])
			}
			switch kind {
			case "Newchannel":
				uid := fmt.Sprintf("17000.%d", nextUID)
				nextUID++
				lid := uid
				// A new channel inherits the linkedid of a live channel, and
				// Asterisk never hands out the linkedid of a call that is over.
				if j := pick(b); j >= 0 && b%2 == 1 && !dead[j] {
					if c := tr.calls[linked[j]]; c != nil && !c.ended {
						lid = linked[j]
					}
				}
				uids, linked = append(uids, uid), append(linked, lid)
				names = append(names, fuzzNames[int(a)%len(fuzzNames)])
				ref("", len(uids)-1)
				m.Add("CallerIDNum", []string{"<unknown>", "101", "+375291112233", ""}[c%4])
				m.Add("Exten", []string{"102", "s", "+375296254070", ""}[a%4])
			case "Rename":
				if i := pick(a); i >= 0 {
					ref("", i)
					m.Add("Newname", fuzzNames[int(b)%len(fuzzNames)])
				}
			case "DialBegin", "DialState", "DialEnd":
				if b%3 != 0 {
					ref("", pick(b))
				}
				ref("Dest", pick(a))
				m.Add("DialString", "+375296254070@inoffice")
				m.Add("DialStatus", fuzzDialStatus[int(c)%len(fuzzDialStatus)])
			case "BridgeEnter", "BridgeLeave":
				ref("", pick(a))
				m.Add("BridgeUniqueid", "bridge-"+strconv.Itoa(int(b%3)))
			case "Hangup", "HangupRequest", "SoftHangupRequest":
				i := pick(a)
				ref("", i)
				if kind == "Hangup" && i >= 0 {
					dead[i] = true
				}
				m.Add("Cause", strconv.Itoa([]int{0, 16, 17, 19, 34, 21, 1, 127}[c%8]))
				m.Add("Cause-txt", "x")
			case "Cdr":
				if i := pick(a); i >= 0 {
					m.Add("UniqueID", uids[i])
					m.Add("BillableSeconds", strconv.Itoa(int(b)-10))
				}
			case "ChanSpyStart", "ChanSpyStop":
				if i, j := pick(a), pick(b); i >= 0 && j >= 0 {
					m.Add("SpyerChannel", names[i])
					m.Add("SpyerUniqueid", uids[i])
					m.Add("SpyeeChannel", names[j])
					m.Add("SpyeeUniqueid", uids[j])
				}
			case "OriginateResponse":
				if b%2 == 0 {
					m.Add("Response", "Success")
					ref("", pick(a))
				} else {
					m.Add("Response", "Failure")
					m.Add("Channel", dialStringOf(fuzzNames[int(a)%len(fuzzNames)]))
					m.Add("Uniqueid", "<unknown>")
				}
				m.Add("Reason", strconv.Itoa(int(c%9)))
				m.Add("Application", []string{"Dial", "Wait", "ChanSpy", ""}[c%4])
				m.Add("Data", "Local/+375296254070@inoffice")
			case "CEL":
				ref("", pick(a))
				if c%2 == 0 {
					m.Add("Timestamp", strconv.Itoa(1795337000+int(b))+".5")
				}
			case "resync":
				var live []*ami.Message
				for i := range uids {
					if dead[i] || (int(a)>>(i%8))&1 == 0 {
						dead[i] = true
						continue
					}
					{
						item := &ami.Message{}
						item.Add("Event", "CoreShowChannel")
						item.Add("Channel", names[i])
						item.Add("ChannelState", strconv.Itoa(int(c%8)))
						item.Add("Uniqueid", uids[i])
						item.Add("Linkedid", linked[i])
						item.Add("Application", []string{"Dial", "Wait", "AppDial", ""}[(int(b)+i)%4])
						item.Add("ApplicationData", "Local/+375296254070@inoffice")
						item.Add("Duration", "00:00:0"+strconv.Itoa(int(b%10)))
						item.Add("BridgeId", []string{"", "bridge-0", "bridge-1"}[(int(b)+i)%3])
						live = append(live, item)
					}
				}
				before := endedTracked(tr)
				got := tr.Resync(live)
				restarted(t, before, got)
				evs = append(evs, got...)
				continue
			case "expect-originate":
				if i := pick(a); i >= 0 && b%2 == 0 {
					tr.ExpectOriginate(uids[i], "150", "+375296254070")
				} else {
					tr.ExpectOriginate(fmt.Sprintf("17000.%d", nextUID), "150", "")
				}
				continue
			case "expect-monitor":
				tr.ExpectMonitor(fmt.Sprintf("17000.%d", nextUID+int(b%2)), "150")
				continue
			}
			before := endedTracked(tr)
			got := tr.Handle(m)
			restarted(t, before, got)
			evs = append(evs, got...)
			if tr.Live() < 0 || len(tr.calls) > 4 {
				t.Fatalf("Live %d, tracked %d (MaxCalls 4)", tr.Live(), len(tr.calls))
			}
		}
		// A call id may start again only once the tracker has forgotten it
		// (bounded memory); restarted checks that per operation.
		if bad := checkEvents(evs, func(protocol.Event) bool { return true }); len(bad) > 0 {
			t.Fatalf("invariants broken: %v", bad)
		}
		started, ended := 0, 0
		for _, e := range evs {
			switch e.Type {
			case protocol.EventCallStarted:
				started++
			case protocol.EventCallEnded:
				ended++
			}
		}
		if tr.Live() != started-ended {
			t.Fatalf("Live() = %d, but %d started and %d ended", tr.Live(), started, ended)
		}
	})
}

// FuzzTrackerRawAMI feeds arbitrary bytes, parsed as an AMI stream, and
// checks the same invariants. Seeds are the captured sessions.
func FuzzTrackerRawAMI(f *testing.F) {
	for _, name := range []string{"03-originate-dial-bridge", "04-originate-failures", "08-hangup"} {
		b, err := os.ReadFile(filepath.Join(transcripts, name+".recv.raw"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		clk := newClock()
		tr := NewTracker(Config{Now: clk.Now, MaxCalls: 8})
		r := ami.NewReader(bytes.NewReader(data))
		var evs []protocol.Event
		for {
			m, err := r.ReadMessage()
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				break
			}
			if m == nil {
				break
			}
			clk.now = clk.now.Add(time.Millisecond)
			evs = append(evs, tr.Handle(m)...)
		}
		if bad := checkEvents(evs, func(protocol.Event) bool { return true }); len(bad) > 0 {
			t.Fatalf("invariants broken: %v", bad)
		}
	})
}

// endedTracked lists the ended calls the tracker still remembers.
func endedTracked(tr *Tracker) map[string]bool {
	out := map[string]bool{}
	for id, c := range tr.calls {
		if c.ended {
			out[id] = true
		}
	}
	return out
}

// restarted fails if an operation started a call the tracker remembered as
// ended: while remembered, a call ends exactly once.
func restarted(t *testing.T, endedBefore map[string]bool, evs []protocol.Event) {
	t.Helper()
	for _, e := range evs {
		if e.Type == protocol.EventCallStarted && endedBefore[e.CallID] {
			t.Fatalf("call %s started again while remembered as ended", e.CallID)
		}
	}
}
