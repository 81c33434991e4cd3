package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-pbx/switchboard/protocol"
)

// eventTypes are the event types a stream may carry, for completion.
var eventTypes = []string{
	protocol.EventCallStarted, protocol.EventCallRinging, protocol.EventCallAnswered, protocol.EventCallBridged,
	protocol.EventMonitorStarted, protocol.EventMonitorStopped, protocol.EventCallEnded, protocol.EventGap,
	protocol.EventQueueCallerJoined, protocol.EventQueueCallerLeft, protocol.EventQueueMemberAdded,
	protocol.EventQueueMemberRemoved, protocol.EventQueueMemberPaused, protocol.EventQueueMemberUnpaused,
	protocol.EventRecordingStarted, protocol.EventRecordingStopped,
}

// eventRow is what a table line shows of an event.
type eventRow struct {
	Seq           int64     `json:"seq"`
	PBX           string    `json:"pbx"`
	Type          string    `json:"type"`
	Time          time.Time `json:"time"`
	CallID        string    `json:"call_id"`
	Direction     string    `json:"direction"`
	From          string    `json:"from"`
	To            string    `json:"to"`
	Status        string    `json:"status"`
	AnsweredBy    string    `json:"answered_by"`
	SpyChannel    string    `json:"spy_channel"`
	TargetChannel string    `json:"target_channel"`
	Cause         int       `json:"cause"`
	CauseText     string    `json:"cause_text"`
	HungupBy      string    `json:"hungup_by"`
	DurationS     int       `json:"duration_s"`
	BillsecS      int       `json:"billsec_s"`
	Lost          uint64    `json:"lost"`
}

// eventTable prints a stream of events as a table whose header comes
// once, before the first row. Rows are written as they come, so the
// columns have fixed widths (a longer value pushes its line out).
type eventTable struct {
	w      io.Writer
	header bool
	loc    *time.Location
}

func newEventTable(w io.Writer) *eventTable { return &eventTable{w: w, loc: time.Local} }

const eventTableFormat = "%-8s  %6s  %-20s  %-20s  %-30s  %-14s  %-16s  %-11s  %s\n"

func (t *eventTable) print(data []byte) error {
	var ev eventRow
	if err := json.Unmarshal(data, &ev); err != nil {
		return fmt.Errorf("%w: event is not JSON: %v", errOutput, err)
	}
	if !t.header {
		t.header = true
		if _, err := fmt.Fprintf(t.w, eventTableFormat, "TIME", "SEQ", "PBX", "EVENT", "CALL", "FROM", "TO", "STATUS", "DETAIL"); err != nil {
			return err
		}
	}
	when := "-"
	if !ev.Time.IsZero() {
		when = ev.Time.In(t.loc).Format(time.TimeOnly)
	}
	_, err := fmt.Fprintf(t.w, eventTableFormat, when, strconv.FormatInt(ev.Seq, 10), dash(ev.PBX), ev.Type,
		dash(ev.CallID), dash(ev.From), dash(ev.To), dash(ev.Status), ev.detail())
	return err
}

// detail is the part of an event particular to its type.
func (ev eventRow) detail() string {
	switch ev.Type {
	case protocol.EventCallStarted:
		return ev.Direction
	case protocol.EventCallAnswered:
		if ev.AnsweredBy != "" {
			return "answered by " + ev.AnsweredBy
		}
	case protocol.EventMonitorStarted, protocol.EventMonitorStopped:
		return strings.TrimSpace(ev.SpyChannel + " on " + ev.TargetChannel)
	case protocol.EventCallEnded:
		var parts []string
		if ev.Cause != 0 || ev.CauseText != "" {
			parts = append(parts, strings.TrimSpace(strconv.Itoa(ev.Cause)+" "+ev.CauseText))
		}
		parts = append(parts, fmt.Sprintf("%ds (billed %ds)", ev.DurationS, ev.BillsecS))
		if ev.HungupBy != "" {
			parts = append(parts, "hung up by "+ev.HungupBy)
		}
		return strings.Join(parts, ", ")
	case protocol.EventGap:
		return fmt.Sprintf("%d events lost (the PBX's buffer overflowed)", ev.Lost)
	}
	return ""
}
