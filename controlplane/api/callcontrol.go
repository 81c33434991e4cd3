package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/store"
	"github.com/switchboard-pbx/switchboard/protocol"
)

// Audit actions of call control.
const (
	AuditTransfer         = "asterisk_transfer_call"
	AuditTransferComplete = "asterisk_transfer_complete"
	AuditTransferCancel   = "asterisk_transfer_cancel"
	AuditDTMF             = "asterisk_send_dtmf"
	AuditPark             = "asterisk_park_call"
	AuditPickup           = "asterisk_pickup_parked_call"
	AuditMute             = "asterisk_mute_call"
)

// Bounds checked here; the agent applies its own, configured ones.
const (
	maxDTMFDigits     = 256
	maxDTMFDurationMS = 10000
	maxPartyBytes     = 150
	maxLotBytes       = 79
	// dtmfDigitGap is what one DTMF digit adds to a request's deadline on
	// top of its duration: the agent's round trip and its confirmation.
	dtmfDigitGap = 50 * time.Millisecond
)

// checkParty bounds a party named in a request (an extension or a channel
// name); the agent checks what it may be.
func checkParty(field, v string) error {
	if len(v) > maxPartyBytes {
		return invalidf("field %q must be at most %d bytes", field, maxPartyBytes)
	}
	for i := 0; i < len(v); i++ {
		if v[i] < 0x20 || v[i] == 0x7f {
			return invalidf("field %q must not contain control characters", field)
		}
	}
	return nil
}

// callPBX authorizes the request and finds the PBX call id is on: the one
// named (ref), else the one the stored history places the call on, else
// the enterprise's only PBX; the audit row names it. rec is the call's
// stored record when finding the PBX read it, else nil.
func (c *call) callPBX(id, ref string) (store.Agent, *store.Call, error) {
	if err := c.authorize(); err != nil {
		return store.Agent{}, nil, err
	}
	ag, rec, err := c.locateCall(id, ref)
	if err != nil {
		return store.Agent{}, nil, err
	}
	c.audit.AgentID = ag.ID
	return ag, rec, nil
}

func (c *call) locateCall(id, ref string) (store.Agent, *store.Call, error) {
	if id == "" || len(id) > maxIDBytes {
		return store.Agent{}, nil, invalidf("call id must be 1-%d bytes", maxIDBytes)
	}
	if ref != "" {
		ag, err := c.selectPBX(ref)
		return ag, nil, err
	}
	rec, err := c.storedCall("", id)
	if err != nil {
		return store.Agent{}, nil, err
	}
	if rec == nil {
		ag, err := c.selectPBX("")
		return ag, nil, err
	}
	agents, err := c.enterpriseAgents(false)
	if err != nil {
		return store.Agent{}, nil, err
	}
	// The call's PBX may have registered after the cached list was read.
	ag, ok, err := c.findAgent(agents, rec.AgentID)
	switch {
	case err != nil:
		return store.Agent{}, nil, err
	case !ok:
		return store.Agent{}, nil, notFound("call", id)
	}
	return ag, rec, nil
}

// storedCall is call id's record in the history (on agentID, or on any
// PBX of the enterprise when empty); nil when the history does not have
// it (yet).
func (c *call) storedCall(agentID, id string) (*store.Call, error) {
	ctx, cancel := c.storeCtx()
	defer cancel()
	rec, err := c.api.cfg.Store.CallByID(ctx, c.principal.EnterpriseID, agentID, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, storeError(err)
	}
	return &rec, nil
}

// callParty is callPBX for a route whose party (field) defaults to the
// extension that placed the call (defaultParty); it reads the call's
// record only when it needs it and callPBX did not.
func (c *call) callParty(id, ref, field, party string) (store.Agent, string, error) {
	ag, rec, err := c.callPBX(id, ref)
	if err != nil {
		return store.Agent{}, "", err
	}
	if party == "" && ref != "" {
		if rec, err = c.storedCall(ag.ID, id); err != nil {
			return store.Agent{}, "", err
		}
	}
	party, err = defaultParty(field, party, id, rec)
	return ag, party, err
}

