package ops

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-pbx/switchboard/agent/channels"
	"github.com/switchboard-pbx/switchboard/protocol"
	"github.com/switchboard-pbx/switchboard/protocol/ami"
)

// AMI is what the handler needs of the AMI client; *ami.Client fits through
// FromClient. It is an interface so error paths can be tested with a
// small fake as well as against amitest.
type AMI interface {
	Action(ctx context.Context, m *ami.Message) (*ami.Message, error)
	List(ctx context.Context, m *ami.Message) (*ami.ListResult, error)
	Originate(ctx context.Context, m *ami.Message) (Pending, error)
	Ping(ctx context.Context) (time.Duration, error)
	Connected() bool
}

// Pending is a queued Originate (*ami.Originating).
type Pending interface {
	ActionID() string
	Wait(ctx context.Context) (*ami.OriginateResult, error)
}

// FromClient adapts the AMI client to the AMI interface.
func FromClient(c *ami.Client) AMI { return clientAMI{c} }

type clientAMI struct{ *ami.Client }

func (c clientAMI) Originate(ctx context.Context, m *ami.Message) (Pending, error) {
	o, err := c.Client.Originate(ctx, m)
	if err != nil {
		return nil, err
	}
	return o, nil
}

// Defaults of Config.
const (
	DefaultContext                 = "inoffice"
	DefaultMaxConcurrentOriginates = 16
	DefaultOriginateResultGrace    = 30 * time.Second
)

// Config configures a Handler.
type Config struct {
	AMI      AMI             // required
	Channels *channels.Table // required: answers channels, resolves hangup and monitor targets
	// Context is the dialplan context of Local/<ext>@<context> dial
	// strings (the seed's "inoffice").
	Context string
	Limits  Limits
	// MaxConcurrentOriginates bounds the calls being set up at once
	// (originate and monitor): from the request until Asterisk's
	// OriginateResponse. More are refused with ErrBusy, so a runaway
	// client cannot ring every phone of the PBX at once.
	MaxConcurrentOriginates int
	// OriginateResultGrace is how long past its ring timeout a call holds
	// its slot waiting for the OriginateResponse (Asterisk sends it after
	// the timeout; the grace covers Local channel setup and a slow PBX).
	OriginateResultGrace time.Duration
	// Status reports the agent's status for the status op; nil means a
	// status built from the AMI state and the channel table only.
	Status func() protocol.Status
	// ExpectOriginate and ExpectMonitor, when set, are told about a call
	// just before its Originate is sent, so the call lifecycle tracker
	// knows the call before its first event (calls.Tracker's hints).
	ExpectOriginate func(callID, from, to string)
	ExpectMonitor   func(spyCallID, target string)
	// Ops, when not empty, is the allow-list of operations this agent
	// runs (its ops = … config); others answer ErrCodeOpDisabled. Empty:
	// every operation.
	Ops []string
	// ExpectHangup, when set, is told who asked for a channel's hangup
	// (HangupArgs.By) just before it is sent, so call.ended names them.
	ExpectHangup func(uniqueid, by string)
	// ConfirmTimeout bounds the wait for the events that confirm an
	// operation (confirm.go), within the request's deadline; past it the
	// operation answers not_confirmed (DefaultConfirmTimeout; 100ms..1m).
	ConfirmTimeout time.Duration
	// Queues and Recordings configure the queue and recording operations
	// (queues.go, recording.go).
	Queues     QueueConfig
	Recordings RecordingConfig
	// Call control (callcontrol.go): DTMF is the second AMI session
	// PlayDTMF runs on, since it holds its session for each digit (nil:
	// AMI, which each digit then holds); CallControl bounds the
	// operations; ExpectTransfer, ExpectPark and ExpectPickup, when set,
	// tell the call tracker who asked, just before the action is sent.
	DTMF           AMI
	CallControl    CallControl
	ExpectTransfer func(uniqueid, by, mode, to string)
	ExpectPark     func(uniqueid, by string)
	ExpectPickup   func(pickupCallID, parkedCallID, by string)
	// NewCallID generates call ids; nil means NewCallID.
	NewCallID func() string
	Logger    *slog.Logger // nil discards
	Now       func() time.Time
}

