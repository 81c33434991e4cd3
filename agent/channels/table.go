package channels

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-pbx/switchboard/protocol"
	"github.com/switchboard-pbx/switchboard/protocol/ami"
)

// unknown is what Asterisk writes for an empty caller id field; the table
// stores "" instead so API users see an absent value, not a placeholder.
const unknown = "<unknown>"

// Config configures a Table.
type Config struct {
	// Now is the clock used to stamp StartedAt; nil means time.Now.
	Now func() time.Time
}

// Table is the live channel table of one PBX. It is safe for concurrent
// use: one goroutine feeds it while request handlers read it.
type Table struct {
	now func() time.Time

	mu     sync.RWMutex
	byID   map[string]*protocol.Channel // uniqueid → channel
	byName map[string]string            // channel name → uniqueid
	synced bool
	// gone remembers the uniqueids of the last maxGone channels that hung
	// up: Asterisk can send a channel's NewCallerid after its Hangup
	// (the connected line of an attended transfer's target, measured on
	// 22.10.1), which must not bring it back.
	gone     map[string]struct{}
	goneRing []string
	goneNext int
}

// maxGone bounds Table.gone.
const maxGone = 4096

// New returns an empty, unsynced table.
func New(cfg Config) *Table {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Table{
		now:    cfg.Now,
		byID:   make(map[string]*protocol.Channel),
		byName: make(map[string]string),
	}
}

// upserting lists the events that may create a channel the table has not
// seen (its Newchannel was lost to a full subscription buffer, or arrived
// before a resync finished). They all come from the channel's own
// snapshot topic, which Asterisk orders before the channel's Hangup, so a
// late one cannot resurrect a channel that is gone. Bridge events come
// from another topic and only update channels already known.
var upserting = map[string]bool{
	"Newchannel":       true,
	"Newstate":         true,
	"NewCallerid":      true,
	"NewConnectedLine": true,
	"Newexten":         true,
}

