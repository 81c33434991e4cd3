package agent_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/protocol"
	"github.com/switchboard-pbx/switchboard/protocol/tunnel"
)

// controlPlane is a minimal control plane on the real tunnel accept: it
// checks the token, answers Hello with Welcome, records statuses, stores
// events (deduplicated by sequence, as the real store does) and
// acknowledges them unless told not to, and sends requests down the
// current session.
type controlPlane struct {
	t     testing.TB
	token string
	srv   *httptest.Server

	mu        sync.Mutex
	sess      *tunnel.Session
	hellos    []protocol.Hello
	statuses  []protocol.Status
	received  []protocol.Event // every event as it arrived, resends included
	stored    map[uint64]protocol.Event
	lastAcked uint64
	noAck     bool
	sessions  int
	wg        sync.WaitGroup
	// maxProtocol, when set, makes this an older control plane: it
	// refuses newer offers as every control plane since version 1 does
	// (400, its version in the header) and speaks that version's Welcome.
	maxProtocol int
	offers      []string // Switchboard-Protocol of each upgrade request

	// down answers 503 to every connect; maxFrame (0: the protocol's
	// default) is the events frame limit, enforced as the gateway does:
	// an oversized frame is skipped and refused in an ack, and frames are
	// ignored until the events after the last ack come again.
	down         bool
	maxFrame     int
	refusals     int
	maxReceived  uint64
	eventsStream net.Conn
	wmu          sync.Mutex // one writer of acks at a time
}

func newControlPlane(t testing.TB, token string) *controlPlane {
	cp := &controlPlane{t: t, token: token, stored: map[uint64]protocol.Event{}}
	cp.srv = httptest.NewServer(http.HandlerFunc(cp.serve))
	t.Cleanup(func() {
		cp.srv.CloseClientConnections()
		cp.srv.Close()
		cp.dropSession()
		cp.wg.Wait()
	})
	return cp
}

func (cp *controlPlane) url() string { return "ws" + strings.TrimPrefix(cp.srv.URL, "http") }

