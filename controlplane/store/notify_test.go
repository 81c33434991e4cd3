package store_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/store"
	"github.com/switchboard-pbx/switchboard/controlplane/store/storetest"
)

func TestNotify(t *testing.T) {
	t.Parallel()
	s := storetest.OpenPostgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := s.Listen(ctx, "switchboard_test")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := s.Notify(ctx, "switchboard_test", []string{"a", "b", "c"}); err != nil {
		t.Fatal(err)
	}
	var got []string
	for range 3 {
		p, err := l.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, p)
	}
	if strings.Join(got, ",") != "a,b,c" {
		t.Fatalf("payloads = %v", got)
	}
	// A claim notifies at commit.
	if _, err := s.ClaimAgent(ctx, store.Owner{AgentID: "agt_1", ReplicaID: "rpl_a"}, "switchboard_test",
		func(g int64) string { return "o agt_1 rpl_a " + strconv.FormatInt(g, 10) }); err != nil {
		t.Fatal(err)
	}
	if p, err := l.Next(ctx); err != nil || p != "o agt_1 rpl_a 1" {
		t.Fatalf("claim notification = %q, %v", p, err)
	}
	// A release notifies only when the claim was current.
	if ok, err := s.ReleaseAgent(ctx, "agt_1", 7, "switchboard_test", "stale"); err != nil || ok {
		t.Fatalf("release of another generation = %v, %v", ok, err)
	}
	if ok, err := s.ReleaseAgent(ctx, "agt_1", 1, "switchboard_test", "released"); err != nil || !ok {
		t.Fatalf("release = %v, %v", ok, err)
	}
	if p, err := l.Next(ctx); err != nil || p != "released" {
		t.Fatalf("release notification = %q, %v", p, err)
	}
	// A timeout of Next leaves the connection usable.
	short, cancelShort := context.WithTimeout(ctx, 50*time.Millisecond)
	_, err = l.Next(short)
	cancelShort()
	if err == nil {
		t.Fatal("Next with nothing sent returned")
	}
	if err := l.Ping(ctx); err != nil {
		t.Fatalf("ping after a timed-out Next: %v", err)
	}
	if err := s.Notify(ctx, "switchboard_test", []string{"d"}); err != nil {
		t.Fatal(err)
	}
	if p, err := l.Next(ctx); err != nil || p != "d" {
		t.Fatalf("after a timeout: %q, %v", p, err)
	}
	if err := s.Notify(ctx, "switchboard_test", []string{strings.Repeat("x", store.MaxNotifyPayload+1)}); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("oversized payload = %v", err)
	}
}

func TestNotifySQLite(t *testing.T) {
	t.Parallel()
	s := storetest.OpenSQLite(t)
	if _, err := s.Listen(context.Background(), "x"); !errors.Is(err, store.ErrNotifyUnsupported) {
		t.Fatalf("Listen on SQLite = %v", err)
	}
	if err := s.Notify(context.Background(), "x", []string{"a"}); !errors.Is(err, store.ErrNotifyUnsupported) {
		t.Fatalf("Notify on SQLite = %v", err)
	}
}
