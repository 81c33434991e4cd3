package cluster_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-pbx/switchboard/controlplane"
	"github.com/switchboard-pbx/switchboard/controlplane/api"
	"github.com/switchboard-pbx/switchboard/controlplane/cluster"
	"github.com/switchboard-pbx/switchboard/controlplane/fleet"
	"github.com/switchboard-pbx/switchboard/controlplane/store"
	"github.com/switchboard-pbx/switchboard/controlplane/store/storetest"
	"github.com/switchboard-pbx/switchboard/internal/systemtest"
	"github.com/switchboard-pbx/switchboard/protocol"
	"github.com/switchboard-pbx/switchboard/protocol/ami/amitest"
	"github.com/switchboard-pbx/switchboard/protocol/tunnel"
)

func TestMain(m *testing.M) { storetest.Main(m) }

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func originate(t testing.TB, s *systemtest.Server, key, pbx, from, to string, headers ...string) systemtest.Response {
	t.Helper()
	return s.Do(t, "POST", "/v1/calls", key, map[string]any{"pbx": pbx, "from": from, "to": to}, headers...)
}

func originates(srv *amitest.Server) int {
	n := 0
	for _, a := range srv.Actions() {
		if strings.EqualFold(a.Get("Action"), "Originate") {
			n++
		}
	}
	return n
}

type fleetView struct {
	Totals struct {
		Agents    int `json:"agents"`
		Connected int `json:"connected"`
		AMIUp     int `json:"ami_up"`
	} `json:"totals"`
	Agents []struct {
		ID        string `json:"id"`
		Connected bool   `json:"connected"`
		Replica   string `json:"replica"`
		AMI       string `json:"ami"`
		LiveCalls int    `json:"live_calls"`
	} `json:"agents"`
}

// TestRequestsGoToTheOwner: a PBX connected to one replica is callable
// through every replica, each request reaching it once, and every
// replica's fleet view shows it once, connected, with its owner.
func TestRequestsGoToTheOwner(t *testing.T) {
	t.Parallel()
	c := systemtest.NewCluster(t, 3, systemtest.Options{})
	r0 := c.Replicas[0]
	r0.Enterprise(t, "0367", "Acme")
	key := r0.APIKey(t, "0367")
	pbx := r0.AddPBX(t, "0367", systemtest.PBXOptions{Name: "pbx-a"})

	for i, s := range c.Replicas {
		r := originate(t, s, key, pbx.ID, "150", fmt.Sprintf("+37529625407%d", i))
		if r.Status != http.StatusCreated {
			t.Fatalf("originate via replica %d: %d %s", i, r.Status, r.Body)
		}
	}
	if n := originates(pbx.AMI); n != 3 {
		t.Fatalf("the PBX got %d originates, want 3 (one per request)", n)
	}
	// Live channels come from the owner's agent, whoever is asked.
	r := c.Replicas[2].Do(t, "GET", "/v1/channels?pbx="+pbx.ID, key, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("channels via replica 2: %d %s", r.Status, r.Body)
	}

	admin := r0.JWT(t, "", "root", "platform_admin")
	for i, s := range c.Replicas {
		waitFor(t, fmt.Sprintf("replica %d's fleet view", i), 10*time.Second, func() bool {
			var v fleetView
			r := s.Do(t, "GET", "/v1/fleet", admin, nil)
			r.JSON(t, &v)
			return r.Status == 200 && v.Totals.Agents == 1 && v.Totals.Connected == 1 && v.Totals.AMIUp == 1 &&
				len(v.Agents) == 1 && v.Agents[0].Connected && v.Agents[0].Replica == r0.URL && v.Agents[0].AMI == "up"
		})
		var status struct {
			Agents struct{ Total, Connected int } `json:"agents"`
		}
		s.Do(t, "GET", "/api/status", admin, nil).JSON(t, &status)
		if status.Agents.Total != 1 || status.Agents.Connected != 1 {
			t.Fatalf("replica %d /api/status agents = %+v", i, status.Agents)
		}
	}
	// The PBX goes away: no replica shows it connected.
	pbx.Stop()
	for i, s := range c.Replicas {
		waitFor(t, fmt.Sprintf("replica %d to see the PBX gone", i), 10*time.Second, func() bool {
			var v fleetView
			s.Do(t, "GET", "/v1/fleet", admin, nil).JSON(t, &v)
			return v.Totals.Connected == 0
		})
		r := originate(t, s, key, pbx.ID, "150", "151")
		if r.Status != http.StatusServiceUnavailable || !strings.Contains(string(r.Body), api.CodePBXOffline) {
			t.Fatalf("originate on a gone PBX via replica %d: %d %s", i, r.Status, r.Body)
		}
	}
}