// Validate says exactly what is wrong with the configuration.
func (c Config) Validate() error {
	var errs []error
	if c.AMI == nil {
		errs = append(errs, errors.New("AMI is nil"))
	}
	if c.Channels == nil {
		errs = append(errs, errors.New("Channels is nil"))
	}
	if c.Context != "" {
		if err := CheckContext(c.Context); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, CheckOps(c.Ops))
	if err := c.Limits.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.CallControl.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.MaxConcurrentOriginates < 0 {
		errs = append(errs, fmt.Errorf("MaxConcurrentOriginates %d is negative", c.MaxConcurrentOriginates))
	}
	if c.OriginateResultGrace < 0 {
		errs = append(errs, fmt.Errorf("OriginateResultGrace %v is negative", c.OriginateResultGrace))
	}
	errs = append(errs, c.Queues.Validate(), c.Recordings.Validate(), CheckConfirmTimeout(c.ConfirmTimeout))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid ops config: %w", err)
	}
	return nil
}

// CheckOps refuses an allow-list of operations naming one that is not in
// protocol.Ops (agent configuration).
func CheckOps(ops []string) error {
	var errs []error
	for _, op := range ops {
		if !slices.Contains(protocol.Ops, op) {
			errs = append(errs, fmt.Errorf("Ops: unknown operation %q (known: %s)", op, strings.Join(protocol.Ops, ", ")))
		}
	}
	return errors.Join(errs...)
}

