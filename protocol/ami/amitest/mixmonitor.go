package amitest

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/switchboard-pbx/switchboard/protocol/ami"
)

// MixMonitor, StopMixMonitor and MixMonitorMute, answering like captures
// 15 and 15b (README §28): success without a Message, MixMonitorID only
// with option i(VAR), MixMonitorStart after the answer, MixMonitorStop
// only on StopMixMonitor (none when the channel hangs up), and the
// successes that do nothing useful (an unknown option, an unwritable path).

// DefaultMonitorDir is Asterisk's spool monitor directory.
const DefaultMonitorDir = "/var/spool/asterisk/monitor"

func init() {
	addActions([]action{
		{"MixMonitor", "Record a call and mix the audio during the recording.  Use of StopMixMonitor is required to guarantee the audio file is available for processing during dialplan execution.  (Priv: system,all)", (*session).actionMixMonitor},
		{"StopMixMonitor", "Stop recording a call through MixMonitor, and free the recording's file handle.  (Priv: system,call,all)", (*session).actionStopMixMonitor},
		{"MixMonitorMute", "Mute / unMute a Mixmonitor recording.  (Priv: system,call,all)", (*session).actionMixMonitorMute},
	})
}

// WithRecordings makes MixMonitor write its files, relative names under
// monitorDir (Config.WriteRecordings, Config.MonitorDir).
func WithRecordings(monitorDir string) Option {
	return func(c *Config) { c.MonitorDir, c.WriteRecordings = monitorDir, true }
}

// mixmon is one running MixMonitor on a channel.
type mixmon struct {
	id   string // MixMonitorID, e.g. 0x7f51d8005620
	file string // full path
}

func newMixMonitorID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("0x%012x", b)
}

// optionVar returns VAR of the option i(VAR) in MixMonitor options.
func optionVar(opts string) string {
	i := strings.Index(opts, "i(")
	if i < 0 {
		return ""
	}
	v, _, ok := strings.Cut(opts[i+2:], ")")
	if !ok {
		return ""
	}
	return v
}

// wavHeader is what Asterisk's wav format writes before any audio: a
// 44-byte header of 8 kHz, 16-bit mono PCM with no data.
func wavHeader() []byte {
	b := make([]byte, 0, 44)
	b = append(b, "RIFF"...)
	b = binary.LittleEndian.AppendUint32(b, 36)
	b = append(b, "WAVEfmt "...)
	b = binary.LittleEndian.AppendUint32(b, 16)
	b = binary.LittleEndian.AppendUint16(b, 1) // PCM
	b = binary.LittleEndian.AppendUint16(b, 1) // mono
	b = binary.LittleEndian.AppendUint32(b, 8000)
	b = binary.LittleEndian.AppendUint32(b, 16000)
	b = binary.LittleEndian.AppendUint16(b, 2)
	b = binary.LittleEndian.AppendUint16(b, 16)
	b = append(b, "data"...)
	return binary.LittleEndian.AppendUint32(b, 0)
}

func (s *Server) monitorDir() string {
	if s.cfg.MonitorDir != "" {
		return s.cfg.MonitorDir
	}
	return DefaultMonitorDir
}

// writeRecording creates the file as MixMonitor does, when asked to. A
// failure is Asterisk's too: the action has already answered Success.
func (s *Server) writeRecording(path string) {
	if !s.cfg.WriteRecordings {
		return
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		s.log.Debug("mixmonitor: cannot create the folder", "file", path, "err", err)
		return
	}
	if err := os.WriteFile(path, wavHeader(), 0o644); err != nil {
		s.log.Debug("mixmonitor: cannot write", "file", path, "err", err)
	}
}

// recordedChannel checks the Channel header of the MixMonitor actions and
// finds the channel; when either fails it has answered m and returns nil.
// Callers hold s.mu.
func (c *session) recordedChannel(m *ami.Message) *channel {
	if !c.require(m, "Channel", "No channel specified") {
		return nil
	}
	ch := c.srv.model.find(m.Get("Channel"))
	if ch == nil {
		c.write(errorResponse(m, "No such channel"))
	}
	return ch
}

func (c *session) actionMixMonitor(m *ami.Message) bool {
	s := c.srv
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := c.recordedChannel(m)
	if ch == nil {
		return false
	}
	file := m.Get("File")
	if file == "" {
		c.write(errorResponse(m, "Could not start monitoring channel"))
		return false
	}
	if !filepath.IsAbs(file) {
		file = filepath.Join(s.monitorDir(), file)
	}
	mm := &mixmon{id: newMixMonitorID(), file: file}
	ch.mixmons = append(ch.mixmons, mm)
	v := optionVar(m.Get("Options"))
	w := response("Success", m)
	if v != "" {
		w.h("MixMonitorID", mm.id)
	}
	c.write(w.done())
	s.writeRecording(file)
	ch.setVar("MIXMONITOR_FILENAME", file)
	s.emitVarSet(ch, "MIXMONITOR_FILENAME", file)
	if v != "" {
		ch.setVar(v, mm.id)
		s.emitVarSet(ch, v, mm.id)
	}
	s.emitChan("MixMonitorStart", ch)
	return false
}

// findMixMon is the recording id names on ch, or its first one when id
// is empty (one StopMixMonitor without an id stops one recording, 15i).
func findMixMon(ch *channel, id string) int {
	for i, mm := range ch.mixmons {
		if id == "" || strings.EqualFold(mm.id, id) {
			return i
		}
	}
	return -1
}

func (c *session) actionStopMixMonitor(m *ami.Message) bool {
	s := c.srv
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := c.recordedChannel(m)
	if ch == nil {
		return false
	}
	i := findMixMon(ch, m.Get("MixMonitorID"))
	if i < 0 {
		c.write(errorResponse(m, "Could not stop monitoring channel"))
		return false
	}
	ch.mixmons = append(ch.mixmons[:i], ch.mixmons[i+1:]...)
	c.write(response("Success", m).done())
	s.emitChan("MixMonitorStop", ch)
	return false
}

func (c *session) actionMixMonitorMute(m *ami.Message) bool {
	s := c.srv
	s.mu.Lock()
	defer s.mu.Unlock()
	dir, state := m.Get("Direction"), m.Get("State")
	// Asterisk checks the headers (channel, direction, state), then the
	// direction's word, and only then looks the channel up (15b).
	if !c.require(m, "Channel", "No channel specified",
		"Direction", "No direction specified. Must be read, write or both", "State", "No state specified") {
		return false
	}
	dir = strings.ToLower(dir)
	if dir != "read" && dir != "write" && dir != "both" {
		c.write(errorResponse(m, "Invalid direction specified. Must be read, write or both"))
		return false
	}
	ch := c.recordedChannel(m)
	if ch == nil {
		return false
	}
	if findMixMon(ch, m.Get("MixMonitorID")) < 0 {
		c.write(errorResponse(m, "Cannot set mute flag"))
		return false
	}
	c.write(response("Success", m).done())
	s.emitChan("MixMonitorMute", ch, "Direction", dir, "State", fmt.Sprint(boolInt(astTrue(state))))
	return false
}
