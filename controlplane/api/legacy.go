package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"mime"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/switchboard-pbx/switchboard/controlplane/auth"
	"github.com/switchboard-pbx/switchboard/controlplane/store"
	"github.com/switchboard-pbx/switchboard/protocol"
)

// The legacy routes answer byte for byte like the services they replace:
// field order, escaping, float formatting and messages. Their quirks are
// kept on purpose; new callers use v1.

// pyFloat marshals like Python's repr of a float rounded to 2 places
// (12.34, 12.0), as the FastAPI service wrote response_time_ms.
type pyFloat float64

func (f pyFloat) MarshalJSON() ([]byte, error) {
	v := math.Round(float64(f)*100) / 100
	s := strconv.FormatFloat(v, 'f', -1, 64)
	if !strings.Contains(s, ".") {
		s += ".0"
	}
	return []byte(s), nil
}

func (c *call) elapsedMS() pyFloat {
	return pyFloat(float64(c.api.cfg.Now().Sub(c.start).Microseconds()) / 1000)
}

// fastAPIMissing is FastAPI's 422 for absent required query parameters.
type fastAPIMissing struct {
	Detail []fastAPIMissingItem `json:"detail"`
}

type fastAPIMissingItem struct {
	Type  string    `json:"type"`
	Loc   [2]string `json:"loc"`
	Msg   string    `json:"msg"`
	Input *string   `json:"input"`
}

// requireQuery returns the named query parameters, or FastAPI's 422
// listing every missing one.
func (c *call) requireQuery(names ...string) ([]string, error) {
	q := c.r.URL.Query()
	vals := make([]string, len(names))
	var missing []fastAPIMissingItem
	for i, n := range names {
		vs, ok := q[n]
		if !ok || len(vs) == 0 {
			missing = append(missing, fastAPIMissingItem{Type: "missing", Loc: [2]string{"query", n}, Msg: "Field required"})
			continue
		}
		vals[i] = vs[0]
	}
	if missing != nil {
		return nil, &Error{Status: http.StatusUnprocessableEntity, Code: CodeInvalidRequest, Message: "missing query parameters", body: fastAPIMissing{Detail: missing}}
	}
	return vals, nil
}

// legacyFailure rewrites a failure of a legacy call route the way the old
// service reported it: 401/403/422/429 as they are, invalid input a 422
// (FastAPI's status for invalid parameters: a client must not retry it as
// it would a 500), everything else a 500 "<prefix>: <reason>". Not-found
// stays 404 for monitor (DESIGN: a target with no call is a 404, not a
// silent ring).
func legacyFailure(err error, prefix string, keep404 bool) error {
	e, internal := asAPIError(err)
	if internal || e.body != nil || e.final {
		return err
	}
	switch e.Status {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusTooManyRequests, http.StatusUnprocessableEntity:
		return err
	case http.StatusBadRequest:
		return &Error{Status: http.StatusUnprocessableEntity, Code: e.Code, Message: prefix + ": " + e.Message}
	case http.StatusNotFound:
		if keep404 {
			return &Error{Status: e.Status, Code: e.Code, Message: prefix + ": " + e.Message}
		}
	}
	return &Error{Status: http.StatusInternalServerError, Code: e.Code, Message: prefix + ": " + e.Message, RetryAfter: e.RetryAfter}
}

// hostOf names the PBX as the old service's host_ip did: the agent's
// hostname when connected, else its registered name.
func (a *API) hostOf(ag store.Agent) string {
	if conn := a.conn(ag.ID); conn != nil && conn.Hello.Hostname != "" {
		return conn.Hello.Hostname
	}
	return ag.Name
}

func (c *call) enterprise() (store.Enterprise, error) {
	ctx, cancel := c.storeCtx()
	defer cancel()
	e, err := c.api.cfg.Store.EnterpriseByID(ctx, c.principal.EnterpriseID)
	if err != nil {
		return e, storeError(err)
	}
	return e, nil
}

type legacyCallOK struct {
	Success          bool    `json:"success"`
	Message          string  `json:"message"`
	Enterprise       string  `json:"enterprise"`
	EnterpriseNumber string  `json:"enterprise_number"`
	FromExt          string  `json:"from_ext"`
	ToPhone          string  `json:"to_phone"`
	HostIP           string  `json:"host_ip"`
	ResponseTimeMS   pyFloat `json:"response_time_ms"`
}

