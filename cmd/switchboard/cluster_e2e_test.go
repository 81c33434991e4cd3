package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-pbx/switchboard/controlplane/store"
	"github.com/switchboard-pbx/switchboard/controlplane/store/storetest"
	"github.com/switchboard-pbx/switchboard/protocol"
	"github.com/switchboard-pbx/switchboard/protocol/ami/amitest"
)

// readmeHAProxy is the README's HAProxy configuration with the test's
// addresses: its bind line and server lines replaced.
func readmeHAProxy(t *testing.T, bind string, servers []string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "```haproxy\n")
	cfg, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("README.md has no ```haproxy block")
	}
	var out []string
	n := 0
	for _, line := range strings.Split(cfg, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 2 && f[0] == "bind":
			line = "    bind " + bind
		case len(f) >= 3 && f[0] == "server":
			if n >= len(servers) {
				t.Fatalf("README's HAProxy config has more servers than the test's %d", len(servers))
			}
			f[2] = servers[n]
			n++
			line = "    " + strings.Join(f, " ")
		case len(f) > 0 && f[0] == "default-server":
			// The test's replicas are marked down within a second.
			line = "    default-server inter 250ms fall 2 rise 1"
		}
		out = append(out, line)
	}
	if n != len(servers) {
		t.Fatalf("README's HAProxy config has %d servers, the test %d", n, len(servers))
	}
	return strings.Join(out, "\n")
}

// haproxy finds the HAProxy binary; the test fails without it (scripts/
// test.sh installs Debian's package).
func haproxy(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"haproxy", "/usr/sbin/haproxy"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	t.Fatal("haproxy is needed for the cluster end-to-end test: apt-get install haproxy (bash scripts/test.sh installs it)")
	return ""
}

