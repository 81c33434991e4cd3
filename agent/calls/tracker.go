package calls

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/switchboard-pbx/switchboard/protocol"
	"github.com/switchboard-pbx/switchboard/protocol/ami"
)

// Directions reported in call.started and every later event of a call.
const (
	// DirectionOriginate: the first leg was created by Originate (AMI, CLI,
	// call file) — Asterisk opens it in state Down with nobody calling.
	DirectionOriginate = "originate"
	// DirectionInbound: the caller's channel is not an extension (a trunk).
	DirectionInbound = "inbound"
	// DirectionInternal: an extension dialled an extension.
	DirectionInternal = "internal"
	// DirectionOutbound: an extension dialled anything else.
	DirectionOutbound = "outbound"
)

// Synthetic events the agent's AMI client injects into the stream.
const (
	EventConnected    = "SwitchboardConnected"
	EventDisconnected = "SwitchboardDisconnected"
)

// Defaults of Config.
const (
	DefaultMaxCalls           = 10000
	DefaultMaxLegsPerCall     = 64
	DefaultMaxExpectations    = 4096
	DefaultExpectTTL          = 5 * time.Minute
	DefaultExtensionMaxDigits = 6
)

// ErrInvalidConfig is wrapped by every error Config.Validate returns.
var ErrInvalidConfig = errors.New("calls: invalid config")

// Config configures a Tracker. Zero values take the defaults above.
type Config struct {
	// PBX names the agent (id or name). Events do not carry it: the control
	// plane stamps the PBX from the authenticated tunnel, which a
	// compromised agent cannot forge.
	PBX string
	// Context is the dialplan context the agent originates in; kept for
	// logs and future rules, the tracker does not depend on it.
	Context string
	// Now is the clock for events whose AMI message has no Timestamp
	// header. Defaults to time.Now.
	Now func() time.Time
	// MaxCalls bounds tracked calls, ended ones (kept briefly to absorb
	// late Cdr/OriginateResponse/ChanSpyStop) included. Oldest ended calls
	// go first; when every tracked call is live, the oldest live call is
	// ended with a best-effort call.ended and forgotten.
	MaxCalls int
	// MaxLegsPerCall bounds the legs (channels, Local pairs counting once)
	// tracked for one call; further legs are ignored.
	MaxLegsPerCall int
	// MaxExpectations bounds pending ExpectOriginate/ExpectMonitor hints.
	MaxExpectations int
	// ExpectTTL is how long a hint waits for its call's first channel.
	ExpectTTL time.Duration
	// ExtensionMaxDigits: an all-digit name up to this long is an internal
	// extension (used for the direction of calls nobody originated).
	ExtensionMaxDigits int
	// MaxFieldBytes bounds every text field of an emitted event; longer
	// values are cut (at a character boundary) and named in the event's
	// Truncated list. Default DefaultMaxFieldBytes, at least 64.
	MaxFieldBytes int
}

// Validate says exactly what is wrong with c. Zero values are fine (they
// take defaults); negative limits are not.
func (c Config) Validate() error {
	var errs []error
	if c.MaxCalls < 0 {
		errs = append(errs, fmt.Errorf("MaxCalls is %d, want > 0 (0 means %d)", c.MaxCalls, DefaultMaxCalls))
	}
	if c.MaxLegsPerCall < 0 {
		errs = append(errs, fmt.Errorf("MaxLegsPerCall is %d, want > 0 (0 means %d)", c.MaxLegsPerCall, DefaultMaxLegsPerCall))
	}
	if c.MaxExpectations < 0 {
		errs = append(errs, fmt.Errorf("MaxExpectations is %d, want > 0 (0 means %d)", c.MaxExpectations, DefaultMaxExpectations))
	}
	if c.ExpectTTL < 0 {
		errs = append(errs, fmt.Errorf("ExpectTTL is %s, want > 0 (0 means %s)", c.ExpectTTL, DefaultExpectTTL))
	}
	if c.ExtensionMaxDigits < 0 {
		errs = append(errs, fmt.Errorf("ExtensionMaxDigits is %d, want > 0 (0 means %d)", c.ExtensionMaxDigits, DefaultExtensionMaxDigits))
	}
	if c.MaxFieldBytes < 0 || (c.MaxFieldBytes > 0 && c.MaxFieldBytes < minFieldBytes) {
		errs = append(errs, fmt.Errorf("MaxFieldBytes is %d, want at least %d (0 means %d)", c.MaxFieldBytes, minFieldBytes, DefaultMaxFieldBytes))
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrInvalidConfig, errors.Join(errs...))
}