// TestOwnerDeadOrUnreachable: a request for a PBX whose replica cannot be
// reached, or stopped beating, fails fast with a 503 that says so.
func TestOwnerDeadOrUnreachable(t *testing.T) {
	t.Parallel()
	c := systemtest.NewCluster(t, 2, systemtest.Options{})
	r0 := c.Replicas[0]
	r0.Enterprise(t, "0367", "Acme")
	key := r0.APIKey(t, "0367")
	ctx := context.Background()
	ag, _, err := r0.Store().CreateAgent(ctx, "0367", "pbx-ghost", "")
	if err != nil {
		t.Fatal(err)
	}
	// A replica that registered, took the agent and then vanished: its
	// port answers nothing.
	ghost := store.Replica{ID: "rpl_ghost", URL: "http://127.0.0.1:1", Clustered: true}
	if err := r0.Store().RegisterReplica(ctx, ghost, time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := r0.Store().ClaimAgents(ctx, []store.Owner{{AgentID: ag.ID, ReplicaID: ghost.ID, SessionID: "ses_x"}}, "", nil); err != nil {
		t.Fatal(err)
	}
	c.WaitReplicas(t, 3)
	start := time.Now()
	r := originate(t, c.Replicas[1], key, ag.ID, "150", "151")
	if r.Status != http.StatusServiceUnavailable || !strings.Contains(string(r.Body), "cannot be reached") || r.Header.Get("Retry-After") == "" {
		t.Fatalf("owner unreachable: %d %s (Retry-After %q)", r.Status, r.Body, r.Header.Get("Retry-After"))
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("owner unreachable took %v: it must fail fast, not wait for the AMI timeout", d)
	}
	// Its heartbeat ages past 3 beats: dead, and the answer says so at
	// once, nothing dialled.
	waitFor(t, "the ghost replica to count as dead", 10*time.Second, func() bool {
		return c.Replicas[1].CP().Cluster().Share() == 2
	})
	r = originate(t, c.Replicas[1], key, ag.ID, "150", "151")
	if r.Status != http.StatusServiceUnavailable || !strings.Contains(string(r.Body), "heartbeat") {
		t.Fatalf("owner dead: %d %s", r.Status, r.Body)
	}
}

// TestNewestConnectionWins: a PBX that reconnects to another replica while
// the first still holds a half-open session for it is taken by the new
// one, and the old session is closed as soon as its replica is told.
func TestNewestConnectionWins(t *testing.T) {
	t.Parallel()
	c := systemtest.NewCluster(t, 2, systemtest.Options{})
	r0, r1 := c.Replicas[0], c.Replicas[1]
	r0.Enterprise(t, "0367", "Acme")
	key := r0.APIKey(t, "0367")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ag, token, err := r0.Store().CreateAgent(ctx, "0367", "pbx-a", "")
	if err != nil {
		t.Fatal(err)
	}
	// The half-open session: a tunnel to replica 0 that will never speak
	// again (as after a NAT dropped it).
	stale := dialAgent(t, ctx, r0.URL, token)
	waitFor(t, "replica 0 to hold the stale session", 5*time.Second, func() bool {
		_, ok := r0.CP().Registry().Get(ag.ID)
		return ok
	})
	// The PBX reconnects, to replica 1.
	pbx := r1.AddPBX(t, "0367", systemtest.PBXOptions{Token: token})
	select {
	case <-stale.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("replica 0 kept the stale session after the PBX connected to replica 1")
	}
	if _, ok := r0.CP().Registry().Get(ag.ID); ok {
		t.Fatal("replica 0 still lists the agent")
	}
	if got := r0.Metric(t, "switchboard_cluster_sessions_superseded_total"); got != 1 {
		t.Fatalf("superseded sessions on replica 0 = %v, want 1", got)
	}
	// Requests on replica 0 now reach the PBX through replica 1.
	if r := originate(t, r0, key, pbx.ID, "150", "151"); r.Status != http.StatusCreated {
		t.Fatalf("originate via replica 0: %d %s", r.Status, r.Body)
	}
}

// TestIdempotencyAcrossReplicas: one Idempotency-Key sent to every replica
// at once is one call; every answer is that call's.
func TestIdempotencyAcrossReplicas(t *testing.T) {
	t.Parallel()
	c := systemtest.NewCluster(t, 3, systemtest.Options{})
	r0 := c.Replicas[0]
	r0.Enterprise(t, "0367", "Acme")
	key := r0.APIKey(t, "0367")
	pbx := r0.AddPBX(t, "0367")
	// The PBX is slow to answer, so the requests overlap.
	pbx.AMI.SetActionDelay("Originate", 300*time.Millisecond)

	const perReplica = 3
	var wg sync.WaitGroup
	var mu sync.Mutex
	bodies := map[string]int{}
	for _, s := range c.Replicas {
		for range perReplica {
			wg.Go(func() {
				r := originate(t, s, key, pbx.ID, "150", "151", api.IdempotencyKeyHeader, "order-42")
				mu.Lock()
				defer mu.Unlock()
				if r.Status != http.StatusCreated {
					t.Errorf("status %d: %s", r.Status, r.Body)
				}
				bodies[string(r.Body)]++
			})
		}
	}
	wg.Wait()
	if n := originates(pbx.AMI); n != 1 {
		t.Fatalf("the PBX got %d originates for one key, want 1", n)
	}
	if len(bodies) != 1 {
		t.Fatalf("%d different answers for one key: %v", len(bodies), bodies)
	}
	// The same key with another body is a conflict on any replica.
	r := c.Replicas[2].Do(t, "POST", "/v1/calls", key, map[string]any{"pbx": pbx.ID, "from": "150", "to": "152"}, api.IdempotencyKeyHeader, "order-42")
	if r.Status != http.StatusConflict {
		t.Fatalf("same key, another body: %d %s", r.Status, r.Body)
	}
}

// TestRateLimitClusterWide: each of 3 replicas admits a third of a
// credential's limit, so the credential gets its limit in total. The rate
// is nearly zero and the burst 30: whatever the timing, exactly 30
// requests pass, 10 on each replica.
func TestRateLimitClusterWide(t *testing.T) {
	t.Parallel()
	var o systemtest.Options
	o.Config.API.RateLimit.PerCredential = 0.001
	o.Config.API.RateLimit.CredentialBurst = 30
	o.Config.API.RateLimit.IdleTTL = 1000 * time.Hour
	c := systemtest.NewCluster(t, 3, o)
	c.Replicas[0].Enterprise(t, "0367", "Acme")
	key := c.Replicas[0].APIKey(t, "0367")
	passed := make([]int, 3)
	for i := range 90 {
		if r := c.Replicas[i%3].Do(t, "GET", "/v1/pbxs", key, nil); r.Status == http.StatusOK {
			passed[i%3]++
		} else if r.Status != http.StatusTooManyRequests {
			t.Fatalf("request %d: %d %s", i, r.Status, r.Body)
		}
	}
	if passed[0]+passed[1]+passed[2] != 30 || passed[0] != 10 || passed[1] != 10 || passed[2] != 10 {
		t.Fatalf("passed per replica = %v, want 10 each (30 in total, the credential's burst)", passed)
	}
}

// TestTicketOnAnyReplica: a browser ticket issued by one replica opens
// the event stream on another, once.
func TestTicketOnAnyReplica(t *testing.T) {
	t.Parallel()
	c := systemtest.NewCluster(t, 3, systemtest.Options{})
	c.Replicas[0].Enterprise(t, "0367", "Acme")
	key := c.Replicas[0].APIKey(t, "0367")
	var tk struct {
		Ticket string `json:"ticket"`
	}
	r := c.Replicas[0].Do(t, "POST", "/v1/events/ticket", key, nil)
	if r.Status != http.StatusCreated {
		t.Fatalf("ticket: %d %s", r.Status, r.Body)
	}
	r.JSON(t, &tk)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, wsURL(c.Replicas[1], "/v1/events?ticket="+tk.Ticket), nil)
	if err != nil {
		t.Fatalf("redeem on replica 1: %v", err)
	}
	ws.CloseNow()
	_, resp, err := websocket.Dial(ctx, wsURL(c.Replicas[2], "/v1/events?ticket="+tk.Ticket), nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("second redeem on replica 2: %v (%v), want 401", err, resp)
	}
}

