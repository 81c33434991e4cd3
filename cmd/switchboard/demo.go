package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spf13/pflag"

	"github.com/switchboard-pbx/switchboard/agent"
	"github.com/switchboard-pbx/switchboard/controlplane"
	"github.com/switchboard-pbx/switchboard/controlplane/auth"
	"github.com/switchboard-pbx/switchboard/controlplane/store"
	"github.com/switchboard-pbx/switchboard/protocol"
	"github.com/switchboard-pbx/switchboard/protocol/ami"
	"github.com/switchboard-pbx/switchboard/protocol/ami/amitest"
)

// demo runs the whole product in one process: the control plane on
// 127.0.0.1 with a SQLite store in a temp dir, a simulated PBX (the AMI
// fake) with some background calls, and a real agent connected to it
// through the real tunnel. It prints commands that work as printed.
func demo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := pflag.NewFlagSet("demo", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", controlplane.DefaultListen, "address of the control plane")
	traffic := fs.Bool("traffic", true, "simulate background calls on the PBX")
	logLevel := fs.String("log-level", "warn", "log level: debug, info, warn, error")
	keep := fs.Bool("keep", false, "keep the temp dir (store, secrets) after exit")
	if err := fs.Parse(args); err != nil {
		return usagef("%v", err)
	}
	log, err := newLogger(stderr, "text", *logLevel)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "switchboard-demo-")
	if err != nil {
		return err
	}
	if !*keep {
		defer os.RemoveAll(dir)
	}

	dsn := "sqlite:" + filepath.Join(dir, "switchboard.db")
	st, err := store.Open(ctx, dsn, log)
	if err != nil {
		return err
	}
	defer st.Close()
	creds, err := demoCredentials(ctx, st, dir)
	if err != nil {
		return err
	}
	agentRec, secretFile := creds.Agent, creds.SecretFile

	// The control plane as serve builds it, at its defaults.
	df := serveFlags{}
	df.register(pflag.NewFlagSet("defaults", pflag.ContinueOnError))
	df.jwtSecretFile, df.listen = secretFile, *listen
	// Webhooks to a receiver on this machine are the point of a demo.
	df.events.webhookAllowPrivate = true
	cfg, err := df.controlPlane()
	if err != nil {
		return err
	}
	cfg.Store, cfg.Logger = st, log
	srv, err := controlplane.New(ctx, cfg)
	if err != nil {
		return err
	}
	defer srv.Close()
	ln, err := srv.Listen()
	if err != nil {
		return fmt.Errorf("%w (another demo running? try --listen 127.0.0.1:0)", err)
	}
	base := "http://" + ln.Addr().String()

	pbx, ag, err := demoPBX(log, dir, "ws://"+ln.Addr().String()+protocol.ConnectPath, creds.AgentToken)
	if err != nil {
		return err
	}
	defer pbx.Close()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 3)
	wg.Add(2)
	go func() { defer wg.Done(); errc <- srv.Serve(ctx, ln) }()
	go func() { defer wg.Done(); errc <- ag.Run(ctx) }()
	if *traffic {
		wg.Add(1)
		go func() { defer wg.Done(); simulateTraffic(ctx, pbx) }()
	}
	defer wg.Wait()
	defer cancel()

	if err := waitConnected(ctx, srv, agentRec.ID); err != nil {
		return err
	}
	creds.Base, creds.DSN, creds.Dir, creds.PBX = base, dsn, dir, pbx.Addr()
	creds.Self, creds.WebhookSecret = selfCommand(), "demo-webhook-"+rand.Text()
	printDemo(stdout, creds)

	select {
	case <-ctx.Done():
		fmt.Fprintln(stdout, "\nStopping…")
		return nil
	case err := <-errc:
		if err == nil || errors.Is(err, context.Canceled) {
			return nil
		}
		return err
	}
}

// demoPBX starts the simulated PBX (the AMI fake), recording into dir's
// recordings folder, which is also its agent's recordings directory so
// recordings download, and makes the agent that connects it to server.
func demoPBX(log *slog.Logger, dir, server, token string) (*amitest.Server, *agent.Agent, error) {
	recordings := filepath.Join(dir, "recordings")
	pbx, err := amitest.New(amitest.Config{Logger: log.With("component", "simulated-pbx"), RingDelay: 2 * time.Second,
		MonitorDir: recordings, WriteRecordings: true})
	if err != nil {
		return nil, nil, err
	}
	if err := pbx.Start(); err != nil {
		return nil, nil, err
	}
	ag, err := agent.New(agent.Config{
		Server:        server,
		Token:         token,
		AMI:           ami.Config{Addr: pbx.Addr(), Username: "switchboard", Secret: "switchboard-secret"},
		Context:       "inoffice",
		Logger:        log,
		Version:       version,
		RecordingsDir: recordings,
	})
	if err != nil {
		pbx.Close()
		return nil, nil, err
	}
	return pbx, ag, nil
}