// legacyMakeCall is GET /api/makecallexternal?code=&phone=&clientId=.
// ?pbx= picks the PBX of an enterprise that has several.
func (a *API) legacyMakeCall(c *call) error {
	if err := c.legacyMakeCallRun(); err != nil {
		return legacyFailure(err, "Call initiation failed", false)
	}
	return nil
}

func (c *call) legacyMakeCallRun() error {
	vals, err := c.requireQuery("code", "phone")
	if err != nil {
		return err
	}
	from, to := vals[0], vals[1]
	pbx := c.r.URL.Query().Get("pbx")
	c.audit.FromExt, c.audit.ToNumber, c.audit.AgentID = from, to, pbx
	if err := c.authorize(); err != nil {
		return err
	}
	if from, err = normalizeNumber("code", from); err != nil {
		return err
	}
	if to, err = normalizeNumber("phone", unencodedPlus(to)); err != nil {
		return err
	}
	c.audit.FromExt, c.audit.ToNumber = from, to
	ag, err := c.selectPBX(pbx)
	if err != nil {
		return err
	}
	c.audit.AgentID = ag.ID
	ent, err := c.enterprise()
	if err != nil {
		return err
	}
	if _, err := c.originate(ag, protocol.OriginateArgs{From: from, To: to}); err != nil {
		return err
	}
	return c.reply(http.StatusOK, legacyCallOK{
		Success: true, Message: "Call initiated successfully: " + from + " -> " + to,
		Enterprise: ent.Name, EnterpriseNumber: ent.Number, FromExt: from, ToPhone: to,
		HostIP: c.api.hostOf(ag), ResponseTimeMS: c.elapsedMS(),
	})
}

// unencodedPlus undoes what a query string does to an unencoded "+":
// ?phone=+375… arrives as " 375…", so a phone that starts with a space
// and a digit was an international number.
func unencodedPlus(phone string) string {
	if len(phone) > 1 && phone[0] == ' ' && phone[1] >= '0' && phone[1] <= '9' {
		return "+" + phone[1:]
	}
	return phone
}

// Legacy monitor action codes and their names, as the old service had them.
var legacyMonitorActions = map[string]struct{ mode, name string }{
	"09": {protocol.MonitorSpy, "подслушивание"},
	"01": {protocol.MonitorWhisper, "суфлирование"},
	"02": {protocol.MonitorBarge, "вмешательство"},
}

type legacyMonitorOK struct {
	Success          bool    `json:"success"`
	Message          string  `json:"message"`
	Action           string  `json:"action"`
	ActionName       string  `json:"action_name"`
	Target           string  `json:"target"`
	MonitorFrom      string  `json:"monitor_from"`
	TargetChannel    string  `json:"target_channel"`
	Enterprise       string  `json:"enterprise"`
	EnterpriseNumber string  `json:"enterprise_number"`
	HostIP           string  `json:"host_ip"`
	ResponseTimeMS   pyFloat `json:"response_time_ms"`
}

// legacyMonitor is GET /api/monitor?action=09|01|02&target=&monitor_from=&clientId=.
func (a *API) legacyMonitor(c *call) error {
	if err := c.legacyMonitorRun(); err != nil {
		return legacyFailure(err, "Monitoring initiation failed", true)
	}
	return nil
}

func (c *call) legacyMonitorRun() error {
	vals, err := c.requireQuery("action", "target", "monitor_from")
	if err != nil {
		return err
	}
	code, target, from := vals[0], vals[1], vals[2]
	pbx := c.r.URL.Query().Get("pbx")
	c.audit.FromExt, c.audit.ToNumber, c.audit.AgentID = from, target, pbx
	c.audit.Details, _ = json.Marshal(map[string]string{"action": code})
	if err := c.authorize(); err != nil {
		return err
	}
	act, ok := legacyMonitorActions[code]
	if !ok {
		return &Error{Status: http.StatusBadRequest, Code: CodeInvalidRequest, final: true,
			Message: "Invalid action " + strconv.Quote(code) + ": use 09 (подслушивание), 01 (суфлирование) or 02 (вмешательство)"}
	}
	c.audit.Details, _ = json.Marshal(map[string]string{"action": code, "mode": act.mode})
	if err := checkNumber("target", target); err != nil {
		return err
	}
	if err := checkNumber("monitor_from", from); err != nil {
		return err
	}
	ag, err := c.selectPBX(pbx)
	if err != nil {
		return err
	}
	c.audit.AgentID = ag.ID
	ent, err := c.enterprise()
	if err != nil {
		return err
	}
	res, err := c.monitor(ag, protocol.MonitorArgs{Mode: act.mode, Target: target, From: from})
	if err != nil {
		return err
	}
	return c.reply(http.StatusOK, legacyMonitorOK{
		Success: true, Message: "Monitoring initiated successfully: " + act.name + " for " + res.TargetPrefix,
		Action: code, ActionName: act.name, Target: target, MonitorFrom: from, TargetChannel: res.TargetPrefix,
		Enterprise: ent.Name, EnterpriseNumber: ent.Number, HostIP: c.api.hostOf(ag), ResponseTimeMS: c.elapsedMS(),
	})
}

