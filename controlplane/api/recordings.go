package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/events"
	"github.com/switchboard-pbx/switchboard/controlplane/fleet"
	"github.com/switchboard-pbx/switchboard/protocol"
)

// Audit actions of the recording routes.
const (
	AuditRecordingStart    = "recording_start"
	AuditRecordingStop     = "recording_stop"
	AuditRecordingMute     = "recording_mute"
	AuditRecordingDownload = "recording_download"
)

// DefaultRecordingDownloadTimeout bounds one recording download, from the
// request to the PBX to the last byte sent: a 1-hour call in 8 kHz 16-bit
// WAV is 57 MB, some minutes on a slow link.
const DefaultRecordingDownloadTimeout = 10 * time.Minute

// recordingView is a recording as the API shows it. Its id names the PBX
// and the agent's recording ("<pbx id>.<recording id>"), so GET
// /v1/recordings/{id} needs nothing else.
type recordingView struct {
	ID          string     `json:"id"`
	PBX         string     `json:"pbx"`
	RecordingID string     `json:"recording_id"`
	CallID      string     `json:"call_id"`
	Channel     string     `json:"channel,omitempty"`
	File        string     `json:"file,omitempty"`
	StartedAt   time.Time  `json:"started_at"`
	StoppedAt   *time.Time `json:"stopped_at,omitempty"`
	Muted       string     `json:"muted,omitempty"`
	URL         string     `json:"url"`
}

func recordingID(pbx, rec string) string { return pbx + "." + rec }

func viewRecording(pbx string, r protocol.Recording) recordingView {
	id := recordingID(pbx, r.ID)
	return recordingView{ID: id, PBX: pbx, RecordingID: r.ID, CallID: r.CallID, Channel: r.Channel, File: r.File,
		StartedAt: r.StartedAt.UTC(), StoppedAt: timePtr(derefTime(r.StoppedAt)), Muted: r.Muted, URL: "/v1/recordings/" + id}
}

func derefTime(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}

// splitRecordingID reads "<pbx id>.<recording id>"; a bare recording id
// has no PBX.
func splitRecordingID(id string) (pbx, rec string) {
	if i := strings.LastIndexByte(id, '.'); i > 0 {
		return id[:i], id[i+1:]
	}
	return "", id
}

type recordingRequest struct {
	PBX         string `json:"pbx,omitempty"`
	RecordingID string `json:"recording_id,omitempty"`
	Direction   string `json:"direction,omitempty"`
	Muted       *bool  `json:"muted,omitempty"`
}

type recordingsResponse struct {
	PBX        string          `json:"pbx"`
	CallID     string          `json:"call_id"`
	Recordings []recordingView `json:"recordings"`
}

// recordingOp runs one recording operation on call {id} after the
// route's checks.
func (c *call) recordingOp(req recordingRequest, op string, args func(call, rec string) any, status int) error {
	id := c.r.PathValue("id")
	c.audit.UniqueID, c.audit.AgentID = id, req.PBX
	if len(id) > maxIDBytes {
		return invalidf("call id must be at most %d bytes", maxIDBytes)
	}
	pbx, rec := splitRecordingID(req.RecordingID)
	if pbx != "" && req.PBX == "" {
		req.PBX = pbx
	}
	ag, _, err := c.callPBX(id, req.PBX)
	if err != nil {
		return err
	}
	if pbx != "" && pbx != ag.ID {
		return invalidf("recording %q is not on PBX %s", req.RecordingID, ag.ID)
	}
	var res protocol.RecordingsResult
	if err := c.agentCall(ag.ID, op, args(id, rec), &res); err != nil {
		return err
	}
	out := recordingsResponse{PBX: ag.ID, CallID: id, Recordings: make([]recordingView, 0, len(res.Recordings))}
	var ids []string
	for _, r := range res.Recordings {
		v := viewRecording(ag.ID, r)
		out.Recordings = append(out.Recordings, v)
		ids = append(ids, v.ID)
	}
	c.audit.Details, _ = json.Marshal(map[string]any{"recordings": ids, "direction": req.Direction, "muted": req.Muted})
	return c.reply(status, out)
}