// demoCredentials makes the demo's tenant in st: the enterprise, its PBX's
// agent, an API key with every scope, console sign-in links, and a JWT
// secret in dir with a supervisor's token signed by it.
func demoCredentials(ctx context.Context, st *store.Store, dir string) (demoInfo, error) {
	var d demoInfo
	ent, err := st.CreateEnterprise(ctx, "0367", "june")
	if err != nil {
		return d, err
	}
	agentRec, agentToken, err := st.CreateAgent(ctx, ent.Number, "pbx-june", "inoffice")
	if err != nil {
		return d, err
	}
	_, apiKey, err := st.CreateAPIKey(ctx, ent.Number, "demo", store.AllowedScopes())
	if err != nil {
		return d, err
	}
	d.Enterprise, d.Agent, d.AgentToken, d.APIKey = ent, agentRec, agentToken, apiKey
	for _, l := range []struct{ who, enterprise, role string }{
		{"supervisor", ent.Number, auth.RoleSupervisor}, {"platform admin", "", auth.RolePlatformAdmin},
	} {
		_, token, err := st.CreateConsoleLink(ctx, l.enterprise, "", []string{l.role}, 24*time.Hour)
		if err != nil {
			return d, err
		}
		d.Links = append(d.Links, demoLink{who: l.who, token: token})
	}
	d.SecretFile = filepath.Join(dir, "jwt.secret")
	if err := os.WriteFile(d.SecretFile, []byte(rand.Text()+rand.Text()), 0o600); err != nil {
		return d, err
	}
	secret, err := auth.LoadHMACSecret(d.SecretFile)
	if err != nil {
		return d, err
	}
	d.JWT, err = auth.MintHS256(secret, auth.OperatorClaims{Subject: "supervisor-1", Enterprise: ent.Number, Roles: []string{"supervisor", "telecom_admin"}}, 24*time.Hour)
	return d, err
}

func waitConnected(ctx context.Context, srv *controlplane.Server, agentID string) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	for {
		if _, ok := srv.Registry().Get(agentID); ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the demo agent did not connect: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// simulateTraffic keeps the simulated PBX busy: extension 150 is on a
// long call to an outside number (a target for monitoring), and every few
// seconds two phones call each other for a while.
func simulateTraffic(ctx context.Context, pbx *amitest.Server) {
	if _, err := pbx.StartCall("150", "+375296254070"); err != nil {
		return
	}
	exts := []string{"101", "102", "103", "104", "105", "+74951234567"}
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Duration(3+randN(5)) * time.Second):
		}
		from, to := exts[randN(5)], exts[randN(len(exts))]
		if from == to {
			continue
		}
		if _, err := pbx.StartCall(from, to); err != nil {
			continue
		}
		// Hang the caller up after a while; its partner follows.
		after := time.Duration(5+randN(15)) * time.Second
		go func() {
			select {
			case <-ctx.Done():
			case <-time.After(after):
				for _, ch := range pbx.Channels() {
					if strings.HasPrefix(ch.Name, "Local/"+from+"@") {
						_ = pbx.Hangup(ch.Name, 16)
					}
				}
			}
		}()
	}
}

// selfCommand is how a printed command runs this program: its installed
// path, or `go run ./cmd/switchboard` under `go run` (whose binary lives
// in a build cache the user never sees). Tests point it at a built binary.
var selfCommand = func() string {
	exe, err := os.Executable()
	if err != nil || strings.Contains(exe, "go-build") {
		return "go run ./cmd/switchboard"
	}
	return exe
}

func randN(n int) int {
	v, _ := rand.Int(rand.Reader, big.NewInt(int64(n)))
	return int(v.Int64())
}

type demoInfo struct {
	Base, APIKey, JWT, DSN, Dir, PBX string
	// AgentToken is the demo PBX's agent's (not printed).
	AgentToken string
	// SecretFile signs operator JWTs; WebhookSecret is the demo
	// webhook's.
	SecretFile, WebhookSecret string
	// Self runs this program in a printed command.
	Self string
	// Links are single-use web console sign-ins made at start.
	Links      []demoLink
	Enterprise store.Enterprise
	Agent      store.Agent
}

func printDemo(w io.Writer, d demoInfo) {
	host, _, _ := net.SplitHostPort(strings.TrimPrefix(d.Base, "http://"))
	_ = host
	fmt.Fprintf(w, `
Switchboard demo is running (Ctrl-C stops it).

  control plane   %s   (store: %s)
  enterprise      %s "%s"
  PBX agent       %s, connected through the tunnel to a simulated Asterisk at %s
  API key         %s
  operator JWT    %s
                  (roles supervisor + telecom_admin, valid 24 h)
  JWT secret      %s
                  (signs operator JWTs: switchboard jwt mint, below)
  web console     %s/  (sign in with the API key, or open a single-use link:)
%s
Try, in another terminal:

  export SB=%s KEY=%s
  export JWT=%s

`, d.Base, d.DSN, d.Enterprise.Number, d.Enterprise.Name, d.Agent.ID, d.PBX, d.APIKey, d.JWT, d.SecretFile, d.Base, demoLinks(d), d.Base, d.APIKey, d.JWT)
	for _, c := range demoCommands(d) {
		if c.what == "" { // the same as the command before it
			fmt.Fprintf(w, "  %s\n\n", c.cmd)
			continue
		}
		fmt.Fprintf(w, "  # %s\n  %s\n\n", c.what, c.cmd)
	}
}