func (c *Config) fill() {
	c.Context = cmp.Or(c.Context, DefaultContext)
	c.Limits.fill()
	c.CallControl.fill()
	if c.DTMF == nil {
		c.DTMF = c.AMI
	}
	c.MaxConcurrentOriginates = cmp.Or(c.MaxConcurrentOriginates, DefaultMaxConcurrentOriginates)
	c.OriginateResultGrace = cmp.Or(c.OriginateResultGrace, DefaultOriginateResultGrace)
	c.Queues.fill()
	c.Recordings.fill()
	c.ConfirmTimeout = cmp.Or(c.ConfirmTimeout, DefaultConfirmTimeout)
	if c.NewCallID == nil {
		c.NewCallID = NewCallID
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Handler runs typed operations against one PBX. It is safe for
// concurrent use. Close it to stop the goroutines that wait for queued
// originates to be answered.
type Handler struct {
	cfg   Config
	log   *slog.Logger
	slots chan struct{}

	// life bounds the waits for OriginateResponse; it is the handler's
	// lifetime, not a request's, because the wait outlives the request.
	life   context.Context
	cancel context.CancelFunc
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup

	// The operations waiting for the events that confirm them, and those
	// answered not_confirmed (confirm.go).
	waits          waiters
	unconfirmedOps unconfirmedCounts
	// The recordings this agent started (recording.go).
	recs recordings
	// Call control (callcontrol.go).
	xfers    transfers
	dtmf     AMI           // Config.DTMF
	dtmfTurn chan struct{} // one DTMF request plays at a time
}

// New validates cfg, fills defaults and returns a Handler.
func New(cfg Config) (*Handler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.fill()
	life, cancel := context.WithCancel(context.Background())
	return &Handler{
		cfg:      cfg,
		log:      cfg.Logger,
		slots:    make(chan struct{}, cfg.MaxConcurrentOriginates),
		life:     life,
		cancel:   cancel,
		xfers:    transfers{max: cfg.CallControl.MaxTransfers},
		dtmf:     cfg.DTMF,
		dtmfTurn: make(chan struct{}, 1),
	}, nil
}

// Close stops waiting for queued originates and waits for those
// goroutines to end. Requests after Close still run but hold no slot
// beyond their own return.
func (h *Handler) Close() {
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	h.cancel()
	h.wg.Wait()
}

// NewCallID returns "sb-<unix seconds>-<16 hex digits>".
//
// Asterisk's own uniqueids are "<epoch>.<sequence>"; an id of that shape
// from us could equal one Asterisk assigns later, and Asterisk refuses a
// channel whose id is taken. The "sb-" prefix can never collide with
// Asterisk's, 64 random bits make a collision between agents of a fleet
// (the control plane stores ids fleet-wide) negligible, the seconds make
// ids readable in logs and roughly sortable, and the alphabet needs no
// quoting in AMI, CDRs, logs or URLs.
func NewCallID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return "sb-" + strconv.FormatInt(time.Now().Unix(), 10) + "-" + hex.EncodeToString(b[:])
}

// Serve runs one request and returns its result, or a *protocol.Error
// (ErrorFor: the one place the agent's errors become protocol codes). It
// is a tunnel.RequestHandler: ctx carries the request's deadline, set by
// the tunnel from the request, and everything Serve does stops there.
func (h *Handler) Serve(ctx context.Context, req protocol.Request) (any, error) {
	if err := ctx.Err(); err != nil {
		return nil, ErrorFor(err)
	}
	if len(h.cfg.Ops) > 0 && protocol.OpMinVersion(req.Op) != 0 && !slices.Contains(h.cfg.Ops, req.Op) {
		h.log.Info("request refused", "op", req.Op, "id", req.ID, "code", protocol.ErrCodeOpDisabled)
		return nil, &protocol.Error{Code: protocol.ErrCodeOpDisabled,
			Message: fmt.Sprintf("operation %s is disabled on this PBX's agent (its ops = %s)", req.Op, strings.Join(h.cfg.Ops, ","))}
	}
	result, err := h.dispatch(ctx, req)
	if err != nil {
		pe := ErrorFor(err)
		if pe.Code == protocol.ErrCodeInternal {
			h.log.Error("request failed", "op", req.Op, "id", req.ID, "err", err)
		} else {
			h.log.Info("request refused", "op", req.Op, "id", req.ID, "code", pe.Code, "err", pe.Message)
		}
		return nil, pe
	}
	return result, nil
}

func (h *Handler) dispatch(ctx context.Context, req protocol.Request) (any, error) {
	switch req.Op {
	case protocol.OpOriginate:
		return withArgs(ctx, req.Args, h.Originate)
	case protocol.OpHangup:
		return withArgs(ctx, req.Args, h.Hangup)
	case protocol.OpMonitor:
		return withArgs(ctx, req.Args, h.Monitor)
	case protocol.OpChannels:
		return h.Channels(ctx)
	case protocol.OpStatus:
		return h.Status(), nil
	case protocol.OpPing:
		return h.Ping(ctx)
	case protocol.OpQueues:
		return withOptionalArgs(ctx, req.Args, h.Queues)
	case protocol.OpQueueMemberAdd:
		return withArgs(ctx, req.Args, h.QueueMemberAdd)
	case protocol.OpQueueMemberDel:
		return withArgs(ctx, req.Args, h.QueueMemberRemove)
	case protocol.OpQueueMemberPause:
		return withArgs(ctx, req.Args, h.QueueMemberPause)
	case protocol.OpQueuePenalty:
		return withArgs(ctx, req.Args, h.QueuePenalty)
	case protocol.OpRecordingStart:
		return withArgs(ctx, req.Args, h.RecordingStart)
	case protocol.OpRecordingStop:
		return withArgs(ctx, req.Args, h.RecordingStop)
	case protocol.OpRecordingMute:
		return withArgs(ctx, req.Args, h.RecordingMute)
	case protocol.OpRecordingFetch:
		return withArgs(ctx, req.Args, h.RecordingFetch)
	case protocol.OpTransfer:
		return withArgs(ctx, req.Args, h.Transfer)
	case protocol.OpTransferComplete:
		return withArgs(ctx, req.Args, h.TransferComplete)
	case protocol.OpTransferCancel:
		return withArgs(ctx, req.Args, h.TransferCancel)
	case protocol.OpDTMF:
		return withArgs(ctx, req.Args, h.DTMF)
	case protocol.OpPark:
		return withArgs(ctx, req.Args, h.Park)
	case protocol.OpParked:
		return withOptionalArgs(ctx, req.Args, h.Parked)
	case protocol.OpParkedPickup:
		return withArgs(ctx, req.Args, h.ParkedPickup)
	case protocol.OpMute:
		return withArgs(ctx, req.Args, h.Mute)
	}
	return nil, fmt.Errorf("%w %q", ErrUnsupported, truncate(req.Op, 40))
}

// withArgs decodes a request's arguments and runs op with them.
func withArgs[A, R any](ctx context.Context, raw json.RawMessage, op func(context.Context, A) (R, error)) (any, error) {
	var a A
	if err := decodeArgs(raw, &a); err != nil {
		return nil, err
	}
	return op(ctx, a)
}

// withOptionalArgs is withArgs for an operation whose arguments may be
// left out (all of them optional).
func withOptionalArgs[A, R any](ctx context.Context, raw json.RawMessage, op func(context.Context, A) (R, error)) (any, error) {
	if len(raw) == 0 {
		var a A
		return op(ctx, a)
	}
	return withArgs(ctx, raw, op)
}

// decodeArgs unmarshals a request's arguments. Unknown fields are ignored
// (a newer control plane may send more); wrong types are refused.
func decodeArgs(raw json.RawMessage, v any) error {
	if len(raw) == 0 {
		return invalid("args", "are required")
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return invalid("args", "are not valid JSON for this operation")
	}
	return nil
}

// requireAMI fails fast while there is no AMI session: the table is empty
// then, and a lookup would answer "not found" for a channel that may well
// exist.
func (h *Handler) requireAMI() error {
	if !h.cfg.AMI.Connected() {
		return ami.ErrNotConnected
	}
	return nil
}

func (h *Handler) acquire() error {
	select {
	case h.slots <- struct{}{}:
		return nil
	default:
		return fmt.Errorf("%w: %d calls are being set up", ErrBusy, h.cfg.MaxConcurrentOriginates)
	}
}

func (h *Handler) release() { <-h.slots }

// Originate places a call: Local/<from>@<context> rings and, once it
// answers, Dial(Local/<to>@<context>). It returns as soon as Asterisk has
// queued the call; its lifecycle follows as events.
func (h *Handler) Originate(ctx context.Context, a protocol.OriginateArgs) (protocol.OriginateResult, error) {
	c, err := h.cfg.Limits.parseOriginate(a)
	if err != nil {
		return protocol.OriginateResult{}, err
	}
	if err := h.requireAMI(); err != nil {
		return protocol.OriginateResult{}, err
	}
	callID := c.CallID
	if callID == "" {
		callID = h.cfg.NewCallID()
	} else if h.idInUse(callID) {
		return protocol.OriginateResult{}, invalid("call_id", "is the uniqueid of a live channel")
	}
	p, err := h.originate(ctx, c.action(h.cfg.Context, callID), c.Timeout, callID, func() {
		if h.cfg.ExpectOriginate != nil {
			h.cfg.ExpectOriginate(callID, c.From, c.To)
		}
	})
	if err != nil {
		return protocol.OriginateResult{}, err
	}
	h.log.Info("originate queued", "call_id", callID, "from", c.From, "to", c.To, "action_id", p.ActionID())
	return protocol.OriginateResult{
		CallID:   callID,
		Channel:  localDial(c.From, h.cfg.Context),
		Status:   protocol.CallQueued,
		ActionID: p.ActionID(),
	}, nil
}

func (h *Handler) idInUse(callID string) bool {
	_, a := h.cfg.Channels.ByUniqueID(callID)
	_, b := h.cfg.Channels.ByUniqueID(otherChannelID(callID))
	return a || b
}

// originate sends m holding a concurrency slot until Asterisk reports the
// call answered or failed (or the ring timeout plus grace passes). expect
// runs once the slot is held, right before the action is sent.
func (h *Handler) originate(ctx context.Context, m *ami.Message, ring time.Duration, callID string, expect func()) (Pending, error) {
	if err := h.acquire(); err != nil {
		return nil, err
	}
	expect()
	p, err := h.cfg.AMI.Originate(ctx, m)
	if err != nil {
		h.release()
		return nil, err
	}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		h.release()
		return p, nil
	}
	h.wg.Add(1)
	h.mu.Unlock()
	go func() {
		defer h.wg.Done()
		defer h.release()
		wctx, cancel := context.WithTimeout(h.life, ring+h.cfg.OriginateResultGrace)
		defer cancel()
		res, err := p.Wait(wctx)
		switch {
		case err != nil:
			h.log.Warn("originate outcome unknown", "call_id", callID, "action_id", p.ActionID(), "err", err)
		case res.Success:
			h.log.Info("originate answered", "call_id", callID, "channel", res.Channel)
		default:
			h.log.Info("originate failed", "call_id", callID, "reason", res.Reason, "reason_text", originateReason(res.Reason))
		}
	}()
	return p, nil
}