// defaultParty is v, or the from of a call placed through the API (an
// originate): the extension that placed it hands it over, parks it. A call
// the history does not have yet but whose id the agent made ("sb-…") was
// placed through the API: the agent takes its first leg ("").
func defaultParty(field, v, id string, rec *store.Call) (string, error) {
	switch {
	case v != "":
		return v, checkParty(field, v)
	case rec != nil && rec.Direction == "originate" && rec.From != "":
		return rec.From, nil
	case rec == nil && strings.HasPrefix(id, "sb-"):
		return "", nil
	}
	return "", invalidf("field %q is required: call %s was not placed through the API, so it has no default", field, id)
}

// extensionOf names the extension of a channel for a response:
// Local/150@inoffice-00000000;1 and PJSIP/150-0000002a are 150.
func extensionOf(channel string) string {
	_, rest, ok := strings.Cut(channel, "/")
	if !ok {
		return channel
	}
	if at := strings.IndexByte(rest, '@'); at >= 0 {
		return rest[:at]
	}
	if dash := strings.LastIndexByte(rest, '-'); dash > 0 {
		return rest[:dash]
	}
	return rest
}

// orParty is party, or the extension of the channel the agent took for it.
func orParty(party, channel string) string {
	if party != "" {
		return party
	}
	return extensionOf(channel)
}

type transferRequest struct {
	To         string `json:"to"`
	Mode       string `json:"mode"`
	Transferer string `json:"transferer,omitempty"`
	PBX        string `json:"pbx,omitempty"`
}

type transferResponse struct {
	CallID            string `json:"call_id"`
	PBX               string `json:"pbx"`
	Mode              string `json:"mode"`
	To                string `json:"to"`
	Transferer        string `json:"transferer"`
	Status            string `json:"status"`
	TransfererChannel string `json:"transferer_channel"`
	TransfereeChannel string `json:"transferee_channel"`
}

// transferCall is POST /v1/calls/{id}/transfer.
func (a *API) transferCall(c *call) error {
	id := c.r.PathValue("id")
	var req transferRequest
	if err := c.decodeJSON(&req); err != nil {
		return err
	}
	c.audit.UniqueID, c.audit.ToNumber, c.audit.FromExt, c.audit.AgentID = id, req.To, req.Transferer, req.PBX
	c.audit.Details, _ = json.Marshal(map[string]string{"mode": req.Mode})
	var err error
	if req.To, err = normalizeNumber("to", req.To); err != nil {
		return err
	}
	switch req.Mode {
	case protocol.TransferBlind, protocol.TransferAttended:
	case "":
		return invalidf("field \"mode\" is required: blind or attended")
	default:
		return invalidf("field \"mode\" must be blind or attended, got %q", req.Mode)
	}
	ag, transferer, err := c.callParty(id, req.PBX, "transferer", req.Transferer)
	if err != nil {
		return err
	}
	req.Transferer = transferer
	c.audit.FromExt, c.audit.ToNumber = req.Transferer, req.To
	var res protocol.TransferResult
	args := protocol.TransferArgs{CallID: id, Transferer: req.Transferer, To: req.To, Mode: req.Mode, By: c.principal.ID}
	if err := c.agentCall(ag.ID, protocol.OpTransfer, args, &res); err != nil {
		return err
	}
	c.audit.Channel = res.TransfererChannel
	return c.reply(http.StatusOK, transferResponse{CallID: id, PBX: ag.ID, Mode: res.Mode, To: res.To, Transferer: orParty(req.Transferer, res.TransfererChannel),
		Status: res.Status, TransfererChannel: res.TransfererChannel, TransfereeChannel: res.TransfereeChannel})
}

type transferControlRequest struct {
	Transferer string `json:"transferer,omitempty"`
	PBX        string `json:"pbx,omitempty"`
}

type transferControlResponse struct {
	CallID            string `json:"call_id"`
	PBX               string `json:"pbx"`
	Status            string `json:"status"`
	To                string `json:"to,omitempty"`
	Transferer        string `json:"transferer"`
	TransfererChannel string `json:"transferer_channel"`
	TargetChannel     string `json:"target_channel,omitempty"`
}

