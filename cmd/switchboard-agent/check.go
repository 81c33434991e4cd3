package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/switchboard-pbx/switchboard/agent"
	"github.com/switchboard-pbx/switchboard/protocol"
	"github.com/switchboard-pbx/switchboard/protocol/ami"
	"github.com/switchboard-pbx/switchboard/protocol/tunnel"
)

// checkStepTimeout bounds each network step of `check` (AMI login and
// queries, the control plane handshake), so a black-holed address fails
// the check instead of hanging the operator's terminal.
const checkStepTimeout = 10 * time.Second

// neededActions are the AMI actions the agent sends (or may send, for
// Status), in the order they are reported. Login, Logoff, Ping and
// ListCommands need no write class and are always allowed.
var neededActions = []string{"Originate", "Hangup", "Status", "CoreShowChannels", "CoreSettings"}

// neededClasses is the least-privilege write= of packaging/manager.conf.example
// (agent: the queue member actions).
var neededClasses = []string{"originate", "call", "reporting", "agent"}

// dangerousClasses are write classes that hand the AMI user (and so a
// compromised agent) more than call control, and why.
var dangerousClasses = []struct{ class, why string }{
	{"command", "the Command action runs any Asterisk CLI command"},
	{"system", "Originate may then start System()/Exec()/AGI() (a shell on the PBX), and modules, AstDB and recordings can be changed"},
	{"config", "the configuration files in /etc/asterisk can be read and rewritten (GetConfig, UpdateConfig)"},
	{"agi", "the AGI action runs AGI commands, EXEC System() included, on any channel"},
}

// errChecksFailed is returned after the report when a check failed.
var errChecksFailed = errors.New("check failed")

// checkReport prints one line per check: ok, warn or FAIL, a short name
// and the detail.
type checkReport struct {
	w                io.Writer
	ok, warns, fails int
}

func (r *checkReport) line(status, name, format string, args ...any) {
	switch status {
	case "ok":
		r.ok++
	case "warn":
		r.warns++
	default:
		r.fails++
	}
	fmt.Fprintf(r.w, "%-4s  %-16s %s\n", status, name, fmt.Sprintf(format, args...))
}

// checkAgent runs `switchboard-agent check`: the same flags and config as
// run, then each check on its own line. It never sends Hello, so a running
// agent with the same token keeps its session.
func checkAgent(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	help := pflag.NewFlagSet("check", pflag.ContinueOnError)
	help.SetOutput(io.Discard)
	var f flags
	f.register(help)
	if err := help.Parse(args); errors.Is(err, pflag.ErrHelp) {
		fmt.Fprint(stdout, "switchboard-agent check [flags] — the flags and config of `run`:\n\n"+help.FlagUsages())
		return nil
	}

	r := &checkReport{w: stdout}
	cfg, log, err := load(args, stderr)
	if err != nil {
		r.line("FAIL", "config", "%v", err)
		return r.finish()
	}
	r.line("ok", "config", "server %s, AMI %s@%s, context %s", cfg.Server, cfg.AMI.Username, cfg.AMI.Addr, cfgContext(cfg))
	// Every result is reported as a line; library logs only help when
	// the operator asked for debug.
	if !log.Enabled(ctx, slog.LevelDebug) {
		log = slog.New(slog.DiscardHandler)
	}
	checkAMI(ctx, r, cfg, log)
	checkControlPlane(ctx, r, cfg, log)
	return r.finish()
}

func (r *checkReport) finish() error {
	fmt.Fprintf(r.w, "%d ok, %d warn, %d FAIL\n", r.ok, r.warns, r.fails)
	if r.fails > 0 {
		return fmt.Errorf("%w: %d of %d checks", errChecksFailed, r.fails, r.ok+r.warns+r.fails)
	}
	return nil
}

func cfgContext(cfg agent.Config) string {
	if cfg.Context == "" {
		return agent.DefaultContext
	}
	return cfg.Context
}