// originateReason names Asterisk's outbound-call reasons (transcript 04).
func originateReason(r int) string {
	switch r {
	case 0:
		return "no such extension or technology"
	case 1:
		return "hung up"
	case 3:
		return "no answer"
	case 4:
		return "answered"
	case 5:
		return "busy"
	case 8:
		return "congestion"
	}
	return "reason " + strconv.Itoa(r)
}

// Monitor rings the supervisor's extension and, once answered, runs
// ChanSpy on the target extension's live channel. A target with no live
// channel is ErrNotFound, never a phone that rings into silence.
func (h *Handler) Monitor(ctx context.Context, a protocol.MonitorArgs) (protocol.MonitorResult, error) {
	c, err := h.cfg.Limits.parseMonitor(a)
	if err != nil {
		return protocol.MonitorResult{}, err
	}
	if err := h.requireAMI(); err != nil {
		return protocol.MonitorResult{}, err
	}
	target, ok := h.cfg.Channels.LiveForExtension(c.Target)
	if !ok {
		return protocol.MonitorResult{}, fmt.Errorf("%w: extension %s has no live call", ErrNotFound, c.Target)
	}
	prefix := channels.SpyPrefix(target.Channel)
	if !spyPrefixRe.MatchString(prefix) {
		return protocol.MonitorResult{}, invalid("target", "live channel %q cannot be named in ChanSpy's arguments", truncate(target.Channel, 80))
	}
	spyID := h.cfg.NewCallID()
	p, err := h.originate(ctx, c.action(h.cfg.Context, prefix, spyID), c.Timeout, spyID, func() {
		if h.cfg.ExpectMonitor != nil {
			h.cfg.ExpectMonitor(spyID, c.Target)
		}
	})
	if err != nil {
		return protocol.MonitorResult{}, err
	}
	h.log.Info("monitor queued", "mode", a.Mode, "from", c.From, "target", target.Channel, "spy_call_id", spyID, "action_id", p.ActionID())
	return protocol.MonitorResult{
		TargetChannel:  target.Channel,
		TargetPrefix:   prefix,
		SpyChannel:     localDial(c.From, h.cfg.Context),
		SpyCallID:      spyID,
		ChanSpyOptions: c.Options,
	}, nil
}

