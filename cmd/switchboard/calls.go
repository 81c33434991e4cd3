package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// Defaults of the calls commands.
const (
	// callsPageSize is the default --limit of `calls list`; the API
	// allows up to 500 (store.MaxCallPageSize).
	callsPageSize = 20
	callsMaxPage  = 500
)

// operatorCommands call the public HTTP API, as an operator's terminal
// would: the same connection flags and credentials as any API client.
func operatorCommands() []*command {
	return []*command{
		fleetCommand(), callsListCommand(), callsPlaceCommand(), callsHangupCommand(),
		channelsCommand(), monitorCommand(), eventsCommand(), webhookListenCommand(),
	}
}

const operatorCredential = "API key or operator JWT"

// missingCredential is the usage error of a command run without a token.
func missingCredential(what string) string {
	return "an " + what + " is required: --token-file, SWITCHBOARD_TOKEN or --token"
}

// Call statuses and directions of the API, for completion.
var (
	callStatuses   = []string{"queued", "ringing", "in-progress", "completed", "busy", "no-answer", "failed", "canceled"}
	callDirections = []string{"inbound", "outbound", "internal", "originate"}
)

// callView is what `calls list` shows of GET /v1/calls' calls.
type callView struct {
	CallID     string     `json:"call_id"`
	PBX        string     `json:"pbx"`
	Status     string     `json:"status"`
	Direction  string     `json:"direction"`
	From       string     `json:"from"`
	To         string     `json:"to"`
	StartedAt  time.Time  `json:"started_at"`
	AnsweredBy string     `json:"answered_by"`
	EndedAt    *time.Time `json:"ended_at"`
	CauseText  string     `json:"cause_text"`
	DurationS  *int       `json:"duration_s"`
}

func callsListCommand() *command {
	return &command{
		path: "calls list", group: groupOperate,
		summary: "the call history, newest first",
		about: `Every call the PBXs saw, placed through the API or not (GET /v1/calls).
--since and --until take an RFC 3339 time or a duration back from now
(--since 2h). One page is printed; when there are more, the --cursor of the
next page is printed on stderr.`,
		define: func(fs *pflag.FlagSet) action {
			var cf clientFlags
			pbx := fs.String("pbx", "", "only this PBX's calls (its agent `ID`)")
			status := fs.String("status", "", "only calls in these `STATUSES`, comma-separated (e.g. in-progress,ringing)")
			since := fs.String("since", "", "only calls started at or after `TIME` (RFC 3339, or a duration ago: 2h)")
			until := fs.String("until", "", "only calls started before `TIME` (RFC 3339, or a duration ago)")
			extension := fs.String("extension", "", "only calls from or to this `EXTENSION`")
			number := fs.String("number", "", "only calls from or to this `NUMBER`")
			direction := fs.String("direction", "", "only calls in this `DIRECTION`: inbound, outbound, internal or originate")
			limit := fs.Int("limit", callsPageSize, "`N` calls per page (1-500)")
			cursor := fs.String("cursor", "", "the page after this `CURSOR` (printed by the previous page)")
			cf.register(fs, operatorCredential)
			cf.registerTimeout(fs, defaultAPITimeout)
			asJSON := fs.Bool("json", false, "print the API's JSON")
			completeWords(fs, "status", callStatuses...)
			completeWords(fs, "direction", callDirections...)
			return func(ctx context.Context, e *env, args []string) error {
				if err := noArgs("calls list", args); err != nil {
					return err
				}
				if *limit < 1 || *limit > callsMaxPage {
					return usagef("--limit must be 1-%d, got %d", callsMaxPage, *limit)
				}
				q := url.Values{"limit": {strconv.Itoa(*limit)}}
				for name, v := range map[string]string{"pbx": *pbx, "status": *status, "extension": *extension,
					"number": *number, "direction": *direction, "cursor": *cursor} {
					if v != "" {
						q.Set(name, v)
					}
				}
				for name, v := range map[string]string{"since": *since, "until": *until} {
					t, err := timeArg(name, v, e.now())
					if err != nil {
						return err
					}
					if t != "" {
						q.Set(name, t)
					}
				}
				return show(ctx, e, fs, &cf, apiRequest{method: http.MethodGet, path: "/v1/calls", query: q}, *asJSON, printCalls)
			}
		},
	}
}