func checkAMI(ctx context.Context, r *checkReport, cfg agent.Config, log *slog.Logger) {
	ac := cfg.AMI
	ac.Logger = log
	who := ac.Username + "@" + ac.Addr
	dctx, cancel := context.WithTimeout(ctx, checkStepTimeout)
	defer cancel()
	c, err := ami.Dial(dctx, ac)
	if err != nil {
		switch {
		case errors.Is(err, ami.ErrAuth):
			r.line("FAIL", "ami login", "%s: Asterisk refused the login: check --ami-user and the secret in --ami-secret-file against manager.conf (%v)", who, err)
		default:
			r.line("FAIL", "ami login", "%s: %v (is Asterisk running with the manager enabled on this address? see manager.conf.example)", who, err)
		}
		return
	}
	defer c.Close()

	astVersion := ""
	if resp, err := c.Action(dctx, ami.NewAction("CoreSettings")); err == nil {
		astVersion = resp.Get("AsteriskVersion")
	}
	r.line("ok", "ami login", "%s (Asterisk %s, AMI %s)", who, orUnknown(astVersion), orUnknown(c.Info().AMIVersion))

	resp, err := c.Action(dctx, ami.NewAction("ListCommands"))
	if err != nil {
		r.line("FAIL", "ami permissions", "ListCommands: %v", err)
		return
	}
	p := analyzePermissions(resp)
	if len(p.missing) > 0 {
		r.line("FAIL", "ami permissions", "the AMI user may not run %s: set write = %s for [%s] in manager.conf, then `manager reload`",
			strings.Join(p.missing, ", "), strings.Join(neededClasses, ","), ac.Username)
	} else {
		r.line("ok", "ami permissions", "may run %s", strings.Join(neededActions, ", "))
	}
	checkOperations(r, cfg, p)
	for _, d := range dangerousClasses {
		if ev, ok := p.granted[d.class]; ok {
			advice := "the agent does not need it, remove it from write= in manager.conf"
			if d.class == "system" {
				advice = systemAdvice(cfg)
			}
			r.line("warn", "ami privilege", "write includes %q (it lists %s): %s; %s",
				d.class, strings.Join(ev, ", "), d.why, advice)
		}
	}
	if len(p.extra) > 0 {
		r.line("warn", "ami privilege", "write also grants %s, which the agent does not use (least privilege: write = %s)",
			strings.Join(p.extra, ", "), strings.Join(neededClasses, ","))
	}
	if why, ok := vulnerableAsterisk(astVersion); ok && !slices.Contains(p.missing, "Originate") {
		r.line("warn", "asterisk version", "%s", why)
	}
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// permissions is what a ListCommands answer says about the logged-in
// user's write classes.
type permissions struct {
	// missing are neededActions the user may not run.
	missing []string
	// granted maps a write class to actions listed that need exactly
	// that class, i.e. proof that the user holds it.
	granted map[string][]string
	// extra are proven classes beyond neededClasses and dangerousClasses.
	extra []string
	// listed are the actions the user may run (lower case).
	listed map[string]bool
}

// analyzePermissions reads a ListCommands response. Asterisk lists an
// action only when its privilege classes intersect the user's write
// classes (or it needs none), each as "Name: synopsis  (Priv: a,b,all)".
// "all" appears on every privileged action, so only an action that needs
// exactly one class proves the user holds that class.
func analyzePermissions(resp *ami.Message) permissions {
	listed := map[string]bool{}
	p := permissions{granted: map[string][]string{}, listed: listed}
	for _, h := range resp.Headers {
		switch strings.ToLower(h.Key) {
		case "response", "actionid", "message", "eventlist":
			continue
		}
		listed[strings.ToLower(h.Key)] = true
		classes, ok := parsePriv(h.Value)
		if !ok || len(classes) != 1 {
			continue
		}
		p.granted[classes[0]] = append(p.granted[classes[0]], h.Key)
	}
	for _, a := range neededActions {
		if !listed[strings.ToLower(a)] {
			p.missing = append(p.missing, a)
		}
	}
	for class := range p.granted {
		if slices.Contains(neededClasses, class) || slices.ContainsFunc(dangerousClasses, func(d struct{ class, why string }) bool { return d.class == class }) {
			continue
		}
		p.extra = append(p.extra, class)
	}
	slices.Sort(p.extra)
	for _, ev := range p.granted {
		slices.Sort(ev)
	}
	return p
}

// parsePriv extracts the classes of "synopsis  (Priv: system,call,all)",
// without "all"; "<none>" is an empty list. ok is false when the value
// carries no Priv part.
func parsePriv(v string) (classes []string, ok bool) {
	i := strings.LastIndex(v, "(Priv: ")
	if i < 0 {
		return nil, false
	}
	rest := v[i+len("(Priv: "):]
	j := strings.IndexByte(rest, ')')
	if j < 0 {
		return nil, false
	}
	rest = rest[:j]
	if rest == "<none>" {
		return []string{}, true
	}
	for _, c := range strings.Split(rest, ",") {
		c = strings.ToLower(strings.TrimSpace(c))
		if c != "" && c != "all" && !slices.Contains(classes, c) {
			classes = append(classes, c)
		}
	}
	return classes, true
}

// vulnerableAsterisk says whether an Asterisk version lets an AMI user
// with originate write rewrite files in /etc/asterisk (CVE-2024-42365,
// fixed in 18.24.2, 20.9.2 and 21.4.2; older majors are end of life).
// Versions it cannot parse (certified, git builds) are not judged.
func vulnerableAsterisk(version string) (string, bool) {
	fixed := map[int][2]int{18: {24, 2}, 20: {9, 2}, 21: {4, 2}}
	parts := strings.SplitN(version, ".", 3)
	if len(parts) < 3 {
		return "", false
	}
	var n [3]int
	for i, s := range parts {
		if k := strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' }); k >= 0 {
			s = s[:k]
		}
		v, err := strconv.Atoi(s)
		if err != nil {
			return "", false
		}
		n[i] = v
	}
	major, minor, patch := n[0], n[1], n[2]
	why := fmt.Sprintf("Asterisk %s: an AMI user with originate write can rewrite files in /etc/asterisk (CVE-2024-42365); upgrade to 18.24.2, 20.9.2, 21.4.2 or later", version)
	if f, ok := fixed[major]; ok {
		if minor < f[0] || minor == f[0] && patch < f[1] {
			return why, true
		}
		return "", false
	}
	return why, major < 22
}

