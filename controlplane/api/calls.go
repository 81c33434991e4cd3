package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/fleet"
	"github.com/switchboard-pbx/switchboard/controlplane/store"
	"github.com/switchboard-pbx/switchboard/protocol"
)

// Audit actions, as the seed named them.
const (
	AuditOriginate = "asterisk_originate_call"
	AuditHangup    = "asterisk_hangup_call"
	AuditMonitor   = "asterisk_monitor_call"
)

// Input bounds checked here, before anything reaches a PBX. The agent
// applies its own, stricter, configured limits after these.
const (
	maxNumberLen   = 64
	maxReasonBytes = 255
	maxTimeoutS    = 3600
	maxCause       = 127
	maxIDBytes     = 150 // Asterisk's AST_MAX_UNIQUEID
)

func checkNumber(field, v string) error {
	if v == "" {
		return invalidf("field %q is required", field)
	}
	if len(v) > maxNumberLen {
		return invalidf("field %q must be at most %d characters", field, maxNumberLen)
	}
	if v == "+" {
		return invalidf("field %q must be digits, * or # with an optional leading +, got %q", field, v)
	}
	for i := 0; i < len(v); i++ {
		ch := v[i]
		if !(ch >= '0' && ch <= '9' || ch == '*' || ch == '#' || ch == '+' && i == 0) {
			return invalidf("field %q must be digits, * or # with an optional leading +, got %q", field, v)
		}
	}
	return nil
}

// normalizeNumber accepts a number as people paste it: spaces, dashes,
// dots and parentheses are dropped ("+375 (29) 625-40-70" is
// +375296254070); anything else is refused by checkNumber with the value
// as it was sent.
func normalizeNumber(field, v string) (string, error) {
	n := strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', '-', '.', '(', ')':
			return -1
		}
		return r
	}, v)
	if n == "" && v != "" {
		return "", invalidf("field %q must be digits, * or # with an optional leading +, got %q", field, v)
	}
	if err := checkNumber(field, n); err != nil {
		if n != v {
			return "", invalidf("field %q must be digits, * or # with an optional leading + (spaces, dashes, dots and parentheses are ignored), got %q", field, v)
		}
		return "", err
	}
	return n, nil
}

func checkTimeout(s int) error {
	if s < 0 || s > maxTimeoutS {
		return invalidf("field \"timeout_s\" must be 0-%d, got %d", maxTimeoutS, s)
	}
	return nil
}

// agentCall sends one operation to a PBX under the AMI timeout. A caller
// that hangs up does not cancel it: an originate or hangup half done is
// worse than one finished and audited with its real outcome.
func (c *call) agentCall(agentID, op string, args, result any) error {
	return c.agentCallWithin(c.api.cfg.AMITimeout, agentID, op, args, result)
}

