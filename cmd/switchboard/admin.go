package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"

	"github.com/switchboard-pbx/switchboard/cmd/internal/flagfile"
	"github.com/switchboard-pbx/switchboard/controlplane"
	"github.com/switchboard-pbx/switchboard/controlplane/store"
)

// admin runs `switchboard enterprise|agent|apikey …`: small writes to the
// store, printed as a table or, with --json, as one JSON object.
func admin(ctx context.Context, noun string, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return usagef("%s: missing subcommand (see switchboard --help)", noun)
	}
	verb, args := args[0], args[1:]
	fs := pflag.NewFlagSet(noun+" "+verb, pflag.ContinueOnError)
	config := fs.String("config", "", "config file (the serve config: only db is read)")
	db := fs.String("db", controlplane.DefaultDB, "store: sqlite:PATH or postgres://…")
	asJSON := fs.Bool("json", false, "print JSON")
	number := fs.String("number", "", "enterprise number, e.g. 0367")
	name := fs.String("name", "", "name")
	enterprise := fs.String("enterprise", "", "enterprise number")
	dialContext := fs.String("context", store.DefaultContext, "Asterisk dialplan context the agent dials in")
	scopes := fs.String("scopes", strings.Join(store.AllowedScopes(), ","), "comma-separated API key scopes")
	if err := fs.Parse(args); err != nil {
		return usagef("%v", err)
	}
	if err := applyDBOnly(fs, *config); err != nil {
		return err
	}
	st, err := store.Open(ctx, *db, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	defer st.Close()
	out := printer{w: stdout, json: *asJSON}

	switch noun + " " + verb {
	case "enterprise create":
		if err := errorsJoin(mustNotBeEmpty("number", *number), mustNotBeEmpty("name", *name)); err != nil {
			return err
		}
		e, err := st.CreateEnterprise(ctx, *number, *name)
		if err != nil {
			return err
		}
		return out.print(enterpriseJSON(e), "Created enterprise %s (%s).\n", e.Number, e.Name)
	case "enterprise list":
		es, err := st.ListEnterprises(ctx)
		if err != nil {
			return err
		}
		rows := make([]any, len(es))
		for i, e := range es {
			rows[i] = enterpriseJSON(e)
		}
		return out.table(map[string]any{"enterprises": rows}, []string{"NUMBER", "NAME", "ACTIVE", "CREATED"}, func(add func(...any)) {
			for _, e := range es {
				add(e.Number, e.Name, e.Active, e.CreatedAt.Format(time.RFC3339))
			}
		})
	case "agent create":
		if err := errorsJoin(mustNotBeEmpty("enterprise", *enterprise), mustNotBeEmpty("name", *name)); err != nil {
			return err
		}
		a, token, err := st.CreateAgent(ctx, *enterprise, *name, *dialContext)
		if err != nil {
			return err
		}
		j := agentJSON(a)
		j["token"] = token
		return out.print(j, "Created agent %s (%s) for enterprise %s, context %s.\n"+
			"Its token is shown once; put it in /etc/switchboard/agent.token on the PBX:\n\n%s\n", a.ID, a.Name, a.EnterpriseNumber, a.Context, token)
	case "agent revoke":
		if fs.NArg() != 1 {
			return usagef("agent revoke: want exactly one agent id")
		}
		if err := st.RevokeAgent(ctx, fs.Arg(0)); err != nil {
			return err
		}
		return out.print(map[string]any{"id": fs.Arg(0), "revoked": true}, "Revoked agent %s; its next connection is refused.\n", fs.Arg(0))
	case "agent list":
		var as []store.Agent
		if *enterprise != "" {
			as, err = st.AgentsByEnterprise(ctx, *enterprise)
		} else {
			as, err = st.ListAgents(ctx, 0)
		}
		if err != nil {
			return err
		}
		rows := make([]any, len(as))
		for i, a := range as {
			rows[i] = agentJSON(a)
		}
		return out.table(map[string]any{"agents": rows}, []string{"ID", "ENTERPRISE", "NAME", "CONTEXT", "REVOKED", "LAST SEEN"}, func(add func(...any)) {
			for _, a := range as {
				add(a.ID, a.EnterpriseNumber, a.Name, a.Context, a.Revoked(), timeOrDash(a.LastSeenAt))
			}
		})
	case "apikey create":
		if err := mustNotBeEmpty("enterprise", *enterprise); err != nil {
			return err
		}
		keyName := *name
		if keyName == "" {
			keyName = "api key"
		}
		k, key, err := st.CreateAPIKey(ctx, *enterprise, keyName, splitList(*scopes))
		if err != nil {
			return err
		}
		j := apiKeyJSON(k)
		j["key"] = key
		return out.print(j, "Created API key %s for enterprise %s with scopes %s.\nIt is shown once:\n\n%s\n",
			k.ID, k.EnterpriseNumber, strings.Join(k.Scopes, ","), key)
	case "apikey revoke":
		if fs.NArg() != 1 {
			return usagef("apikey revoke: want exactly one key id")
		}
		if err := st.RevokeAPIKey(ctx, fs.Arg(0)); err != nil {
			return err
		}
		return out.print(map[string]any{"id": fs.Arg(0), "revoked": true}, "Revoked API key %s.\n", fs.Arg(0))
	case "apikey list":
		if err := mustNotBeEmpty("enterprise", *enterprise); err != nil {
			return err
		}
		e, err := st.EnterpriseByNumber(ctx, *enterprise)
		if err != nil {
			return err
		}
		ks, err := st.ListAPIKeys(ctx, e.ID)
		if err != nil {
			return err
		}
		rows := make([]any, len(ks))
		for i, k := range ks {
			rows[i] = apiKeyJSON(k)
		}
		return out.table(map[string]any{"api_keys": rows}, []string{"ID", "NAME", "SCOPES", "REVOKED", "CREATED"}, func(add func(...any)) {
			for _, k := range ks {
				add(k.ID, k.Name, strings.Join(k.Scopes, ","), k.Revoked(), k.CreatedAt.Format(time.RFC3339))
			}
		})
	default:
		return usagef("unknown command %q", noun+" "+verb)
	}
}

