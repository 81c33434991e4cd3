package realpbx

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/internal/asterisktest"
	"github.com/switchboard-pbx/switchboard/internal/testbin"
	"github.com/switchboard-pbx/switchboard/internal/testio"
	"github.com/switchboard-pbx/switchboard/protocol"
	"github.com/switchboard-pbx/switchboard/protocol/ami"
)

// Bounds of the suite's waits. Generous: the machine is shared, and a
// wait that passes returns as soon as its condition holds.
const (
	waitLong  = 20 * time.Second // processes starting, reconnects
	waitShort = 10 * time.Second // an effect in Asterisk or an event stored
)

// bins holds switchboard and switchboard-agent, built once per test
// binary on first use and removed by TestMain.
var bins = testbin.New("switchboard-realpbx-bin-", "switchboard", "switchboard-agent")

// binaries is where bins built the two commands.
func binaries(tb testing.TB) (serve, agent string) {
	tb.Helper()
	dir, err := bins.Dir()
	if err != nil {
		tb.Fatal(err)
	}
	return filepath.Join(dir, "switchboard"), filepath.Join(dir, "switchboard-agent")
}

func TestMain(m *testing.M) {
	code := m.Run()
	if err := bins.Remove(); err != nil {
		fmt.Fprintln(os.Stderr, "remove test binaries:", err)
	}
	os.Exit(code)
}

// proc is a child process whose output goes to the test log on failure.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *testio.Buffer
	done chan struct{}
}

