package calls

import (
	"github.com/switchboard-pbx/switchboard/protocol"
	"github.com/switchboard-pbx/switchboard/protocol/ami"
)

// Recording events, from MixMonitor's (capture 15, README §28):
// recording.started at MixMonitorStart, recording.stopped at
// MixMonitorStop — and at the recorded channel's Hangup, for which
// Asterisk sends no MixMonitorStop. A recording the agent started is
// named by its expectation (ExpectRecording); one the dialplan started
// has no recording id.

// chanRecordings are the recordings of one channel, by its uniqueid.
type chanRecordings struct {
	expected []protocol.Recording // sent, MixMonitorStart not seen yet
	running  []protocol.Recording
	stopNext string // the recording the next MixMonitorStop ends
}

// ExpectRecording tells the tracker that a MixMonitor for r is about to
// be sent on the channel uniqueid, so its MixMonitorStart is reported as
// r (recording id and file).
func (t *Tracker) ExpectRecording(uniqueid string, r protocol.Recording) {
	if len(t.recs) >= t.cfg.MaxExpectations && t.recs[uniqueid] == nil {
		return
	}
	cr := t.chanRecs(uniqueid)
	if len(cr.expected) < t.cfg.MaxExpectations {
		cr.expected = append(cr.expected, r)
	}
}

// CancelRecording withdraws an expectation whose MixMonitor failed.
func (t *Tracker) CancelRecording(uniqueid, id string) {
	cr := t.recs[uniqueid]
	if cr == nil {
		return
	}
	for i, r := range cr.expected {
		if r.ID == id {
			cr.expected = append(cr.expected[:i], cr.expected[i+1:]...)
			break
		}
	}
	t.dropIfIdle(uniqueid, cr)
}

// ExpectRecordingStop names the recording the next MixMonitorStop of the
// channel ends (StopMixMonitor with a MixMonitorID; the event names none).
func (t *Tracker) ExpectRecordingStop(uniqueid, id string) {
	if cr := t.recs[uniqueid]; cr != nil {
		cr.stopNext = id
	}
}

func (t *Tracker) chanRecs(uid string) *chanRecordings {
	cr := t.recs[uid]
	if cr == nil {
		cr = &chanRecordings{}
		t.recs[uid] = cr
	}
	return cr
}

func (t *Tracker) dropIfIdle(uid string, cr *chanRecordings) {
	if len(cr.expected) == 0 && len(cr.running) == 0 {
		delete(t.recs, uid)
	}
}

func (t *Tracker) onMixMonitorStart(m *ami.Message) {
	uid := m.Get("Uniqueid")
	if uid == "" || t.over(m) || (t.recs[uid] == nil && len(t.recs) >= t.cfg.MaxCalls) {
		return
	}
	cr := t.chanRecs(uid)
	var r protocol.Recording
	if len(cr.expected) > 0 {
		r, cr.expected = cr.expected[0], cr.expected[1:]
	}
	e := t.recordingEvent(m, protocol.EventRecordingStarted, r)
	// One the dialplan started is known by its call and channel.
	r.CallID, r.Channel = e.CallID, e.Channel
	cr.running = append(cr.running, r)
	t.out = append(t.out, e)
}

func (t *Tracker) onMixMonitorStop(m *ami.Message) {
	uid := m.Get("Uniqueid")
	cr := t.recs[uid]
	if cr == nil || len(cr.running) == 0 {
		return
	}
	i := 0
	for k, r := range cr.running {
		if cr.stopNext != "" && r.ID == cr.stopNext {
			i = k
			break
		}
	}
	r := cr.running[i]
	cr.running = append(cr.running[:i], cr.running[i+1:]...)
	cr.stopNext = ""
	if !t.over(m) {
		t.out = append(t.out, t.recordingEvent(m, protocol.EventRecordingStopped, r))
	}
	t.dropIfIdle(uid, cr)
}

// recordingsHangup ends the recordings of a channel that hangs up; it
// runs before the Hangup reaches the call, so recording.stopped comes
// before call.ended.
func (t *Tracker) recordingsHangup(m *ami.Message) {
	uid := m.Get("Uniqueid")
	cr := t.recs[uid]
	if cr == nil {
		return
	}
	delete(t.recs, uid)
	if t.over(m) {
		return // its call ended already (evicted, or lost to an outage)
	}
	for _, r := range cr.running {
		e := t.recordingEvent(m, protocol.EventRecordingStopped, r)
		e.Reason = "hangup"
		t.out = append(t.out, e)
	}
}

func (t *Tracker) recordingEvent(m *ami.Message, typ string, r protocol.Recording) protocol.Event {
	e := t.callEvent(m, typ)
	if r.CallID != "" {
		e.CallID = r.CallID
	}
	e.RecordingID, e.File = r.ID, r.File
	return e
}

// resyncRecordings ends the recordings of channels that did not survive
// an AMI outage (their Hangup was missed).
func (t *Tracker) resyncRecordings(live map[string]*ami.Message) {
	for uid, cr := range t.recs {
		if live[uid] != nil {
			continue
		}
		delete(t.recs, uid)
		for _, r := range cr.running {
			e := protocol.Event{Type: protocol.EventRecordingStopped, Time: t.clockNow, CallID: r.CallID, LinkedID: r.CallID,
				Channel: r.Channel, RecordingID: r.ID, File: r.File, Reason: "ended during an AMI outage"}
			if c := t.calls[r.CallID]; c != nil {
				e = t.event(c, protocol.EventRecordingStopped, t.clockNow)
				e.Channel, e.RecordingID, e.File, e.Reason = r.Channel, r.ID, r.File, "ended during an AMI outage"
			}
			t.out = append(t.out, e)
		}
	}
	for uid := range t.waiting {
		if live[uid] == nil {
			delete(t.waiting, uid)
		}
	}
}
