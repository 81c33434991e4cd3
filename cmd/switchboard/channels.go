package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// channelView is what the table shows of GET /v1/channels' channels.
type channelView struct {
	PBX           string    `json:"pbx"`
	Channel       string    `json:"channel"`
	UniqueID      string    `json:"uniqueid"`
	LinkedID      string    `json:"linkedid"`
	State         string    `json:"state"`
	CallerIDNum   string    `json:"caller_id_num"`
	CallerIDName  string    `json:"caller_id_name"`
	ConnectedNum  string    `json:"connected_num"`
	ConnectedName string    `json:"connected_name"`
	Application   string    `json:"application"`
	StartedAt     time.Time `json:"started_at"`
}

func channelsCommand() *command {
	return &command{
		path: "channels", group: groupOperate,
		summary: "the live channels of the enterprise's PBXs",
		about: `GET /v1/channels: every PBX is asked at once. A PBX that could not answer
(offline, AMI down) is named on stderr, after the channels of those that did.`,
		define: func(fs *pflag.FlagSet) action {
			var cf clientFlags
			pbx := fs.String("pbx", "", "only this PBX (its agent `ID`)")
			cf.register(fs, operatorCredential)
			cf.registerTimeout(fs, defaultAPITimeout)
			asJSON := fs.Bool("json", false, "print the API's JSON")
			return func(ctx context.Context, e *env, args []string) error {
				if err := noArgs("channels", args); err != nil {
					return err
				}
				q := url.Values{}
				if *pbx != "" {
					q.Set("pbx", *pbx)
				}
				return show(ctx, e, fs, &cf, apiRequest{method: http.MethodGet, path: "/v1/channels", query: q}, *asJSON, printChannels)
			}
		},
	}
}

// channelsAnswer is what `channels` shows of GET /v1/channels.
type channelsAnswer struct {
	Channels    []channelView `json:"channels"`
	Unavailable []struct {
		PBX, Code, Message string
	} `json:"unavailable"`
}

func printChannels(e *env, res channelsAnswer) error {
	now := e.now()
	err := printer{w: e.stdout}.table(nil, []string{"PBX", "CHANNEL", "STATE", "CALLER", "CONNECTED", "APP", "UP FOR", "CALL"}, func(add func(...any)) {
		for _, c := range res.Channels {
			up := "-"
			if !c.StartedAt.IsZero() {
				up = age(now.Sub(c.StartedAt))
			}
			add(c.PBX, c.Channel, c.State, party(c.CallerIDNum, c.CallerIDName), party(c.ConnectedNum, c.ConnectedName),
				dash(c.Application), up, dash(c.LinkedID))
		}
	})
	if err != nil {
		return err
	}
	for _, u := range res.Unavailable {
		fmt.Fprintf(e.stderr, "switchboard: PBX %s did not answer: %s (%s)\n", u.PBX, u.Message, u.Code)
	}
	return nil
}

// party is "150 (Desk)", "150" or "-".
func party(num, name string) string {
	switch {
	case num == "" && name == "":
		return "-"
	case name == "" || name == num || strings.EqualFold(name, "<unknown>"):
		return dash(num)
	}
	return dash(num) + " (" + name + ")"
}

// monitorModes are the ChanSpy modes of POST /v1/monitor.
var monitorModes = []string{"spy", "whisper", "barge"}

func monitorCommand() *command {
	return &command{
		path: "monitor", args: "--target EXT --from EXT", group: groupOperate,
		summary: "listen to, whisper to or barge into an extension's live call",
		about: `POST /v1/monitor: the PBX rings --from and, when it answers, connects it to
the live call of --target: spy listens, whisper speaks to the target only,
barge speaks to both sides. A target with no call is an error, never a
silent ring. Needs the monitor scope or a supervisor role.`,
		define: func(fs *pflag.FlagSet) action {
			var cf clientFlags
			target := fs.String("target", "", "the `EXTENSION` whose call is monitored")
			from := fs.String("from", "", "the supervisor's `EXTENSION`, which rings")
			mode := fs.String("mode", "spy", "`MODE`: spy (listen), whisper (speak to the target) or barge (speak to both)")
			pbx := fs.String("pbx", "", "the PBX (its agent `ID`); needed when the enterprise has several")
			callerID := fs.String("caller-id", "", "the `CALLERID` shown on --from")
			ring := fs.Duration("ring-timeout", 0, "how long --from may ring, whole seconds (0: the agent's default, 30s)")
			cf.register(fs, operatorCredential)
			cf.registerTimeout(fs, defaultAPITimeout)
			asJSON := fs.Bool("json", false, "print the API's JSON")
			completeWords(fs, "mode", monitorModes...)
			return func(ctx context.Context, e *env, args []string) error {
				if err := errorsJoin(noArgs("monitor", args), mustNotBeEmpty("target", *target), mustNotBeEmpty("from", *from)); err != nil {
					return err
				}
				body := map[string]any{"mode": *mode, "target": *target, "from": *from}
				if *pbx != "" {
					body["pbx"] = *pbx
				}
				if *callerID != "" {
					body["caller_id"] = *callerID
				}
				if err := setRingTimeout(body, *ring); err != nil {
					return err
				}
				return show(ctx, e, fs, &cf, apiRequest{method: http.MethodPost, path: "/v1/monitor", body: body}, *asJSON, printMonitor)
			}
		},
	}
}

// monitorCall is what `monitor` shows of POST /v1/monitor.
type monitorCall struct {
	CallID        string `json:"call_id"`
	PBX           string `json:"pbx"`
	Mode          string `json:"mode"`
	Target        string `json:"target"`
	From          string `json:"from"`
	TargetChannel string `json:"target_channel"`
}

func printMonitor(e *env, m monitorCall) error {
	_, err := fmt.Fprintf(e.stdout, "%s rings; once answered it joins %s's call (%s) on %s in %s mode.\nEnd it with: switchboard calls hangup %s\n",
		m.From, m.Target, m.TargetChannel, m.PBX, m.Mode, m.CallID)
	return err
}
