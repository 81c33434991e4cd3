package ops

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-pbx/switchboard/protocol"
	"github.com/switchboard-pbx/switchboard/protocol/ami"
)

// Recording operations: MixMonitor, StopMixMonitor and MixMonitorMute
// (Asterisk 22 has no pause: a mute of both directions is the pause),
// each confirmed by its MixMonitor* event (capture 15), and the download
// of a recording's file. The agent names every file; nothing of a path
// ever comes from a request.

// DefaultRecordingsDir is Asterisk's spool monitor directory.
const DefaultRecordingsDir = "/var/spool/asterisk/monitor"

// Defaults of RecordingConfig.
const (
	DefaultMaxActiveRecordings = 1000
	// recordingsSubdir keeps the agent's files apart from the dialplan's
	// in a shared spool directory.
	recordingsSubdir = "switchboard"
	// mixMonitorIDVar receives MixMonitor's id (option i()), which
	// StopMixMonitor and MixMonitorMute need to pick one recording of
	// several on a channel.
	mixMonitorIDVar = "SWITCHBOARD_MIXMONITOR_ID"
	// fileCheckInterval paces the check that MixMonitor created its file.
	fileCheckInterval = 10 * time.Millisecond
)

// RecordingConfig configures the recording operations.
type RecordingConfig struct {
	// Dir is the directory Asterisk records to, as this agent sees it
	// (the agent runs on the PBX): MixMonitor writes each file the agent
	// starts under Dir/switchboard/YYYYMMDD/, and recording_fetch serves
	// only those files. An absolute, clean path. Default
	// DefaultRecordingsDir.
	Dir string
	// MaxActive bounds the recordings the agent tracks at once; more are
	// refused with ErrBusy.
	MaxActive int
	// Expect, when set, is told of a recording just before its MixMonitor
	// is sent, so the call tracker names it in recording.started; the
	// returned func withdraws it when the action failed. ExpectStop is
	// told which recording the next MixMonitorStop of a channel ends.
	Expect     func(uniqueid string, r protocol.Recording) (cancel func())
	ExpectStop func(uniqueid, recordingID string)
}

// recordingsDirRe: a directory we put in MixMonitor's File header.
var recordingsDirRe = regexp.MustCompile(`^/[A-Za-z0-9._/-]*$`)

// Validate says what is wrong with c; zero fields take defaults.
func (c RecordingConfig) Validate() error {
	var errs []error
	if d := c.Dir; d != "" && (!recordingsDirRe.MatchString(d) || filepath.Clean(d) != d) {
		errs = append(errs, fmt.Errorf("Recordings.Dir %q must be an absolute, clean path of the characters A-Z a-z 0-9 . _ - /", d))
	}
	if c.MaxActive < 0 {
		errs = append(errs, fmt.Errorf("Recordings.MaxActive %d is negative", c.MaxActive))
	}
	return errors.Join(errs...)
}

func (c *RecordingConfig) fill() {
	c.Dir = cmp.Or(c.Dir, DefaultRecordingsDir)
	c.MaxActive = cmp.Or(c.MaxActive, DefaultMaxActiveRecordings)
}

// recordingIDRe is the only shape of id recording_fetch accepts: rec-,
// the day the agent named it (its folder) and 64 random bits.
var recordingIDRe = regexp.MustCompile(`^rec-([0-9]{8})-[0-9a-f]{16}$`)

// NewRecordingID returns "rec-YYYYMMDD-<16 hex digits>" for a recording
// started at now.
func NewRecordingID(now time.Time) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "rec-" + now.UTC().Format("20060102") + "-" + hex.EncodeToString(b[:])
}

// recordingFile is the file of recording id, relative to the recordings
// directory ("" for an id of another shape).
func recordingFile(id string) string {
	m := recordingIDRe.FindStringSubmatch(id)
	if m == nil {
		return ""
	}
	return path.Join(recordingsSubdir, m[1], id+".wav")
}

// recording is one recording this agent started and has not seen end.
type recording struct {
	protocol.Recording
	uniqueid string // of the recorded channel
	mixID    string // MixMonitorID
	mutedIn  bool
	mutedOut bool
}