// Hangup ends one channel (by name or uniqueid) or, with All, every
// channel of the PBX.
func (h *Handler) Hangup(ctx context.Context, a protocol.HangupArgs) (protocol.HangupResult, error) {
	c, err := h.cfg.Limits.parseHangup(a)
	if err != nil {
		return protocol.HangupResult{}, err
	}
	if err := h.requireAMI(); err != nil {
		return protocol.HangupResult{}, err
	}
	if c.All {
		return h.hangupAll(ctx, c.Cause, c.By)
	}
	var ch protocol.Channel
	var known bool
	if c.UniqueID != "" {
		if ch, known = h.cfg.Channels.ByUniqueID(c.UniqueID); !known {
			return protocol.HangupResult{}, fmt.Errorf("%w: no live channel with uniqueid %s", ErrNotFound, c.UniqueID)
		}
		if c.Channel != "" && c.Channel != ch.Channel {
			return protocol.HangupResult{}, invalid("channel", "names another channel than uniqueid %s", c.UniqueID)
		}
	} else if ch, known = h.cfg.Channels.ByName(c.Channel); !known && !c.Force {
		return protocol.HangupResult{}, fmt.Errorf("%w: no live channel named %s", ErrNotFound, c.Channel)
	}
	if !known {
		ch = protocol.Channel{Channel: c.Channel}
	}
	h.expectHangup(ch.UniqueID, c.By)
	if _, err := h.cfg.AMI.Action(ctx, hangupAction(ch.Channel, c.Cause)); err != nil {
		return protocol.HangupResult{}, err
	}
	h.log.Info("hung up", "channel", ch.Channel, "uniqueid", ch.UniqueID, "cause", c.Cause, "forced", !known)
	return protocol.HangupResult{Hungup: []protocol.HungupChannel{h.hungup(ch)}}, nil
}

