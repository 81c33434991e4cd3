package cluster_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/time/rate"

	"github.com/switchboard-pbx/switchboard/controlplane"
	"github.com/switchboard-pbx/switchboard/controlplane/api"
	"github.com/switchboard-pbx/switchboard/controlplane/cluster"
	"github.com/switchboard-pbx/switchboard/controlplane/ratelimit"
	"github.com/switchboard-pbx/switchboard/internal/systemtest"
	"github.com/switchboard-pbx/switchboard/protocol/ami/amitest"
)

// benchCluster is n replicas with limits off (the benchmarks measure the
// path, not the limiter) and one enterprise with an API key.
func benchCluster(b *testing.B, n int) (*systemtest.Cluster, string) {
	b.Helper()
	c := systemtest.NewCluster(b, n, systemtest.Options{
		Logger: slog.New(slog.DiscardHandler),
		Config: controlplane.Config{API: api.Config{
			RateLimit: ratelimit.Config{PerCredential: rate.Inf, PerEnterprise: rate.Inf},
		}},
	})
	c.Replicas[0].Enterprise(b, "0367", "june")
	return c, c.Replicas[0].APIKey(b, "0367")
}

func reportLatency(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	q := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
	}
	b.ReportMetric(q(0.50), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(0, "ns/op") // wall time per op says nothing here
}

// BenchmarkOriginate is controlplane/api's BenchmarkOriginate (POST
// /v1/calls end to end, one at a time) on PostgreSQL with two clustered
// replicas and the PBX connected to replica 0. Each iteration sends one
// request to replica 0 (the owner) and one to replica 1, which forwards it
// to replica 0 over the internal call, alternately, so both see the same
// machine load (it is shared): owner-p50 and forwarded-p50 are their
// medians, added-p50-ms the difference, what forwarding costs.
//
//	go test -run '^$' -bench BenchmarkOriginate -benchtime 3000x ./controlplane/cluster/
func BenchmarkOriginate(b *testing.B) {
	c, key := benchCluster(b, 2)
	p := c.Replicas[0].AddPBX(b, "0367", systemtest.PBXOptions{MaxConcurrentOriginates: 10000, MaxConcurrentRequests: 10000})
	p.AMI.SetOutcome("150", amitest.Busy) // every call ends at once
	body := []byte(`{"from":"150","to":"+375296254070"}`)
	send := func(via *systemtest.Server) time.Duration {
		t0 := time.Now()
		r, err := via.DoErr("POST", "/v1/calls", key, body)
		if err != nil || r.Status != http.StatusCreated {
			b.Fatalf("%v %d %s", err, r.Status, r.Body)
		}
		return time.Since(t0)
	}
	owner := make([]time.Duration, 0, b.N)
	forwarded := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if i%2 == 0 {
			owner = append(owner, send(c.Replicas[0]))
			forwarded = append(forwarded, send(c.Replicas[1]))
		} else {
			forwarded = append(forwarded, send(c.Replicas[1]))
			owner = append(owner, send(c.Replicas[0]))
		}
	}
	b.StopTimer()
	q := func(lat []time.Duration, p float64) float64 {
		slices.Sort(lat)
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
	}
	o50, f50 := q(owner, 0.5), q(forwarded, 0.5)
	b.ReportMetric(o50, "owner-p50-ms")
	b.ReportMetric(q(owner, 0.99), "owner-p99-ms")
	b.ReportMetric(f50, "forwarded-p50-ms")
	b.ReportMetric(q(forwarded, 0.99), "forwarded-p99-ms")
	b.ReportMetric(f50-o50, "added-p50-ms")
	b.ReportMetric(0, "ns/op")
}

var eventRate = flag.Int("event-rate", 1000, "events per second of BenchmarkCrossReplicaEvents")

// BenchmarkCrossReplicaEvents measures how long an event takes from the
// agent that produced it (its time field) to a WebSocket subscriber: 10
// PBXs connected to replica 0 of three make calls on their fakes at
// -event-rate events per second (four events a call: started, answered,
// bridged, ended). "other" subscribes on replica 1, so each batch goes
// store, NOTIFY, read back from the store; "same" on replica 0, the
// in-process path a lone replica has, for comparison. b.N events are
// received; the run fails on any gap or duplicate. Everything shares this
// machine's cores; "from stored" in the log is the part after the owner
// stored the event.
//
//	go test -run '^$' -bench BenchmarkCrossReplicaEvents -benchtime 20000x ./controlplane/cluster/
func BenchmarkCrossReplicaEvents(b *testing.B) {
	rec := &stageRec{}
	cluster.TraceStages(rec.note)
	defer cluster.TraceStages(nil)
	c, key := benchCluster(b, 3)
	var pbxs []*systemtest.PBX
	for i := range 10 {
		p := c.Replicas[0].AddPBX(b, "0367", systemtest.PBXOptions{Name: fmt.Sprintf("pbx-%d", i),
			AMI: []amitest.Option{amitest.WithRingDelay(0), amitest.WithAnswerWait(0)}})
		pbxs = append(pbxs, p)
	}
	for _, tc := range []struct {
		name string
		sub  *systemtest.Server
	}{{"same", c.Replicas[0]}, {"other", c.Replicas[1]}} {
		b.Run(tc.name, func(b *testing.B) {
			n0 := c.Replicas[0].Metric(b, "switchboard_cluster_notify_statements_total")
			rec.start(c.Replicas[0].CP().Cluster().ID(), tc.sub.CP().Cluster().ID())
			elapsed := streamLatency(b, tc.sub, key, pbxs, rec)
			n1 := c.Replicas[0].Metric(b, "switchboard_cluster_notify_statements_total")
			b.ReportMetric((n1-n0)/elapsed.Seconds(), "notify/s")
		})
	}
}

