package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"

	"github.com/switchboard-pbx/switchboard/controlplane/store"
)

// adminStep is an admin command's work, once its arguments are checked
// and its store is open.
type adminStep func(ctx context.Context, st *store.Store, out printer) error

// adminCommand is a command that writes to or reads the store directly
// (enterprise, agent, apikey): own registers its flags and returns the
// check of its arguments, which runs before the store is opened, so a
// usage mistake never touches a database.
func adminCommand(path, args, summary, about string, mode storeMode, own func(fs *pflag.FlagSet) func(args []string) (adminStep, error)) *command {
	return &command{path: path, args: args, summary: summary, about: about, group: groupTenants,
		define: func(fs *pflag.FlagSet) action {
			check := own(fs)
			var af adminFlags
			af.register(fs)
			return func(ctx context.Context, e *env, args []string) error {
				step, err := check(args)
				if err != nil {
					return err
				}
				choice, err := af.choose(fs)
				if err != nil {
					return err
				}
				st, err := choice.open(ctx, e, mode, af.json)
				if err != nil {
					return err
				}
				defer st.Close()
				return step(ctx, st, printer{w: e.stdout, json: af.json})
			}
		}}
}

const storeAbout = `The store is found like ` + "`switchboard serve`" + ` finds it: --db, else
SWITCHBOARD_DB, else the db line of --config FILE, else that of
/etc/switchboard/switchboard.conf when it exists. The store used is named
on stderr (not with --json). Only ` + "`enterprise create`" + ` makes a new
SQLite file, and only one named by --db or a config file.`

func adminCommands() []*command {
	return []*command{
		enterpriseCreateCommand(), enterpriseListCommand(), agentCreateCommand(),
		agentRevokeCommand(), agentListCommand(), apikeyCreateCommand(),
		apikeyRevokeCommand(), apikeyListCommand(), jwtCommand(), consoleLinkCommand(),
	}
}

func enterpriseCreateCommand() *command {
	return adminCommand("enterprise create", "--number N --name NAME", "create an enterprise (a tenant)",
		"Creates the enterprise; its number is how the other commands and the API's\nlegacy routes name it.\n\n"+storeAbout, mayCreate,
		func(fs *pflag.FlagSet) func([]string) (adminStep, error) {
			number := fs.String("number", "", "the enterprise's `NUMBER`, digits, e.g. 0367")
			name := fs.String("name", "", "its `NAME`")
			return func(args []string) (adminStep, error) {
				if err := errorsJoin(noArgs("enterprise create", args), mustNotBeEmpty("number", *number), mustNotBeEmpty("name", *name)); err != nil {
					return nil, err
				}
				return func(ctx context.Context, st *store.Store, out printer) error {
					e, err := st.CreateEnterprise(ctx, *number, *name)
					if err != nil {
						return err
					}
					return out.print(enterpriseJSON(e), "Created enterprise %s (%s).\n", e.Number, e.Name)
				}, nil
			}
		})
}

func enterpriseListCommand() *command {
	return adminCommand("enterprise list", "", "list the enterprises", storeAbout, mustExist,
		func(fs *pflag.FlagSet) func([]string) (adminStep, error) {
			return func(args []string) (adminStep, error) {
				return listEnterprises, noArgs("enterprise list", args)
			}
		})
}

func agentCreateCommand() *command {
	return adminCommand("agent create", "--enterprise N --name NAME", "create a PBX agent and print its token, shown once",
		"The token goes in /etc/switchboard/agent.token on the PBX; the control plane\nkeeps only its hash.\n\n"+storeAbout, mustExist,
		func(fs *pflag.FlagSet) func([]string) (adminStep, error) {
			enterprise := fs.String("enterprise", "", "the enterprise `NUMBER`")
			name := fs.String("name", "", "the PBX's `NAME`, e.g. its host name")
			dialContext := fs.String("context", store.DefaultContext, "Asterisk dialplan `CONTEXT` the agent places calls in")
			return func(args []string) (adminStep, error) {
				if err := errorsJoin(noArgs("agent create", args), mustNotBeEmpty("enterprise", *enterprise), mustNotBeEmpty("name", *name)); err != nil {
					return nil, err
				}
				return func(ctx context.Context, st *store.Store, out printer) error {
					a, token, err := st.CreateAgent(ctx, *enterprise, *name, *dialContext)
					if err != nil {
						return err
					}
					j := agentJSON(a)
					j["token"] = token
					return out.print(j, "Created agent %s (%s) for enterprise %s, context %s.\n"+
						"Its token is shown once; put it in /etc/switchboard/agent.token on the PBX:\n\n%s\n", a.ID, a.Name, a.EnterpriseNumber, a.Context, token)
				}, nil
			}
		})
}

