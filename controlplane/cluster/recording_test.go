package cluster_test

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/switchboard-pbx/switchboard/controlplane/auth"
	"github.com/switchboard-pbx/switchboard/internal/systemtest"
	"github.com/switchboard-pbx/switchboard/protocol/ami/amitest"
)

// TestRecordingThroughAnotherReplica: a recording's bytes are served by
// the replica holding the PBX and stream through the one the client
// asked, whole and by range, as from the holder itself.
func TestRecordingThroughAnotherReplica(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c := systemtest.NewCluster(t, 2, systemtest.Options{})
	r0, r1 := c.Replicas[0], c.Replicas[1]
	r0.Enterprise(t, "0367", "Acme")
	pbx := r0.AddPBX(t, "0367", systemtest.PBXOptions{RecordingsDir: dir,
		AMI: []amitest.Option{amitest.WithRecordings(dir), amitest.WithAnswerWait(-1)}})
	supervisor := r0.JWT(t, "0367", "sup-1", auth.RoleSupervisor)
	download := r0.APIKey(t, "0367", auth.ScopeRecordingsRead)
	call, err := pbx.AMI.StartCall("150", "151")
	if err != nil {
		t.Fatal(err)
	}
	r0.WaitChannel(t, pbx.ID, call)
	if _, ok := r1.CP().Registry().Get(pbx.ID); ok {
		t.Fatal("replica 1 holds the PBX: the download would not be forwarded")
	}
	var started struct {
		Recordings []struct {
			URL  string `json:"url"`
			File string `json:"file"`
		} `json:"recordings"`
	}
	r := r1.Do(t, "POST", "/v1/calls/"+call+"/recording/start", supervisor, nil)
	r.JSON(t, &started)
	if r.Status != http.StatusCreated || len(started.Recordings) != 1 {
		t.Fatalf("start through replica 1: %d %s", r.Status, r.Body)
	}
	rec := started.Recordings[0]
	want, err := os.ReadFile(filepath.Join(dir, rec.File))
	if err != nil || len(want) < 12 {
		t.Fatalf("the recording on the PBX: %d bytes, %v", len(want), err)
	}

	r = r1.Do(t, "GET", rec.URL, download, nil)
	if r.Status != http.StatusOK || !bytes.Equal(r.Body, want) || r.Header.Get("Content-Type") != "audio/wav" {
		t.Fatalf("download through replica 1: %d %v %q, want the %d bytes of the file", r.Status, r.Header, r.Body, len(want))
	}
	r = r1.Do(t, "GET", rec.URL, download, nil, "Range", "bytes=8-11")
	if r.Status != http.StatusPartialContent || !bytes.Equal(r.Body, want[8:12]) {
		t.Fatalf("range through replica 1: %d %v %q", r.Status, r.Header, r.Body)
	}
	if r := r1.Do(t, "GET", "/v1/recordings/"+pbx.ID+".rec-20990101-0123456789abcdef", download, nil); r.Status != http.StatusNotFound {
		t.Fatalf("a recording the PBX lacks, through replica 1: %d %s", r.Status, r.Body)
	}
}