// streamLatency subscribes on sub, makes calls on pbxs at -event-rate
// events per second, reports the latency of b.N events and returns how
// long they took.
func streamLatency(b *testing.B, sub *systemtest.Server, key string, pbxs []*systemtest.PBX, rec *stageRec) time.Duration {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, wsURL(sub, "/v1/events"), &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + key}}})
	if err != nil {
		b.Fatal(err)
	}
	defer ws.CloseNow()
	ws.SetReadLimit(1 << 20)

	const perCall = 4
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(time.Second * perCall / time.Duration(*eventRate))
		defer t.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			p := pbxs[i%len(pbxs)]
			id, err := p.AMI.StartCall(fmt.Sprintf("1%02d", i%100), fmt.Sprintf("2%02d", i%100))
			if err != nil {
				continue
			}
			time.AfterFunc(500*time.Millisecond, func() { _ = p.AMI.Hangup(id, 16) })
		}
	})
	defer func() { close(stop); wg.Wait() }()
	lat := make([]time.Duration, 0, b.N)
	var fromStored []time.Duration
	next := int64(-1)
	b.ResetTimer()
	start := time.Now()
	for len(lat) < b.N {
		_, msg, err := ws.Read(ctx)
		if err != nil {
			b.Fatalf("after %d events: %v", len(lat), err)
		}
		now := time.Now()
		var e struct {
			Seq        int64     `json:"seq"`
			Type       string    `json:"type"`
			Time       time.Time `json:"time"`
			ReceivedAt time.Time `json:"received_at"`
		}
		if err := json.Unmarshal(msg, &e); err != nil {
			b.Fatal(err)
		}
		if strings.HasPrefix(e.Type, "stream.") {
			next = e.Seq + 1
			continue
		}
		if e.Seq != next {
			b.Fatalf("got seq %d, want %d: an event lost or duplicated", e.Seq, next)
		}
		next++
		lat = append(lat, now.Sub(e.Time))
		fromStored = append(fromStored, now.Sub(e.ReceivedAt))
		rec.received(e.Seq, e.Time, e.ReceivedAt, now)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	slices.Sort(fromStored)
	if b.N >= 100 {
		b.Logf("from stored to the subscriber: p50 %v p99 %v", fromStored[len(fromStored)/2], fromStored[len(fromStored)*99/100])
	}
	reportLatency(b, lat)
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "events/s")
	rec.report(b)
	return elapsed
}

// stageRec times each event through the stages of the cross-replica
// path (cluster.TraceStages): when the holder committed and announced
// it, when the subscriber's replica heard of it and read it back.
type stageRec struct {
	mu         sync.Mutex
	owner, sub string
	at         map[string]map[int64]time.Time
	spans      map[string][]time.Duration
}

// stages in path order; the first two and the last are measured from the
// event itself (its time, received_at) and the subscriber.
var stages = []string{"stored", "notified", "heard", "read"}

func (r *stageRec) start(owner, sub string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.owner, r.sub = owner, sub
	r.at, r.spans = map[string]map[int64]time.Time{}, map[string][]time.Duration{}
	for _, s := range stages {
		r.at[s] = map[int64]time.Time{}
	}
}

func (r *stageRec) note(replica, stage string, rs []cluster.Range) {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	m, ok := r.at[stage]
	if !ok || (stage == "stored" || stage == "notified") != (replica == r.owner) || (stage == "heard" || stage == "read") && replica != r.sub {
		return
	}
	for _, x := range rs {
		for s := x.First; s <= x.Last; s++ {
			if _, seen := m[s]; !seen {
				m[s] = now
			}
		}
	}
}

// received records the spans of an event the subscriber got at now.
func (r *stageRec) received(seq int64, agentTime, receivedAt, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.owner == r.sub {
		return // the holder's own subscriber: no NOTIFY, no read
	}
	prev, prevName := agentTime, "agent"
	add := func(name string, t time.Time) {
		r.spans[prevName+"→"+name] = append(r.spans[prevName+"→"+name], t.Sub(prev))
		prev, prevName = t, name
	}
	add("received", receivedAt)
	for _, s := range stages {
		t, ok := r.at[s][seq]
		if !ok {
			return // resynced or read before it was heard: not a whole path
		}
		add(s, t)
	}
	add("subscriber", now)
}

// report logs each span's p50 / p99 and share of the time, on one line
// (a benchmark's log is cut at 10 lines).
func (r *stageRec) report(b *testing.B) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var total time.Duration
	for _, d := range r.spans {
		for _, x := range d {
			total += x
		}
	}
	if total == 0 || b.N < 100 {
		return // the holder's subscriber, or the 1-event probe run
	}
	line := "stages, p50 / p99 ms (share of the time):"
	for _, name := range []string{"agent→received", "received→stored", "stored→notified", "notified→heard", "heard→read", "read→subscriber"} {
		d := r.spans[name]
		if len(d) == 0 {
			continue
		}
		var sum time.Duration
		for _, x := range d {
			sum += x
		}
		slices.Sort(d)
		line += fmt.Sprintf(" %s %.2f / %.2f (%.0f%%);", name, float64(d[len(d)/2].Microseconds())/1000,
			float64(d[len(d)*99/100].Microseconds())/1000, 100*float64(sum)/float64(total))
	}
	b.Log(line)
}
