package ops

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/switchboard-pbx/switchboard/protocol"
	"github.com/switchboard-pbx/switchboard/protocol/ami"
)

// Queue operations: app_queue's QueueSummary and QueueStatus, and its
// member actions QueueAdd, QueueRemove, QueuePause and QueuePenalty, each
// confirmed by the QueueMember* event Asterisk sends after it (capture 14).

// DefaultQueueMemberInterface makes a member's interface of its extension,
// as the captures' queue "inbound" names its operators.
const DefaultQueueMemberInterface = "Local/{ext}@from-queue/n"

// QueueConfig configures the queue operations.
type QueueConfig struct {
	// MemberInterface is the template a member's interface is made from:
	// "{ext}" (exactly once) stands for the extension of the request, e.g.
	// "PJSIP/{ext}". The interface is never taken from a request.
	MemberInterface string
	// MaxPenalty bounds a member's penalty (DefaultMaxPenalty).
	MaxPenalty int
}

// Defaults of QueueConfig.
const (
	DefaultMaxPenalty = 1000
	// maxQueueNameLen: Asterisk keeps queue names in 80-byte fields.
	maxQueueNameLen = 79
	// maxMemberNameBytes and maxPauseReasonBytes bound text Asterisk
	// shows in its CLI and events (it stores up to 80 and 80 bytes).
	maxMemberNameBytes  = 80
	maxPauseReasonBytes = 80
	extPlaceholder      = "{ext}"
)