// hangupAll uses one regex Hangup rather than one Hangup per channel of
// the table: Asterisk walks its own channel list, so a channel created a
// moment ago that the table has not seen yet is ended too, it is one
// round trip instead of N under one deadline, and Asterisk's list of what
// it hung up is the truth the result reports (durations come from the
// table where it knows the channel).
func (h *Handler) hangupAll(ctx context.Context, cause int, by string) (protocol.HangupResult, error) {
	known := make(map[string]protocol.Channel)
	for _, ch := range h.cfg.Channels.List() {
		known[ch.Channel] = ch
		h.expectHangup(ch.UniqueID, by)
	}
	m := ami.NewAction("Hangup", "Channel", hangupAllRegex, "Cause", strconv.Itoa(cause))
	res, err := h.cfg.AMI.List(ctx, m)
	if err != nil {
		return protocol.HangupResult{}, err
	}
	out := protocol.HangupResult{Hungup: make([]protocol.HungupChannel, 0, len(res.Items))}
	for _, item := range res.Items {
		name := item.Get("Channel")
		if name == "" {
			continue
		}
		ch, ok := known[name]
		if !ok {
			ch = protocol.Channel{Channel: name}
		}
		out.Hungup = append(out.Hungup, h.hungup(ch))
	}
	h.log.Info("hung up all channels", "count", len(out.Hungup), "cause", cause)
	return out, nil
}

func (h *Handler) expectHangup(uniqueid, by string) {
	if h.cfg.ExpectHangup != nil && uniqueid != "" && by != "" {
		h.cfg.ExpectHangup(uniqueid, by)
	}
}

func (h *Handler) hungup(ch protocol.Channel) protocol.HungupChannel {
	now := h.cfg.Now()
	hc := protocol.HungupChannel{
		Channel:   ch.Channel,
		UniqueID:  ch.UniqueID,
		LinkedID:  ch.LinkedID,
		StartedAt: ch.StartedAt,
		HungupAt:  now,
	}
	if !ch.StartedAt.IsZero() && now.After(ch.StartedAt) {
		hc.DurationMS = now.Sub(ch.StartedAt).Milliseconds()
	}
	return hc
}

// Channels returns the live channel table.
func (h *Handler) Channels(ctx context.Context) (protocol.ChannelsResult, error) {
	if err := h.requireAMI(); err != nil {
		return protocol.ChannelsResult{}, err
	}
	list := h.cfg.Channels.List()
	if list == nil {
		list = []protocol.Channel{}
	}
	return protocol.ChannelsResult{Channels: list}, nil
}

// Status returns the agent's status.
func (h *Handler) Status() protocol.Status {
	if h.cfg.Status != nil {
		return h.cfg.Status()
	}
	st := protocol.Status{AMI: protocol.AMIDown, Time: h.cfg.Now()}
	if h.cfg.AMI.Connected() {
		st.AMI = protocol.AMIUp
	}
	st.LiveChannels, st.LiveCalls = h.cfg.Channels.Counts()
	return st
}

// Ping measures an AMI Ping round trip.
func (h *Handler) Ping(ctx context.Context) (protocol.PingResult, error) {
	if err := h.requireAMI(); err != nil {
		return protocol.PingResult{}, err
	}
	d, err := h.cfg.AMI.Ping(ctx)
	if err != nil {
		return protocol.PingResult{}, err
	}
	return protocol.PingResult{AMIRoundTripMicros: d.Microseconds()}, nil
}
