package api

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/events"
	"github.com/switchboard-pbx/switchboard/controlplane/store"
)

type callsPage struct {
	Calls      []events.CallView `json:"calls"`
	NextCursor string            `json:"next_cursor,omitempty"`
}

// listCalls is GET /v1/calls?since=&until=&pbx=&status=&extension=
// &number=&direction=&cursor=&limit=: the history, newest first.
func (a *API) listCalls(c *call) error {
	q := c.r.URL.Query()
	f := store.CallFilter{EnterpriseID: c.principal.EnterpriseID, AgentID: q.Get("pbx"), Direction: q.Get("direction"),
		Extension: q.Get("extension"), Number: q.Get("number"), Cursor: q.Get("cursor")}
	var err error
	if f.Since, err = queryTime(q.Get("since"), "since"); err != nil {
		return err
	}
	if f.Until, err = queryTime(q.Get("until"), "until"); err != nil {
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
	if f.AgentID, err = c.resolvePBX(f.AgentID); err != nil {
		return err
	}
	calls, next, err := a.cfg.Events.Calls(c.ctx(), f)
	if err != nil {
		return err
	}
	return c.reply(http.StatusOK, callsPage{Calls: calls, NextCursor: next})
}

func queryTime(v, name string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, invalidf("%s: want an RFC 3339 time like 2026-11-24T10:00:00Z, got %q", name, v)
	}
	return t, nil
}

// getCall is GET /v1/calls/{id}[?pbx=]: one call and its event timeline.
func (a *API) getCall(c *call) error {
	id := c.r.PathValue("id")
	pbx, err := c.resolvePBX(c.r.URL.Query().Get("pbx"))
	if err != nil {
		return err
	}
	d, err := a.cfg.Events.Call(c.ctx(), c.principal.EnterpriseID, pbx, id)
	if errors.Is(err, store.ErrNotFound) {
		return notFound("call", id)
	}
	if err != nil {
		return err
	}
	return c.reply(http.StatusOK, callDetail{CallDetail: d, Recordings: callRecordings(d)})
}