func startProc(tb testing.TB, name, bin string, args ...string) *proc {
	tb.Helper()
	p := &proc{name: name, cmd: exec.Command(bin, args...), out: &testio.Buffer{}, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		tb.Fatalf("start %s: %v", name, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	tb.Cleanup(func() {
		p.stop()
		if tb.Failed() {
			tb.Logf("--- %s output ---\n%s", name, p.out.String())
		}
	})
	return p
}

// stop ends the process with SIGTERM, as systemd would, and kills it if it
// has not exited within 10 s.
func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func freeAddr(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// eventually polls cond every 50 ms until it holds or d passes.
func eventually(tb testing.TB, d time.Duration, what string, cond func() bool) {
	tb.Helper()
	waitFor(tb, d, what, func() (bool, string) { return cond(), "" })
}

// waitFor is eventually whose condition also says what it last saw, for
// the failure message.
func waitFor(tb testing.TB, d time.Duration, what string, cond func() (bool, string)) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, seen := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s; last seen: %s", d, what, seen)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// tenant is one enterprise with one PBX agent and an API key holding every
// scope.
type tenant struct {
	number, name   string
	agentID, token string
	key            string
	jwt            string // operator JWT, roles supervisor and telecom_admin
	agent          *proc
	tokenFile      string
}

// lab is the whole product around one real Asterisk.
type lab struct {
	t         testing.TB
	pbx       *asterisktest.PBX
	sb        string // switchboard binary
	agentBin  string
	dir       string
	db        string
	base      string // http://127.0.0.1:port
	jwtFile   string
	serve     *proc
	client    *http.Client
	logLevel  string   // of the agents started from now on
	agentArgs []string // more flags for them
}

// newLab starts Asterisk (or skips: see asterisktest.Require), builds the
// binaries and starts `switchboard serve` on an SQLite store. serveFlags
// are added to serve's command line.
func newLab(tb testing.TB, serveFlags ...string) *lab {
	tb.Helper()
	pbx := asterisktest.Require(tb)
	sb, agentBin := binaries(tb)
	dir := tb.TempDir()
	l := &lab{
		t: tb, pbx: pbx, sb: sb, agentBin: agentBin, dir: dir,
		db:       "sqlite:" + filepath.Join(dir, "switchboard.db"),
		jwtFile:  filepath.Join(dir, "jwt.secret"),
		client:   &http.Client{Timeout: waitShort},
		logLevel: "debug",
	}
	if err := os.WriteFile(l.jwtFile, []byte("realpbx-test-secret-0123456789-abcdefghijklmnopqrstuvwxyz\n"), 0o600); err != nil {
		tb.Fatal(err)
	}
	addr := freeAddr(tb)
	l.base = "http://" + addr
	args := append([]string{"serve", "--listen", addr, "--db", l.db, "--heartbeat-seconds", "1",
		"--jwt-secret-file", l.jwtFile, "--log-level", "debug"}, serveFlags...)
	l.serve = startProc(tb, "switchboard serve", sb, args...)
	eventually(tb, waitLong, "control plane ready", func() bool {
		code, _, err := doHTTP(context.Background(), l.client, "GET", l.base+"/readyz", "", nil)
		return err == nil && code == http.StatusOK
	})
	return l
}

// admin runs `switchboard <args> --db … --json` and decodes its output.
func (l *lab) admin(args ...string) map[string]any {
	l.t.Helper()
	return l.run(append(args, "--db", l.db)...)
}

// run runs `switchboard <args> --json` and decodes its output.
func (l *lab) run(args ...string) map[string]any {
	l.t.Helper()
	out, err := exec.Command(l.sb, append(args, "--json")...).CombinedOutput()
	if err != nil {
		l.t.Fatalf("switchboard %v: %v\n%s", args, err, out)
	}
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		l.t.Fatalf("switchboard %v printed %q: %v", args, out, err)
	}
	return m
}

// newTenant creates an enterprise, its PBX agent and an API key, and mints
// an operator JWT for it.
func (l *lab) newTenant(number, name string) *tenant {
	l.t.Helper()
	l.admin("enterprise", "create", "--number", number, "--name", name)
	ag := l.admin("agent", "create", "--enterprise", number, "--name", "pbx-"+name, "--context", "inoffice")
	key := l.admin("apikey", "create", "--enterprise", number, "--scopes", "originate,monitor,hangup,channels:read,events:read,audit:read")
	tok := l.run("jwt", "mint", "--secret-file", l.jwtFile, "--sub", "op-"+name, "--enterprise", number, "--roles", "supervisor,telecom_admin")
	tn := &tenant{number: number, name: name, agentID: ag["id"].(string), token: ag["token"].(string), key: key["key"].(string), jwt: tok["token"].(string)}
	tn.tokenFile = filepath.Join(l.dir, name+".token")
	if err := os.WriteFile(tn.tokenFile, []byte(tn.token+"\n"), 0o600); err != nil {
		l.t.Fatal(err)
	}
	return tn
}

// startAgent runs `switchboard-agent run` for tn, logged in to the real
// Asterisk as amiUser, and waits until its PBX is connected with AMI up.
func (l *lab) startAgent(tn *tenant, amiUser string) {
	l.t.Helper()
	secret := filepath.Join(l.dir, "ami.secret")
	if err := os.WriteFile(secret, []byte(asterisktest.Secret+"\n"), 0o600); err != nil {
		l.t.Fatal(err)
	}
	u := "ws://" + strings.TrimPrefix(l.base, "http://") + protocol.ConnectPath
	args := append([]string{"run", "--server", u,
		"--token-file", tn.tokenFile, "--ami", l.pbx.AMIAddr(), "--ami-user", amiUser, "--ami-secret-file", secret,
		"--context", "inoffice", "--log-level", l.logLevel}, l.agentArgs...)
	tn.agent = startProc(l.t, "switchboard-agent ("+tn.name+", AMI user "+amiUser+")", l.agentBin, args...)
	l.waitAMI(tn, "up")
}

// pbxView is the part of GET /v1/pbxs the suite reads.
type pbxView struct {
	ID        string `json:"id"`
	Connected bool   `json:"connected"`
	AMI       string `json:"ami"`
}

// waitAMI waits until tn's PBX is connected and reports AMI in state.
func (l *lab) waitAMI(tn *tenant, state string) {
	l.t.Helper()
	waitFor(l.t, waitLong, "PBX "+tn.agentID+" connected with AMI "+state, func() (bool, string) {
		var v struct {
			PBXs []pbxView `json:"pbxs"`
		}
		code, body := l.do("GET", "/v1/pbxs", tn.key, nil)
		if code != http.StatusOK || json.Unmarshal(body, &v) != nil || len(v.PBXs) != 1 {
			return false, string(body)
		}
		return v.PBXs[0].Connected && v.PBXs[0].AMI == state, string(body)
	})
}

// do sends one request and returns the status and body; a transport error
// fails the test.
func (l *lab) do(method, path, bearer string, body any) (int, []byte) {
	l.t.Helper()
	code, b, err := doHTTP(context.Background(), l.client, method, l.base+path, bearer, body)
	if err != nil {
		l.t.Fatalf("%s %s: %v", method, path, err)
	}
	return code, b
}

func doHTTP(ctx context.Context, c *http.Client, method, u, bearer string, body any) (int, []byte, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case url.Values:
		rd = strings.NewReader(b.Encode())
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return 0, nil, err
	}
	if _, ok := body.(url.Values); ok {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// mustJSON requires status want and decodes the body into v.
func mustJSON(tb testing.TB, what string, code int, body []byte, want int, v any) {
	tb.Helper()
	if code != want {
		tb.Fatalf("%s: status %d, want %d: %s", what, code, want, body)
	}
	if v != nil {
		if err := json.Unmarshal(body, v); err != nil {
			tb.Fatalf("%s: %v: %s", what, err, body)
		}
	}
}

// ctx is a context for one CLI check.
func (l *lab) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitShort)
	l.t.Cleanup(cancel)
	return ctx
}

// channelsWhere waits until Asterisk's live channels satisfy ok.
func (l *lab) channelsWhere(what string, ok func([]asterisktest.Channel) bool) []asterisktest.Channel {
	l.t.Helper()
	chans, err := l.pbx.WaitChannels(l.ctx(), ok)
	if err != nil {
		l.t.Fatalf("Asterisk never showed %s: %v", what, err)
	}
	return chans
}

// channel waits for one live channel that ok accepts and returns it.
func (l *lab) channel(what string, ok func(asterisktest.Channel) bool) asterisktest.Channel {
	l.t.Helper()
	chans := l.channelsWhere(what, func(c []asterisktest.Channel) bool {
		_, found := asterisktest.Find(c, ok)
		return found
	})
	c, _ := asterisktest.Find(chans, ok)
	return c
}

// gone waits until no live channel is accepted by ok.
func (l *lab) gone(what string, ok func(asterisktest.Channel) bool) {
	l.t.Helper()
	l.channelsWhere(what+" gone", func(c []asterisktest.Channel) bool {
		_, found := asterisktest.Find(c, ok)
		return !found
	})
}

// clean hangs up every channel in Asterisk and waits until each tenant's
// agent has dropped them from its table, so the next case starts from an
// idle PBX.
func (l *lab) clean(tenants ...*tenant) {
	l.t.Helper()
	if err := l.pbx.HangupAll(l.ctx()); err != nil {
		l.t.Fatalf("clean Asterisk: %v", err)
	}
	for _, tn := range tenants {
		waitFor(l.t, waitShort, "agent "+tn.name+"'s channel table empty", func() (bool, string) {
			var v struct {
				Channels []protocol.Channel `json:"channels"`
			}
			code, body := l.do("GET", "/v1/channels", tn.key, nil)
			return code == http.StatusOK && json.Unmarshal(body, &v) == nil && len(v.Channels) == 0, string(body)
		})
	}
}

// listed waits until GET /v1/channels lists a channel that ok accepts:
// the agent's table follows Asterisk's events, a moment after the CLI.
func (l *lab) listed(tn *tenant, what string, ok func(protocol.Channel) bool) {
	l.t.Helper()
	waitFor(l.t, waitShort, what, func() (bool, string) {
		var v struct {
			Channels []protocol.Channel `json:"channels"`
		}
		code, body := l.do("GET", "/v1/channels", tn.key, nil)
		return code == http.StatusOK && json.Unmarshal(body, &v) == nil && slices.ContainsFunc(v.Channels, ok), string(body)
	})
}

// byUniqueID matches a channel by its uniqueid.
func byUniqueID(id string) func(asterisktest.Channel) bool {
	return func(c asterisktest.Channel) bool { return c.UniqueID == id }
}

// running matches the channel with uniqueid id once it runs app: an
// originated channel exists (Down, AppDial2) before it answers and runs
// its application.
func running(id, app string) func(asterisktest.Channel) bool {
	return func(c asterisktest.Channel) bool { return c.UniqueID == id && c.Application == app }
}

// originate places a call through POST /v1/calls and returns its id.
func (l *lab) originate(tn *tenant, from, to string) string {
	l.t.Helper()
	var res struct {
		CallID  string `json:"call_id"`
		Status  string `json:"status"`
		Channel string `json:"channel"`
	}
	code, body := l.do("POST", "/v1/calls", tn.key, map[string]any{"from": from, "to": to})
	mustJSON(l.t, "POST /v1/calls", code, body, http.StatusCreated, &res)
	if res.CallID == "" || res.Status != "queued" || res.Channel != "Local/"+from+"@inoffice" {
		l.t.Fatalf("POST /v1/calls answered %s", body)
	}
	return res.CallID
}

// Event is an event as GET /v1/events and the WebSocket carry it.
type Event struct {
	Seq int64  `json:"seq"`
	PBX string `json:"pbx"`
	protocol.Event
}

func (e Event) String() string {
	return fmt.Sprintf("#%d %s call=%s %s->%s status=%s answered_by=%s cause=%d", e.Seq, e.Type, e.CallID, e.From, e.To, e.Status, e.AnsweredBy, e.Cause)
}

// page is one GET /v1/events polling page.
type page struct {
	Events    []Event `json:"events"`
	NextAfter int64   `json:"next_after"`
	HasMore   bool    `json:"has_more"`
}

// events returns every stored event of tn's enterprise after seq, page by
// page.
func (l *lab) events(tn *tenant, after int64) []Event {
	l.t.Helper()
	var all []Event
	for {
		var p page
		code, body := l.do("GET", fmt.Sprintf("/v1/events?after=%d&limit=500", after), tn.key, nil)
		mustJSON(l.t, "GET /v1/events", code, body, http.StatusOK, &p)
		all = append(all, p.Events...)
		if !p.HasMore {
			return all
		}
		after = p.NextAfter
	}
}

// waitEvent waits until an event of tn's enterprise satisfies ok and
// returns it.
func (l *lab) waitEvent(tn *tenant, what string, ok func(Event) bool) Event {
	l.t.Helper()
	var seen []Event
	deadline := time.Now().Add(waitShort)
	for {
		seen = l.events(tn, 0)
		for _, e := range seen {
			if ok(e) {
				return e
			}
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	var lines []string
	for _, e := range seen {
		lines = append(lines, e.String())
	}
	l.t.Fatalf("no event %s within %v; events stored:\n%s", what, waitShort, strings.Join(lines, "\n"))
	return Event{}
}

// callEvents returns the stored events of one call, in order.
func (l *lab) callEvents(tn *tenant, callID string) []Event {
	l.t.Helper()
	var out []Event
	for _, e := range l.events(tn, 0) {
		if e.CallID == callID {
			out = append(out, e)
		}
	}
	return out
}

func types(evs []Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.Type
	}
	return out
}

// dialAMI logs in to the real Asterisk with our AMI client, as a second
// party placing calls the product did not place (a customer calling in).
func (l *lab) dialAMI(user string) *ami.Client {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitShort)
	defer cancel()
	c, err := ami.Dial(ctx, ami.Config{Addr: l.pbx.AMIAddr(), Username: user, Secret: asterisktest.Secret, Events: "off"})
	if err != nil {
		l.t.Fatalf("AMI login as %s: %v", user, err)
	}
	l.t.Cleanup(func() { c.Close() })
	return c
}
