package events

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/auth"
	"github.com/switchboard-pbx/switchboard/controlplane/store"
)

// callView is a call as GET /v1/calls shows it.
type callView struct {
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

func viewCall(c store.Call) callView {
	return callView{CallID: c.CallID, PBX: c.AgentID, Status: c.Status, Direction: c.Direction, From: c.From, To: c.To,
		Channel: c.Channel, StartedAt: c.StartedAt.UTC(), AnsweredAt: utcPtr(c.AnsweredAt), AnsweredBy: c.AnsweredBy,
		AnsweredChannel: c.AnsweredChannel, EndedAt: utcPtr(c.EndedAt), Cause: c.Cause, CauseText: c.CauseText,
		HungupBy: c.HungupBy, DurationS: c.DurationS, BillsecS: c.BillsecS, Monitored: c.Monitored,
		FirstSeq: c.FirstSeq, LastSeq: c.LastSeq, UpdatedAt: c.UpdatedAt.UTC()}
}

func parseTime(name, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, invalidf("%s: want an RFC 3339 time like 2026-11-24T10:00:00Z, got %q", name, v)
	}
	return t, nil
}

// listCalls: GET /v1/calls?since=&until=&pbx=&status=&extension=&number=
// &direction=&cursor=&limit=, newest first.
func (s *Service) listCalls(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	q := r.URL.Query()
	f := store.CallFilter{EnterpriseID: p.EnterpriseID, AgentID: q.Get("pbx"), Direction: q.Get("direction"),
		Extension: q.Get("extension"), Number: q.Get("number"), Cursor: q.Get("cursor")}
	var err error
	if f.Since, err = parseTime("since", q.Get("since")); err != nil {
		return err
	}
	if f.Until, err = parseTime("until", q.Get("until")); err != nil {
		return err
	}
	if v := q.Get("status"); v != "" {
		f.Statuses = strings.Split(v, ",")
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > store.MaxCallPageSize {
			return invalidf("limit: want 1-%d, got %q", store.MaxCallPageSize, v)
		}
		f.Limit = n
	}
	if err := f.Validate(); err != nil {
		return err
	}
	ctx, cancel := s.storeCtx(r)
	defer cancel()
	if err := s.agentOf(ctx, p.EnterpriseID, f.AgentID); err != nil {
		return err
	}
	calls, next, err := s.cfg.Store.ListCalls(ctx, f)
	if err != nil {
		return err
	}
	out := make([]callView, 0, len(calls))
	for _, c := range calls {
		out = append(out, viewCall(c))
	}
	resp := map[string]any{"calls": out}
	if next != "" {
		resp["next_cursor"] = next
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// callDetail is GET /v1/calls/{id}: the call and its event timeline.
type callDetail struct {
	callView
	Events []json.RawMessage `json:"events"`
	// EventsTruncated: the timeline has more than MaxTimelineEvents events.
	EventsTruncated bool `json:"events_truncated,omitempty"`
}

// getCall: GET /v1/calls/{id}[?pbx=]. Two PBXs may reuse a uniqueid;
// without ?pbx= the most recently started call of that id is shown.
func (s *Service) getCall(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	id, pbx := r.PathValue("id"), r.URL.Query().Get("pbx")
	ctx, cancel := s.storeCtx(r)
	defer cancel()
	c, err := s.cfg.Store.CallByID(ctx, p.EnterpriseID, pbx, id)
	if errors.Is(err, store.ErrNotFound) {
		return notFound("call", id)
	}
	if err != nil {
		return err
	}
	evs, err := s.cfg.Store.ListEvents(ctx, store.EventFilter{EnterpriseID: p.EnterpriseID, AgentID: c.AgentID, CallID: c.CallID,
		After: c.FirstSeq - 1, Limit: MaxTimelineEvents + 1})
	if err != nil {
		return err
	}
	d := callDetail{callView: viewCall(c), Events: make([]json.RawMessage, 0, len(evs))}
	if len(evs) > MaxTimelineEvents {
		evs, d.EventsTruncated = evs[:MaxTimelineEvents], true
	}
	for _, se := range evs {
		b, err := encodeEvent(se)
		if err != nil {
			return err
		}
		d.Events = append(d.Events, b)
	}
	writeJSON(w, http.StatusOK, d)
	return nil
}