// TestClusterEndToEnd runs three real `switchboard serve` replicas on one
// PostgreSQL behind HAProxy configured as the README says, with real
// agents connecting through it. Every PBX is callable through the load
// balancer; a subscriber on one replica sees every event once and in
// order; after a SIGKILL of the replica holding PBXs, they reconnect to
// the survivors and are callable again; a SIGTERM hands a replica's PBXs
// off and deletes its row.
func TestClusterEndToEnd(t *testing.T) {
	lb := haproxy(t)
	binDir, err := bins.Dir()
	if err != nil {
		t.Fatal(err)
	}
	sb, agentBin := filepath.Join(binDir, "switchboard"), filepath.Join(binDir, "switchboard-agent")
	dir := t.TempDir()
	dsn := storetest.PostgresDSN(t)
	admin := func(args ...string) map[string]any {
		t.Helper()
		out, err := exec.Command(sb, append(args, "--db", dsn, "--json")...).Output()
		var m map[string]any
		if err != nil || json.Unmarshal(out, &m) != nil {
			t.Fatalf("switchboard %v: %v %s", args, err, out)
		}
		return m
	}
	admin("enterprise", "create", "--number", "0367", "--name", "june")
	key := admin("apikey", "create", "--enterprise", "0367")["key"].(string)
	secretFile := filepath.Join(dir, "cluster.secret")
	os.WriteFile(secretFile, []byte("e2e-cluster-secret-0123456789abcdef0123456789\n"), 0o600)
	amiSecret := filepath.Join(dir, "ami.secret")
	os.WriteFile(amiSecret, []byte("switchboard-secret\n"), 0o600)

	// Three replicas.
	const n = 3
	addrs := make([]string, n)
	procs := make([]*proc, n)
	for i := range n {
		addrs[i] = freeAddr(t)
		procs[i] = start(t, fmt.Sprintf("replica %d", i), sb, "serve", "--listen", addrs[i], "--db", dsn,
			"--cluster-secret-file", secretFile, "--heartbeat-seconds", "1", "--cluster-heartbeat", "300ms", "--cluster-refresh", "300ms",
			// The test polls every PBX every 20 ms; rate limits have tests of their own.
			"--rate-per-credential", "5000", "--burst-per-credential", "5000", "--rate-per-enterprise", "5000", "--burst-per-enterprise", "5000")
	}
	for i := range n {
		eventually(t, 20*time.Second, fmt.Sprintf("replica %d ready", i), func() bool {
			var v map[string]any
			code, err := getJSON("http://"+addrs[i]+"/readyz", "", &v)
			return err == nil && code == 200
		})
	}
	// HAProxy in front, configured as the README says.
	lbAddr := freeAddr(t)
	cfg := filepath.Join(dir, "haproxy.cfg")
	os.WriteFile(cfg, []byte(readmeHAProxy(t, lbAddr, addrs)), 0o600)
	if out, err := exec.Command(lb, "-c", "-f", cfg).CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c: %v\n%s", err, out)
	}
	start(t, "haproxy", lb, "-db", "-f", cfg)
	base := "http://" + lbAddr

	// Six PBXs, their agents dialling the load balancer.
	type pbx struct {
		id  string
		ami *amitest.Server
	}
	var pbxs []pbx
	for i := range 6 {
		ag := admin("agent", "create", "--enterprise", "0367", "--name", fmt.Sprintf("pbx-%d", i))
		tok := filepath.Join(dir, fmt.Sprintf("agent%d.token", i))
		os.WriteFile(tok, []byte(ag["token"].(string)+"\n"), 0o600)
		fake, err := amitest.New(amitest.Config{Addr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		if err := fake.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(fake.Close)
		start(t, fmt.Sprintf("agent %d", i), agentBin, "run", "--server", "ws://"+lbAddr+protocol.ConnectPath,
			"--token-file", tok, "--ami", fake.Addr(), "--ami-secret-file", amiSecret)
		pbxs = append(pbxs, pbx{id: ag["id"].(string), ami: fake})
	}
	st, err := store.Open(context.Background(), dsn, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	holders := func() map[string]string {
		held := map[string]string{}
		live, err := st.LiveReplicas(context.Background(), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, r := range live {
			ids = append(ids, r.ID)
		}
		owners, err := st.HeldAgents(context.Background(), ids)
		if err != nil {
			t.Fatal(err)
		}
		urls := map[string]string{}
		for _, r := range live {
			urls[r.ID] = strings.TrimPrefix(r.URL, "http://")
		}
		for _, o := range owners {
			held[o.AgentID] = urls[o.ReplicaID]
		}
		return held
	}
	eventually(t, 30*time.Second, "every agent connected through HAProxy", func() bool { return len(holders()) == len(pbxs) })

	// A subscriber on the replica that will survive everything.
	ent, _ := st.EnterpriseByNumber(context.Background(), "0367")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws://"+addrs[0]+"/v1/events?after=0", &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + key}}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	seen := make(chan int64, 10000)
	go func() {
		defer close(seen)
		for {
			_, b, err := ws.Read(ctx)
			if err != nil {
				return
			}
			var e struct {
				Seq  int64  `json:"seq"`
				Type string `json:"type"`
			}
			if json.Unmarshal(b, &e) == nil && !strings.HasPrefix(e.Type, "stream.") {
				seen <- e.Seq
			}
		}
	}()

	// Every PBX is callable through the load balancer, wherever it is.
	originate := func(id string) (int, string) {
		req, _ := http.NewRequest("POST", base+"/v1/calls", strings.NewReader(`{"pbx":"`+id+`","from":"150","to":"151"}`))
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, p := range pbxs {
		if code, body := originate(p.id); code != http.StatusCreated {
			t.Fatalf("originate on %s through HAProxy: %d %s", p.id, code, body)
		}
	}
	// callable: a request through the load balancer reaches the PBX's
	// agent (its live channel table), wherever its tunnel is.
	callable := func(id string) bool {
		var v map[string]any
		code, err := getJSON(base+"/v1/channels?pbx="+id, key, &v)
		return err == nil && code == http.StatusOK
	}

	// SIGKILL the replica (not the subscriber's) holding the most PBXs.
	count := map[string]int{}
	for _, a := range holders() {
		count[a]++
	}
	victim := 1
	if count[addrs[2]] > count[addrs[1]] {
		victim = 2
	}
	if count[addrs[victim]] == 0 {
		t.Fatalf("no PBX on replicas 1 and 2 (holders %v): HAProxy did not spread the agents", holders())
	}
	killed := time.Now()
	procs[victim].kill()
	eventually(t, 30*time.Second, "the killed replica's PBXs callable again", func() bool {
		for _, p := range pbxs {
			if !callable(p.id) {
				return false
			}
		}
		return true
	})
	t.Logf("SIGKILL of a replica holding %d of %d PBXs: all callable again after %v", count[addrs[victim]], len(pbxs), time.Since(killed).Round(10*time.Millisecond))
	for id, at := range holders() {
		if at == addrs[victim] {
			t.Fatalf("PBX %s still held by the killed replica", id)
		}
	}

	// SIGTERM the other non-subscriber replica: it hands its PBXs off and
	// deletes its row.
	other := 3 - victim
	if err := procs[other].cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := procs[other].cmd.Wait(); err != nil {
		t.Fatalf("replica %d after SIGTERM: %v\n%s", other, err, procs[other].out)
	}
	if !bytes.Contains(procs[other].out.Bytes(), []byte("replica deregistered")) {
		t.Fatalf("replica %d did not deregister:\n%s", other, procs[other].out)
	}
	eventually(t, 30*time.Second, "every PBX on the last replica", func() bool {
		h := holders()
		for _, p := range pbxs {
			if h[p.id] != addrs[0] {
				return false
			}
		}
		return true
	})
	for _, p := range pbxs {
		if code, body := originate(p.id); code != http.StatusCreated {
			t.Fatalf("originate on %s after the hand-off: %d %s", p.id, code, body)
		}
	}

	// The subscriber saw every stored event once, in order.
	var last int64
	eventually(t, 20*time.Second, "events settled", func() bool {
		l, err := st.LastEventSeq(context.Background(), ent.ID)
		if err != nil {
			t.Fatal(err)
		}
		settled := l == last && l > 0
		last = l
		time.Sleep(300 * time.Millisecond)
		return settled
	})
	for want := int64(1); want <= last; want++ {
		select {
		case got := <-seen:
			if got != want {
				t.Fatalf("subscriber got seq %d, want %d (no loss, no duplicate)", got, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("subscriber stopped at seq %d of %d", want-1, last)
		}
	}
	t.Logf("subscriber on the surviving replica got events 1..%d once each, in order", last)
}