// demoLink is a console sign-in link the demo made for a role.
type demoLink struct{ who, token string }

type demoCommand struct{ what, cmd string }

// demoLinks lists the sign-in links, one a line.
func demoLinks(d demoInfo) string {
	var b strings.Builder
	for _, l := range d.Links {
		fmt.Fprintf(&b, "                  %-15s %s/#link=%s\n", l.who+":", d.Base, l.token)
	}
	return b.String()
}

// demoCommands are the commands printed by the demo, in order; the demo
// test runs them all in one shell, so they work as printed.
func demoCommands(d demoInfo) []demoCommand {
	return []demoCommand{
		{"is the control plane ready? (store reachable, migrations applied, agents connected)", `curl -s --fail-with-body $SB/readyz`},
		{"the enterprise's PBXs and their status", `curl -s --fail-with-body $SB/v1/pbxs -H "Authorization: Bearer $KEY"`},
		{"place a call: extension 101 rings, then dials +375296254070 (the call id is known before it rings)",
			`CALL=$(curl -s --fail-with-body -X POST $SB/v1/calls -H "Authorization: Bearer $KEY" -H "Content-Type: application/json" -d '{"from":"101","to":"+375296254070"}' | sed -n 's/.*"call_id":"\([^"]*\)".*/\1/p'); echo "call $CALL"`},
		{"live channels of the enterprise's PBXs", `curl -s --fail-with-body $SB/v1/channels -H "Authorization: Bearer $KEY"`},
		{"supervisor 151 listens to extension 150's call (spy; also whisper, barge)",
			`curl -s --fail-with-body -X POST $SB/v1/monitor -H "Authorization: Bearer $JWT" -H "Content-Type: application/json" -d '{"mode":"spy","target":"150","from":"151"}'`},
		{"hang up the call placed above", `curl -s --fail-with-body -X DELETE $SB/v1/calls/$CALL -H "Authorization: Bearer $KEY"`},
		{"the same through the legacy (FastAPI-compatible) route", `curl -s --fail-with-body "$SB/api/makecallexternal?code=102&phone=%2B375296254070&clientId=$KEY"`},
		{"who did what: the audit log", `curl -s --fail-with-body "$SB/v1/audit?limit=5" -H "Authorization: Bearer $JWT"`},
		{"call events, stored and numbered: the first page (poll on with after=<next_after>)",
			`curl -s --fail-with-body "$SB/v1/events?after=0&limit=5" -H "Authorization: Bearer $KEY"`},
		{"call history: every call with its status, who answered, duration (GET /v1/calls/$CALL adds its timeline)",
			`curl -s --fail-with-body "$SB/v1/calls?limit=5" -H "Authorization: Bearer $KEY"`},
		{"get call.ended events POSTed, signed, to a webhook on port 9999 (the receiver is the next command)",
			`curl -s --fail-with-body -X POST $SB/v1/webhooks -H "Authorization: Bearer $KEY" -H "Content-Type: application/json" -d '{"url":"http://127.0.0.1:9999/hook","event_types":["call.ended"],"secret":"` + d.WebhookSecret + `"}'`},
		{"receive them: checks each delivery's signature and prints it (in a terminal of its own; Ctrl-C stops it)",
			d.Self + ` webhook listen --listen 127.0.0.1:9999 --secret ` + d.WebhookSecret},
		{"the live event stream (WebSocket), one JSON event a line, from the first stored one; Ctrl-C stops it",
			`SWITCHBOARD_TOKEN=$KEY ` + d.Self + ` events tail --server $SB --after 0`},
		{"an operator JWT of each role, signed with the demo's secret (operator: place calls, read; supervisor: also monitor and hang up)",
			d.Self + ` jwt mint --secret-file ` + d.SecretFile + ` --sub op-1 --enterprise ` + d.Enterprise.Number + ` --roles operator`},
		{"", d.Self + ` jwt mint --secret-file ` + d.SecretFile + ` --sub sup-1 --enterprise ` + d.Enterprise.Number + ` --roles supervisor`},
		{"", d.Self + ` jwt mint --secret-file ` + d.SecretFile + ` --sub admin-1 --enterprise ` + d.Enterprise.Number + ` --roles telecom_admin`},
		{"the fleet-wide view: a platform_admin token, with no enterprise",
			d.Self + ` jwt mint --secret-file ` + d.SecretFile + ` --sub root --roles platform_admin`},
		{"the web console: a single-use sign-in URL for a supervisor, and one for a platform admin (open it in a browser)",
			consoleLinkLine(d.Self, d.DSN, "$SB", d.Enterprise.Number, auth.RoleSupervisor)},
		{"", consoleLinkLine(d.Self, d.DSN, "$SB", "", auth.RolePlatformAdmin)},
	}
}