// completeTransfer is POST /v1/calls/{id}/transfer/complete.
func (a *API) completeTransfer(c *call) error {
	return a.controlTransfer(c, protocol.OpTransferComplete)
}

// cancelTransfer is POST /v1/calls/{id}/transfer/cancel.
func (a *API) cancelTransfer(c *call) error { return a.controlTransfer(c, protocol.OpTransferCancel) }

func (a *API) controlTransfer(c *call, op string) error {
	id := c.r.PathValue("id")
	var req transferControlRequest
	if err := c.decodeOptionalJSON(&req); err != nil {
		return err
	}
	c.audit.UniqueID, c.audit.FromExt, c.audit.AgentID = id, req.Transferer, req.PBX
	ag, transferer, err := c.callParty(id, req.PBX, "transferer", req.Transferer)
	if err != nil {
		return err
	}
	req.Transferer = transferer
	c.audit.FromExt = req.Transferer
	var res protocol.TransferControlResult
	if err := c.agentCall(ag.ID, op, protocol.TransferControlArgs{CallID: id, Transferer: req.Transferer, By: c.principal.ID}, &res); err != nil {
		return err
	}
	c.audit.Channel, c.audit.ToNumber = res.TransfererChannel, res.To
	return c.reply(http.StatusOK, transferControlResponse{CallID: id, PBX: ag.ID, Status: res.Status, To: res.To,
		Transferer: orParty(req.Transferer, res.TransfererChannel), TransfererChannel: res.TransfererChannel, TargetChannel: res.TargetChannel})
}

type dtmfRequest struct {
	Digits     string `json:"digits"`
	DurationMS int    `json:"duration_ms,omitempty"`
	Party      string `json:"party"`
	PBX        string `json:"pbx,omitempty"`
}

type dtmfResponse struct {
	CallID     string `json:"call_id"`
	PBX        string `json:"pbx"`
	Party      string `json:"party"`
	Channel    string `json:"channel"`
	Digits     string `json:"digits"`
	DurationMS int    `json:"duration_ms"`
}

// sendDTMF is POST /v1/calls/{id}/dtmf.
func (a *API) sendDTMF(c *call) error {
	id := c.r.PathValue("id")
	var req dtmfRequest
	if err := c.decodeJSON(&req); err != nil {
		return err
	}
	c.audit.UniqueID, c.audit.ToNumber, c.audit.AgentID = id, req.Party, req.PBX
	c.audit.Details, _ = json.Marshal(map[string]any{"digits": len(req.Digits), "duration_ms": req.DurationMS})
	switch {
	case req.Digits == "":
		return invalidf("field \"digits\" is required: 0-9 * # A-D")
	case len(req.Digits) > maxDTMFDigits:
		return invalidf("field \"digits\" must be at most %d characters", maxDTMFDigits)
	case req.DurationMS < 0 || req.DurationMS > maxDTMFDurationMS:
		return invalidf("field \"duration_ms\" must be 0-%d (0: the PBX agent's default)", maxDTMFDurationMS)
	case req.Party == "":
		return invalidf("field \"party\" is required: the extension or channel of the call that hears the digits")
	}
	for _, d := range req.Digits {
		if !(d >= '0' && d <= '9' || d == '*' || d == '#' || d >= 'A' && d <= 'D') {
			return invalidf("field \"digits\" must be 0-9 * # A-D, got %q", req.Digits)
		}
	}
	if err := checkParty("party", req.Party); err != nil {
		return err
	}
	ag, _, err := c.callPBX(id, req.PBX)
	if err != nil {
		return err
	}
	per := time.Duration(req.DurationMS) * time.Millisecond
	if per == 0 {
		per = 100 * time.Millisecond
	}
	within := c.api.cfg.AMITimeout + time.Duration(len(req.Digits))*(per+dtmfDigitGap)
	var res protocol.DTMFResult
	args := protocol.DTMFArgs{CallID: id, Party: req.Party, Digits: req.Digits, DurationMS: req.DurationMS, By: c.principal.ID}
	if err := c.agentCallWithin(within, ag.ID, protocol.OpDTMF, args, &res); err != nil {
		return err
	}
	c.audit.Channel = res.Channel
	return c.reply(http.StatusOK, dtmfResponse{CallID: id, PBX: ag.ID, Party: req.Party, Channel: res.Channel, Digits: res.Digits, DurationMS: res.DurationMS})
}

