package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"

	"github.com/switchboard-pbx/switchboard/controlplane/api"
)

// Limits of `fleet status`.
const (
	// fleetPageSize is the default page asked for; the API caps it at
	// 10,000 (api.MaxFleetPageSize).
	fleetPageSize = 1000
	// fleetMaxPages bounds the cursor walk, so a server that kept
	// returning a cursor could not loop us forever.
	fleetMaxPages = 10000
	// fleetTimeout is the default --timeout of the whole command.
	fleetTimeout = 60 * time.Second
)

// fleetAgent is the part of GET /v1/fleet's agent the table shows; --json
// prints the server's objects untouched.
type fleetAgent struct {
	ID              string     `json:"id"`
	Name            string     `json:"name"`
	Enterprise      string     `json:"enterprise"`
	Revoked         bool       `json:"revoked"`
	Connected       bool       `json:"connected"`
	ConnectedSince  *time.Time `json:"connected_since"`
	LastSeen        *time.Time `json:"last_seen"`
	AgentVersion    string     `json:"agent_version"`
	AsteriskVersion string     `json:"asterisk_version"`
	AMI             string     `json:"ami"`
	LiveCalls       int        `json:"live_calls"`
	// Replica holds the PBX's tunnel when several replicas run clustered.
	Replica string `json:"replica"`
}

type fleetTotals struct {
	Agents       int `json:"agents"`
	Connected    int `json:"connected"`
	AMIUp        int `json:"ami_up"`
	AMIDown      int `json:"ami_down"`
	LiveChannels int `json:"live_channels"`
	LiveCalls    int `json:"live_calls"`
}

type fleetPage struct {
	Totals     fleetTotals       `json:"totals"`
	Matched    int               `json:"matched"`
	Agents     []json.RawMessage `json:"agents"`
	NextCursor string            `json:"next_cursor"`
}

// fleetCommand is `switchboard fleet status`: GET /v1/fleet (every page)
// as a table with totals, or as JSON.
func fleetCommand() *command {
	return &command{
		path: "fleet status", group: groupOperate,
		summary: "every PBX of every enterprise: connected, versions, AMI, live calls",
		about: `Needs a platform_admin JWT (mint one with ` + "`switchboard jwt mint --roles\nplatform_admin`" + `). The table has one row per PBX and a totals line;
revoked agents are hidden unless --revoked. Every page of GET /v1/fleet is
fetched (--page-size per request).`,
		define: func(fs *pflag.FlagSet) action {
			var cf clientFlags
			enterprise := fs.String("enterprise", "", "only this enterprise's PBXs (its `NUMBER`)")
			online := fs.Bool("online", false, "only connected PBXs")
			offline := fs.Bool("offline", false, "only disconnected PBXs")
			amiState := fs.String("ami", "", "only PBXs whose AMI is in this `STATE`: up, down or unknown")
			revoked := fs.Bool("revoked", false, "only revoked agents (hidden otherwise)")
			pageSize := fs.Int("page-size", fleetPageSize, fmt.Sprintf("`N` agents per request (1-%d); every page is fetched", api.MaxFleetPageSize))
			cf.register(fs, "platform_admin JWT")
			cf.registerTimeout(fs, fleetTimeout)
			asJSON := fs.Bool("json", false, "print JSON: totals, matched and every agent as the API returns them")
			completeWords(fs, "ami", "up", "down", "unknown")
			return func(ctx context.Context, e *env, args []string) error {
				if err := noArgs("fleet status", args); err != nil {
					return err
				}
				if *online && *offline {
					return usagef("--online and --offline exclude each other")
				}
				if *pageSize < 1 || *pageSize > api.MaxFleetPageSize {
					return usagef("--page-size must be 1-%d, got %d", api.MaxFleetPageSize, *pageSize)
				}
				api, err := cf.connect(fs, "a platform_admin JWT is required: --token-file, SWITCHBOARD_TOKEN or --token (mint one with `switchboard jwt mint --roles platform_admin`)")
				if err != nil {
					return err
				}
				q := url.Values{}
				q.Set("limit", strconv.Itoa(*pageSize))
				if *enterprise != "" {
					q.Set("enterprise", *enterprise)
				}
				if *online || *offline {
					q.Set("connected", strconv.FormatBool(*online))
				}
				if *amiState != "" {
					q.Set("ami", *amiState)
				}
				if *revoked {
					q.Set("revoked", "true")
				}
				ctx, cancel := context.WithTimeout(ctx, cf.timeout)
				defer cancel()
				all, err := fetchFleet(ctx, api, q)
				if err != nil {
					return err
				}
				if *asJSON {
					return writeJSON(e.stdout, map[string]any{"totals": all.Totals, "matched": all.Matched, "agents": all.Agents})
				}
				return printFleet(e.stdout, all, e.now())
			}
		},
	}
}