// startRecording is POST /v1/calls/{id}/recording/start [{"pbx"}].
func (a *API) startRecording(c *call) error {
	var req recordingRequest
	if err := c.decodeOptionalJSON(&req); err != nil {
		return err
	}
	if req.RecordingID != "" || req.Direction != "" || req.Muted != nil {
		return invalidf("only \"pbx\" is accepted here: the agent names the recording")
	}
	return c.recordingOp(req, protocol.OpRecordingStart, func(call, _ string) any {
		return protocol.RecordingStartArgs{CallID: call}
	}, http.StatusCreated)
}

// stopRecording is POST /v1/calls/{id}/recording/stop [{"recording_id",
// "pbx"}]: one recording, or every one the agent started on the call.
func (a *API) stopRecording(c *call) error {
	var req recordingRequest
	if err := c.decodeOptionalJSON(&req); err != nil {
		return err
	}
	if req.Direction != "" || req.Muted != nil {
		return invalidf("only \"recording_id\" and \"pbx\" are accepted here")
	}
	return c.recordingOp(req, protocol.OpRecordingStop, func(call, rec string) any {
		return protocol.RecordingStopArgs{CallID: call, RecordingID: rec}
	}, http.StatusOK)
}

// muteRecording is POST /v1/calls/{id}/recording/mute {"direction":
// "in"|"out"|"both", "muted": true}: Asterisk 22's pause.
func (a *API) muteRecording(c *call) error {
	var req recordingRequest
	if err := c.decodeJSON(&req); err != nil {
		return err
	}
	switch req.Direction {
	case protocol.RecordIn, protocol.RecordOut, protocol.RecordBoth:
	default:
		return invalidf("field \"direction\" must be in, out or both, got %q", req.Direction)
	}
	if req.Muted == nil {
		return invalidf("field \"muted\" is required: true or false")
	}
	return c.recordingOp(req, protocol.OpRecordingMute, func(call, rec string) any {
		return protocol.RecordingMuteArgs{CallID: call, RecordingID: rec, Direction: req.Direction, Muted: *req.Muted}
	}, http.StatusOK)
}

// byteRange is a parsed Range header: one range of bytes, or none.
type byteRange struct {
	set         bool
	start, end  int64 // end -1: to the end of the file
	suffix      int64 // bytes=-N: the last N bytes
	unsatisfied bool
}

// parseRange reads "bytes=a-b", "bytes=a-" and "bytes=-n". Anything else
// (several ranges, other units, garbage) is ignored and the whole file is
// sent, as RFC 9110 allows.
func parseRange(h string) byteRange {
	spec, ok := strings.CutPrefix(strings.TrimSpace(h), "bytes=")
	if !ok || strings.Contains(spec, ",") {
		return byteRange{}
	}
	first, last, ok := strings.Cut(strings.TrimSpace(spec), "-")
	if !ok {
		return byteRange{}
	}
	if first == "" {
		n, err := strconv.ParseInt(last, 10, 64)
		if err != nil || n < 0 {
			return byteRange{}
		}
		if n == 0 {
			return byteRange{set: true, unsatisfied: true}
		}
		return byteRange{set: true, suffix: n}
	}
	start, err := strconv.ParseInt(first, 10, 64)
	if err != nil || start < 0 {
		return byteRange{}
	}
	r := byteRange{set: true, start: start, end: -1}
	if last != "" {
		end, err := strconv.ParseInt(last, 10, 64)
		if err != nil || end < start {
			return byteRange{}
		}
		r.end = end
	}
	return r
}

func (r byteRange) args(id string) protocol.RecordingFetchArgs {
	a := protocol.RecordingFetchArgs{RecordingID: id}
	switch {
	case !r.set:
	case r.suffix > 0:
		a.Suffix = r.suffix
	default:
		a.Offset = r.start
		if n := r.end - r.start; r.end >= 0 && n < math.MaxInt64 {
			a.Length = n + 1
		}
	}
	return a
}

