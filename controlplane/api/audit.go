package api

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/store"
)

// writeIntent makes the request's audit intent durable before its first
// call to a PBX: an action is never taken without its record. When the
// store cannot write it, nothing is sent.
func (c *call) writeIntent() error {
	if c.audit == nil || c.intentID != 0 {
		return nil
	}
	ctx, cancel := c.storeCtx()
	defer cancel()
	id, err := c.api.cfg.Store.InsertAuditIntent(ctx, *c.audit)
	if err != nil {
		c.log.Error("audit intent not stored: the request is refused", "action", c.audit.Action, "err", err)
		return &Error{Status: http.StatusServiceUnavailable, Code: CodeUnavailable, RetryAfter: 1,
			Message: "the audit log could not be written, so nothing was sent to the PBX; retry shortly"}
	}
	c.intentID = id
	return nil
}

// finishAudit hands the request's audit row, success or failure, to the
// store without waiting (see run); a failed hangup is also a hangup
// attempt. A row the store refuses is logged at error level.
func (c *call) finishAudit(err error) {
	if c.audit == nil {
		return
	}
	e := *c.audit
	e.IntentID = c.intentID
	e.Result = store.ResultSuccess
	var msg string
	if err != nil {
		e.Result = store.ResultError
		e.ErrorCode = c.errCode
		if ae, _ := asAPIError(err); ae != nil {
			msg = ae.Message
		}
	}
	ctx, cancel := c.storeCtx()
	defer cancel()
	// The attempt goes first: once the audit row is visible, so is it.
	if err != nil && e.Action == AuditHangup {
		_, herr := c.api.cfg.Store.InsertHangupAttempt(ctx, store.HangupAttempt{
			EnterpriseID: e.EnterpriseID, ActorID: e.ActorID, AgentID: e.AgentID, Channel: e.Channel,
			UniqueID: e.UniqueID, Reason: e.Reason, ErrorCode: e.ErrorCode, Message: msg, RequestID: e.RequestID,
		})
		if herr != nil {
			c.log.Error("hangup attempt not stored", "err", herr)
		}
	}
	if qerr := c.api.cfg.Store.QueueAudit(e); qerr != nil {
		c.log.Error("audit row not stored", "action", e.Action, "result", e.Result, "err", qerr)
	}
}

// auditView is one audit row as GET /v1/audit shows it.
type auditView struct {
	ID         int64           `json:"id"`
	At         time.Time       `json:"at"`
	ActorType  string          `json:"actor_type"`
	ActorID    string          `json:"actor_id"`
	Action     string          `json:"action"`
	PBX        string          `json:"pbx,omitempty"`
	Channel    string          `json:"channel,omitempty"`
	UniqueID   string          `json:"uniqueid,omitempty"`
	From       string          `json:"from,omitempty"`
	To         string          `json:"to,omitempty"`
	Reason     string          `json:"reason,omitempty"`
	Result     string          `json:"result"`
	ErrorCode  string          `json:"error_code,omitempty"`
	RequestID  string          `json:"request_id,omitempty"`
	ClientAddr string          `json:"client_addr,omitempty"`
	Details    json.RawMessage `json:"details,omitempty"`
}

type auditPage struct {
	Entries    []auditView `json:"entries"`
	NextCursor string      `json:"next_cursor,omitempty"`
}

// listAudit is GET /v1/audit: the caller's enterprise's rows, newest
// first; ?limit= (1-500, default 50) and ?cursor= (next_cursor of the
// previous page).
func (a *API) listAudit(c *call) error {
	q := c.r.URL.Query()
	limit, err := pageSize(q.Get("limit"), DefaultAuditPageSize, store.MaxAuditPageSize)
	if err != nil {
		return err
	}
	cursor := q.Get("cursor")
	if cursor != "" {
		if n, err := strconv.ParseInt(cursor, 10, 64); err != nil || n <= 0 {
			return invalidf("query \"cursor\" must be a next_cursor value, got %q", cursor)
		}
	}
	ctx, cancel := c.storeCtx()
	defer cancel()
	rows, next, err := a.cfg.Store.ListAudit(ctx, c.principal.EnterpriseID, cursor, limit)
	if err != nil {
		return storeError(err)
	}
	out := auditPage{Entries: make([]auditView, 0, len(rows)), NextCursor: next}
	for _, r := range rows {
		out.Entries = append(out.Entries, auditView{
			ID: r.ID, At: r.At.UTC(), ActorType: r.ActorType, ActorID: r.ActorID, Action: r.Action, PBX: r.AgentID,
			Channel: r.Channel, UniqueID: r.UniqueID, From: r.FromExt, To: r.ToNumber, Reason: r.Reason,
			Result: r.Result, ErrorCode: r.ErrorCode, RequestID: r.RequestID, ClientAddr: r.ClientAddr, Details: r.Details,
		})
	}
	return c.reply(http.StatusOK, out)
}
