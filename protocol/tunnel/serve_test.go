package tunnel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/protocol"
)

// call is a minimal control-plane side of one request stream.
func call(t *testing.T, s *Session, req protocol.Request) protocol.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := s.Open(ctx, protocol.StreamRequest)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if err := protocol.WriteFrame(c, req); err != nil {
		t.Fatal(err)
	}
	var resp protocol.Response
	if err := protocol.ReadFrame(c, &resp, 0); err != nil {
		t.Fatal(err)
	}
	return resp
}

func startServing(t *testing.T, s *Session, h RequestHandler, cfg ServeConfig) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeRequests(ctx, s, h, cfg) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) && !errors.Is(err, ErrSessionClosed) {
			t.Errorf("ServeRequests returned %v", err)
		}
	})
}

func TestServeRequests(t *testing.T) {
	ts := startServer(t, serverOpts{})
	agent, control := dialPair(t, ts, DialConfig{})
	startServing(t, agent, func(ctx context.Context, req protocol.Request) (any, error) {
		switch req.Op {
		case protocol.OpPing:
			return protocol.PingResult{AMIRoundTripMicros: 42}, nil
		case protocol.OpHangup:
			return nil, fmt.Errorf("hangup: %w", &protocol.Error{Code: protocol.ErrCodeNotFound, Message: "no such channel"})
		case "slow":
			<-ctx.Done()
			return nil, ctx.Err()
		case "panic":
			panic("boom")
		case "secret":
			return nil, errors.New("dial 10.0.0.5: password=hunter2")
		}
		return nil, &protocol.Error{Code: protocol.ErrCodeUnsupported, Message: req.Op}
	}, ServeConfig{})

	soon := func() time.Time { return time.Now().Add(2 * time.Second) }
	tests := []struct {
		name     string
		req      protocol.Request
		wantCode string
		result   string
	}{
		{"result", protocol.Request{ID: "1", Op: protocol.OpPing, Deadline: soon()}, "", `{"ami_round_trip_us":42}`},
		{"protocol error passes through", protocol.Request{ID: "2", Op: protocol.OpHangup, Deadline: soon()}, protocol.ErrCodeNotFound, ""},
		{"deadline honoured", protocol.Request{ID: "3", Op: "slow", Deadline: time.Now().Add(50 * time.Millisecond)}, protocol.ErrCodeTimeout, ""},
		{"panic contained", protocol.Request{ID: "4", Op: "panic", Deadline: soon()}, protocol.ErrCodeInternal, ""},
		{"internals not leaked", protocol.Request{ID: "5", Op: "secret", Deadline: soon()}, protocol.ErrCodeInternal, ""},
		{"no deadline refused", protocol.Request{ID: "6", Op: protocol.OpPing}, protocol.ErrCodeInvalid, ""},
		{"unknown op", protocol.Request{ID: "7", Op: "rm -rf", Deadline: soon()}, protocol.ErrCodeUnsupported, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := call(t, control, tc.req)
			if resp.ID != tc.req.ID {
				t.Fatalf("response ID %q, want %q", resp.ID, tc.req.ID)
			}
			if tc.wantCode == "" {
				if resp.Error != nil || string(resp.Result) != tc.result {
					t.Fatalf("got %s / %v, want %s", resp.Result, resp.Error, tc.result)
				}
				return
			}
			if resp.Error == nil || resp.Error.Code != tc.wantCode {
				t.Fatalf("error %+v, want code %s", resp.Error, tc.wantCode)
			}
			if tc.wantCode == protocol.ErrCodeInternal && resp.Error.Message != "internal error" {
				t.Fatalf("internal error message %q leaks details", resp.Error.Message)
			}
		})
	}
}

func TestServeRequestsBusy(t *testing.T) {
	ts := startServer(t, serverOpts{})
	agent, control := dialPair(t, ts, DialConfig{})
	release := make(chan struct{})
	started := make(chan struct{}, 2)
	startServing(t, agent, func(ctx context.Context, req protocol.Request) (any, error) {
		started <- struct{}{}
		select {
		case <-release:
		case <-ctx.Done():
		}
		return "done", nil
	}, ServeConfig{MaxInFlight: 2})

	var wg sync.WaitGroup
	results := make(chan protocol.Response, 2)
	for i := range 2 {
		wg.Go(func() {
			results <- call(t, control, protocol.Request{ID: fmt.Sprint(i), Op: "hold", Deadline: time.Now().Add(5 * time.Second)})
		})
	}
	for range 2 {
		select {
		case <-started:
		case <-time.After(5 * time.Second):
			t.Fatal("handlers did not start")
		}
	}
	resp := call(t, control, protocol.Request{ID: "third", Op: "hold", Deadline: time.Now().Add(5 * time.Second)})
	if resp.Error == nil || resp.Error.Code != protocol.ErrCodeBusy || resp.ID != "third" {
		t.Fatalf("third request: %+v, want busy", resp)
	}
	close(release)
	wg.Wait()
	close(results)
	for r := range results {
		var s string
		if r.Error != nil || json.Unmarshal(r.Result, &s) != nil || s != "done" {
			t.Fatalf("held request: %+v", r)
		}
	}
}

func TestServeRequestsClosesOtherKinds(t *testing.T) {
	ts := startServer(t, serverOpts{})
	agent, control := dialPair(t, ts, DialConfig{})
	startServing(t, agent, func(context.Context, protocol.Request) (any, error) { return "ok", nil }, ServeConfig{})
	c, err := control.Open(context.Background(), protocol.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("events stream to the agent was not closed")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("events stream to the agent left open")
	}
	// Requests still work afterwards.
	if resp := call(t, control, protocol.Request{ID: "x", Op: "any", Deadline: time.Now().Add(time.Second)}); resp.Error != nil {
		t.Fatalf("request after stray stream: %+v", resp.Error)
	}
}

func TestServeConfigValidate(t *testing.T) {
	for _, cfg := range []ServeConfig{{MaxInFlight: -1}, {MaxFrameBytes: -1}, {IOTimeout: -time.Second}} {
		if err := cfg.Validate(); err == nil {
			t.Fatalf("%+v validated", cfg)
		}
	}
	if err := (ServeConfig{}).Validate(); err != nil {
		t.Fatal(err)
	}
}