type legacyHangupOK struct {
	Status  bool             `json:"status"`
	Message string           `json:"message"`
	Data    legacyHangupData `json:"data"`
}

type legacyHangupData struct {
	Channel      string `json:"channel"`
	UniqueID     string `json:"uniqueid"`
	TerminatedAt string `json:"terminated_at"`
	Duration     int64  `json:"duration"`
	// Count is set for hangup_all only, so a single hangup's bytes stay
	// exactly the old service's.
	Count int `json:"count,omitempty"`
}

// legacyTime is Carbon's toIso8601String: seconds and an explicit offset,
// never "Z".
const legacyTime = "2006-01-02T15:04:05-07:00"

// hideChannel keeps the technology only: "PJSIP/150-0000002a" → "PJSIP/***".
func hideChannel(ch string) string {
	if ch == "" {
		return ""
	}
	tech, _, _ := strings.Cut(ch, "/")
	return tech + "/***"
}

// legacyHangup is POST /api/v2/asterisk/call/hangup (JSON or form body:
// channel and/or uniqueid, reason, cause, hangup_all, force, pbx).
func (a *API) legacyHangup(c *call) error {
	req, err := c.legacyHangupBody()
	if err != nil {
		return err
	}
	c.auditHangupTarget(req)
	if err := legacyValidateHangup(req); err != nil {
		return err
	}
	if err := c.authorize(); err != nil {
		return &Error{Status: http.StatusForbidden, Code: CodeForbidden, Message: "This action is unauthorized."}
	}
	_, res, err := c.hangup(req)
	if err != nil {
		return legacyHangupFailure(err)
	}
	data := legacyHangupData{TerminatedAt: a.cfg.Now().In(a.cfg.Location).Format(legacyTime)}
	var latest time.Time
	for _, h := range res.Hungup {
		if h.HungupAt.After(latest) {
			latest = h.HungupAt
		}
	}
	if !latest.IsZero() {
		data.TerminatedAt = latest.In(a.cfg.Location).Format(legacyTime)
	}
	switch {
	case req.All:
		data.Channel, data.Count = "all", len(res.Hungup)
	case len(res.Hungup) > 0:
		h := res.Hungup[0]
		data.Channel, data.UniqueID, data.Duration = h.Channel, h.UniqueID, h.DurationMS/1000
		if a.cfg.HideChannelNames {
			data.Channel = hideChannel(h.Channel)
		}
	}
	return c.reply(http.StatusOK, legacyHangupOK{Status: true, Message: "Call hangup successful", Data: data})
}

func legacyValidateHangup(r hangupRequest) error {
	switch {
	case !r.All && r.Channel == "" && r.UniqueID == "":
		return legacyInvalid("The channel field is required when uniqueid is not present.")
	case r.All && (r.Channel != "" || r.UniqueID != ""):
		return legacyInvalid("The hangup_all field prohibits channel and uniqueid from being present.")
	case len(r.Channel) > maxIDBytes:
		return legacyInvalid("The channel field must not be greater than " + strconv.Itoa(maxIDBytes) + " characters.")
	case len(r.UniqueID) > maxIDBytes:
		return legacyInvalid("The uniqueid field must not be greater than " + strconv.Itoa(maxIDBytes) + " characters.")
	case len(r.Reason) > maxReasonBytes:
		return legacyInvalid("The reason field must not be greater than " + strconv.Itoa(maxReasonBytes) + " characters.")
	case r.Cause < 0 || r.Cause > maxCause:
		return legacyInvalid("The cause field must be between 0 and " + strconv.Itoa(maxCause) + ".")
	}
	return nil
}