// agentCallWithin is agentCall with a deadline of its own, for operations
// that take longer than an AMI round trip (DTMF digits).
func (c *call) agentCallWithin(d time.Duration, agentID, op string, args, result any) error {
	if err := c.writeIntent(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(fleet.WithRequestID(context.WithoutCancel(c.ctx()), c.id), d)
	defer cancel()
	if err := c.api.cfg.Caller.Call(ctx, agentID, op, args, result); err != nil {
		e := agentError(agentID, d.String(), err)
		if e == errInternal {
			c.log.Error("agent call failed", "pbx", agentID, "op", op, "err", err)
		}
		return e
	}
	return nil
}

type originateRequest struct {
	From      string            `json:"from"`
	To        string            `json:"to"`
	PBX       string            `json:"pbx,omitempty"`
	CallerID  string            `json:"caller_id,omitempty"`
	TimeoutS  int               `json:"timeout_s,omitempty"`
	Variables map[string]string `json:"variables,omitempty"`
}

type callResponse struct {
	CallID    string    `json:"call_id"`
	Status    string    `json:"status"`
	PBX       string    `json:"pbx"`
	From      string    `json:"from"`
	To        string    `json:"to"`
	Channel   string    `json:"channel"`
	CreatedAt time.Time `json:"created_at"`
}

// originate places a call on ag and returns what the agent answered.
func (c *call) originate(ag store.Agent, args protocol.OriginateArgs) (protocol.OriginateResult, error) {
	var res protocol.OriginateResult
	if err := c.agentCall(ag.ID, protocol.OpOriginate, args, &res); err != nil {
		return res, err
	}
	c.audit.UniqueID, c.audit.Channel = res.CallID, res.Channel
	return res, nil
}

func (a *API) createCall(c *call) error {
	var req originateRequest
	if err := c.decodeJSON(&req); err != nil {
		return err
	}
	c.audit.FromExt, c.audit.ToNumber, c.audit.AgentID = req.From, req.To, req.PBX
	var err error
	if req.From, err = normalizeNumber("from", req.From); err != nil {
		return err
	}
	if req.To, err = normalizeNumber("to", req.To); err != nil {
		return err
	}
	c.audit.FromExt, c.audit.ToNumber = req.From, req.To
	if err := checkTimeout(req.TimeoutS); err != nil {
		return err
	}
	if err := c.authorize(); err != nil {
		return err
	}
	idem, err := c.idempotency(req)
	if err != nil || idem.replayed {
		return err
	}
	defer idem.unlock()
	ag, err := c.selectPBX(req.PBX)
	if err != nil {
		return err
	}
	c.audit.AgentID = ag.ID
	res, err := c.originate(ag, protocol.OriginateArgs{
		From: req.From, To: req.To, CallerID: req.CallerID, TimeoutS: req.TimeoutS, Variables: req.Variables,
	})
	if err != nil {
		return err
	}
	if err := c.reply(http.StatusCreated, callResponse{
		CallID: res.CallID, Status: res.Status, PBX: ag.ID, From: req.From, To: req.To,
		Channel: res.Channel, CreatedAt: a.cfg.Now().UTC(),
	}); err != nil {
		return err
	}
	idem.store(c)
	return nil
}

type hangupRequest struct {
	PBX      string `json:"pbx,omitempty"`
	Channel  string `json:"channel,omitempty"`
	UniqueID string `json:"uniqueid,omitempty"`
	Reason   string `json:"reason,omitempty"`
	Cause    int    `json:"cause,omitempty"`
	Force    bool   `json:"force,omitempty"`
	All      bool   `json:"all,omitempty"`
}

func (r hangupRequest) validate() error {
	switch {
	case r.All && (r.Channel != "" || r.UniqueID != ""):
		return invalidf("field \"all\" excludes \"channel\" and \"uniqueid\"")
	case !r.All && r.Channel == "" && r.UniqueID == "":
		return invalidf("one of the fields \"channel\" or \"uniqueid\" is required (or \"all\": true)")
	case len(r.Channel) > maxIDBytes:
		return invalidf("field \"channel\" must be at most %d bytes", maxIDBytes)
	case len(r.UniqueID) > maxIDBytes:
		return invalidf("field \"uniqueid\" must be at most %d bytes", maxIDBytes)
	case len(r.Reason) > maxReasonBytes:
		return invalidf("field \"reason\" must be at most %d bytes", maxReasonBytes)
	case r.Cause < 0 || r.Cause > maxCause:
		return invalidf("field \"cause\" must be 0-%d (Q.850; 0 means 16, normal clearing), got %d", maxCause, r.Cause)
	}
	return nil
}

type hungupChannel struct {
	Channel    string     `json:"channel"`
	UniqueID   string     `json:"uniqueid,omitempty"`
	LinkedID   string     `json:"linkedid,omitempty"`
	StartedAt  *time.Time `json:"started_at,omitempty"`
	HungupAt   time.Time  `json:"hungup_at"`
	DurationMS int64      `json:"duration_ms"`
}

type hangupResponse struct {
	PBX          string          `json:"pbx"`
	TerminatedAt time.Time       `json:"terminated_at"`
	Count        int             `json:"count"`
	Hungup       []hungupChannel `json:"hungup"`
}

// hangup runs a validated, authorised hangup and fills the audit row.
func (c *call) hangup(req hangupRequest) (store.Agent, protocol.HangupResult, error) {
	var res protocol.HangupResult
	ag, err := c.selectPBX(req.PBX)
	if err != nil {
		return ag, res, err
	}
	c.audit.AgentID = ag.ID
	// By: call.ended names who hung up, the credential's public id or the
	// operator's sub.
	args := protocol.HangupArgs{Channel: req.Channel, UniqueID: req.UniqueID, Cause: req.Cause, All: req.All, Force: req.Force, By: c.principal.ID}
	if err := c.agentCall(ag.ID, protocol.OpHangup, args, &res); err != nil {
		return ag, res, err
	}
	if len(res.Hungup) == 1 {
		c.audit.Channel, c.audit.UniqueID = res.Hungup[0].Channel, res.Hungup[0].UniqueID
	}
	details, _ := json.Marshal(map[string]any{"cause": req.Cause, "force": req.Force, "all": req.All, "count": len(res.Hungup)})
	c.audit.Details = details
	return ag, res, nil
}

func (c *call) auditHangupTarget(req hangupRequest) {
	c.audit.AgentID, c.audit.Channel, c.audit.UniqueID, c.audit.Reason = req.PBX, req.Channel, req.UniqueID, req.Reason
}

func (a *API) hangupCall(c *call) error {
	var req hangupRequest
	if err := c.decodeJSON(&req); err != nil {
		return err
	}
	c.auditHangupTarget(req)
	return a.finishHangup(c, req)
}

// deleteCall is DELETE /v1/calls/{id}: hang up the call whose first leg
// has uniqueid id; ?pbx=, ?reason= and ?cause= as in the body of POST
// /v1/calls/hangup.
func (a *API) deleteCall(c *call) error {
	q := c.r.URL.Query()
	req := hangupRequest{PBX: q.Get("pbx"), UniqueID: c.r.PathValue("id"), Reason: q.Get("reason")}
	if s := q.Get("cause"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			return invalidf("query \"cause\" must be a number, got %q", s)
		}
		req.Cause = n
	}
	c.auditHangupTarget(req)
	return a.finishHangup(c, req)
}