// applyDBOnly lets admin commands share serve's config file and
// environment for --db without knowing serve's other options.
func applyDBOnly(fs *pflag.FlagSet, config string) error {
	if config == "" {
		return flagfile.Apply(dbOnly(fs), envPrefix, "")
	}
	serveFS := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	var f serveFlags
	f.register(serveFS)
	if err := serveFS.Parse(nil); err != nil {
		return err
	}
	if err := flagfile.Apply(serveFS, envPrefix, config); err != nil {
		return usagef("%v", err)
	}
	if !fs.Changed("db") {
		return fs.Set("db", f.db)
	}
	return nil
}

func dbOnly(fs *pflag.FlagSet) *pflag.FlagSet {
	only := pflag.NewFlagSet("db", pflag.ContinueOnError)
	only.AddFlag(fs.Lookup("db"))
	return only
}

func enterpriseJSON(e store.Enterprise) map[string]any {
	return map[string]any{"id": e.ID, "number": e.Number, "name": e.Name, "active": e.Active, "created_at": e.CreatedAt}
}

func agentJSON(a store.Agent) map[string]any {
	m := map[string]any{"id": a.ID, "enterprise": a.EnterpriseNumber, "name": a.Name, "context": a.Context,
		"token_prefix": a.TokenPrefix, "created_at": a.CreatedAt, "revoked": a.Revoked()}
	if !a.LastSeenAt.IsZero() {
		m["last_seen_at"] = a.LastSeenAt
	}
	return m
}

func apiKeyJSON(k store.APIKey) map[string]any {
	return map[string]any{"id": k.ID, "enterprise": k.EnterpriseNumber, "name": k.Name, "prefix": k.Prefix,
		"scopes": k.Scopes, "created_at": k.CreatedAt, "revoked": k.Revoked()}
}

type printer struct {
	w    io.Writer
	json bool
}

func (p printer) print(v any, format string, args ...any) error {
	if p.json {
		enc := json.NewEncoder(p.w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	_, err := fmt.Fprintf(p.w, format, args...)
	return err
}

func (p printer) table(v any, header []string, fill func(add func(...any))) error {
	if p.json {
		return p.print(v, "")
	}
	tw := tabwriter.NewWriter(p.w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	fill(func(cols ...any) {
		s := make([]string, len(cols))
		for i, c := range cols {
			s[i] = fmt.Sprint(c)
		}
		fmt.Fprintln(tw, strings.Join(s, "\t"))
	})
	return tw.Flush()
}

func timeOrDash(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Format(time.RFC3339)
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func errorsJoin(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}