func legacyInvalid(msg string) error {
	return &Error{Status: http.StatusBadRequest, Code: CodeInvalidRequest, Message: msg}
}

// legacyHangupFailure words failures as the Laravel endpoint did.
func legacyHangupFailure(err error) error {
	e, internal := asAPIError(err)
	if internal {
		return err
	}
	out := *e
	switch e.Code {
	case CodeNotFound:
		out.Message = "Channel not found"
	case CodeAMITimeout:
		out.Message = "AMI timeout: Asterisk did not answer in time"
	case CodePBXOffline, CodeAMIDown:
		out.Message = "PBX unavailable"
	case CodeRateLimited, CodePBXBusy:
		out.Message = "Too Many Attempts."
	case CodePBXRequired, CodeInvalidRequest:
		// ours, already clear
	default:
		out.Message = "Call hangup failed"
	}
	return &out
}

// legacyHangupBody reads JSON or a form, leniently as Laravel's request
// input does: unknown fields are ignored, numbers may be strings and
// booleans may be 1/0/"true"/"on".
// sniffJSON: `curl -d '{"channel":…}'` sends JSON as
// application/x-www-form-urlencoded, and some clients send no type at
// all. A body of either type that starts with "{" is JSON: no form a
// Laravel client sends starts with one.
func sniffJSON(ct string, body *bufio.Reader) bool {
	if ct != "" && ct != "application/x-www-form-urlencoded" {
		return false
	}
	for {
		b, err := body.Peek(1)
		if err != nil {
			return false
		}
		switch b[0] {
		case ' ', '\t', '\r', '\n':
			_, _ = body.ReadByte()
			continue
		}
		return b[0] == '{'
	}
}

func (c *call) legacyHangupBody() (hangupRequest, error) {
	var req hangupRequest
	fields := map[string]string{}
	ct, _, _ := mime.ParseMediaType(c.r.Header.Get("Content-Type"))
	body := bufio.NewReader(c.r.Body)
	if ct == "application/json" || strings.HasSuffix(ct, "+json") || sniffJSON(ct, body) {
		var raw map[string]json.RawMessage
		dec := json.NewDecoder(body)
		err := dec.Decode(&raw)
		if err == nil {
			// What follows the object is ignored, as before, but read: a
			// body read to its end keeps the connection (see finishBody).
			_, err = io.Copy(io.Discard, body)
		}
		if err != nil && !errors.Is(err, io.EOF) {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return req, &Error{Status: http.StatusRequestEntityTooLarge, Code: CodeBodyTooLarge, Message: "The request body is too large."}
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return req, &Error{Status: http.StatusRequestTimeout, Code: CodeRequestTimeout, Message: "The request body did not arrive in time."}
			}
			return req, legacyInvalid("The request body is not valid JSON.")
		}
		for k, v := range raw {
			fields[k] = jsonScalar(v)
		}
	} else {
		c.r.Body = io.NopCloser(body)
		if err := c.r.ParseMultipartForm(c.api.cfg.MaxBodyBytes); err != nil && !errors.Is(err, http.ErrNotMultipart) {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return req, &Error{Status: http.StatusRequestEntityTooLarge, Code: CodeBodyTooLarge, Message: "The request body is too large."}
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return req, &Error{Status: http.StatusRequestTimeout, Code: CodeRequestTimeout, Message: "The request body did not arrive in time."}
			}
			return req, legacyInvalid("The request body could not be read.")
		}
		for k, vs := range c.r.PostForm {
			if len(vs) > 0 {
				fields[k] = vs[0]
			}
		}
	}
	req.PBX, req.Channel, req.UniqueID, req.Reason = fields["pbx"], fields["channel"], fields["uniqueid"], fields["reason"]
	for _, s := range []*string{&req.PBX, &req.Channel, &req.UniqueID, &req.Reason} {
		*s = strings.TrimSpace(*s) // Laravel's TrimStrings middleware
		if !utf8.ValidString(*s) {
			return req, legacyInvalid("The request contains invalid UTF-8.")
		}
	}
	if s := strings.TrimSpace(fields["cause"]); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			return req, legacyInvalid("The cause field must be an integer.")
		}
		req.Cause = n
	}
	var ok bool
	if req.All, ok = laravelBool(fields["hangup_all"]); !ok {
		return req, legacyInvalid("The hangup_all field must be true or false.")
	}
	if req.Force, ok = laravelBool(fields["force"]); !ok {
		return req, legacyInvalid("The force field must be true or false.")
	}
	return req, nil
}

