package fleet_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/fleet"
	"github.com/switchboard-pbx/switchboard/controlplane/fleet/fleettest"
	"github.com/switchboard-pbx/switchboard/protocol"
	"github.com/switchboard-pbx/switchboard/protocol/tunnel"
)

// fileBody is a tunnel.Body: a result, then bytes; failAfter cuts the
// bytes short with an error, as a file that cannot be read to its end.
type fileBody struct {
	res       protocol.RecordingFile
	r         io.Reader
	failAfter int
	read      int
	closed    *atomic.Bool
}

func (b *fileBody) Result() any { return b.res }

func (b *fileBody) Read(p []byte) (int, error) {
	if b.failAfter > 0 && b.read >= b.failAfter {
		return 0, errors.New("disk error")
	}
	n, err := b.r.Read(p)
	b.read += n
	return n, err
}

func (b *fileBody) Close() error { b.closed.Store(true); return nil }

// pattern is n bytes that are not all alike, so a reordered or repeated
// chunk would show.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

func TestFetch(t *testing.T) {
	data := pattern(3<<20 + 17) // several chunks, more than a stream window
	// Set by the agent's goroutines, read here: atomic.
	var closed atomic.Bool
	handler := func(ctx context.Context, req protocol.Request) (any, error) {
		var a protocol.RecordingFetchArgs
		if err := json.Unmarshal(req.Args, &a); err != nil {
			return nil, err
		}
		switch a.RecordingID {
		case "whole", "cut":
			b := &fileBody{res: protocol.RecordingFile{RecordingID: a.RecordingID, Size: int64(len(data)), Length: int64(len(data)),
				ContentType: "audio/wav"}, r: bytes.NewReader(data), closed: &closed}
			if a.RecordingID == "cut" {
				b.failAfter = 1 << 20
			}
			return b, nil
		case "empty":
			return &fileBody{res: protocol.RecordingFile{RecordingID: "empty"}, r: bytes.NewReader(nil), closed: &closed}, nil
		}
		return nil, &protocol.Error{Code: protocol.ErrCodeNotFound, Message: "no recording " + a.RecordingID}
	}
	reg := fleet.NewRegistry(nil)
	srv := fleettest.NewServer(t, reg, tunnel.AcceptConfig{})
	srv.Connect(t, "pbx-1", handler, fleettest.AgentOptions{EnterpriseID: 367})
	conn, _ := reg.Get("pbx-1")

	t.Run("whole body, its result first", func(t *testing.T) {
		var res protocol.RecordingFile
		body, err := conn.Fetch(withDeadline(t), protocol.OpRecordingFetch, protocol.RecordingFetchArgs{RecordingID: "whole"}, &res)
		if err != nil {
			t.Fatal(err)
		}
		defer body.Close()
		if res.Size != int64(len(data)) || res.ContentType != "audio/wav" {
			t.Fatalf("result %+v", res)
		}
		got, err := io.ReadAll(body)
		if err != nil {
			t.Fatal(err)
		}
		if sha256.Sum256(got) != sha256.Sum256(data) {
			t.Fatalf("body of %d bytes differs from the %d sent", len(got), len(data))
		}
		// The agent closes its body after its last chunk is sent, which
		// may be just after the last byte arrives here.
		for deadline := time.Now().Add(2 * time.Second); !closed.Load() && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
		if !closed.Load() {
			t.Error("the agent's body was not closed")
		}
	})
	t.Run("a body cut short is an error, never a shorter file", func(t *testing.T) {
		body, err := conn.Fetch(withDeadline(t), protocol.OpRecordingFetch, protocol.RecordingFetchArgs{RecordingID: "cut"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer body.Close()
		got, err := io.ReadAll(body)
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("read %d bytes, err %v; want io.ErrUnexpectedEOF", len(got), err)
		}
	})
	t.Run("empty body", func(t *testing.T) {
		body, err := conn.Fetch(withDeadline(t), protocol.OpRecordingFetch, protocol.RecordingFetchArgs{RecordingID: "empty"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := io.ReadAll(body); err != nil || len(got) != 0 {
			t.Fatalf("read %q, %v", got, err)
		}
		body.Close()
	})
	t.Run("agent error", func(t *testing.T) {
		_, err := conn.Fetch(withDeadline(t), protocol.OpRecordingFetch, protocol.RecordingFetchArgs{RecordingID: "nope"}, nil)
		var pe *protocol.Error
		if !errors.As(err, &pe) || pe.Code != protocol.ErrCodeNotFound {
			t.Fatalf("err = %v, want not_found", err)
		}
	})
	t.Run("a body op on a request stream is refused", func(t *testing.T) {
		err := reg.Call(withDeadline(t), "pbx-1", protocol.OpRecordingFetch, protocol.RecordingFetchArgs{RecordingID: "whole"}, nil)
		var pe *protocol.Error
		if !errors.As(err, &pe) || pe.Code != protocol.ErrCodeInvalid {
			t.Fatalf("err = %v, want invalid", err)
		}
	})
	t.Run("no deadline", func(t *testing.T) {
		if _, err := conn.Fetch(context.Background(), protocol.OpRecordingFetch, nil, nil); !errors.Is(err, fleet.ErrNoDeadline) {
			t.Fatalf("err = %v", err)
		}
	})
}

// An agent of protocol 2 is refused the fetch before anything is sent.
func TestFetchAgentTooOld(t *testing.T) {
	reg := fleet.NewRegistry(nil)
	srv := fleettest.NewServer(t, reg, tunnel.AcceptConfig{})
	srv.Connect(t, "old", func(ctx context.Context, req protocol.Request) (any, error) {
		t.Errorf("request %s reached an agent of protocol 2", req.Op)
		return nil, nil
	}, fleettest.AgentOptions{EnterpriseID: 1, Hello: protocol.Hello{Protocol: 2, AgentVersion: "v2"}})
	conn, _ := reg.Get("old")
	_, err := conn.Fetch(withDeadline(t), protocol.OpRecordingFetch, protocol.RecordingFetchArgs{RecordingID: "x"}, nil)
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Code != protocol.ErrCodeAgentTooOld {
		t.Fatalf("err = %v, want agent_too_old", err)
	}
}

// zeros is an endless body source that allocates nothing per read.
type zeros struct{ n int64 }

func (z *zeros) Read(p []byte) (int, error) {
	if z.n <= 0 {
		return 0, io.EOF
	}
	k := min(int64(len(p)), z.n)
	clear(p[:k])
	z.n -= k
	return int(k), nil
}

type sizedBody struct {
	zeros
	size int64
}

func (b *sizedBody) Result() any  { return protocol.RecordingFile{Size: b.size, Length: b.size} }
func (b *sizedBody) Close() error { return nil }

// BenchmarkFetch streams bodies of 1 and 16 MiB through a real tunnel
// (loopback WebSocket + yamux): B/op stays flat as the body grows (the
// memory is one chunk and the stream window, not the file), and MB/s is
// the tunnel's throughput for a recording download.
func BenchmarkFetch(b *testing.B) {
	for _, size := range []int64{1 << 20, 16 << 20} {
		b.Run(fmt.Sprintf("%dMiB", size>>20), func(b *testing.B) {
			reg := fleet.NewRegistry(nil)
			srv := fleettest.NewServer(b, reg, tunnel.AcceptConfig{})
			srv.Connect(b, "pbx-1", func(ctx context.Context, req protocol.Request) (any, error) {
				return &sizedBody{zeros: zeros{n: size}, size: size}, nil
			}, fleettest.AgentOptions{EnterpriseID: 1})
			conn, _ := reg.Get("pbx-1")
			buf := make([]byte, 32<<10)
			b.SetBytes(size)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				body, err := conn.Fetch(ctx, protocol.OpRecordingFetch, protocol.RecordingFetchArgs{RecordingID: "x"}, nil)
				if err != nil {
					b.Fatal(err)
				}
				n, err := io.CopyBuffer(io.Discard, body, buf)
				body.Close()
				cancel()
				if err != nil || n != size {
					b.Fatalf("read %d of %d: %v", n, size, err)
				}
			}
		})
	}
}

// TestViewRefusesRequests: a view of a session another replica holds has
// no tunnel here; Call and Fetch on it fail with ErrOffline (naming the
// holder) instead of reaching for the missing tunnel.
func TestViewRefusesRequests(t *testing.T) {
	view := fleet.NewView("agt_1", "ses_1", "http://10.0.0.2:8080", protocol.Hello{Protocol: protocol.Version}, time.Now(), protocol.Status{}, time.Now())
	err := view.Call(withDeadline(t), protocol.OpHangup, nil, nil)
	if !errors.Is(err, fleet.ErrOffline) {
		t.Errorf("Call on a view: %v, want ErrOffline", err)
	}
	body, err := view.Fetch(withDeadline(t), protocol.OpRecordingFetch, nil, nil)
	if !errors.Is(err, fleet.ErrOffline) || body != nil {
		t.Errorf("Fetch on a view: %v, %v; want ErrOffline", body, err)
	}
	if err != nil && !strings.Contains(err.Error(), "http://10.0.0.2:8080") {
		t.Errorf("Fetch on a view: %v does not name the holder", err)
	}
}