var (
	// queueNameRe: a queues.conf section name we can put in AMI headers
	// and event filters.
	queueNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.+-]*$`)
	// interfaceTemplateRe: a channel technology and resource around {ext}
	// (Local/{ext}@ctx/n, PJSIP/{ext}, SIP/{ext}…).
	interfaceTemplateRe = regexp.MustCompile(`^[A-Za-z0-9]+/[A-Za-z0-9_@./{}+-]+$`)
)

// Validate says what is wrong with c; zero fields take defaults.
func (c QueueConfig) Validate() error {
	var errs []error
	if t := c.MemberInterface; t != "" {
		if strings.Count(t, extPlaceholder) != 1 || !interfaceTemplateRe.MatchString(t) ||
			strings.Count(t, "{") != 1 || strings.Count(t, "}") != 1 {
			errs = append(errs, fmt.Errorf("Queues.MemberInterface %q must be TECH/… holding %s exactly once (e.g. %s or PJSIP/{ext})",
				t, extPlaceholder, DefaultQueueMemberInterface))
		}
	}
	if c.MaxPenalty < 0 {
		errs = append(errs, fmt.Errorf("Queues.MaxPenalty %d is negative", c.MaxPenalty))
	}
	return errors.Join(errs...)
}

func (c *QueueConfig) fill() {
	c.MemberInterface = cmp.Or(c.MemberInterface, DefaultQueueMemberInterface)
	c.MaxPenalty = cmp.Or(c.MaxPenalty, DefaultMaxPenalty)
}

// memberInterface is the interface of extension ext.
func (c QueueConfig) memberInterface(ext string) string {
	return strings.Replace(c.MemberInterface, extPlaceholder, ext, 1)
}

// extensionOf is the extension whose interface iface is, or "".
func (c QueueConfig) extensionOf(iface string) string {
	pre, post, _ := strings.Cut(c.MemberInterface, extPlaceholder)
	if len(iface) <= len(pre)+len(post) || !strings.EqualFold(iface[:len(pre)], pre) || !strings.EqualFold(iface[len(iface)-len(post):], post) {
		return ""
	}
	ext := iface[len(pre) : len(iface)-len(post)]
	if !numberRe.MatchString(ext) {
		return ""
	}
	return ext
}

func checkQueueName(field, q string, required bool) error {
	if q == "" {
		if required {
			return invalid(field, "is required")
		}
		return nil
	}
	if len(q) > maxQueueNameLen || !queueNameRe.MatchString(q) {
		return invalid(field, "must be 1 to %d of the characters A-Z a-z 0-9 _ . + - (a queues.conf queue name)", maxQueueNameLen)
	}
	return nil
}

// checkText accepts short printable UTF-8 (member names, pause reasons):
// it goes into an AMI header and Asterisk's queue_log, which is
// "|"-separated.
func checkText(field, s string, max int) error {
	switch {
	case len(s) > max:
		return invalid(field, "must be at most %d bytes", max)
	case !utf8.ValidString(s) || hasControl(s):
		return invalid(field, "must be printable UTF-8 without CR, LF or NUL")
	case strings.ContainsRune(s, '|'):
		return invalid(field, "may not contain | (Asterisk's queue_log separator)")
	}
	return nil
}

func (l Limits) checkMember(queue, ext string, queueRequired bool) error {
	if err := checkQueueName("queue", queue, queueRequired); err != nil {
		return err
	}
	return l.checkNumber("extension", ext)
}

func (h *Handler) checkPenalty(p int) error {
	if p < 0 || p > h.cfg.Queues.MaxPenalty {
		return invalid("penalty", "must be 0 to %d", h.cfg.Queues.MaxPenalty)
	}
	return nil
}

// Queues lists the PBX's queues, or one queue with its members and the
// callers waiting in it. QueueSummary alone lacks the strategy and the
// completed and abandoned counts, QueueStatus alone the available and
// logged-in members, so both are asked.
func (h *Handler) Queues(ctx context.Context, a protocol.QueuesArgs) (protocol.QueuesResult, error) {
	if err := checkQueueName("queue", a.Queue, false); err != nil {
		return protocol.QueuesResult{}, err
	}
	if err := h.requireAMI(); err != nil {
		return protocol.QueuesResult{}, err
	}
	status := ami.NewAction("QueueStatus")
	summary := ami.NewAction("QueueSummary")
	if a.Queue != "" {
		status.Add("Queue", a.Queue)
		summary.Add("Queue", a.Queue)
	}
	st, err := h.cfg.AMI.List(ctx, status)
	if err != nil {
		return protocol.QueuesResult{}, err
	}
	sum, err := h.cfg.AMI.List(ctx, summary)
	if err != nil {
		return protocol.QueuesResult{}, err
	}
	out := protocol.QueuesResult{Queues: []protocol.Queue{}}
	index := map[string]int{}
	for _, m := range st.Items {
		if m.Event() == "QueueParams" {
			index[strings.ToLower(m.Get("Queue"))] = len(out.Queues)
			out.Queues = append(out.Queues, queueParams(m))
		}
	}
	for _, m := range sum.Items {
		if i, ok := index[strings.ToLower(m.Get("Queue"))]; ok && m.Event() == "QueueSummary" {
			q := &out.Queues[i]
			q.Available, q.LoggedIn = atoi(m.Get("Available")), atoi(m.Get("LoggedIn"))
			q.Callers, q.LongestWaitS = atoi(m.Get("Callers")), atoi(m.Get("LongestHoldTime"))
		}
	}
	if a.Queue == "" {
		return out, nil
	}
	if len(out.Queues) == 0 {
		// AMI answers an unknown queue with an empty list (14d).
		return out, fmt.Errorf("%w: the PBX has no queue %s", ErrNotFound, a.Queue)
	}
	q := &out.Queues[0]
	q.Members, q.Waiting = []protocol.QueueMember{}, []protocol.QueueCaller{}
	for _, m := range st.Items {
		switch m.Event() {
		case "QueueMember":
			q.Members = append(q.Members, h.queueMember(m, "Name", "Location"))
		case "QueueEntry":
			q.Waiting = append(q.Waiting, h.queueCaller(m))
		}
	}
	return out, nil
}

func queueParams(m *ami.Message) protocol.Queue {
	perf, _ := strconv.ParseFloat(m.Get("ServicelevelPerf"), 64)
	return protocol.Queue{
		Name: m.Get("Queue"), Strategy: m.Get("Strategy"), Callers: atoi(m.Get("Calls")),
		Completed: atoi(m.Get("Completed")), Abandoned: atoi(m.Get("Abandoned")),
		HoldTimeS: atoi(m.Get("Holdtime")), TalkTimeS: atoi(m.Get("TalkTime")), MaxCallers: atoi(m.Get("Max")),
		ServiceLevelS: atoi(m.Get("ServiceLevel")), ServiceLevelPerf: perf, Weight: atoi(m.Get("Weight")),
	}
}

// queueMember reads a QueueMember list item (nameKey Name, ifaceKey
// Location) or a QueueMember* event (MemberName, Interface).
func (h *Handler) queueMember(m *ami.Message, nameKey, ifaceKey string) protocol.QueueMember {
	iface := m.Get(ifaceKey)
	return protocol.QueueMember{
		Queue: m.Get("Queue"), Name: m.Get(nameKey), Extension: h.cfg.Queues.extensionOf(iface), Interface: iface,
		StateInterface: m.Get("StateInterface"), Status: protocol.MemberStatus(atoi(m.Get("Status"))),
		Paused: m.Get("Paused") == "1", PausedReason: m.Get("PausedReason"), InCall: m.Get("InCall") == "1",
		CallsTaken: atoi(m.Get("CallsTaken")), LastCall: unixTime(m.Get("LastCall")), LastPause: unixTime(m.Get("LastPause")),
		LoginTime: unixTime(m.Get("LoginTime")), Penalty: atoi(m.Get("Penalty")), Membership: m.Get("Membership"),
		WrapupS: atoi(m.Get("Wrapuptime")),
	}
}

func (h *Handler) queueCaller(m *ami.Message) protocol.QueueCaller {
	c := protocol.QueueCaller{
		Position: atoi(m.Get("Position")), WaitS: atoi(m.Get("Wait")), CallerIDNum: known(m.Get("CallerIDNum")),
		CallerIDName: known(m.Get("CallerIDName")), Channel: m.Get("Channel"), UniqueID: m.Get("Uniqueid"),
		Priority: atoi(m.Get("Priority")),
	}
	if ch, ok := h.cfg.Channels.ByUniqueID(c.UniqueID); ok {
		c.CallID = ch.LinkedID
	}
	return c
}

// memberEvent matches the QueueMember* event of iface in queue (any queue
// when queue is empty).
func memberEvent(event, queue, iface string, also func(*ami.Message) bool) func(*ami.Message) bool {
	return func(m *ami.Message) bool {
		return m.Event() == event && is(m, "Interface", iface) && (queue == "" || is(m, "Queue", queue)) &&
			(also == nil || also(m))
	}
}

// memberAction sends a member action and waits for the events that
// confirm it (c, with its class filled in here); the result is the
// members they describe.
func (h *Handler) memberAction(ctx context.Context, act *ami.Message, c confirmation) (protocol.QueueMemberResult, error) {
	c.class = "agent"
	evs, err := h.sendConfirmed(ctx, h.cfg.AMI, act, c)
	if err != nil {
		return protocol.QueueMemberResult{}, queueError(err)
	}
	out := protocol.QueueMemberResult{Members: make([]protocol.QueueMember, 0, len(evs))}
	for _, m := range evs {
		out.Members = append(out.Members, h.queueMember(m, "MemberName", "Interface"))
	}
	return out, nil
}

// queueError maps app_queue's refusals (capture 14) to the operations'
// errors: an unknown queue or member is not found; an interface already
// there, or a static member asked to leave, is a conflict.
func queueError(err error) error {
	var re *ami.ResponseError
	if !errors.As(err, &re) {
		return err
	}
	msg := re.Message
	switch {
	case msg == "Member not dynamic":
		return &protocol.Error{Code: protocol.ErrCodeMemberNotDynamic,
			Message: "asterisk: Member not dynamic: a static member (queues.conf) cannot be removed through AMI"}
	case strings.Contains(msg, "Already there"):
		return &protocol.Error{Code: protocol.ErrCodeConflict, Message: "asterisk: " + msg}
	case strings.Contains(msg, "No such queue"), strings.Contains(msg, "Not there"), msg == "Interface not found",
		msg == "Invalid interface, queuename or penalty":
		return fmt.Errorf("%w: asterisk: %s", ErrNotFound, msg)
	}
	return err
}

// QueueMemberAdd adds the extension's interface to a queue as a dynamic
// member, confirmed by QueueMemberAdded.
func (h *Handler) QueueMemberAdd(ctx context.Context, a protocol.QueueMemberAddArgs) (protocol.QueueMemberResult, error) {
	var none protocol.QueueMemberResult
	if err := h.cfg.Limits.checkMember(a.Queue, a.Extension, true); err != nil {
		return none, err
	}
	if err := checkText("name", a.Name, maxMemberNameBytes); err != nil {
		return none, err
	}
	if err := checkText("reason", a.Reason, maxPauseReasonBytes); err != nil {
		return none, err
	}
	if err := h.checkPenalty(a.Penalty); err != nil {
		return none, err
	}
	if a.Reason != "" && !a.Paused {
		return none, invalid("reason", "applies to a member added paused")
	}
	if err := h.requireAMI(); err != nil {
		return none, err
	}
	iface := h.cfg.Queues.memberInterface(a.Extension)
	name := a.Name
	if name == "" {
		name = a.Extension
	}
	act := ami.NewAction("QueueAdd", "Queue", a.Queue, "Interface", iface, "MemberName", name,
		"Penalty", strconv.Itoa(a.Penalty), "Paused", strconv.FormatBool(a.Paused))
	if a.Reason != "" {
		act.Add("Reason", a.Reason)
	}
	res, err := h.memberAction(ctx, act, confirmation{op: protocol.OpQueueMemberAdd, events: "QueueMemberAdded",
		match: memberEvent("QueueMemberAdded", a.Queue, iface, nil)})
	if err == nil {
		h.log.Info("queue member added", "queue", a.Queue, "interface", iface, "paused", a.Paused)
	}
	return res, err
}

// QueueMemberRemove removes a dynamic member, confirmed by
// QueueMemberRemoved. A static member is ErrCodeMemberNotDynamic.
func (h *Handler) QueueMemberRemove(ctx context.Context, a protocol.QueueMemberRemoveArgs) (protocol.QueueMemberResult, error) {
	if err := h.cfg.Limits.checkMember(a.Queue, a.Extension, true); err != nil {
		return protocol.QueueMemberResult{}, err
	}
	if err := h.requireAMI(); err != nil {
		return protocol.QueueMemberResult{}, err
	}
	iface := h.cfg.Queues.memberInterface(a.Extension)
	res, err := h.memberAction(ctx, ami.NewAction("QueueRemove", "Queue", a.Queue, "Interface", iface),
		confirmation{op: protocol.OpQueueMemberDel, events: "QueueMemberRemoved", match: memberEvent("QueueMemberRemoved", a.Queue, iface, nil)})
	if err == nil {
		h.log.Info("queue member removed", "queue", a.Queue, "interface", iface)
	}
	return res, err
}

// memberQueues lists the queues iface is a member of (QueueStatus with a
// Member filter), so a change made in every queue knows how many events
// confirm it.
func (h *Handler) memberQueues(ctx context.Context, iface string) ([]string, error) {
	res, err := h.cfg.AMI.List(ctx, ami.NewAction("QueueStatus", "Member", iface))
	if err != nil {
		return nil, err
	}
	var qs []string
	for _, m := range res.Items {
		if m.Event() == "QueueMember" && is(m, "Location", iface) {
			qs = append(qs, m.Get("Queue"))
		}
	}
	if len(qs) == 0 {
		return nil, fmt.Errorf("%w: %s is a member of no queue", ErrNotFound, iface)
	}
	return qs, nil
}

// queuesOf is the queue named, or every queue of the member.
func (h *Handler) queuesOf(ctx context.Context, queue, iface string) ([]string, error) {
	if queue != "" {
		return []string{queue}, nil
	}
	return h.memberQueues(ctx, iface)
}

// QueueMemberPause pauses or unpauses a member in one queue or in every
// queue it belongs to, confirmed by one QueueMemberPause per queue.
func (h *Handler) QueueMemberPause(ctx context.Context, a protocol.QueueMemberPauseArgs) (protocol.QueueMemberResult, error) {
	var none protocol.QueueMemberResult
	if err := h.cfg.Limits.checkMember(a.Queue, a.Extension, false); err != nil {
		return none, err
	}
	if err := checkText("reason", a.Reason, maxPauseReasonBytes); err != nil {
		return none, err
	}
	if a.Reason != "" && !a.Paused {
		return none, invalid("reason", "applies to a pause, not to an unpause")
	}
	if err := h.requireAMI(); err != nil {
		return none, err
	}
	iface := h.cfg.Queues.memberInterface(a.Extension)
	qs, err := h.queuesOf(ctx, a.Queue, iface)
	if err != nil {
		return none, err
	}
	act := ami.NewAction("QueuePause", "Interface", iface, "Paused", strconv.FormatBool(a.Paused))
	if a.Queue != "" {
		act.Add("Queue", a.Queue)
	}
	if a.Reason != "" {
		act.Add("Reason", a.Reason)
	}
	paused := "0"
	if a.Paused {
		paused = "1"
	}
	res, err := h.memberAction(ctx, act, confirmation{op: protocol.OpQueueMemberPause, n: len(qs),
		events: "QueueMemberPause (Paused: " + paused + ")",
		match:  memberEvent("QueueMemberPause", a.Queue, iface, func(m *ami.Message) bool { return m.Get("Paused") == paused })})
	if err == nil {
		h.log.Info("queue member paused", "queues", qs, "interface", iface, "paused", a.Paused, "reason", a.Reason)
	}
	return res, err
}

// QueuePenalty sets a member's penalty in one queue or every queue,
// confirmed by QueueMemberPenalty.
func (h *Handler) QueuePenalty(ctx context.Context, a protocol.QueuePenaltyArgs) (protocol.QueueMemberResult, error) {
	if err := h.cfg.Limits.checkMember(a.Queue, a.Extension, false); err != nil {
		return protocol.QueueMemberResult{}, err
	}
	if err := h.checkPenalty(a.Penalty); err != nil {
		return protocol.QueueMemberResult{}, err
	}
	if err := h.requireAMI(); err != nil {
		return protocol.QueueMemberResult{}, err
	}
	iface := h.cfg.Queues.memberInterface(a.Extension)
	qs, err := h.queuesOf(ctx, a.Queue, iface)
	if err != nil {
		return protocol.QueueMemberResult{}, err
	}
	act := ami.NewAction("QueuePenalty", "Interface", iface, "Penalty", strconv.Itoa(a.Penalty))
	if a.Queue != "" {
		act.Add("Queue", a.Queue)
	}
	pen := strconv.Itoa(a.Penalty)
	res, err := h.memberAction(ctx, act, confirmation{op: protocol.OpQueuePenalty, n: len(qs),
		events: "QueueMemberPenalty (Penalty: " + pen + ")",
		match:  memberEvent("QueueMemberPenalty", a.Queue, iface, func(m *ami.Message) bool { return m.Get("Penalty") == pen })})
	if err == nil {
		h.log.Info("queue member penalty set", "queues", qs, "interface", iface, "penalty", a.Penalty)
	}
	return res, err
}