func (c Config) withDefaults() Config {
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.MaxCalls <= 0 {
		c.MaxCalls = DefaultMaxCalls
	}
	if c.MaxLegsPerCall <= 0 {
		c.MaxLegsPerCall = DefaultMaxLegsPerCall
	}
	if c.MaxExpectations <= 0 {
		c.MaxExpectations = DefaultMaxExpectations
	}
	if c.ExpectTTL <= 0 {
		c.ExpectTTL = DefaultExpectTTL
	}
	if c.ExtensionMaxDigits <= 0 {
		c.ExtensionMaxDigits = DefaultExtensionMaxDigits
	}
	if c.MaxFieldBytes < minFieldBytes {
		c.MaxFieldBytes = DefaultMaxFieldBytes
	}
	return c
}

// Tracker derives call lifecycle events from AMI events. Not safe for
// concurrent use.
type Tracker struct {
	cfg Config

	calls   map[string]*call    // by call id, ended ones included
	chans   map[string]*channel // by uniqueid
	bridges map[string][]*leg   // bridge uniqueid → legs in it
	// awaiting holds originated calls that have had no OriginateResponse,
	// by dial string: a failed OriginateResponse names only the dial
	// string ("Local/busy@inoffice", Uniqueid <unknown>).
	awaiting map[string][]*call

	created  []*call // creation order, for evicting the oldest live call
	endedQ   []*call // end order, for evicting the oldest tombstone
	expects  map[string]*expectation
	expectQ  []*expectation
	live     int
	nextSeq  uint64
	out      []protocol.Event
	clockNow time.Time // time of the message being handled

	// Queue callers waiting and recordings running (queues.go,
	// recordings.go), by channel uniqueid.
	waiting map[string]*queueWait
	recs    map[string]*chanRecordings
	// pickups are the ExpectPickup hints, by the pickup's call id
	// (callcontrol.go).
	pickups map[string]*pickupHint
}

// NewTracker returns a Tracker. Zero or invalid Config values take their
// defaults; call Config.Validate first to report mistakes.
func NewTracker(cfg Config) *Tracker {
	t := &Tracker{cfg: cfg.withDefaults()}
	t.init()
	return t
}

func (t *Tracker) init() {
	t.calls = make(map[string]*call)
	t.chans = make(map[string]*channel)
	t.bridges = make(map[string][]*leg)
	t.awaiting = make(map[string][]*call)
	t.expects = make(map[string]*expectation)
	t.waiting = make(map[string]*queueWait)
	t.recs = make(map[string]*chanRecordings)
	t.created, t.endedQ, t.expectQ = nil, nil, nil
	t.live = 0
}

// Live returns the number of calls in progress.
func (t *Tracker) Live() int { return t.live }

// Handle consumes one AMI message and returns the lifecycle events it
// causes, in order, with Seq left 0. Responses and events the tracker does
// not use (CEL, VarSet, Newexten, list items…) return nil.
func (t *Tracker) Handle(m *ami.Message) []protocol.Event {
	if m == nil {
		return nil
	}
	name, ok := m.Lookup("Event")
	if !ok {
		return nil
	}
	t.clockNow = t.timeOf(m)
	switch name {
	case "Newchannel":
		t.onNewchannel(m)
	case "Newstate":
		t.onNewstate(m)
	case "NewCallerid":
		t.onNewCallerid(m)
	case "Rename":
		t.onRename(m)
	case "DialBegin":
		t.onDialBegin(m)
	case "DialState":
		t.onDialState(m)
	case "DialEnd":
		t.queueDialEnd(m)
		t.onDialEnd(m)
	case "BridgeEnter":
		t.onBridgeEnter(m)
	case "BridgeLeave":
		t.onBridgeLeave(m)
	case "HangupRequest", "SoftHangupRequest":
		t.queueHangup(m)
		t.onHangupRequest(m)
	case "Hangup":
		t.queueHangup(m)
		t.recordingsHangup(m)
		t.onHangup(m)
	case "Cdr":
		t.onCdr(m)
	case "ChanSpyStart":
		t.onChanSpyStart(m)
	case "ChanSpyStop":
		t.onChanSpyStop(m)
	case "OriginateResponse":
		t.onOriginateResponse(m)
	case "QueueCallerJoin", "QueueCallerAbandon", "QueueCallerLeave", "QueueMemberAdded", "QueueMemberRemoved", "QueueMemberPause":
		t.onQueueEvent(m)
	case "VarSet":
		t.queueVarSet(m)
	case "MixMonitorStart":
		t.onMixMonitorStart(m)
	case "MixMonitorStop":
		t.onMixMonitorStop(m)
	case "BlindTransfer", "AttendedTransfer", "Hold", "Unhold", "ParkedCall", "UnParkedCall", "ParkedCallTimeOut":
		t.onCallControl(name, m)
	case EventDisconnected:
		t.Reset()
	case EventConnected:
		// Nothing to do: calls stay tracked until Resync says which ended.
	}
	out := t.out
	t.out = nil
	return t.bound(out)
}

