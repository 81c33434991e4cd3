package main

import (
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/switchboard-pbx/switchboard/controlplane"
	"github.com/switchboard-pbx/switchboard/controlplane/events"
	"github.com/switchboard-pbx/switchboard/controlplane/gateway"
)

func TestHardenFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string // "" for no error
	}{
		{"defaults", nil, ""},
		{"no event limit", []string{"--agent-event-rate=-1"}, ""},
		{"zero event rate", []string{"--agent-event-rate=0"}, "--agent-event-rate (negative: no limit) must not be zero"},
		{"zero burst", []string{"--agent-event-burst=0"}, "--agent-event-burst"},
		{"retry max below min", []string{"--agent-store-retry-min=10s", "--agent-store-retry-max=1s"}, "StoreRetryMax 1s is below StoreRetryMin 10s"},
		{"backlog of one", []string{"--agent-stream-backlog=1"}, "StreamBacklog 1 must be at least 2"},
		{"tiny control frame", []string{"--agent-max-control-frame-bytes=100"}, "MaxControlFrameBytes 100"},
		{"no webhook cap", []string{"--webhook-concurrency-per-webhook=0"}, "--webhook-concurrency-per-webhook must not be zero"},
		{"no suspension", []string{"--webhook-suspend-after=0"}, "--webhook-suspend-after must not be zero"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
			var f hardenFlags
			f.register(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			var cp controlplane.Config
			err := f.apply(&cp)
			ev := cp.Events
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("apply = %v, want %q", err, tc.want)
			}
			if tc.name == "defaults" && (cp.Gateway.Limits.EventRate != gateway.DefaultEventRate || ev.MaxDeliveriesPerWebhook != events.DefaultMaxDeliveriesPerWebhook ||
				ev.SuspendAfter != events.DefaultSuspendAfter || cp.Gateway.Limits.StreamBacklog != gateway.DefaultStreamBacklog) {
				t.Fatalf("defaults not applied: %+v, %+v", cp.Gateway.Limits, ev)
			}
		})
	}
}