func (cp *controlPlane) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != protocol.ConnectPath {
		http.NotFound(w, r)
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+cp.token {
		http.Error(w, "bad token", http.StatusUnauthorized)
		return
	}
	offer := r.Header.Get(protocol.VersionHeader)
	cp.mu.Lock()
	cp.offers = append(cp.offers, offer)
	maxProtocol, down := cp.maxProtocol, cp.down
	cp.mu.Unlock()
	if down {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	if maxProtocol != 0 && offer != strconv.Itoa(maxProtocol) {
		w.Header().Set(protocol.VersionHeader, strconv.Itoa(maxProtocol))
		http.Error(w, "unsupported protocol version "+offer, http.StatusBadRequest)
		return
	}
	cp.wg.Add(1)
	defer cp.wg.Done()
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	defer cancel()
	sess, err := tunnel.Accept(ctx, w, r, tunnel.AcceptConfig{})
	if err != nil {
		return
	}
	defer sess.Close()
	ctl, kind, err := sess.Accept(ctx)
	if err != nil || kind != protocol.StreamControl {
		return
	}
	defer ctl.Close()
	var hello protocol.Hello
	if err := protocol.ReadFrame(ctl, &hello, 0); err != nil {
		return
	}
	cp.mu.Lock()
	cp.hellos = append(cp.hellos, hello)
	cp.sessions++
	welcome := protocol.Welcome{SessionID: fmt.Sprintf("ses-%d", cp.sessions), HeartbeatSeconds: 1, LastAckedSeq: cp.lastAcked}
	if sess.Protocol() >= 2 {
		welcome.Protocol, welcome.ControlPlaneVersion = sess.Protocol(), "cp-test"
	}
	cp.sess = sess
	cp.mu.Unlock()
	if err := protocol.WriteFrame(ctl, welcome); err != nil {
		return
	}
	go func() {
		for {
			var st protocol.Status
			if err := protocol.ReadFrame(ctl, &st, 0); err != nil {
				sess.Close()
				return
			}
			cp.mu.Lock()
			cp.statuses = append(cp.statuses, st)
			cp.mu.Unlock()
		}
	}()
	for {
		st, kind, err := sess.Accept(ctx)
		if err != nil {
			return
		}
		if kind != protocol.StreamEvents {
			st.Close()
			continue
		}
		go cp.ingest(st)
	}
}

func (cp *controlPlane) ingest(st net.Conn) {
	defer st.Close()
	cp.mu.Lock()
	cp.eventsStream = st
	limit := cp.maxFrame
	cp.mu.Unlock()
	resync := false
	for {
		var batch protocol.EventBatch
		err := protocol.ReadFrame(st, &batch, limit)
		if tooLarge := (*protocol.FrameTooLargeError)(nil); errors.As(err, &tooLarge) {
			if _, err := io.CopyN(io.Discard, st, tooLarge.Size); err != nil {
				return
			}
			cp.mu.Lock()
			cp.refusals++
			acked := cp.lastAcked
			cp.mu.Unlock()
			resync = true
			if cp.writeAck(st, protocol.Ack{Seq: acked, Refused: &protocol.Refusal{FrameBytes: tooLarge.Size, MaxBytes: tooLarge.Max}}) != nil {
				return
			}
			continue
		}
		if err != nil {
			return
		}
		cp.mu.Lock()
		if resync && batch.Events[0].Seq > cp.lastAcked+1 {
			cp.mu.Unlock()
			continue // sent after the refused frame: it comes again
		}
		resync = false
		for _, ev := range batch.Events {
			cp.received = append(cp.received, ev)
			if ev.Seq > cp.lastAcked {
				cp.stored[ev.Seq] = ev
			}
		}
		ack := !cp.noAck
		last := batch.Events[len(batch.Events)-1].Seq
		cp.maxReceived = max(cp.maxReceived, last)
		if ack {
			cp.lastAcked = max(cp.lastAcked, last)
		}
		cp.mu.Unlock()
		if ack {
			if err := cp.writeAck(st, protocol.Ack{Seq: last}); err != nil {
				return
			}
		}
	}
}

func (cp *controlPlane) writeAck(st net.Conn, a protocol.Ack) error {
	cp.wmu.Lock()
	defer cp.wmu.Unlock()
	return protocol.WriteFrame(st, a)
}

// release turns acks back on and acknowledges everything received so far,
// as a control plane whose store came back would.
func (cp *controlPlane) release() {
	cp.mu.Lock()
	cp.noAck = false
	cp.lastAcked = max(cp.lastAcked, cp.maxReceived)
	seq, st := cp.lastAcked, cp.eventsStream
	cp.mu.Unlock()
	if st != nil {
		_ = cp.writeAck(st, protocol.Ack{Seq: seq})
	}
}

func (cp *controlPlane) setDown(down bool) {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	cp.down = down
}

func (cp *controlPlane) setAck(on bool) {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	cp.noAck = !on
}

// dropSession kills the current tunnel, as a control plane restart would.
func (cp *controlPlane) dropSession() {
	cp.mu.Lock()
	s := cp.sess
	cp.sess = nil
	cp.mu.Unlock()
	if s != nil {
		s.Close()
	}
}

func (cp *controlPlane) session() *tunnel.Session {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return cp.sess
}

func (cp *controlPlane) sessionCount() int {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return cp.sessions
}

// call sends one request down the current session and reads its response.
func (cp *controlPlane) call(t testing.TB, op string, args any) protocol.Response {
	t.Helper()
	sess := cp.session()
	if sess == nil {
		t.Fatalf("%s: no agent session", op)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := sess.Open(ctx, protocol.StreamRequest)
	if err != nil {
		t.Fatalf("%s: open request stream: %v", op, err)
	}
	defer st.Close()
	_ = st.SetDeadline(time.Now().Add(5 * time.Second))
	req := protocol.Request{ID: "req-" + op, Op: op, Deadline: time.Now().Add(4 * time.Second)}
	if args != nil {
		req.Args, _ = json.Marshal(args)
	}
	if err := protocol.WriteFrame(st, req); err != nil {
		t.Fatalf("%s: write request: %v", op, err)
	}
	var resp protocol.Response
	if err := protocol.ReadFrame(st, &resp, 0); err != nil {
		t.Fatalf("%s: read response: %v", op, err)
	}
	if resp.ID != req.ID {
		t.Errorf("%s: response id %q, want %q", op, resp.ID, req.ID)
	}
	return resp
}

// storedInOrder returns the stored events by sequence and fails on a hole.
func (cp *controlPlane) storedInOrder(t testing.TB) []protocol.Event {
	t.Helper()
	cp.mu.Lock()
	defer cp.mu.Unlock()
	out := make([]protocol.Event, 0, len(cp.stored))
	for seq := uint64(1); seq <= uint64(len(cp.stored)); seq++ {
		ev, ok := cp.stored[seq]
		if !ok {
			t.Fatalf("stored events have a hole at %d (have %d events)", seq, len(cp.stored))
		}
		out = append(out, ev)
	}
	return out
}

func (cp *controlPlane) lastStatus() (protocol.Status, int) {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if len(cp.statuses) == 0 {
		return protocol.Status{}, 0
	}
	return cp.statuses[len(cp.statuses)-1], len(cp.statuses)
}

func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