// Apply feeds one AMI event to the table and reports whether the table
// changed. Events the table does not track are ignored.
//
// SwitchboardDisconnected empties the table and marks it unsynced: while
// there is no AMI session nobody can tell which channels still exist.
// SwitchboardConnected changes nothing by itself; the owner must follow it
// with Replace from a fresh CoreShowChannels list.
func (t *Table) Apply(m *ami.Message) bool {
	ev := m.Event()
	switch ev {
	case ami.EventDisconnected:
		t.Clear()
		return true
	case "Hangup":
		return t.remove(m.Get("Uniqueid"), m.Get("Channel"))
	case "Rename":
		return t.rename(m.Get("Uniqueid"), m.Get("Channel"), m.Get("Newname"))
	case "BridgeEnter", "BridgeLeave":
		return t.bridge(m, ev == "BridgeEnter")
	}
	if !upserting[ev] {
		return false
	}
	id := m.Get("Uniqueid")
	name := m.Get("Channel")
	if id == "" || name == "" {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	ch, ok := t.byID[id]
	if !ok {
		if _, hungUp := t.gone[id]; hungUp {
			return false
		}
		ch = &protocol.Channel{UniqueID: id, StartedAt: t.now()}
		t.byID[id] = ch
	}
	t.setName(ch, name)
	snapshot(ch, m)
	if ev == "Newexten" {
		if v, ok := m.Lookup("Application"); ok {
			ch.Application = v
		}
		if v, ok := m.Lookup("AppData"); ok {
			ch.AppData = v
		}
	}
	return true
}

// snapshot copies the standard channel snapshot headers that m carries.
// Absent headers leave the field alone: not every event repeats them all.
func snapshot(ch *protocol.Channel, m *ami.Message) {
	set := func(dst *string, key string) {
		if v, ok := m.Lookup(key); ok {
			if v == unknown {
				v = ""
			}
			*dst = v
		}
	}
	set(&ch.LinkedID, "Linkedid")
	set(&ch.State, "ChannelStateDesc")
	set(&ch.CallerIDNum, "CallerIDNum")
	set(&ch.CallerIDName, "CallerIDName")
	set(&ch.ConnectedNum, "ConnectedLineNum")
	set(&ch.ConnectedName, "ConnectedLineName")
	set(&ch.Context, "Context")
	set(&ch.Exten, "Exten")
}

// setName records name for ch, dropping the index entry of its old name.
// Callers hold t.mu.
func (t *Table) setName(ch *protocol.Channel, name string) {
	if ch.Channel == name {
		return
	}
	if ch.Channel != "" && t.byName[ch.Channel] == ch.UniqueID {
		delete(t.byName, ch.Channel)
	}
	ch.Channel = name
	t.byName[name] = ch.UniqueID
}

func (t *Table) remove(id, name string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if id == "" {
		id = t.byName[name]
	}
	ch, ok := t.byID[id]
	if !ok {
		return false
	}
	delete(t.byID, id)
	if t.byName[ch.Channel] == id {
		delete(t.byName, ch.Channel)
	}
	t.rememberGone(id)
	return true
}

// rememberGone records a hung-up uniqueid, forgetting the oldest past
// maxGone. Callers hold t.mu.
func (t *Table) rememberGone(id string) {
	if t.gone == nil {
		t.gone = make(map[string]struct{}, maxGone)
		t.goneRing = make([]string, maxGone)
	}
	if old := t.goneRing[t.goneNext]; old != "" {
		delete(t.gone, old)
	}
	t.goneRing[t.goneNext] = id
	t.goneNext = (t.goneNext + 1) % maxGone
	t.gone[id] = struct{}{}
}

func (t *Table) rename(id, oldName, newName string) bool {
	if newName == "" {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if id == "" {
		id = t.byName[oldName]
	}
	ch, ok := t.byID[id]
	if !ok {
		return false
	}
	t.setName(ch, newName)
	return true
}

func (t *Table) bridge(m *ami.Message, enter bool) bool {
	id := m.Get("Uniqueid")
	bridgeID := m.Get("BridgeUniqueid")
	t.mu.Lock()
	defer t.mu.Unlock()
	ch, ok := t.byID[id]
	if !ok {
		return false
	}
	snapshot(ch, m)
	switch {
	case enter:
		ch.BridgeID = bridgeID
	case ch.BridgeID == bridgeID || bridgeID == "":
		ch.BridgeID = ""
	}
	return true
}

// Replace rebuilds the table from the items of a CoreShowChannels list
// (Event: CoreShowChannel) and marks it synced. A channel already known
// keeps its StartedAt, which came from its Newchannel and is more precise
// than the list's whole-second Duration.
func (t *Table) Replace(items []*ami.Message) {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	byID := make(map[string]*protocol.Channel, len(items))
	byName := make(map[string]string, len(items))
	for _, m := range items {
		id, name := m.Get("Uniqueid"), m.Get("Channel")
		if id == "" || name == "" {
			continue
		}
		ch := &protocol.Channel{Channel: name, UniqueID: id}
		snapshot(ch, m)
		ch.Application = m.Get("Application")
		ch.AppData = m.Get("ApplicationData")
		ch.BridgeID = m.Get("BridgeId")
		if old, ok := t.byID[id]; ok {
			ch.StartedAt = old.StartedAt
		} else {
			ch.StartedAt = now.Add(-parseDuration(m.Get("Duration")))
		}
		byID[id] = ch
		byName[name] = id
	}
	t.byID, t.byName, t.synced = byID, byName, true
}

// parseDuration reads CoreShowChannel's "HH:MM:SS" (hours may exceed 99);
// anything else counts as zero.
func parseDuration(s string) time.Duration {
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return 0
	}
	var total int64
	for _, p := range parts {
		n, err := strconv.ParseInt(p, 10, 64)
		if err != nil || n < 0 || n > 1<<31 {
			return 0
		}
		total = total*60 + n
	}
	return time.Duration(total) * time.Second
}

// Clear empties the table and marks it unsynced.
func (t *Table) Clear() {
	t.mu.Lock()
	defer t.mu.Unlock()
	clear(t.byID)
	clear(t.byName)
	t.synced = false
}

// Synced reports whether the table reflects a CoreShowChannels list taken
// on the current AMI session (false before the first Replace and after a
// disconnect).
func (t *Table) Synced() bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.synced
}

// List returns every live channel, oldest first (ties by name), as copies.
func (t *Table) List() []protocol.Channel {
	t.mu.RLock()
	out := make([]protocol.Channel, 0, len(t.byID))
	for _, ch := range t.byID {
		out = append(out, *ch)
	}
	t.mu.RUnlock()
	slices.SortFunc(out, compareAge)
	return out
}

func compareAge(a, b protocol.Channel) int {
	if c := a.StartedAt.Compare(b.StartedAt); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Channel, b.Channel); c != 0 {
		return c
	}
	return cmp.Compare(a.UniqueID, b.UniqueID)
}

// ByUniqueID returns the live channel with that uniqueid.
func (t *Table) ByUniqueID(id string) (protocol.Channel, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if ch, ok := t.byID[id]; ok {
		return *ch, true
	}
	return protocol.Channel{}, false
}

// ByName returns the live channel with that exact name.
func (t *Table) ByName(name string) (protocol.Channel, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if ch, ok := t.byID[t.byName[name]]; ok {
		return *ch, true
	}
	return protocol.Channel{}, false
}

// Counts returns the number of live channels and of live calls (distinct
// linkedids: every leg of one call shares its first leg's linkedid).
func (t *Table) Counts() (channels, calls int) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	linked := make(map[string]struct{}, len(t.byID))
	for _, ch := range t.byID {
		id := ch.LinkedID
		if id == "" {
			id = ch.UniqueID
		}
		linked[id] = struct{}{}
	}
	return len(t.byID), len(linked)
}