type parkRequest struct {
	Lot      string `json:"lot,omitempty"`
	TimeoutS int    `json:"timeout_s,omitempty"`
	Parker   string `json:"parker,omitempty"`
	PBX      string `json:"pbx,omitempty"`
}

type parkResponse struct {
	CallID        string `json:"call_id"`
	PBX           string `json:"pbx"`
	Lot           string `json:"lot"`
	Space         string `json:"space"`
	TimeoutS      int    `json:"timeout_s"`
	Parker        string `json:"parker"`
	Channel       string `json:"channel"`
	ParkerChannel string `json:"parker_channel"`
}

// parkCall is POST /v1/calls/{id}/park.
func (a *API) parkCall(c *call) error {
	id := c.r.PathValue("id")
	var req parkRequest
	if err := c.decodeOptionalJSON(&req); err != nil {
		return err
	}
	c.audit.UniqueID, c.audit.FromExt, c.audit.AgentID = id, req.Parker, req.PBX
	c.audit.Details, _ = json.Marshal(map[string]any{"lot": req.Lot, "timeout_s": req.TimeoutS})
	if len(req.Lot) > maxLotBytes {
		return invalidf("field \"lot\" must be at most %d bytes", maxLotBytes)
	}
	if err := checkTimeout(req.TimeoutS); err != nil {
		return err
	}
	ag, parker, err := c.callParty(id, req.PBX, "parker", req.Parker)
	if err != nil {
		return err
	}
	req.Parker = parker
	c.audit.FromExt = req.Parker
	var res protocol.ParkResult
	args := protocol.ParkArgs{CallID: id, Parker: req.Parker, Lot: req.Lot, TimeoutS: req.TimeoutS, By: c.principal.ID}
	if err := c.agentCall(ag.ID, protocol.OpPark, args, &res); err != nil {
		return err
	}
	c.audit.Channel = res.Channel
	c.audit.Details, _ = json.Marshal(map[string]any{"lot": res.Lot, "space": res.Space, "timeout_s": res.TimeoutS})
	return c.reply(http.StatusOK, parkResponse{CallID: id, PBX: ag.ID, Lot: res.Lot, Space: res.Space, TimeoutS: res.TimeoutS,
		Parker: orParty(req.Parker, res.ParkerChannel), Channel: res.Channel, ParkerChannel: res.ParkerChannel})
}

// parkedCall is a parked call with the PBX it is on.
type parkedCall struct {
	PBX string `json:"pbx"`
	protocol.ParkedCall
}

type parkedResponse struct {
	Parked      []parkedCall     `json:"parked"`
	Unavailable []pbxUnavailable `json:"unavailable"`
}

// listParked is GET /v1/parked[?pbx=][&lot=]: the parked calls of the
// caller's PBXs, like GET /v1/channels: with ?pbx= that PBX's failure is
// the response's; without, PBXs that could not answer are listed under
// "unavailable".
func (a *API) listParked(c *call) error {
	q := c.r.URL.Query()
	args := protocol.ParkedArgs{Lot: q.Get("lot")}
	if len(args.Lot) > maxLotBytes {
		return invalidf("query \"lot\" must be at most %d bytes", maxLotBytes)
	}
	answers, err := askPBXs[protocol.ParkedResult](c, q.Get("pbx"), protocol.OpParked, args)
	if err != nil {
		return err
	}
	out := parkedResponse{Parked: []parkedCall{}, Unavailable: []pbxUnavailable{}}
	for _, an := range answers {
		if an.Err != nil {
			out.Unavailable = append(out.Unavailable, unavailable(an.Agent, an.Err))
			continue
		}
		for _, p := range an.Result.Parked {
			out.Parked = append(out.Parked, parkedCall{PBX: an.Agent.ID, ParkedCall: p})
		}
	}
	return c.reply(http.StatusOK, out)
}

type pickupRequest struct {
	To       string `json:"to"`
	TimeoutS int    `json:"timeout_s,omitempty"`
	PBX      string `json:"pbx,omitempty"`
}