// downloadRecording is GET /v1/recordings/{id}: the file, streamed from
// the PBX through its tunnel (no inbound port), as audio/wav, with one
// Range. The body is copied as it arrives, one chunk at a time.
func (a *API) downloadRecording(c *call) error {
	id := c.r.PathValue("id")
	pbx, rec := splitRecordingID(id)
	c.audit.UniqueID = id
	if pbx == "" || len(id) > 2*maxIDBytes {
		return notFound("recording", id)
	}
	agents, err := c.enterpriseAgents(false)
	if err != nil {
		return err
	}
	ag, ok, err := c.findAgent(agents, pbx)
	if err != nil {
		return err
	}
	if !ok || ag.ID != pbx {
		return notFound("recording", id)
	}
	c.audit.AgentID = ag.ID
	rng := parseRange(c.r.Header.Get("Range"))
	c.audit.Details, _ = json.Marshal(map[string]any{"range": c.r.Header.Get("Range")})
	if rng.unsatisfied {
		return errorf(http.StatusRequestedRangeNotSatisfiable, CodeInvalidRequest, "range bytes=-0 selects nothing")
	}
	if err := c.writeIntent(); err != nil {
		return err
	}
	timeout := a.cfg.RecordingDownloadTimeout
	ctx, cancel := context.WithTimeout(fleet.WithRequestID(context.WithoutCancel(c.ctx()), c.id), timeout)
	defer cancel()
	// Through the Caller: with several replicas the PBX's holder serves
	// the bytes and they stream through this one.
	var file protocol.RecordingFile
	body, err := a.cfg.Caller.Fetch(ctx, ag.ID, protocol.OpRecordingFetch, rng.args(rec), &file)
	if err != nil {
		return agentError(ag.ID, timeout.String(), err)
	}
	defer body.Close()
	if rng.set && file.Length == 0 && file.Size > 0 {
		c.setHeader("Content-Range", fmt.Sprintf("bytes */%d", file.Size))
		return errorf(http.StatusRequestedRangeNotSatisfiable, CodeInvalidRequest, "range %q is outside the recording's %d bytes", c.r.Header.Get("Range"), file.Size)
	}
	return c.streamRecording(ctx, file, body, rng.set)
}

// streamRecording writes the response itself: headers, then the bytes as
// they come from the tunnel, under the download's deadline.
func (c *call) streamRecording(ctx context.Context, file protocol.RecordingFile, body io.Reader, ranged bool) error {
	c.mustBeAuthorized()
	c.wroteOwn = true
	c.finishBody()
	h := c.w.Header()
	h.Set("Content-Type", "audio/wav")
	h.Set("Content-Length", strconv.FormatInt(file.Length, 10))
	h.Set("Accept-Ranges", "bytes")
	h.Set("Cache-Control", "private, no-store")
	h.Set("Content-Disposition", `attachment; filename="`+file.RecordingID+`.wav"`)
	if !file.ModTime.IsZero() {
		h.Set("Last-Modified", file.ModTime.UTC().Format(http.TimeFormat))
	}
	status := http.StatusOK
	if ranged {
		status = http.StatusPartialContent
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", file.Offset, file.Offset+file.Length-1, file.Size))
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = http.NewResponseController(c.w).SetWriteDeadline(dl)
	}
	c.w.WriteHeader(status)
	if c.r.Method == http.MethodHead {
		c.replied = c.api.cfg.Now()
		return nil // the headers only: the body is closed unread
	}
	n, err := io.Copy(c.w, body)
	c.replied = c.api.cfg.Now()
	if err != nil || n != file.Length {
		// The status is sent: the client sees a body shorter than its
		// Content-Length, and net/http closes the connection.
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
			c.api.cfg.Observer.ConnShed("recording_download_timeout")
		}
		c.log.Warn("recording download cut short", "recording_id", file.RecordingID, "sent", n, "length", file.Length, "err", err)
	}
	return nil
}

// callDetail is GET /v1/calls/{id}: the call, its timeline and its
// recordings.
type callDetail struct {
	events.CallDetail
	Recordings []recordingView `json:"recordings"`
}

// callRecordings lists the recordings the agent started on a call, from
// its timeline's recording.started and recording.stopped events (a
// recording the dialplan started has no id, so nothing to download).
func callRecordings(d events.CallDetail) []recordingView {
	out := []recordingView{}
	index := map[string]int{}
	for _, raw := range d.Events {
		var e protocol.Event
		if err := json.Unmarshal(raw, &e); err != nil || e.RecordingID == "" {
			continue
		}
		switch e.Type {
		case protocol.EventRecordingStarted:
			if _, seen := index[e.RecordingID]; seen {
				continue
			}
			index[e.RecordingID] = len(out)
			out = append(out, viewRecording(d.PBX, protocol.Recording{ID: e.RecordingID, CallID: d.CallID, Channel: e.Channel,
				File: e.File, StartedAt: e.Time}))
		case protocol.EventRecordingStopped:
			if i, ok := index[e.RecordingID]; ok {
				out[i].StoppedAt = timePtr(e.Time)
			}
		}
	}
	return out
}