// TestSecondReplicaRefused: a replica without clustering refuses to start
// beside a live one, naming it and the flags to add; SQLite refuses
// clustering.
func TestSecondReplicaRefused(t *testing.T) {
	t.Parallel()
	c := systemtest.NewCluster(t, 1, systemtest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cp, err := controlplane.New(ctx, controlplane.Config{DB: c.DSN, Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	ln, err := cp.Listen()
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- cp.Serve(ctx, ln) }()
	select {
	case err = <-served:
	case <-time.After(20 * time.Second):
		cancel()
		t.Fatalf("an unclustered replica started beside a clustered one (Serve still running: %v)", <-served)
	}
	if !errors.Is(err, store.ErrReplicaConflict) || !strings.Contains(err.Error(), c.Replicas[0].URL) ||
		!strings.Contains(err.Error(), "--cluster-secret-file") || !strings.Contains(err.Error(), "--replica-url") {
		t.Fatalf("unclustered beside a clustered replica: %v", err)
	}

	_, err = controlplane.New(ctx, controlplane.Config{DB: storetest.SQLiteDSN(t), Listen: "127.0.0.1:8080",
		Cluster: cluster.Config{Secret: c.Secret}})
	if !errors.Is(err, cluster.ErrSQLite) {
		t.Fatalf("clustering on SQLite: %v", err)
	}
}

func wsURL(s *systemtest.Server, path string) string {
	return "ws" + strings.TrimPrefix(s.URL, "http") + path
}

// dialAgent plays an agent that connects and then never speaks again:
// tunnel, Hello, Welcome.
func dialAgent(t *testing.T, ctx context.Context, url, token string) *tunnel.Session {
	t.Helper()
	sess, err := tunnel.Dial(ctx, tunnel.DialConfig{URL: wsURL(&systemtest.Server{URL: url}, protocol.ConnectPath), Token: token})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sess.Close() })
	ctrl, err := sess.Open(ctx, protocol.StreamControl)
	if err != nil {
		t.Fatal(err)
	}
	if err := protocol.WriteFrame(ctrl, protocol.Hello{Protocol: protocol.Version, AgentVersion: "test", Hostname: "stale", AMI: protocol.AMIUp}); err != nil {
		t.Fatal(err)
	}
	var w protocol.Welcome
	if err := protocol.ReadFrame(ctrl, &w, 0); err != nil {
		t.Fatal(err)
	}
	return sess
}

