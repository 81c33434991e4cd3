package ami_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/internal/testio"
	"github.com/switchboard-pbx/switchboard/protocol/ami"
	"github.com/switchboard-pbx/switchboard/protocol/ami/amitest"
)

// These tests run the client against the fake Asterisk. They live in
// package ami_test because amitest imports ami.

func config(addr string, logs *testio.Buffer) ami.Config {
	cfg := ami.Config{
		Addr:          addr,
		Username:      amitest.DefaultUsername,
		Secret:        amitest.DefaultSecret,
		ActionTimeout: 2 * time.Second,
		DialTimeout:   3 * time.Second,
		ReconnectMin:  5 * time.Millisecond,
		ReconnectMax:  20 * time.Millisecond,
	}
	if logs != nil {
		cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return cfg
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// run starts Run with a subscription opened first; cleanup closes both.
func run(t testing.TB, cfg ami.Config) (*ami.Client, *ami.Subscription) {
	t.Helper()
	c, err := ami.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sub := c.Subscribe(1 << 14)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		c.Close()
		if err := <-done; !errors.Is(err, context.Canceled) && !errors.Is(err, ami.ErrClosed) {
			t.Errorf("Run returned %v", err)
		}
	})
	waitEvent(t, sub, ami.EventConnected, nil)
	return c, sub
}

// waitEvent returns the next event named name for which match (if any)
// holds, within a deadline.
func waitEvent(t testing.TB, sub *ami.Subscription, name string, match func(*ami.Message) bool) *ami.Message {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case m, ok := <-sub.C():
			if !ok {
				t.Fatalf("subscription closed while waiting for %s", name)
			}
			if m.Event() == name && (match == nil || match(m)) {
				return m
			}
		case <-deadline:
			t.Fatalf("no %s within 5s", name)
		}
	}
}

func TestAmitestPing(t *testing.T) {
	srv := amitest.NewServer(t)
	c, err := ami.Dial(testCtx(t), config(srv.Addr(), nil))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := 0; i < 3; i++ {
		if d, err := c.Ping(testCtx(t)); err != nil || d <= 0 {
			t.Fatalf("ping: %v %v", d, err)
		}
	}
	m, err := c.Action(testCtx(t), ami.NewAction("Ping"))
	if err != nil || m.Get("Ping") != "Pong" || m.Get("Timestamp") == "" {
		t.Fatalf("%v %v", m, err)
	}
	login := srv.Actions()[0]
	if login.Action() != "Login" || login.Get("Events") != "on" {
		t.Errorf("login %q", login.String())
	}
}