// timeOf prefers the Timestamp header (timestampevents=yes) so event times
// are Asterisk's, not the moment the agent got round to reading them.
func (t *Tracker) timeOf(m *ami.Message) time.Time {
	if ts, ok := parseTimestamp(m.Get("Timestamp")); ok {
		return ts
	}
	return t.cfg.Now()
}

// channelOf returns the tracked channel the message is about and follows a
// Linkedid change (transfers and bridges move a channel into the call with
// the oldest linkedid).
func (t *Tracker) channelOf(m *ami.Message) *channel {
	ch := t.chans[m.Get("Uniqueid")]
	if ch == nil {
		return nil
	}
	if linked := m.Get("Linkedid"); linked != "" && linked != ch.leg.call.id {
		t.moveLeg(ch.leg, linked)
	}
	return ch
}

func (t *Tracker) onNewchannel(m *ami.Message) {
	uid, name := m.Get("Uniqueid"), m.Get("Channel")
	if uid == "" || name == "" || t.chans[uid] != nil {
		return
	}
	linked := m.Get("Linkedid")
	if linked == "" {
		linked = uid
	}
	state := atoi(m.Get("ChannelState"))
	now := t.clockNow
	if uid == linked {
		if t.calls[uid] != nil || t.joinPickup(uid, name, state) {
			return
		}
		c := t.newCall(uid, now)
		l := t.attach(c, uid, name, now)
		t.startCall(c, l, state, knownValue(m.Get("CallerIDNum")), m.Get("Exten"), now, nil)
		t.channelState(t.chans[uid], state, true)
		t.evict()
		return
	}
	c := t.calls[linked]
	if c == nil || c.ended {
		return
	}
	if t.attach(c, uid, name, now) == nil {
		return
	}
	t.channelState(t.chans[uid], state, true)
}

func (t *Tracker) onNewstate(m *ami.Message) {
	if ch := t.channelOf(m); ch != nil {
		t.channelState(ch, atoi(m.Get("ChannelState")), false)
	}
}

// channelState applies a channel's state. Ringing (5) is the far end
// ringing. Ring (4) counts only when a dialled non-Local channel is born in
// it: the ";2" half of every Local pair starts in Ring because it runs the
// dialplan, which says nothing about a phone ringing (4a: Busy() "rings"
// that way and never rang).
func (t *Tracker) channelState(ch *channel, state int, born bool) {
	if ch == nil {
		return
	}
	ch.state = state
	switch state {
	case stateRingingRemote:
		t.ringing(ch.leg)
	case stateRing:
		if born && !ch.local {
			t.ringing(ch.leg)
		}
	case stateUp:
		t.up(ch.leg, t.clockNow)
	}
}

// Asterisk channel states used here (ChannelState header).
const (
	stateDown          = 0
	stateRing          = 4
	stateRingingRemote = 5
	stateUp            = 6
)

func (t *Tracker) onNewCallerid(m *ami.Message) {
	ch := t.channelOf(m)
	if ch == nil {
		return
	}
	c := ch.leg.call
	if c.ended || !c.fromGuessed || !ch.leg.first || c.originate {
		return
	}
	if num := knownValue(m.Get("CallerIDNum")); num != "" {
		c.from, c.fromGuessed = num, false
	}
}

func (t *Tracker) onRename(m *ami.Message) {
	ch := t.chans[m.Get("Uniqueid")]
	newName := m.Get("Newname")
	if ch == nil || newName == "" {
		return
	}
	if ch.leg.name == ch.name {
		ch.leg.name = newName
	}
	if ch.leg.call.channel == ch.name {
		ch.leg.call.channel = newName
	}
	ch.name = newName
}