// timeArg turns a --since/--until value into RFC 3339: a time as it is,
// or a duration back from now.
func timeArg(name, v string, now time.Time) (string, error) {
	if v == "" {
		return "", nil
	}
	if _, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return v, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return "", usagef("--%s: want an RFC 3339 time (2026-11-24T10:00:00Z) or a duration ago (90m), got %q", name, v)
	}
	return now.Add(-d).UTC().Format(time.RFC3339), nil
}

// callsPage is what `calls list` shows of GET /v1/calls.
type callsPage struct {
	Calls      []callView `json:"calls"`
	NextCursor string     `json:"next_cursor"`
}

func printCalls(e *env, page callsPage) error {
	out := printer{w: e.stdout}
	err := out.table(nil, []string{"STARTED", "CALL", "PBX", "DIRECTION", "FROM", "TO", "STATUS", "ANSWERED BY", "DURATION", "END"}, func(add func(...any)) {
		for _, c := range page.Calls {
			duration, end := "-", "-"
			if c.DurationS != nil {
				duration = age(time.Duration(*c.DurationS) * time.Second)
			} else if c.EndedAt == nil {
				duration = "for " + age(e.now().Sub(c.StartedAt))
			}
			if c.EndedAt != nil {
				end = dash(c.CauseText)
			}
			add(c.StartedAt.Local().Format(time.DateTime), c.CallID, c.PBX, dash(c.Direction), dash(c.From), dash(c.To),
				c.Status, dash(c.AnsweredBy), duration, end)
		}
	})
	if err != nil {
		return err
	}
	if page.NextCursor != "" {
		fmt.Fprintf(e.stderr, "switchboard: more calls: add --cursor %s\n", page.NextCursor)
	}
	return nil
}

func callsPlaceCommand() *command {
	return &command{
		path: "calls place", args: "--from EXT --to NUMBER", group: groupOperate,
		summary: "place a call: ring an extension, then dial a number",
		about: `POST /v1/calls: the PBX rings --from, and when it answers dials --to. The
call id (the first leg's uniqueid) comes back before the phone rings;
` + "`switchboard calls hangup ID`" + ` ends the call. --pbx may be left out when
the enterprise has one PBX.`,
		define: func(fs *pflag.FlagSet) action {
			var cf clientFlags
			from := fs.String("from", "", "the `EXTENSION` that rings first")
			to := fs.String("to", "", "the `NUMBER` it then dials")
			pbx := fs.String("pbx", "", "the PBX (its agent `ID`); needed when the enterprise has several")
			callerID := fs.String("caller-id", "", "the `CALLERID` shown, e.g. 'Desk 150 <150>'")
			ring := fs.Duration("ring-timeout", 0, "how long --from may ring, whole seconds (0: the agent's default, 30s)")
			vars := fs.StringArray("var", nil, "channel variable `NAME=VALUE` (repeatable)")
			idem := fs.String("idempotency-key", "", "a `KEY` that makes a retry of this command place the call once")
			cf.register(fs, operatorCredential)
			cf.registerTimeout(fs, defaultAPITimeout)
			asJSON := fs.Bool("json", false, "print the API's JSON")
			return func(ctx context.Context, e *env, args []string) error {
				if err := errorsJoin(noArgs("calls place", args), mustNotBeEmpty("from", *from), mustNotBeEmpty("to", *to)); err != nil {
					return err
				}
				body := map[string]any{"from": *from, "to": *to}
				if *pbx != "" {
					body["pbx"] = *pbx
				}
				if *callerID != "" {
					body["caller_id"] = *callerID
				}
				if err := setRingTimeout(body, *ring); err != nil {
					return err
				}
				if len(*vars) > 0 {
					m := map[string]string{}
					for _, v := range *vars {
						name, value, ok := strings.Cut(v, "=")
						if !ok || name == "" {
							return usagef("--var: want NAME=VALUE, got %q", v)
						}
						m[name] = value
					}
					body["variables"] = m
				}
				var header http.Header
				if *idem != "" {
					header = http.Header{"Idempotency-Key": {*idem}}
				}
				return show(ctx, e, fs, &cf, apiRequest{method: http.MethodPost, path: "/v1/calls", body: body, header: header}, *asJSON, printPlaced)
			}
		},
	}
}

