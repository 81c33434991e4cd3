package api_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane"
	"github.com/switchboard-pbx/switchboard/controlplane/api"
	"github.com/switchboard-pbx/switchboard/controlplane/auth"
	"github.com/switchboard-pbx/switchboard/internal/systemtest"
	"github.com/switchboard-pbx/switchboard/protocol"
	"github.com/switchboard-pbx/switchboard/protocol/ami/amitest"
)

type recordingBody struct {
	ID          string     `json:"id"`
	PBX         string     `json:"pbx"`
	RecordingID string     `json:"recording_id"`
	CallID      string     `json:"call_id"`
	File        string     `json:"file"`
	StoppedAt   *time.Time `json:"stopped_at"`
	Muted       string     `json:"muted"`
	URL         string     `json:"url"`
}

type recordingsBody struct {
	PBX        string          `json:"pbx"`
	CallID     string          `json:"call_id"`
	Recordings []recordingBody `json:"recordings"`
}

func TestRecordingsAPI(t *testing.T) {
	dir := t.TempDir()
	s := systemtest.New(t, systemtest.Options{})
	s.Enterprise(t, "0367", "june")
	s.Enterprise(t, "0420", "acme")
	pbx := s.AddPBX(t, "0367", systemtest.PBXOptions{RecordingsDir: dir,
		AMI: []amitest.Option{amitest.WithRecordings(dir), amitest.WithAnswerWait(-1)}})
	operator := s.JWT(t, "0367", "op-1", auth.RoleOperator)
	supervisor := s.JWT(t, "0367", "sup-1", auth.RoleSupervisor)
	control := s.APIKey(t, "0367", auth.ScopeRecordings)
	download := s.APIKey(t, "0367", auth.ScopeRecordingsRead)
	reader := s.APIKey(t, "0367", auth.ScopeEventsRead)
	other := s.APIKey(t, "0420")

	call, err := pbx.AMI.StartCall("150", "151")
	if err != nil {
		t.Fatal(err)
	}
	s.WaitChannel(t, pbx.ID, call)
	base := "/v1/calls/" + call + "/recording/"

	// Recording control is a supervisor's (scope recordings).
	for _, tok := range []string{operator, download} {
		if r := s.Do(t, "POST", base+"start", tok, nil); r.Status != http.StatusForbidden {
			t.Errorf("start without the right: %d %s", r.Status, r.Body)
		}
	}
	var started recordingsBody
	r := s.Do(t, "POST", base+"start", supervisor, nil)
	r.JSON(t, &started)
	if r.Status != http.StatusCreated || len(started.Recordings) != 1 || started.PBX != pbx.ID {
		t.Fatalf("start: %d %s", r.Status, r.Body)
	}
	rec := started.Recordings[0]
	if rec.ID != pbx.ID+"."+rec.RecordingID || rec.URL != "/v1/recordings/"+rec.ID || !strings.HasPrefix(rec.File, "switchboard/") {
		t.Fatalf("recording %+v", rec)
	}
	sent := pbx.AMI.Actions()
	var file string
	for _, m := range sent {
		if m.Action() == "MixMonitor" {
			file = m.Get("File")
		}
	}
	if file != dir+"/"+rec.File {
		t.Errorf("MixMonitor File %q: the agent must name it under its recordings directory %s", file, dir)
	}
	waitEvent(t, s, reader, protocol.EventRecordingStarted, func(e storedEvent) bool { return e.RecordingID == rec.RecordingID && e.CallID == call })

	// Mute is Asterisk 22's pause.
	var muted recordingsBody
	r = s.Do(t, "POST", base+"mute", control, map[string]any{"direction": "both", "muted": true})
	r.JSON(t, &muted)
	if r.Status != http.StatusOK || muted.Recordings[0].Muted != "both" {
		t.Fatalf("mute: %d %s", r.Status, r.Body)
	}
	for _, body := range []map[string]any{{"direction": "read", "muted": true}, {"direction": "both"}, {"direction": "in", "muted": true, "file": "/etc/passwd"}} {
		if r := s.Do(t, "POST", base+"mute", control, body); r.Status != http.StatusBadRequest {
			t.Errorf("mute %v: %d %s", body, r.Status, r.Body)
		}
	}
	if r := s.Do(t, "POST", base+"start", supervisor, map[string]any{"file": "x.wav"}); r.Status != http.StatusBadRequest {
		t.Errorf("start naming a file: %d %s", r.Status, r.Body)
	}

	// The file downloads through the tunnel: whole, by range, by suffix.
	get := func(tok string, headers ...string) systemtest.Response {
		t.Helper()
		return s.Do(t, "GET", rec.URL, tok, nil, headers...)
	}
	r = get(download)
	if r.Status != http.StatusOK || len(r.Body) != 44 || !bytes.HasPrefix(r.Body, []byte("RIFF")) ||
		r.Header.Get("Content-Type") != "audio/wav" || r.Header.Get("Accept-Ranges") != "bytes" || r.Header.Get("Content-Length") != "44" {
		t.Fatalf("download: %d %v %q", r.Status, r.Header, r.Body)
	}
	r = s.Do(t, "HEAD", rec.URL, download, nil)
	if r.Status != http.StatusOK || len(r.Body) != 0 || r.Header.Get("Content-Length") != "44" {
		t.Fatalf("HEAD: %d %v %q", r.Status, r.Header, r.Body)
	}
	r = get(download, "Range", "bytes=8-11")
	if r.Status != http.StatusPartialContent || string(r.Body) != "WAVE" || r.Header.Get("Content-Range") != "bytes 8-11/44" {
		t.Fatalf("range: %d %v %q", r.Status, r.Header, r.Body)
	}
	r = get(download, "Range", "bytes=-4")
	if r.Status != http.StatusPartialContent || len(r.Body) != 4 || r.Header.Get("Content-Range") != "bytes 40-43/44" {
		t.Fatalf("suffix range: %d %v %q", r.Status, r.Header, r.Body)
	}
	r = get(download, "Range", "bytes=100-")
	if r.Status != http.StatusRequestedRangeNotSatisfiable || r.Header.Get("Content-Range") != "bytes */44" {
		t.Fatalf("range past the end: %d %v %s", r.Status, r.Header, r.Body)
	}
	if r := get(control); r.Status != http.StatusForbidden {
		t.Errorf("download with recordings (control) only: %d", r.Status)
	}
	if r := get(other); r.Status != http.StatusNotFound {
		t.Errorf("another enterprise's download: %d %s", r.Status, r.Body)
	}
	for _, id := range []string{pbx.ID + ".rec-20990101-0123456789abcdef", pbx.ID + ".%2e%2e%2fsecret", "rec-20990101-0123456789abcdef"} {
		r := s.Do(t, "GET", "/v1/recordings/"+id, download, nil)
		if r.Status != http.StatusNotFound && r.Status != http.StatusBadRequest {
			t.Errorf("GET /v1/recordings/%s: %d %s", id, r.Status, r.Body)
		}
	}

	var stopped recordingsBody
	r = s.Do(t, "POST", base+"stop", supervisor, map[string]any{"recording_id": rec.ID})
	r.JSON(t, &stopped)
	if r.Status != http.StatusOK || len(stopped.Recordings) != 1 || stopped.Recordings[0].StoppedAt == nil {
		t.Fatalf("stop: %d %s", r.Status, r.Body)
	}
	if r := s.Do(t, "POST", base+"stop", supervisor, nil); r.Status != http.StatusNotFound {
		t.Errorf("stop again: %d %s", r.Status, r.Body)
	}
	waitEvent(t, s, reader, protocol.EventRecordingStopped, func(e storedEvent) bool { return e.RecordingID == rec.RecordingID })

	// GET /v1/calls/{id} lists the call's recordings.
	var detail struct {
		CallID     string          `json:"call_id"`
		Recordings []recordingBody `json:"recordings"`
	}
	r = s.Do(t, "GET", "/v1/calls/"+call, reader, nil)
	r.JSON(t, &detail)
	if r.Status != http.StatusOK || len(detail.Recordings) != 1 || detail.Recordings[0].ID != rec.ID || detail.Recordings[0].StoppedAt == nil {
		t.Fatalf("GET /v1/calls/%s: %d %s", call, r.Status, r.Body)
	}
}

// TestRecordingDownloadNewPBX: a download names its PBX in the recording
// id; a PBX registered after the enterprise's PBX list was cached (TTL an
// hour here) is asked, not reported as an unknown recording. Its agent
// refuses the malformed id, which shows the request reached it.
func TestRecordingDownloadNewPBX(t *testing.T) {
	s := systemtest.New(t, systemtest.Options{Config: controlplane.Config{API: api.Config{PBXCacheTTL: time.Hour}}})
	s.Enterprise(t, "0367", "june")
	s.AddPBX(t, "0367")
	key := s.APIKey(t, "0367", auth.ScopeRecordingsRead, auth.ScopeChannelsRead)
	want(t, s.Do(t, "GET", "/v1/pbxs", key, nil), http.StatusOK, "") // caches the list of one
	second := s.AddPBX(t, "0367", systemtest.PBXOptions{RecordingsDir: t.TempDir()})
	want(t, s.Do(t, "GET", "/v1/recordings/"+second.ID+".not-a-recording", key, nil), http.StatusBadRequest, "invalid_request")
	want(t, s.Do(t, "GET", "/v1/recordings/agt_nosuchpbx.not-a-recording", key, nil), http.StatusNotFound, "not_found")
}