type pickupResponse struct {
	CallID       string `json:"call_id"`
	PBX          string `json:"pbx"`
	Lot          string `json:"lot"`
	Space        string `json:"space"`
	To           string `json:"to"`
	Status       string `json:"status"`
	PickupCallID string `json:"pickup_call_id"`
}

// pickupParked is POST /v1/parked/{lot}/{space}/pickup: 200 once To took
// the call, 202 while To is still ringing (call.unparked follows).
func (a *API) pickupParked(c *call) error {
	lot, space := c.r.PathValue("lot"), c.r.PathValue("space")
	var req pickupRequest
	if err := c.decodeJSON(&req); err != nil {
		return err
	}
	c.audit.ToNumber, c.audit.AgentID = req.To, req.PBX
	c.audit.Details, _ = json.Marshal(map[string]string{"lot": lot, "space": space})
	var err error
	if req.To, err = normalizeNumber("to", req.To); err != nil {
		return err
	}
	if len(lot) > maxLotBytes || len(space) > 16 {
		return invalidf("lot and space must be at most %d and 16 bytes", maxLotBytes)
	}
	if err := checkTimeout(req.TimeoutS); err != nil {
		return err
	}
	c.audit.ToNumber = req.To
	if err := c.authorize(); err != nil {
		return err
	}
	ag, err := c.selectPBX(req.PBX)
	if err != nil {
		return err
	}
	c.audit.AgentID = ag.ID
	var res protocol.ParkedPickupResult
	args := protocol.ParkedPickupArgs{Lot: lot, Space: space, To: req.To, TimeoutS: req.TimeoutS, By: c.principal.ID}
	if err := c.agentCall(ag.ID, protocol.OpParkedPickup, args, &res); err != nil {
		return err
	}
	c.audit.UniqueID = res.CallID
	status := http.StatusOK
	if res.Status == protocol.PickupRinging {
		status = http.StatusAccepted
	}
	return c.reply(status, pickupResponse{CallID: res.CallID, PBX: ag.ID, Lot: lot, Space: space, To: req.To,
		Status: res.Status, PickupCallID: res.PickupCallID})
}

type muteRequest struct {
	Party     string `json:"party"`
	Direction string `json:"direction"`
	Muted     *bool  `json:"muted"`
	PBX       string `json:"pbx,omitempty"`
}

type muteResponse struct {
	CallID    string `json:"call_id"`
	PBX       string `json:"pbx"`
	Party     string `json:"party"`
	Channel   string `json:"channel"`
	Direction string `json:"direction"`
	Muted     bool   `json:"muted"`
}

// muteCall is POST /v1/calls/{id}/mute.
func (a *API) muteCall(c *call) error {
	id := c.r.PathValue("id")
	var req muteRequest
	if err := c.decodeJSON(&req); err != nil {
		return err
	}
	c.audit.UniqueID, c.audit.FromExt, c.audit.AgentID = id, req.Party, req.PBX
	switch {
	case req.Party == "":
		return invalidf("field \"party\" is required: the extension or channel of the call to mute")
	case req.Direction != protocol.MuteIn && req.Direction != protocol.MuteOut && req.Direction != protocol.MuteAll:
		return invalidf("field \"direction\" must be in, out or all (lower case), got %q", req.Direction)
	case req.Muted == nil:
		return invalidf("field \"muted\" is required: true or false")
	}
	c.audit.Details, _ = json.Marshal(map[string]any{"direction": req.Direction, "muted": *req.Muted})
	if err := checkParty("party", req.Party); err != nil {
		return err
	}
	ag, _, err := c.callPBX(id, req.PBX)
	if err != nil {
		return err
	}
	var res protocol.MuteResult
	args := protocol.MuteArgs{CallID: id, Party: req.Party, Direction: req.Direction, Muted: *req.Muted, By: c.principal.ID}
	if err := c.agentCall(ag.ID, protocol.OpMute, args, &res); err != nil {
		return err
	}
	c.audit.Channel = res.Channel
	return c.reply(http.StatusOK, muteResponse{CallID: id, PBX: ag.ID, Party: req.Party, Channel: res.Channel, Direction: res.Direction, Muted: res.Muted})
}