// setRingTimeout puts --ring-timeout, when given, into an originate body
// (calls place, monitor) as the API's whole seconds.
func setRingTimeout(body map[string]any, ring time.Duration) error {
	if ring == 0 {
		return nil
	}
	if ring < time.Second || ring%time.Second != 0 {
		return usagef("--ring-timeout must be whole seconds, at least 1s, got %v", ring)
	}
	body["timeout_s"] = int(ring / time.Second)
	return nil
}

// placedCall is what `calls place` shows of POST /v1/calls.
type placedCall struct {
	CallID string `json:"call_id"`
	Status string `json:"status"`
	PBX    string `json:"pbx"`
	From   string `json:"from"`
	To     string `json:"to"`
}

func printPlaced(e *env, c placedCall) error {
	_, err := fmt.Fprintf(e.stdout, "Placed call %s on %s: %s rings, then dials %s (%s).\nEnd it with: switchboard calls hangup %s\n",
		c.CallID, c.PBX, c.From, c.To, c.Status, c.CallID)
	return err
}

func callsHangupCommand() *command {
	return &command{
		path: "calls hangup", args: "ID | --channel NAME | --all", group: groupOperate,
		summary: "hang up a call, a channel, or every call of a PBX",
		about: `ID is a call id (a uniqueid, as ` + "`calls place`" + ` and ` + "`calls list`" + ` print):
DELETE /v1/calls/ID. --channel hangs up one channel by name, --all every
live call of the PBX (POST /v1/calls/hangup). The reason goes to the audit
log.`,
		define: func(fs *pflag.FlagSet) action {
			var cf clientFlags
			channel := fs.String("channel", "", "hang up this channel, by `NAME` (e.g. PJSIP/150-0000002a)")
			all := fs.Bool("all", false, "hang up every live call of the PBX")
			pbx := fs.String("pbx", "", "the PBX (its agent `ID`); needed when the enterprise has several")
			reason := fs.String("reason", "", "the `REASON`, for the audit log")
			cause := fs.Int("cause", 0, "Q.850 hangup `CAUSE` (0: 16, normal clearing)")
			force := fs.Bool("force", false, "send the hangup even when the agent does not list the channel")
			cf.register(fs, operatorCredential)
			cf.registerTimeout(fs, defaultAPITimeout)
			asJSON := fs.Bool("json", false, "print the API's JSON")
			return func(ctx context.Context, e *env, args []string) error {
				if len(args) > 1 {
					return usagef("calls hangup: want one call id, got %d arguments", len(args))
				}
				given := 0
				for _, set := range []bool{len(args) == 1, *channel != "", *all} {
					if set {
						given++
					}
				}
				if given != 1 {
					return usagef("calls hangup: give exactly one of a call ID, --channel or --all")
				}
				req := apiRequest{method: http.MethodPost, path: "/v1/calls/hangup"}
				if len(args) == 1 && !*force {
					q := url.Values{}
					for name, v := range map[string]string{"pbx": *pbx, "reason": *reason} {
						if v != "" {
							q.Set(name, v)
						}
					}
					if *cause != 0 {
						q.Set("cause", strconv.Itoa(*cause))
					}
					req = apiRequest{method: http.MethodDelete, path: "/v1/calls/" + url.PathEscape(args[0]), query: q}
				} else {
					body := map[string]any{"pbx": *pbx, "channel": *channel, "all": *all, "reason": *reason, "cause": *cause, "force": *force}
					if len(args) == 1 {
						body["uniqueid"] = args[0]
					}
					req.body = body
				}
				return show(ctx, e, fs, &cf, req, *asJSON, printHangup)
			}
		},
	}
}

// hangupResult is what `calls hangup` shows of the API's answer.
type hangupResult struct {
	PBX    string `json:"pbx"`
	Count  int    `json:"count"`
	Hungup []struct {
		Channel    string `json:"channel"`
		UniqueID   string `json:"uniqueid"`
		DurationMS int64  `json:"duration_ms"`
	} `json:"hungup"`
}

func printHangup(e *env, res hangupResult) error {
	fmt.Fprintf(e.stdout, "Hung up %d channel(s) on %s.\n", res.Count, res.PBX)
	if len(res.Hungup) == 0 {
		return nil
	}
	return printer{w: e.stdout}.table(nil, []string{"CHANNEL", "UNIQUEID", "UP FOR"}, func(add func(...any)) {
		for _, h := range res.Hungup {
			add(h.Channel, dash(h.UniqueID), age(time.Duration(h.DurationMS)*time.Millisecond))
		}
	})
}