// event is what the tests read of a streamed event.
type event struct {
	Seq  int64  `json:"seq"`
	Type string `json:"type"`
	PBX  string `json:"pbx"`
}

// readUntil reads the stream until it has seen seq last, checking that
// events come in order, each once, with no sequence missing from first.
func readUntil(t *testing.T, ctx context.Context, ws *websocket.Conn, first, last int64) []event {
	t.Helper()
	var got []event
	next := first
	for next <= last {
		_, b, err := ws.Read(ctx)
		if err != nil {
			t.Fatalf("read stream at seq %d (want up to %d): %v", next, last, err)
		}
		var e event
		if err := json.Unmarshal(b, &e); err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(e.Type, "stream.") {
			continue
		}
		if e.Seq != next {
			t.Fatalf("stream sent seq %d, want %d (no gap, no duplicate)", e.Seq, next)
		}
		got = append(got, e)
		next++
	}
	return got
}

// TestForwardAfterStaleView: a replica whose view names the wrong holder
// is told "not here" (nothing was run), reads the holder from the store
// and forwards once more; the PBX gets the request once.
func TestForwardAfterStaleView(t *testing.T) {
	t.Parallel()
	var o systemtest.Options
	o.Config.Cluster.Refresh = time.Hour // no refresh puts the view right behind the test's back
	c := systemtest.NewCluster(t, 3, o)
	r0, r1, r2 := c.Replicas[0], c.Replicas[1], c.Replicas[2]
	r0.Enterprise(t, "0367", "Acme")
	key := r0.APIKey(t, "0367")
	pbx := r1.AddPBX(t, "0367")
	// Replica 1's claim reaches replica 2's view by NOTIFY: wait for it,
	// or it could land after the stale entry below and put it right.
	waitFor(t, "replica 2 to learn that replica 1 holds the PBX", 5*time.Second, func() bool {
		return cluster.RemoteOwner(r2.CP().Cluster(), pbx.ID) == r1.CP().Cluster().ID()
	})
	// Replica 2 thinks replica 0 holds it, twice in a row.
	for range 2 {
		cluster.SetRemoteOwner(r2.CP().Cluster(), pbx.ID, r0.CP().Cluster().ID(), 1)
		if r := originate(t, r2, key, pbx.ID, "150", "151"); r.Status != http.StatusCreated {
			t.Fatalf("originate through a stale view: %d %s", r.Status, r.Body)
		}
	}
	if n := originates(pbx.AMI); n != 2 {
		t.Fatalf("the PBX got %d originates, want 2", n)
	}
	if got := r2.Metric(t, `switchboard_cluster_forwarded_total{result="not_here"}`); got != 2 {
		t.Fatalf("not_here answers = %v, want 2", got)
	}
}