func (a *API) finishHangup(c *call, req hangupRequest) error {
	if err := req.validate(); err != nil {
		return err
	}
	if err := c.authorize(); err != nil {
		return err
	}
	ag, res, err := c.hangup(req)
	if err != nil {
		return err
	}
	out := hangupResponse{PBX: ag.ID, TerminatedAt: a.cfg.Now().UTC(), Count: len(res.Hungup), Hungup: make([]hungupChannel, 0, len(res.Hungup))}
	var latest time.Time
	for _, h := range res.Hungup {
		out.Hungup = append(out.Hungup, hungupChannel{
			Channel: h.Channel, UniqueID: h.UniqueID, LinkedID: h.LinkedID, StartedAt: timePtr(h.StartedAt),
			HungupAt: h.HungupAt.UTC(), DurationMS: h.DurationMS,
		})
		if h.HungupAt.After(latest) {
			latest = h.HungupAt
		}
	}
	if !latest.IsZero() {
		out.TerminatedAt = latest.UTC()
	}
	return c.reply(http.StatusOK, out)
}

type monitorRequest struct {
	Mode     string `json:"mode"`
	Target   string `json:"target"`
	From     string `json:"from"`
	PBX      string `json:"pbx,omitempty"`
	CallerID string `json:"caller_id,omitempty"`
	TimeoutS int    `json:"timeout_s,omitempty"`
}

type monitorResponse struct {
	CallID         string `json:"call_id"`
	Status         string `json:"status"`
	PBX            string `json:"pbx"`
	Mode           string `json:"mode"`
	Target         string `json:"target"`
	From           string `json:"from"`
	TargetChannel  string `json:"target_channel"`
	TargetPrefix   string `json:"target_prefix"`
	SpyChannel     string `json:"spy_channel"`
	ChanSpyOptions string `json:"chanspy_options"`
}

func checkMode(mode string) error {
	switch mode {
	case protocol.MonitorSpy, protocol.MonitorWhisper, protocol.MonitorBarge:
		return nil
	case "":
		return invalidf("field \"mode\" is required: spy, whisper or barge")
	}
	return invalidf("field \"mode\" must be spy, whisper or barge, got %q", mode)
}

// monitor starts ChanSpy on ag and fills the audit row.
func (c *call) monitor(ag store.Agent, args protocol.MonitorArgs) (protocol.MonitorResult, error) {
	var res protocol.MonitorResult
	if err := c.agentCall(ag.ID, protocol.OpMonitor, args, &res); err != nil {
		return res, err
	}
	c.audit.Channel, c.audit.UniqueID = res.TargetChannel, res.SpyCallID
	return res, nil
}

func (a *API) startMonitor(c *call) error {
	var req monitorRequest
	if err := c.decodeJSON(&req); err != nil {
		return err
	}
	c.audit.FromExt, c.audit.ToNumber, c.audit.AgentID = req.From, req.Target, req.PBX
	c.audit.Details, _ = json.Marshal(map[string]string{"mode": req.Mode})
	if err := checkMode(req.Mode); err != nil {
		return err
	}
	if err := checkNumber("target", req.Target); err != nil {
		return err
	}
	if err := checkNumber("from", req.From); err != nil {
		return err
	}
	if err := checkTimeout(req.TimeoutS); err != nil {
		return err
	}
	if err := c.authorize(); err != nil {
		return err
	}
	ag, err := c.selectPBX(req.PBX)
	if err != nil {
		return err
	}
	c.audit.AgentID = ag.ID
	res, err := c.monitor(ag, protocol.MonitorArgs{Mode: req.Mode, Target: req.Target, From: req.From, CallerID: req.CallerID, TimeoutS: req.TimeoutS})
	if err != nil {
		return err
	}
	return c.reply(http.StatusCreated, monitorResponse{
		CallID: res.SpyCallID, Status: protocol.CallQueued, PBX: ag.ID, Mode: req.Mode, Target: req.Target, From: req.From,
		TargetChannel: res.TargetChannel, TargetPrefix: res.TargetPrefix, SpyChannel: res.SpyChannel, ChanSpyOptions: res.ChanSpyOptions,
	})
}