func (r *recording) muted() string {
	switch {
	case r.mutedIn && r.mutedOut:
		return protocol.RecordBoth
	case r.mutedIn:
		return protocol.RecordIn
	case r.mutedOut:
		return protocol.RecordOut
	}
	return ""
}

type recordings struct {
	mu   sync.Mutex
	byID map[string]*recording
}

func (h *Handler) recordingChannelGone(uniqueid string) {
	if uniqueid == "" {
		return
	}
	h.recs.mu.Lock()
	defer h.recs.mu.Unlock()
	for id, r := range h.recs.byID {
		if r.uniqueid == uniqueid {
			delete(h.recs.byID, id)
		}
	}
}

// RecordingStart records a call: MixMonitor on its first channel, which
// must be answered (MixMonitor starts at the answer), into a file the
// agent names. It is confirmed by MixMonitorStart and by the file being
// there: an unwritable path answers Success too (15b).
func (h *Handler) RecordingStart(ctx context.Context, a protocol.RecordingStartArgs) (protocol.RecordingsResult, error) {
	var none protocol.RecordingsResult
	if err := h.cfg.Limits.checkCallID("call_id", a.CallID); err != nil {
		return none, err
	}
	if err := h.requireAMI(); err != nil {
		return none, err
	}
	ch, ok := h.cfg.Channels.ByUniqueID(a.CallID)
	if !ok {
		return none, fmt.Errorf("%w: call %s has no live channel on this PBX", ErrNotFound, a.CallID)
	}
	if ch.State != "Up" {
		return none, fmt.Errorf("%w: call %s is not answered yet (its channel is %s): a recording starts once it is", ErrConflict, a.CallID, ch.State)
	}
	if err := h.reserveRecording(); err != nil {
		return none, err
	}
	now := h.cfg.Now()
	id := NewRecordingID(now)
	rec := &recording{Recording: protocol.Recording{ID: id, CallID: a.CallID, Channel: ch.Channel, File: recordingFile(id), StartedAt: now.UTC()},
		uniqueid: ch.UniqueID}
	full := filepath.Join(h.cfg.Recordings.Dir, filepath.FromSlash(rec.File))
	cancel := func() {}
	if h.cfg.Recordings.Expect != nil {
		cancel = h.cfg.Recordings.Expect(ch.UniqueID, rec.Recording)
	}
	w := h.expect(confirmation{op: protocol.OpRecordingStart, action: "MixMonitor", events: "MixMonitorStart", class: "call",
		match: func(m *ami.Message) bool { return m.Event() == "MixMonitorStart" && m.Get("Uniqueid") == ch.UniqueID }})
	resp, err := h.cfg.AMI.Action(ctx, ami.NewAction("MixMonitor", "Channel", ch.Channel, "File", full, "Options", "i("+mixMonitorIDVar+")"))
	if err != nil {
		h.forget(w)
		cancel()
		return none, err
	}
	rec.mixID = resp.Get("MixMonitorID")
	if _, err := h.confirm(ctx, w); err != nil {
		if errors.Is(err, ErrNotConfirmed) {
			// Answered not_confirmed, it must not be running either: it
			// would count against no limit, and no request could stop it.
			h.stopQuietly(ch.Channel, rec.mixID)
		}
		return none, err
	}
	if err := h.waitFile(ctx, full); err != nil {
		h.stopQuietly(ch.Channel, rec.mixID)
		return none, err
	}
	h.recs.mu.Lock()
	if h.recs.byID == nil {
		h.recs.byID = map[string]*recording{}
	}
	h.recs.byID[id] = rec
	h.recs.mu.Unlock()
	h.log.Info("recording started", "recording_id", id, "call_id", a.CallID, "channel", ch.Channel, "file", full)
	return protocol.RecordingsResult{Recordings: []protocol.Recording{rec.Recording}}, nil
}

// reserveRecording refuses a recording past MaxActive, after forgetting
// those whose channel has gone (a Hangup missed while AMI was down).
func (h *Handler) reserveRecording() error {
	h.recs.mu.Lock()
	defer h.recs.mu.Unlock()
	if len(h.recs.byID) < h.cfg.Recordings.MaxActive {
		return nil
	}
	for id, r := range h.recs.byID {
		if _, ok := h.cfg.Channels.ByUniqueID(r.uniqueid); !ok {
			delete(h.recs.byID, id)
		}
	}
	if len(h.recs.byID) < h.cfg.Recordings.MaxActive {
		return nil
	}
	return fmt.Errorf("%w: %d recordings are running (the agent's recordings limit)", ErrBusy, h.cfg.Recordings.MaxActive)
}