func (t *Tracker) onDialBegin(m *ami.Message) {
	dest := t.chans[m.Get("DestUniqueid")]
	if dest == nil {
		return
	}
	c := dest.leg.call
	src := t.channelOf(m)
	if src == nil || src.leg.call != c || c.ended {
		return
	}
	if (c.to == "" || c.to == "s") && !c.front {
		if to := dialTarget(m.Get("DialString")); to != "" {
			c.to = to
		}
	}
	src.leg.dialing = true
	if c.originate && src.leg.first && !dest.leg.first {
		t.resolve(c, stageTwo)
		// An originated Local channel's own dialplan dials, having
		// answered (a queue ringing its operators after Answer()) or not:
		// see becomeFront.
		if c.stage == stageSingle {
			c.dialplanAnswer = time.Time{}
			t.becomeFront(c, knownValue(m.Get("CallerIDNum")))
		}
	}
}

func (t *Tracker) onDialState(m *ami.Message) {
	dest := t.chans[m.Get("DestUniqueid")]
	if dest != nil && strings.EqualFold(m.Get("DialStatus"), "RINGING") {
		t.ringing(dest.leg)
	}
}

func (t *Tracker) onDialEnd(m *ami.Message) {
	dest := t.chans[m.Get("DestUniqueid")]
	if dest == nil {
		return
	}
	l := dest.leg
	switch strings.ToUpper(m.Get("DialStatus")) {
	case "ANSWER":
		if c := l.call; c.front && !l.first {
			// The front connected one of those it rang (the DialEnd's
			// source is the front: a queue has no other way to dial).
			if src := t.chans[m.Get("Uniqueid")]; src != nil && src.leg == c.first {
				l.up = true
				if !c.ended {
					t.emitAnswered(c, l, t.clockNow)
				}
			}
			return
		}
		t.up(l, t.clockNow)
	case "BUSY":
		l.refused = true
		t.setEvidence(l.call, evidence{protocol.CallBusy, causeUserBusy, l})
	case "NOANSWER":
		l.refused = true
		t.setEvidence(l.call, evidence{protocol.CallNoAnswer, causeNoAnswer, l})
	case "CONGESTION":
		l.refused = true
		t.setEvidence(l.call, evidence{protocol.CallFailed, causeCongestion, l})
	case "CHANUNAVAIL":
		l.refused = true
		t.setEvidence(l.call, evidence{protocol.CallFailed, causeUnknown, l})
	case "CANCEL":
		t.setEvidence(l.call, evidence{protocol.CallCanceled, causeUnknown, l.call.first})
	}
}

func (t *Tracker) onBridgeEnter(m *ami.Message) {
	ch := t.channelOf(m)
	bid := m.Get("BridgeUniqueid")
	if ch == nil || bid == "" {
		return
	}
	t.enterBridge(ch.leg, bid)
}

func (t *Tracker) onBridgeLeave(m *ami.Message) {
	ch := t.channelOf(m)
	if ch == nil {
		return
	}
	t.leaveBridge(ch.leg, m.Get("BridgeUniqueid"))
}

func (t *Tracker) onHangupRequest(m *ami.Message) {
	ch := t.channelOf(m)
	if ch == nil {
		return
	}
	t.hangupStarted(ch.leg)
}

func (t *Tracker) onHangup(m *ami.Message) {
	ch := t.channelOf(m)
	if ch == nil || ch.gone {
		return
	}
	ch.gone = true
	l, c := ch.leg, ch.leg.call
	cause := atoi(m.Get("Cause"))
	if cause != 0 {
		l.cause, l.causeText = cause, m.Get("Cause-txt")
		if l.causeText == "" {
			l.causeText = causeText(cause)
		}
		if !c.ended {
			c.lastCause, c.lastCauseText = l.cause, l.causeText
		}
	}
	if c.ended {
		return
	}
	t.hangupStarted(l)
	if st, code := causeStatus(cause); st != "" {
		t.setEvidence(c, evidence{st, code, l})
	}
	if l.gone() {
		t.legGone(l)
	}
	t.checkEnd(c)
}

// causeStatus maps a Hangup cause to the status it proves, if any.
func causeStatus(cause int) (string, int) {
	switch cause {
	case causeUserBusy, causeCallRejected:
		return protocol.CallBusy, cause
	case causeNoUserResponse, causeNoAnswer:
		return protocol.CallNoAnswer, cause
	case causeUnallocated, causeNoRoute, causeCongestion, causeTempFailure, causeChanUnavailable:
		return protocol.CallFailed, cause
	}
	return "", 0
}