// fetchFleet walks the pages: totals and matched come from the first.
func fetchFleet(ctx context.Context, api *apiClient, q url.Values) (fleetPage, error) {
	var all fleetPage
	for page := 0; ; page++ {
		if page == fleetMaxPages {
			return all, fmt.Errorf("GET /v1/fleet: more than %d pages; narrow it with --enterprise", fleetMaxPages)
		}
		var p fleetPage
		if err := api.do(ctx, apiRequest{method: http.MethodGet, path: "/v1/fleet", query: q}, &p); err != nil {
			var ae *apiError
			if errors.As(err, &ae) && ae.authProblem() {
				err = fmt.Errorf("%w (the token must be a JWT with the platform_admin role, verified by the server's --jwt-secret-file or --jwt-public-key-file)", err)
			}
			return all, err
		}
		if page == 0 {
			all.Totals, all.Matched = p.Totals, p.Matched
		}
		all.Agents = append(all.Agents, p.Agents...)
		if p.NextCursor == "" || len(p.Agents) == 0 {
			if all.Agents == nil {
				all.Agents = []json.RawMessage{}
			}
			return all, nil
		}
		q.Set("cursor", p.NextCursor)
	}
}

func printFleet(w io.Writer, f fleetPage, now time.Time) error {
	agents := make([]fleetAgent, len(f.Agents))
	clustered := false
	for i, raw := range f.Agents {
		if err := json.Unmarshal(raw, &agents[i]); err != nil {
			return fmt.Errorf("GET /v1/fleet: decode agent: %w", err)
		}
		clustered = clustered || agents[i].Replica != ""
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	header := "PBX\tNAME\tENTERPRISE\tSTATUS\tSINCE / LAST SEEN\tAGENT\tASTERISK\tAMI\tCALLS"
	if clustered {
		// Several replicas: which one holds each tunnel.
		header += "\tREPLICA"
	}
	fmt.Fprintln(tw, header)
	for _, a := range agents {
		status, since, calls := "offline", "never seen", "-"
		switch {
		case a.Revoked:
			status = "revoked"
		case a.Connected:
			status, calls = "online", strconv.Itoa(a.LiveCalls)
		}
		switch {
		case a.Connected && a.ConnectedSince != nil:
			since = "for " + age(now.Sub(*a.ConnectedSince))
		case a.LastSeen != nil:
			since = age(now.Sub(*a.LastSeen)) + " ago"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s", a.ID, a.Name, a.Enterprise, status, since,
			dash(a.AgentVersion), dash(a.AsteriskVersion), a.AMI, calls)
		if clustered {
			fmt.Fprintf(tw, "\t%s", dash(a.Replica))
		}
		fmt.Fprintln(tw)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	t := f.Totals
	fmt.Fprintf(w, "\n%d PBXs: %d online, %d offline · AMI %d up, %d down · %d live calls, %d channels\n",
		t.Agents, t.Connected, t.Agents-t.Connected, t.AMIUp, t.AMIDown, t.LiveCalls, t.LiveChannels)
	if f.Matched != t.Agents {
		fmt.Fprintf(w, "%d shown (filtered)\n", f.Matched)
	}
	return nil
}

// age is a duration for people: two units at most.
func age(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	d = d.Round(time.Second)
	day := 24 * time.Hour
	switch {
	case d < time.Minute:
		return strconv.Itoa(int(d/time.Second)) + "s"
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", d/time.Minute, d%time.Minute/time.Second)
	case d < day:
		return fmt.Sprintf("%dh%02dm", d/time.Hour, d%time.Hour/time.Minute)
	default:
		return fmt.Sprintf("%dd%02dh", d/day, d%day/time.Hour)
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