func TestAmitestMD5Login(t *testing.T) {
	srv := amitest.NewServer(t)
	cfg := config(srv.Addr(), nil)
	cfg.AuthMD5 = true
	c, err := ami.Dial(testCtx(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Ping(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	acts := srv.Actions()
	if acts[0].Action() != "Challenge" || acts[1].Get("Key") == "" || acts[1].Get("Secret") != "" {
		t.Errorf("actions %q %q", acts[0].String(), acts[1].String())
	}
}

func TestAmitestLoginFailure(t *testing.T) {
	t.Run("Dial waits out Asterisk's delay", func(t *testing.T) {
		srv := amitest.NewServer(t) // default AuthFailDelay: 1s, as captured
		cfg := config(srv.Addr(), nil)
		cfg.Secret = "wrong"
		start := time.Now()
		_, err := ami.Dial(testCtx(t), cfg)
		if !errors.Is(err, ami.ErrAuth) {
			t.Fatalf("err = %v", err)
		}
		if el := time.Since(start); el < 900*time.Millisecond {
			t.Errorf("refusal came after %v; the server delays it by 1s", el)
		}
	})
	t.Run("Run backs off and logs without the secret", func(t *testing.T) {
		srv := amitest.NewServer(t, amitest.WithAuthFailDelay(-1))
		var logs testio.Buffer
		cfg := config(srv.Addr(), &logs)
		cfg.Secret = "wrong-secret-value"
		cfg.ReconnectMin, cfg.ReconnectMax = 10*time.Millisecond, 40*time.Millisecond
		c, err := ami.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- c.Run(ctx) }()
		wctx := testCtx(t)
		for i := 0; i < 3; i++ {
			if _, err := srv.WaitAction(wctx, "Login"); err != nil {
				t.Fatal(err)
			}
		}
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run: %v", err)
		}
		c.Close()
		out := logs.String()
		if !strings.Contains(out, "ami login refused") || strings.Contains(out, cfg.Secret) {
			t.Errorf("logs:\n%s", out)
		}
		if !strings.Contains(c.Info().LastError, "authentication failed") {
			t.Errorf("LastError %q", c.Info().LastError)
		}
	})
}

func TestAmitestOriginate(t *testing.T) {
	srv := amitest.NewServer(t)
	srv.SetOutcome("301", amitest.Busy)
	srv.SetOutcome("302", amitest.NoAnswer)
	srv.SetOutcome("303", amitest.Congestion)
	c, sub := run(t, config(srv.Addr(), nil))
	tests := []struct {
		exten   string
		success bool
		reason  int
	}{
		{"150", true, ami.ReasonAnswered},
		{"301", false, ami.ReasonBusy},
		{"302", false, ami.ReasonNoAnswer},
		{"303", false, ami.ReasonCongestion},
		{"nosuchexten", false, ami.ReasonFailure},
	}
	for _, tc := range tests {
		t.Run(tc.exten, func(t *testing.T) {
			ch := "Local/" + tc.exten + "@inoffice"
			o, err := c.Originate(testCtx(t), ami.NewAction("Originate", "Channel", ch,
				"Application", "Wait", "Data", "600", "Timeout", "200"))
			if err != nil {
				t.Fatal(err)
			}
			res, err := o.Wait(testCtx(t))
			if err != nil {
				t.Fatal(err)
			}
			if res.Success != tc.success || res.Reason != tc.reason {
				t.Fatalf("result %+v", res)
			}
			if tc.success != strings.HasPrefix(res.Channel, ch+"-") || tc.success == (res.Uniqueid == "<unknown>") {
				t.Errorf("Channel %q Uniqueid %q", res.Channel, res.Uniqueid)
			}
			if res.Raw.ActionID() != o.ActionID() {
				t.Errorf("ActionID %q vs %q", res.Raw.ActionID(), o.ActionID())
			}
			// Subscribers get the same OriginateResponse.
			waitEvent(t, sub, "OriginateResponse", func(m *ami.Message) bool { return m.ActionID() == o.ActionID() })
		})
	}
	// Many Originates at once are each matched to their own outcome.
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		exten, want := "150", ami.ReasonAnswered
		if i%2 == 1 {
			exten, want = "301", ami.ReasonBusy
		}
		wg.Go(func() {
			o, err := c.Originate(testCtx(t), ami.NewAction("Originate", "Channel", "Local/"+exten+"@inoffice", "Application", "Wait", "Data", "600"))
			if err != nil {
				t.Error(err)
				return
			}
			if res, err := o.Wait(testCtx(t)); err != nil || res.Reason != want {
				t.Errorf("%s: %+v %v", exten, res, err)
			}
		})
	}
	wg.Wait()
	// Sync failures are response errors.
	_, err := c.Originate(testCtx(t), ami.NewAction("Originate", "Channel", "garbage", "Application", "Wait", "Data", "5"))
	var re *ami.ResponseError
	if !errors.As(err, &re) || re.Message != "Invalid channel" {
		t.Errorf("bad channel: %v", err)
	}
}