// TestAgentServerList: an agent given several replicas' URLs (one of them
// dead) connects to a live one, and when its replica stops it moves to
// another replica of its list by itself.
func TestAgentServerList(t *testing.T) {
	t.Parallel()
	c := systemtest.NewCluster(t, 3, systemtest.Options{})
	r0 := c.Replicas[0]
	r0.Enterprise(t, "0367", "Acme")
	key := r0.APIKey(t, "0367")
	dead := "http://127.0.0.1:1"
	var urls []string
	for _, s := range c.Replicas[1:] {
		urls = append(urls, s.URL)
	}
	pbx := r0.AddPBX(t, "0367", systemtest.PBXOptions{Servers: append(urls, dead)})
	holder := func() string {
		for _, s := range c.Replicas {
			if _, ok := s.CP().Registry().Get(pbx.ID); ok {
				return s.URL
			}
		}
		return ""
	}
	first := holder()
	var rest []*systemtest.Server
	for _, s := range c.Replicas {
		if s.URL == first {
			s.Stop()
		} else {
			rest = append(rest, s)
		}
	}
	waitFor(t, "the PBX on another replica of its list", 20*time.Second, func() bool {
		h := holder()
		return h != "" && h != first
	})
	waitFor(t, "the PBX callable through the other live replica", 20*time.Second, func() bool {
		return originate(t, rest[0], key, pbx.ID, "150", "151").Status == http.StatusCreated &&
			originate(t, rest[1], key, pbx.ID, "150", "151").Status == http.StatusCreated
	})
}

// TestCallStoreDown: when the store cannot say who holds an agent no
// replica holds here, the call fails with ErrDirectoryDown, sending
// nothing.
func TestCallStoreDown(t *testing.T) {
	t.Parallel()
	st := storetest.OpenPostgres(t)
	c, err := cluster.New(cluster.Config{Store: st, Registry: fleet.NewRegistry(nil), Secret: []byte(strings.Repeat("s", 32)), URL: "http://127.0.0.1:9"})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Call(ctx, "agt_x", protocol.OpPing, nil, nil); !errors.Is(err, fleet.ErrDirectoryDown) || errors.Is(err, fleet.ErrOffline) {
		t.Fatalf("Call with the store down = %v, want ErrDirectoryDown", err)
	}
}
