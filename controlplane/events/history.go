package events

import (
	"context"
	"encoding/json"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/store"
)

// CallView is a call of the history as clients see it (GET /v1/calls).
type CallView struct {
	CallID          string     `json:"call_id"`
	PBX             string     `json:"pbx"`
	Status          string     `json:"status"`
	Direction       string     `json:"direction,omitempty"`
	From            string     `json:"from"`
	To              string     `json:"to"`
	Channel         string     `json:"channel,omitempty"`
	StartedAt       time.Time  `json:"started_at"`
	AnsweredAt      *time.Time `json:"answered_at,omitempty"`
	AnsweredBy      string     `json:"answered_by,omitempty"`
	AnsweredChannel string     `json:"answered_channel,omitempty"`
	EndedAt         *time.Time `json:"ended_at,omitempty"`
	Cause           *int       `json:"cause,omitempty"`
	CauseText       string     `json:"cause_text,omitempty"`
	HungupBy        string     `json:"hungup_by,omitempty"`
	DurationS       *int       `json:"duration_s,omitempty"`
	BillsecS        *int       `json:"billsec_s,omitempty"`
	Monitored       bool       `json:"monitored"`
	FirstSeq        int64      `json:"first_seq"`
	LastSeq         int64      `json:"last_seq"`
	UpdatedAt       time.Time  `json:"updated_at"`
}

// ViewCall turns a stored call into its client view.
func ViewCall(c store.Call) CallView {
	return CallView{CallID: c.CallID, PBX: c.AgentID, Status: c.Status, Direction: c.Direction, From: c.From, To: c.To,
		Channel: c.Channel, StartedAt: c.StartedAt.UTC(), AnsweredAt: utcPtr(c.AnsweredAt), AnsweredBy: c.AnsweredBy,
		AnsweredChannel: c.AnsweredChannel, EndedAt: utcPtr(c.EndedAt), Cause: c.Cause, CauseText: c.CauseText,
		HungupBy: c.HungupBy, DurationS: c.DurationS, BillsecS: c.BillsecS, Monitored: c.Monitored,
		FirstSeq: c.FirstSeq, LastSeq: c.LastSeq, UpdatedAt: c.UpdatedAt.UTC()}
}

func utcPtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// Calls lists the history newest first; next is the cursor of the next
// page ("" at the end). f must be validated (store.CallFilter.Validate).
func (s *Service) Calls(ctx context.Context, f store.CallFilter) (calls []CallView, next string, err error) {
	ctx, cancel := s.storeCtx(ctx)
	defer cancel()
	rows, next, err := s.cfg.Store.ListCalls(ctx, f)
	if err != nil {
		return nil, "", err
	}
	calls = make([]CallView, 0, len(rows))
	for _, c := range rows {
		calls = append(calls, ViewCall(c))
	}
	return calls, next, nil
}

// CallDetail is one call and its event timeline (GET /v1/calls/{id}).
type CallDetail struct {
	CallView
	Events []json.RawMessage `json:"events"`
	// EventsTruncated: the timeline has more than MaxTimelineEvents events.
	EventsTruncated bool `json:"events_truncated,omitempty"`
}

// Call reads one call of the enterprise with its timeline. Two PBXs may
// reuse a uniqueid: with pbx empty, the most recently started call of
// that id. An unknown call is store.ErrNotFound.
func (s *Service) Call(ctx context.Context, enterpriseID int64, pbx, id string) (CallDetail, error) {
	ctx, cancel := s.storeCtx(ctx)
	defer cancel()
	c, err := s.cfg.Store.CallByID(ctx, enterpriseID, pbx, id)
	if err != nil {
		return CallDetail{}, err
	}
	evs, err := s.cfg.Store.ListEvents(ctx, store.EventFilter{EnterpriseID: enterpriseID, AgentID: c.AgentID, CallID: c.CallID,
		After: c.FirstSeq - 1, Limit: MaxTimelineEvents + 1})
	if err != nil {
		return CallDetail{}, err
	}
	d := CallDetail{CallView: ViewCall(c), Events: make([]json.RawMessage, 0, len(evs))}
	if len(evs) > MaxTimelineEvents {
		evs, d.EventsTruncated = evs[:MaxTimelineEvents], true
	}
	for _, se := range evs {
		b, err := EncodeEvent(se)
		if err != nil {
			return CallDetail{}, err
		}
		d.Events = append(d.Events, b)
	}
	return d, nil
}