// waitFile waits, within the confirmation timeout, for MixMonitor's file:
// Asterisk opens it before MixMonitorStart, so it is there at once unless
// Asterisk cannot write there or this agent does not see Asterisk's
// recordings directory.
func (h *Handler) waitFile(ctx context.Context, full string) error {
	d := h.confirmWithin(ctx)
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	tick := time.NewTicker(fileCheckInterval)
	defer tick.Stop()
	for {
		if fi, err := os.Lstat(full); err == nil && fi.Mode().IsRegular() {
			return nil
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			return h.notConfirmed(protocol.OpRecordingStart, fmt.Sprintf(
				"Asterisk accepted MixMonitor and sent MixMonitorStart, but its file %s did not appear within %v: can Asterisk write to the agent's recordings directory %s, and is it Asterisk's?",
				full, d.Round(time.Millisecond), h.cfg.Recordings.Dir))
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// stopQuietly stops a recording that failed its confirmation.
func (h *Handler) stopQuietly(channel, mixID string) {
	ctx, cancel := context.WithTimeout(h.life, h.cfg.ConfirmTimeout)
	defer cancel()
	act := ami.NewAction("StopMixMonitor", "Channel", channel)
	if mixID != "" {
		act.Add("MixMonitorID", mixID)
	}
	if _, err := h.cfg.AMI.Action(ctx, act); err != nil {
		h.log.Warn("could not stop an unconfirmed recording", "channel", channel, "err", err)
	}
}

// selectRecordings returns the running recordings of call (the one named
// when id is set).
func (h *Handler) selectRecordings(call, id string) ([]*recording, error) {
	if err := h.cfg.Limits.checkCallID("call_id", call); err != nil {
		return nil, err
	}
	if id != "" && !recordingIDRe.MatchString(id) {
		return nil, invalid("recording_id", "must look like rec-YYYYMMDD-<16 hex digits>")
	}
	if err := h.requireAMI(); err != nil {
		return nil, err
	}
	h.recs.mu.Lock()
	defer h.recs.mu.Unlock()
	var out []*recording
	for _, r := range h.recs.byID {
		if r.CallID == call && (id == "" || r.ID == id) {
			out = append(out, r)
		}
	}
	if len(out) == 0 {
		if id != "" {
			return nil, fmt.Errorf("%w: no recording %s running on call %s", ErrNotFound, id, call)
		}
		return nil, fmt.Errorf("%w: no recording started by the agent is running on call %s", ErrNotFound, call)
	}
	return out, nil
}

// liveChannel is the recorded channel's current name (a Local channel may
// be renamed), or ErrNotFound when it has gone, taking its recording.
func (h *Handler) liveChannel(r *recording) (string, error) {
	ch, ok := h.cfg.Channels.ByUniqueID(r.uniqueid)
	if !ok {
		h.recordingChannelGone(r.uniqueid)
		return "", fmt.Errorf("%w: the channel of recording %s has hung up, which ended it", ErrNotFound, r.ID)
	}
	return ch.Channel, nil
}

// RecordingStop stops one recording of a call, or all the agent started
// on it, each confirmed by MixMonitorStop.
func (h *Handler) RecordingStop(ctx context.Context, a protocol.RecordingStopArgs) (protocol.RecordingsResult, error) {
	recs, err := h.selectRecordings(a.CallID, a.RecordingID)
	if err != nil {
		return protocol.RecordingsResult{}, err
	}
	out := protocol.RecordingsResult{Recordings: make([]protocol.Recording, 0, len(recs))}
	for _, r := range recs {
		channel, err := h.liveChannel(r)
		if err != nil {
			return out, err
		}
		if h.cfg.Recordings.ExpectStop != nil {
			h.cfg.Recordings.ExpectStop(r.uniqueid, r.ID)
		}
		_, err = h.sendConfirmed(ctx, h.cfg.AMI, ami.NewAction("StopMixMonitor", "Channel", channel, "MixMonitorID", r.mixID),
			confirmation{op: protocol.OpRecordingStop, events: "MixMonitorStop", class: "call",
				match: func(m *ami.Message) bool { return m.Event() == "MixMonitorStop" && m.Get("Uniqueid") == r.uniqueid }})
		if err != nil {
			return out, recordingError(err, r.ID)
		}
		h.recs.mu.Lock()
		delete(h.recs.byID, r.ID)
		h.recs.mu.Unlock()
		stopped := h.cfg.Now().UTC()
		rec := r.Recording
		rec.StoppedAt, rec.Muted = &stopped, r.muted()
		out.Recordings = append(out.Recordings, rec)
		h.log.Info("recording stopped", "recording_id", r.ID, "call_id", r.CallID)
	}
	return out, nil
}

// recordingError: MixMonitor's "Could not stop monitoring channel" and
// "Cannot set mute flag" mean the recording is no longer there.
func recordingError(err error, id string) error {
	var re *ami.ResponseError
	if errors.As(err, &re) && (re.Message == "Could not stop monitoring channel" || re.Message == "Cannot set mute flag") {
		return fmt.Errorf("%w: recording %s is no longer running (asterisk: %s)", ErrNotFound, id, re.Message)
	}
	return err
}

// mixMonitorDirection maps the API's directions to MixMonitorMute's:
// "in" is what Asterisk reads from the recorded channel (its party's
// voice), "out" what it writes to it (what that party hears).
var mixMonitorDirection = map[string]string{
	protocol.RecordIn: "read", protocol.RecordOut: "write", protocol.RecordBoth: "both",
}

// RecordingMute mutes or unmutes a direction of one recording or of all
// the agent started on the call, each confirmed by MixMonitorMute.
func (h *Handler) RecordingMute(ctx context.Context, a protocol.RecordingMuteArgs) (protocol.RecordingsResult, error) {
	dir, ok := mixMonitorDirection[a.Direction]
	if !ok {
		return protocol.RecordingsResult{}, invalid("direction", "must be in, out or both")
	}
	recs, err := h.selectRecordings(a.CallID, a.RecordingID)
	if err != nil {
		return protocol.RecordingsResult{}, err
	}
	state := "0"
	if a.Muted {
		state = "1"
	}
	out := protocol.RecordingsResult{Recordings: make([]protocol.Recording, 0, len(recs))}
	for _, r := range recs {
		channel, err := h.liveChannel(r)
		if err != nil {
			return out, err
		}
		act := ami.NewAction("MixMonitorMute", "Channel", channel, "Direction", dir, "State", state, "MixMonitorID", r.mixID)
		_, err = h.sendConfirmed(ctx, h.cfg.AMI, act, confirmation{op: protocol.OpRecordingMute, events: "MixMonitorMute", class: "call",
			match: func(m *ami.Message) bool {
				return m.Event() == "MixMonitorMute" && m.Get("Uniqueid") == r.uniqueid && is(m, "Direction", dir) && m.Get("State") == state
			}})
		if err != nil {
			return out, recordingError(err, r.ID)
		}
		h.recs.mu.Lock()
		if a.Direction != protocol.RecordOut {
			r.mutedIn = a.Muted
		}
		if a.Direction != protocol.RecordIn {
			r.mutedOut = a.Muted
		}
		rec := r.Recording
		rec.Muted = r.muted()
		h.recs.mu.Unlock()
		out.Recordings = append(out.Recordings, rec)
		h.log.Info("recording muted", "recording_id", r.ID, "direction", a.Direction, "muted", a.Muted)
	}
	return out, nil
}

// RecordingBody is a recording's bytes after its description; the tunnel
// sends it on a body stream (tunnel.Body).
type RecordingBody struct {
	file protocol.RecordingFile
	r    io.Reader
	f    *os.File
}

// Result describes the bytes that follow.
func (b *RecordingBody) Result() any { return b.file }

func (b *RecordingBody) Read(p []byte) (int, error) { return b.r.Read(p) }

// Close closes the file.
func (b *RecordingBody) Close() error { return b.f.Close() }

// RecordingFetch opens a recording the agent made, for Length bytes from
// Offset (Length 0: to the end; an Offset past the end sends nothing and
// says the size), or its last Suffix bytes. Only regular files of the agent's own naming inside the
// recordings directory are served: the id is the whole input, its path
// is resolved inside the directory with os.Root (no "..", no symlink out
// of it), the file must not be a symlink or have other hard links, and
// it must belong to the directory's owner (Asterisk's user).
func (h *Handler) RecordingFetch(ctx context.Context, a protocol.RecordingFetchArgs) (*RecordingBody, error) {
	rel := recordingFile(a.RecordingID)
	switch {
	case rel == "":
		return nil, invalid("recording_id", "must look like rec-YYYYMMDD-<16 hex digits>")
	case a.Offset < 0:
		return nil, invalid("offset", "must not be negative")
	case a.Length < 0:
		return nil, invalid("length", "must not be negative")
	case a.Suffix < 0:
		return nil, invalid("suffix", "must not be negative")
	case a.Suffix > 0 && (a.Offset != 0 || a.Length != 0):
		return nil, invalid("suffix", "excludes offset and length")
	}
	f, fi, err := h.openRecording(rel)
	if err != nil {
		return nil, err
	}
	size := fi.Size()
	off := min(a.Offset, size)
	if a.Suffix > 0 {
		off = max(size-a.Suffix, 0)
	}
	n := size - off
	if a.Length > 0 && a.Length < n {
		n = a.Length
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("seek recording: %w", err)
	}
	h.log.Info("recording fetched", "recording_id", a.RecordingID, "offset", off, "length", n)
	return &RecordingBody{
		file: protocol.RecordingFile{RecordingID: a.RecordingID, Size: size, Offset: off, Length: n, ModTime: fi.ModTime().UTC(),
			ContentType: "audio/wav"},
		r: io.LimitReader(f, n),
		f: f,
	}, nil
}

// openRecording opens rel inside the recordings directory, refusing
// anything but a single-link regular file of the directory's owner.
func (h *Handler) openRecording(rel string) (*os.File, os.FileInfo, error) {
	root, err := os.OpenRoot(h.cfg.Recordings.Dir)
	if err != nil {
		h.log.Warn("recordings directory cannot be opened", "dir", h.cfg.Recordings.Dir, "err", err)
		return nil, nil, fmt.Errorf("%w: the recordings directory cannot be read on this PBX", ErrNotFound)
	}
	defer root.Close()
	notFound := fmt.Errorf("%w: no recording %s on this PBX", ErrNotFound, strings.TrimSuffix(path.Base(rel), ".wav"))
	fi, err := root.Lstat(rel)
	if err != nil {
		return nil, nil, notFound
	}
	dir, err := root.Stat(".")
	if err != nil {
		return nil, nil, notFound
	}
	if reason := refuseFile(fi, dir); reason != "" {
		h.log.Warn("recording refused", "file", rel, "reason", reason)
		return nil, nil, notFound
	}
	f, err := root.Open(rel)
	if err != nil {
		return nil, nil, notFound
	}
	// The file opened must be the one checked, not one put in its place.
	if ofi, err := f.Stat(); err != nil || !os.SameFile(fi, ofi) {
		f.Close()
		h.log.Warn("recording refused", "file", rel, "reason", "replaced while it was opened")
		return nil, nil, notFound
	}
	return f, fi, nil
}

// refuseFile says why fi may not be served ("" if it may): a symlink or
// anything but a regular file, a file with other hard links (one could
// point at any file of the system), or a file of another owner than the
// recordings directory's.
func refuseFile(fi, dir os.FileInfo) string {
	if !fi.Mode().IsRegular() {
		return "not a regular file (" + fi.Mode().Type().String() + ")"
	}
	owner, links, ok := fileOwner(fi)
	dirOwner, _, dirOK := fileOwner(dir)
	switch {
	case !ok || !dirOK:
		return ""
	case links > 1:
		return fmt.Sprintf("%d hard links", links)
	case owner != dirOwner:
		return fmt.Sprintf("owned by uid %d, the recordings directory by uid %d", owner, dirOwner)
	}
	return ""
}