func checkControlPlane(ctx context.Context, r *checkReport, cfg agent.Config, log *slog.Logger) {
	u, err := url.Parse(cfg.Server)
	if err != nil {
		r.line("FAIL", "control plane", "server URL: %v", err)
		return
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = protocol.ConnectPath
	}
	target := u.String()
	roots := cfg.RootCAs
	if roots == nil && cfg.CAFile != "" {
		if roots, err = tunnel.LoadCAFile(cfg.CAFile); err != nil {
			r.line("FAIL", "control plane", "%v", err)
			return
		}
	}
	dctx, cancel := context.WithTimeout(ctx, checkStepTimeout)
	defer cancel() // also ends the session: ctx bounds its life
	sess, err := tunnel.Dial(dctx, tunnel.DialConfig{
		URL: target, Token: cfg.Token, RootCAs: roots, Logger: log,
		HandshakeTimeout: checkStepTimeout, UserAgent: "switchboard-agent/" + version + " (check)",
	})
	if err != nil {
		var certErr *tls.CertificateVerificationError
		var unknownCA x509.UnknownAuthorityError
		var hostErr x509.HostnameError
		switch {
		case errors.Is(err, tunnel.ErrUnauthorized):
			r.line("FAIL", "control plane", "%s refused the agent token (revoked, or issued by another control plane): issue a new one with `switchboard agent create` (%v)", target, err)
		case errors.Is(err, tunnel.ErrProtocolVersion):
			r.line("FAIL", "control plane", "%s speaks none of this agent's protocols %d to %d: upgrade the older side (%v)", target, protocol.MinVersion, protocol.Version, err)
		case errors.As(err, &unknownCA), errors.As(err, &certErr) && errors.As(certErr.Err, &unknownCA):
			r.line("FAIL", "control plane", "%s: TLS certificate not signed by a trusted CA: set --ca-file to the CA that signed it (%v)", target, err)
		case errors.As(err, &hostErr), errors.As(err, &certErr):
			r.line("FAIL", "control plane", "%s: TLS certificate not valid for this server: %v", target, err)
		default:
			r.line("FAIL", "control plane", "%s unreachable: %v", target, err)
		}
		return
	}
	// Closing before Hello: the control plane registers an agent only
	// after Hello, so the running agent's session is left alone.
	_ = sess.Close()
	agreed := sess.Protocol() // older than protocol.Version with an older control plane
	if u.Scheme == "wss" || u.Scheme == "https" {
		r.line("ok", "control plane", "%s: reachable, TLS verified, token accepted, protocol %d accepted", target, agreed)
		return
	}
	r.line("ok", "control plane", "%s: reachable, token accepted, protocol %d accepted", target, agreed)
	if !isLoopback(u.Hostname()) {
		r.line("warn", "control plane", "%s is not encrypted: the agent token and every call cross the network in clear; use wss://", target)
	}
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