func jsonScalar(v json.RawMessage) string {
	var s string
	if json.Unmarshal(v, &s) == nil {
		return s
	}
	t := strings.TrimSpace(string(v))
	if t == "null" {
		return ""
	}
	return t
}

func laravelBool(s string) (v, ok bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "0", "false", "off", "no":
		return false, true
	case "1", "true", "on", "yes":
		return true, true
	}
	return false, false
}

// phpEscape rewrites compact JSON as PHP's json_encode writes it with
// default flags: "/" as "\/" and every non-ASCII character as \uXXXX
// (surrogate pairs above U+FFFF). Both only occur inside strings, so a
// byte-level pass is exact.
func phpEscape(b []byte) []byte {
	out := make([]byte, 0, len(b)+16)
	const hex = "0123456789abcdef"
	u4 := func(r rune) {
		out = append(out, '\\', 'u', hex[r>>12&0xf], hex[r>>8&0xf], hex[r>>4&0xf], hex[r&0xf])
	}
	for i := 0; i < len(b); {
		ch := b[i]
		switch {
		case ch == '/':
			out = append(out, '\\', '/')
			i++
		case ch < utf8.RuneSelf:
			out = append(out, ch)
			i++
		default:
			r, n := utf8.DecodeRune(b[i:])
			if r > 0xffff {
				r -= 0x10000
				u4(0xd800 + (r>>10)&0x3ff)
				u4(0xdc00 + r&0x3ff)
			} else {
				u4(r)
			}
			i += n
		}
	}
	return out
}

type healthResponse struct {
	Status  string `json:"status"`
	Service string `json:"service"`
	Port    int    `json:"port"`
}

// health is GET /health: the FastAPI service's liveness answer, with the
// port this request arrived on.
func (a *API) health(c *call) error {
	port := 0
	if addr, ok := c.ctx().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if tcp, ok := addr.(*net.TCPAddr); ok {
			port = tcp.Port
		}
	}
	return c.reply(http.StatusOK, healthResponse{Status: "healthy", Service: "switchboard", Port: port})
}

type statusResponse struct {
	Service  string       `json:"service"`
	Version  string       `json:"version"`
	Database string       `json:"database"`
	Agents   statusAgents `json:"agents"`
}

type statusAgents struct {
	Connected int `json:"connected"`
	Total     int `json:"total"`
}

// status is GET /api/status. It answers 200 even when the database does
// not ("database":"error"), as the old service did; /readyz is the probe
// that fails. The agent counts are what the caller may see: its
// enterprise's PBXs with a credential (?clientId= or a bearer token), the
// whole fleet for a platform admin, none without one.
func (a *API) status(c *call) error {
	out := statusResponse{Service: "switchboard", Version: a.cfg.Version, Database: "connected"}
	p, err := c.authenticate()
	switch {
	case errors.Is(err, auth.ErrMissingCredentials):
	case err != nil:
		return err
	case p.EnterpriseID == 0 && p.HasRole(auth.RolePlatformAdmin):
		// Both counts come from one list of the unrevoked agents, so
		// connected never exceeds total (an agent revoked a moment ago
		// may still hold its tunnel until the revocation check closes it).
		ctx, cancel := context.WithTimeout(c.ctx(), 2*time.Second)
		defer cancel()
		all, err := a.agents.fleet(ctx)
		if err != nil {
			c.log.Warn("status: database", "err", err)
			out.Database = "error"
			out.Agents.Connected = a.cfg.Directory.Len()
			out.Agents.Total = out.Agents.Connected
			break
		}
		for _, ag := range all {
			if ag.Revoked() {
				continue
			}
			out.Agents.Total++
			if _, ok := a.cfg.Directory.Get(ag.ID); ok {
				out.Agents.Connected++
			}
		}
	default:
		c.principal = &p
		agents, err := c.enterpriseAgents(false)
		if err != nil {
			c.log.Warn("status: database", "err", err)
			out.Database = "error"
		}
		out.Agents.Total = len(agents)
		for _, ag := range agents {
			if _, ok := a.cfg.Directory.Get(ag.ID); ok {
				out.Agents.Connected++
			}
		}
	}
	return c.reply(http.StatusOK, out)
}