func agentRevokeCommand() *command {
	return adminCommand("agent revoke", "ID|NAME [--enterprise N]", "revoke an agent: its tunnel closes and its next connection is refused", storeAbout, mustExist,
		func(fs *pflag.FlagSet) func([]string) (adminStep, error) {
			enterprise := fs.String("enterprise", "", "the enterprise `NUMBER` of the agent named by its name")
			return func(args []string) (adminStep, error) {
				if len(args) != 1 {
					return nil, usagef("agent revoke: want exactly one agent id or name")
				}
				ref := args[0]
				if !strings.HasPrefix(ref, "agt_") && *enterprise == "" {
					return nil, usagef("agent revoke %s: a name needs --enterprise (names are unique within an enterprise)", ref)
				}
				return func(ctx context.Context, st *store.Store, out printer) error {
					id, err := agentRef(ctx, st, ref, *enterprise)
					if err != nil {
						return err
					}
					if err := st.RevokeAgent(ctx, id); err != nil {
						return err
					}
					return out.print(map[string]any{"id": id, "revoked": true}, "Revoked agent %s; its tunnel closes and its next connection is refused.\n", id)
				}, nil
			}
		})
}

// agentRef resolves an agent id, or the name of one of the enterprise's
// live agents, to its id.
func agentRef(ctx context.Context, st *store.Store, ref, enterprise string) (string, error) {
	if strings.HasPrefix(ref, "agt_") {
		return ref, nil
	}
	e, err := st.EnterpriseByNumber(ctx, enterprise)
	if err != nil {
		return "", fmt.Errorf("enterprise %s: %w", enterprise, err)
	}
	agents, err := st.ListAgents(ctx, e.ID)
	if err != nil {
		return "", err
	}
	for _, a := range agents {
		if a.Name == ref && !a.Revoked() {
			return a.ID, nil
		}
	}
	return "", fmt.Errorf("enterprise %s has no live PBX named %q: %w", enterprise, ref, store.ErrNotFound)
}

func agentListCommand() *command {
	return adminCommand("agent list", "", "list the PBX agents", storeAbout, mustExist,
		func(fs *pflag.FlagSet) func([]string) (adminStep, error) {
			enterprise := fs.String("enterprise", "", "only this enterprise's agents (its `NUMBER`)")
			return func(args []string) (adminStep, error) {
				return func(ctx context.Context, st *store.Store, out printer) error {
					return listAgents(ctx, st, out, *enterprise)
				}, noArgs("agent list", args)
			}
		})
}

func apikeyCreateCommand() *command {
	return adminCommand("apikey create", "--enterprise N", "create an API key and print it, shown once", storeAbout, mustExist,
		func(fs *pflag.FlagSet) func([]string) (adminStep, error) {
			enterprise := fs.String("enterprise", "", "the enterprise `NUMBER`")
			name := fs.String("name", "api key", "a `NAME` that says who uses the key")
			scopes := fs.String("scopes", "", "comma-separated `SCOPES` (default: every scope, "+strings.Join(store.AllowedScopes(), ", ")+")")
			return func(args []string) (adminStep, error) {
				if err := errorsJoin(noArgs("apikey create", args), mustNotBeEmpty("enterprise", *enterprise)); err != nil {
					return nil, err
				}
				return func(ctx context.Context, st *store.Store, out printer) error {
					want := splitList(*scopes)
					if len(want) == 0 {
						want = store.AllowedScopes()
					}
					k, key, err := st.CreateAPIKey(ctx, *enterprise, *name, want)
					if err != nil {
						return err
					}
					j := apiKeyJSON(k)
					j["key"] = key
					return out.print(j, "Created API key %s for enterprise %s with scopes %s.\nIt is shown once:\n\n%s\n",
						k.ID, k.EnterpriseNumber, strings.Join(k.Scopes, ","), key)
				}, nil
			}
		})
}

func apikeyRevokeCommand() *command {
	return adminCommand("apikey revoke", "ID", "revoke an API key", storeAbout, mustExist,
		func(fs *pflag.FlagSet) func([]string) (adminStep, error) {
			return func(args []string) (adminStep, error) {
				if len(args) != 1 {
					return nil, usagef("apikey revoke: want exactly one key id")
				}
				return func(ctx context.Context, st *store.Store, out printer) error {
					if err := st.RevokeAPIKey(ctx, args[0]); err != nil {
						return err
					}
					return out.print(map[string]any{"id": args[0], "revoked": true}, "Revoked API key %s.\n", args[0])
				}, nil
			}
		})
}

func apikeyListCommand() *command {
	return adminCommand("apikey list", "--enterprise N", "list an enterprise's API keys (never the keys themselves)", storeAbout, mustExist,
		func(fs *pflag.FlagSet) func([]string) (adminStep, error) {
			enterprise := fs.String("enterprise", "", "the enterprise `NUMBER`")
			return func(args []string) (adminStep, error) {
				if err := errorsJoin(noArgs("apikey list", args), mustNotBeEmpty("enterprise", *enterprise)); err != nil {
					return nil, err
				}
				return func(ctx context.Context, st *store.Store, out printer) error {
					return listAPIKeys(ctx, st, out, *enterprise)
				}, nil
			}
		})
}

func listEnterprises(ctx context.Context, st *store.Store, out printer) error {
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
}

func listAgents(ctx context.Context, st *store.Store, out printer, enterprise string) error {
	var as []store.Agent
	var err error
	if enterprise != "" {
		as, err = st.AgentsByEnterprise(ctx, enterprise)
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
}

func listAPIKeys(ctx context.Context, st *store.Store, out printer, enterprise string) error {
	e, err := st.EnterpriseByNumber(ctx, enterprise)
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

// writeJSON prints v indented, as every --json of the CLI does.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