func (t *Tracker) onCdr(m *ami.Message) {
	ch := t.chans[m.Get("UniqueID")]
	if ch == nil {
		return
	}
	l := ch.leg
	if bill := atoi(m.Get("BillableSeconds")); !l.haveCdr || bill > l.cdrBill {
		l.cdrBill, l.haveCdr = bill, true
	}
}

func (t *Tracker) onChanSpyStart(m *ami.Message) {
	spyee := t.chans[m.Get("SpyeeUniqueid")]
	spy := m.Get("SpyerChannel")
	if spyee == nil || spy == "" {
		return
	}
	c := spyee.leg.call
	if c.ended {
		return
	}
	for _, s := range c.spies {
		if s.spy == spy {
			return
		}
	}
	target := m.Get("SpyeeChannel")
	c.spies = append(c.spies, spyPair{spy: spy, target: target})
	e := t.event(c, protocol.EventMonitorStarted, t.clockNow)
	e.SpyChannel, e.TargetChannel = spy, target
	t.out = append(t.out, e)
}

func (t *Tracker) onChanSpyStop(m *ami.Message) {
	spyee := t.chans[m.Get("SpyeeUniqueid")]
	spy := m.Get("SpyerChannel")
	if spyee == nil || spy == "" {
		return
	}
	c := spyee.leg.call
	if c.ended {
		return
	}
	for i, s := range c.spies {
		if s.spy == spy {
			c.spies = append(c.spies[:i], c.spies[i+1:]...)
			t.emitMonitorStopped(c, s, t.clockNow)
			return
		}
	}
}

func (t *Tracker) onOriginateResponse(m *ami.Message) {
	if strings.EqualFold(m.Get("Response"), "Success") {
		c := t.calls[m.Get("Uniqueid")]
		if c == nil {
			return
		}
		t.unawait(c)
		if c.ended {
			return
		}
		c.originate = true
		c.app = m.Get("Application")
		switch app := c.app; {
		case strings.EqualFold(app, "Dial"):
			if c.to == "" {
				c.to = dialTarget(m.Get("Data"))
			}
			t.resolve(c, stageTwo)
		case app != "":
			t.resolve(c, stageSingle)
		default:
			if c.to == "" {
				c.to = m.Get("Exten")
			}
		}
		return
	}
	c := t.matchFailedOriginate(m.Get("Channel"))
	if c == nil {
		return
	}
	c.origFailed = true
	if c.ended {
		return
	}
	if ev := reasonEvidence(atoi(m.Get("Reason")), c.first); ev.status != "" {
		t.setEvidence(c, ev)
	}
	t.resolve(c, stageSingle)
	t.checkEnd(c)
}

// reasonEvidence maps OriginateResponse Reason (an AST_CONTROL frame
// number) to the status it proves.
func reasonEvidence(reason int, l *leg) evidence {
	switch reason {
	case 1: // AST_CONTROL_HANGUP: the channel went away; its causes tell more
		return evidence{}
	case 3: // AST_CONTROL_RINGING: rang until Timeout
		return evidence{protocol.CallNoAnswer, causeNoAnswer, l}
	case 5:
		return evidence{protocol.CallBusy, causeUserBusy, l}
	case 8:
		return evidence{protocol.CallFailed, causeCongestion, l}
	default: // 0: no such extension or technology
		return evidence{protocol.CallFailed, causeUnknown, l}
	}
}

// matchFailedOriginate finds the call a failed OriginateResponse is about.
// It names only the dial string, so among originated calls still waiting
// for their response with that dial string, prefer one whose first leg is
// already hanging up (Asterisk reports the failure as the leg dies), then
// the oldest.
func (t *Tracker) matchFailedOriginate(dial string) *call {
	list := t.awaiting[dial]
	if len(list) == 0 {
		return nil
	}
	pick := list[0]
	for _, c := range list {
		if c.firstHangingUp {
			pick = c
			break
		}
	}
	t.unawait(pick)
	return pick
}

func (t *Tracker) unawait(c *call) {
	if c.awaitKey == "" {
		return
	}
	list := t.awaiting[c.awaitKey]
	for i, x := range list {
		if x == c {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(t.awaiting, c.awaitKey)
	} else {
		t.awaiting[c.awaitKey] = list
	}
	c.awaitKey = ""
}
