package ops

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/protocol"
	"github.com/switchboard-pbx/switchboard/protocol/ami/amitest"
)

// answeredCall places 150 → 151 on the fake and returns the call id once
// its first channel is up in the table.
func (p *pbx) answeredCall(t *testing.T) string {
	t.Helper()
	id, err := p.srv.StartCall("150", "151")
	if err != nil {
		t.Fatal(err)
	}
	p.eventually(t, "the call answered", func() bool {
		ch, ok := p.table.ByUniqueID(id)
		return ok && ch.State == "Up"
	})
	return id
}

func TestRecordingAgainstFakeAsterisk(t *testing.T) {
	dir := t.TempDir()
	var expected []string
	p := startPBX(t, setup{cfg: Config{Recordings: RecordingConfig{Dir: dir,
		Expect: func(uid string, r protocol.Recording) func() {
			expected = append(expected, uid+" "+r.ID)
			return func() {}
		}}}, server: []amitest.Option{amitest.WithRecordings(dir), amitest.WithAnswerWait(-1)}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	callID := p.answeredCall(t)

	start, err := p.h.RecordingStart(ctx, protocol.RecordingStartArgs{CallID: callID})
	if err != nil {
		t.Fatal(err)
	}
	rec := start.Recordings[0]
	if !recordingIDRe.MatchString(rec.ID) || rec.CallID != callID || !strings.HasPrefix(rec.File, "switchboard/") ||
		!strings.HasPrefix(rec.Channel, "Local/150@inoffice-") || len(expected) != 1 || !strings.HasSuffix(expected[0], rec.ID) {
		t.Fatalf("recording %+v, expected %v", rec, expected)
	}
	sent, _ := p.srv.WaitAction(ctx, "MixMonitor")
	if sent.Get("File") != filepath.Join(dir, rec.File) || sent.Get("Options") != "i(SWITCHBOARD_MIXMONITOR_ID)" {
		t.Errorf("MixMonitor sent %s", sent)
	}

	// Mute is the pause; both directions, then one.
	mute, err := p.h.RecordingMute(ctx, protocol.RecordingMuteArgs{CallID: callID, Direction: protocol.RecordBoth, Muted: true})
	if err != nil || mute.Recordings[0].Muted != protocol.RecordBoth {
		t.Fatalf("mute: %+v, %v", mute, err)
	}
	sent, _ = p.srv.WaitAction(ctx, "MixMonitorMute")
	if sent.Get("Direction") != "both" || sent.Get("State") != "1" || sent.Get("MixMonitorID") == "" {
		t.Errorf("MixMonitorMute sent %s", sent)
	}
	mute, err = p.h.RecordingMute(ctx, protocol.RecordingMuteArgs{CallID: callID, RecordingID: rec.ID, Direction: protocol.RecordIn})
	if err != nil || mute.Recordings[0].Muted != protocol.RecordOut {
		t.Fatalf("unmute in: %+v, %v", mute, err)
	}

	// The file downloads, whole and by range.
	body, err := p.h.RecordingFetch(ctx, protocol.RecordingFetchArgs{RecordingID: rec.ID})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(body)
	body.Close()
	if len(b) != 44 || !bytes.HasPrefix(b, []byte("RIFF")) || body.file.Size != 44 || body.file.ContentType != "audio/wav" {
		t.Fatalf("fetched %d bytes %q, %+v", len(b), b, body.file)
	}
	part, err := p.h.RecordingFetch(ctx, protocol.RecordingFetchArgs{RecordingID: rec.ID, Offset: 8, Length: 4})
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(part)
	part.Close()
	if string(b) != "WAVE" || part.file.Offset != 8 || part.file.Length != 4 {
		t.Fatalf("range read %q, %+v", b, part.file)
	}
	past, err := p.h.RecordingFetch(ctx, protocol.RecordingFetchArgs{RecordingID: rec.ID, Offset: 1000})
	if err != nil || past.file.Length != 0 || past.file.Size != 44 {
		t.Fatalf("offset past the end: %+v, %v", past, err)
	}
	past.Close()

	stop, err := p.h.RecordingStop(ctx, protocol.RecordingStopArgs{CallID: callID})
	if err != nil || len(stop.Recordings) != 1 || stop.Recordings[0].StoppedAt == nil {
		t.Fatalf("stop: %+v, %v", stop, err)
	}
	if _, err := p.h.RecordingStop(ctx, protocol.RecordingStopArgs{CallID: callID}); code(err) != protocol.ErrCodeNotFound {
		t.Errorf("stopping again: %v", err)
	}

	// A recording ends with its channel: nothing left to stop.
	if _, err := p.h.RecordingStart(ctx, protocol.RecordingStartArgs{CallID: callID}); err != nil {
		t.Fatal(err)
	}
	if err := p.srv.Hangup(callID, 16); err != nil {
		t.Fatal(err)
	}
	p.eventually(t, "the call's end", func() bool { _, ok := p.table.ByUniqueID(callID); return !ok })
	if _, err := p.h.RecordingStop(ctx, protocol.RecordingStopArgs{CallID: callID}); code(err) != protocol.ErrCodeNotFound {
		t.Errorf("stopping after the hangup: %v", err)
	}
	if _, err := p.h.RecordingStart(ctx, protocol.RecordingStartArgs{CallID: callID}); code(err) != protocol.ErrCodeNotFound {
		t.Errorf("recording a call that ended: %v", err)
	}
}

// MixMonitor answers Success and MixMonitorStart even when Asterisk cannot
// write the file (15b); the agent checks the file is there.
func TestRecordingFileMissingIsNotConfirmed(t *testing.T) {
	dir := t.TempDir()
	p := startPBX(t, setup{cfg: Config{Recordings: RecordingConfig{Dir: dir}, ConfirmTimeout: 100 * time.Millisecond},
		server: []amitest.Option{amitest.WithAnswerWait(-1)}})
	callID := p.answeredCall(t)
	_, err := p.h.RecordingStart(context.Background(), protocol.RecordingStartArgs{CallID: callID})
	if code(err) != protocol.ErrCodeNotConfirmed || !strings.Contains(err.Error(), "did not appear") {
		t.Fatalf("err = %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := p.srv.WaitAction(ctx, "StopMixMonitor"); err != nil {
		t.Errorf("the unconfirmed recording was not stopped: %v", err)
	}
}

// A MixMonitor Asterisk accepted without its MixMonitorStart is answered
// not_confirmed and stopped: running on, it would count against no limit
// and no request could stop it.
func TestRecordingUnconfirmedIsStopped(t *testing.T) {
	h, f := silentPBX(t, 100*time.Millisecond)
	_, err := h.RecordingStart(context.Background(), protocol.RecordingStartArgs{CallID: "9.1"})
	if code(err) != protocol.ErrCodeNotConfirmed || !strings.Contains(err.Error(), "no MixMonitorStart event") {
		t.Fatalf("err = %v", err)
	}
	var names []string
	for _, m := range f.actions() {
		names = append(names, m.Action())
		if m.Action() == "StopMixMonitor" && m.Get("Channel") != "Local/150@inoffice-00000001;1" {
			t.Errorf("stopped %s", m)
		}
	}
	if !slices.Equal(names, []string{"MixMonitor", "StopMixMonitor"}) {
		t.Errorf("sent %v, want MixMonitor then StopMixMonitor", names)
	}
}

func TestRecordingValidation(t *testing.T) {
	p := startPBX(t, setup{cfg: Config{Recordings: RecordingConfig{Dir: t.TempDir()}}})
	before := len(p.srv.Actions())
	for _, tc := range []struct {
		name string
		op   string
		args any
	}{
		{"call id with a CR", protocol.OpRecordingStart, protocol.RecordingStartArgs{CallID: "1.2\r\nAction: Hangup"}},
		{"no call id", protocol.OpRecordingStart, protocol.RecordingStartArgs{}},
		{"recording id that is a path", protocol.OpRecordingStop, protocol.RecordingStopArgs{CallID: "1.2", RecordingID: "../../etc/passwd"}},
		{"mute direction of MixMonitor", protocol.OpRecordingMute, protocol.RecordingMuteArgs{CallID: "1.2", Direction: "read"}},
		{"fetch of a path", protocol.OpRecordingFetch, protocol.RecordingFetchArgs{RecordingID: "../../../etc/shadow"}},
		{"fetch with a negative offset", protocol.OpRecordingFetch, protocol.RecordingFetchArgs{RecordingID: "rec-20261206-0123456789abcdef", Offset: -1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if resp := p.do(tc.op, tc.args, 5*time.Second); resp.Error == nil || resp.Error.Code != protocol.ErrCodeInvalid {
				t.Fatalf("%+v", resp)
			}
		})
	}
	if after := len(p.srv.Actions()); after != before {
		t.Errorf("%d actions reached Asterisk for refused requests", after-before)
	}
	// A call still ringing cannot be recorded yet: MixMonitor would start
	// at the answer, long after the request's confirmation.
	p.srv.SetOutcome("150", amitest.NoAnswer)
	id, err := p.srv.StartCall("150", "151")
	if err != nil {
		t.Fatal(err)
	}
	p.eventually(t, "the ringing call", func() bool { _, ok := p.table.ByUniqueID(id); return ok })
	if _, err := p.h.RecordingStart(context.Background(), protocol.RecordingStartArgs{CallID: id}); code(err) != protocol.ErrCodeConflict {
		t.Errorf("recording a ringing call: %v", err)
	}
}

// The agent serves only regular, single-link files of the directory's
// owner, found inside the directory.
func TestRecordingFetchRefusesWhatIsNotARecording(t *testing.T) {
	dir := t.TempDir()
	h := startPBX(t, setup{cfg: Config{Recordings: RecordingConfig{Dir: dir}}}).h
	outside := filepath.Join(t.TempDir(), "secret.wav")
	if err := os.WriteFile(outside, []byte("RIFF secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	place := func(id string, make func(path string) error) {
		t.Helper()
		full := filepath.Join(dir, recordingFile(id))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := make(full); err != nil {
			t.Fatal(err)
		}
	}
	const (
		symlinked = "rec-20261206-00000000000000a1"
		hardlink  = "rec-20261206-00000000000000a2"
		folder    = "rec-20261206-00000000000000a3"
		dirLink   = "rec-20261207-00000000000000a4"
		missing   = "rec-20261206-00000000000000a5"
	)
	place(symlinked, func(p string) error { return os.Symlink(outside, p) })
	place(hardlink, func(p string) error { return os.Link(outside, p) })
	place(folder, func(p string) error { return os.Mkdir(p, 0o755) })
	// A day folder that is a symlink out of the directory.
	if err := os.Symlink(filepath.Dir(outside), filepath.Join(dir, "switchboard", "20261207")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(filepath.Dir(outside), dirLink+".wav")); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{symlinked, hardlink, folder, dirLink, missing} {
		if _, err := h.RecordingFetch(context.Background(), protocol.RecordingFetchArgs{RecordingID: id}); code(err) != protocol.ErrCodeNotFound {
			t.Errorf("%s: err = %v, want not_found", id, err)
		}
	}
}