func TestAmitestEventLists(t *testing.T) {
	srv := amitest.NewServer(t)
	c, _ := run(t, config(srv.Addr(), nil))
	ctx := testCtx(t)
	o, err := c.Originate(ctx, ami.NewAction("Originate", "Channel", "Local/150@inoffice",
		"Application", "Dial", "Data", "Local/+375296254070@inoffice"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := o.Wait(ctx)
	if err != nil || !res.Success {
		t.Fatalf("%+v %v", res, err)
	}
	// Wait until the dialled leg is up too, then list.
	var list *ami.ListResult
	deadline := time.Now().Add(5 * time.Second)
	for {
		list, err = c.List(ctx, ami.NewAction("CoreShowChannels"))
		if err != nil {
			t.Fatal(err)
		}
		if len(list.Items) == 4 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if len(list.Items) != 4 || list.Complete.Event() != "CoreShowChannelsComplete" || list.Complete.Get("ListItems") != "4" {
		t.Fatalf("CoreShowChannels: %d items, complete %q", len(list.Items), list.Complete.String())
	}
	st, err := c.List(ctx, ami.NewAction("Status", "Channel", res.Channel))
	if err != nil || len(st.Items) != 1 || st.Items[0].Get("Uniqueid") != res.Uniqueid || st.Complete.Event() != "StatusComplete" {
		t.Fatalf("Status: %v %+v", err, st)
	}
	var re *ami.ResponseError
	if _, err := c.List(ctx, ami.NewAction("Status", "Channel", "Local/999@inoffice-deadbeef;1")); !errors.As(err, &re) || re.Message != "No such channel" {
		t.Errorf("Status unknown: %v", err)
	}
	if _, err := c.List(ctx, ami.NewAction("Hangup", "Channel", `/^Local\/(150.*/`)); !errors.As(err, &re) || !strings.HasPrefix(re.Message, "Regex compile failed on") {
		t.Errorf("bad regex: %v", err)
	}
	hung, err := c.List(ctx, ami.NewAction("Hangup", "Channel", `/^Local\/150@/`, "Cause", "16"))
	if err != nil || len(hung.Items) != 2 || hung.Complete.Event() != "ChannelsHungupListComplete" {
		t.Fatalf("regex hangup: %v %+v", err, hung)
	}
}

func TestAmitestTimeoutLeavesOthersAlone(t *testing.T) {
	srv := amitest.NewServer(t)
	srv.SetActionDelay("CoreStatus", 300*time.Millisecond)
	cfg := config(srv.Addr(), nil)
	cfg.ActionTimeout = 50 * time.Millisecond
	c, err := ami.Dial(testCtx(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	errc := make(chan error, 1)
	go func() { _, err := c.Action(context.Background(), ami.NewAction("CoreStatus")); errc <- err }()
	for i := 0; i < 5; i++ {
		if _, err := c.Ping(testCtx(t)); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-errc; !errors.Is(err, ami.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	// The late response is ignored; the session goes on.
	if _, err := c.Ping(testCtx(t)); err != nil {
		t.Fatal(err)
	}
}

func TestAmitestReconnect(t *testing.T) {
	srv := amitest.NewServer(t)
	srv.SetOutcome("302", amitest.NoAnswer)
	srv.SetActionDelay("CoreStatus", time.Minute)
	c, sub := run(t, config(srv.Addr(), nil))
	ctx := testCtx(t)
	o, err := c.Originate(ctx, ami.NewAction("Originate", "Channel", "Local/302@inoffice", "Application", "Wait", "Data", "600", "Timeout", "60000"))
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { _, err := c.Action(ctx, ami.NewAction("CoreStatus")); errc <- err }()
	if _, err := srv.WaitAction(ctx, "CoreStatus"); err != nil {
		t.Fatal(err)
	}
	srv.DropConnections()
	if err := <-errc; !errors.Is(err, ami.ErrDisconnected) {
		t.Errorf("in-flight action: %v", err)
	}
	if _, err := o.Wait(ctx); !errors.Is(err, ami.ErrDisconnected) {
		t.Errorf("Originate Wait: %v", err)
	}
	waitEvent(t, sub, ami.EventDisconnected, nil)
	if m := waitEvent(t, sub, ami.EventConnected, nil); m.Get("AMIVersion") != "11.0.0" {
		t.Errorf("Connected %q", m.String())
	}
	if _, err := srv.WaitAction(ctx, "Login"); err != nil { // the first one
		t.Fatal(err)
	}
	if _, err := srv.WaitAction(ctx, "Login"); err != nil { // logged in again
		t.Fatal(err)
	}
	if _, err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}
