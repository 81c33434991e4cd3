package load

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-pbx/switchboard/agent"
	"github.com/switchboard-pbx/switchboard/protocol/ami"
	"github.com/switchboard-pbx/switchboard/protocol/ami/amitest"
)

// The coordinator talks to a worker in JSON lines: a WorkerSpec, then
// commands, each answered by exactly one reply; EOF on the worker's input
// stops it.
const (
	cmdConnect = "connect" // start the agents (and the direct calls)
	cmdStats   = "stats"
	cmdHangup  = "hangup" // end every live call on every fake
)

// WorkerSpec is the first line a worker reads.
type WorkerSpec struct {
	Index  int    `json:"index"`
	Server string `json:"server"` // ws://host:port/agent/v1/connect
	// MoreServers are the other replicas' URLs (a cluster run).
	MoreServers []string   `json:"more_servers,omitempty"`
	FakeHost    string     `json:"fake_host"` // loopback address the fakes listen on
	Agents      []SimAgent `json:"agents"`

	SubscriptionBuffer int           `json:"subscription_buffer"`
	MaxPendingEvents   int           `json:"max_pending_events"`
	ReconnectMin       time.Duration `json:"reconnect_min"`
	ReconnectMax       time.Duration `json:"reconnect_max"`
	HealthyAfter       time.Duration `json:"healthy_after"`

	CallRate float64       `json:"call_rate"` // calls/s this worker starts on its fakes
	CallHold time.Duration `json:"call_hold"`

	LogFile  string `json:"log_file"` // agents' logs; empty discards
	LogLevel string `json:"log_level"`

	// Abandon: at the end, leave the agents and fakes to the process's
	// exit instead of stopping each. Cancelling thousands of sessions in
	// one process starves the goroutine that cancels (each cancel starts
	// several teardown goroutines): a worker of 3,300 agents took over a
	// minute. Set for worker processes, which exit right after.
	Abandon bool `json:"abandon"`
}

type workerCmd struct {
	Cmd string `json:"cmd"`
}

type workerReply struct {
	OK    bool        `json:"ok"`
	Error string      `json:"error,omitempty"`
	Stats WorkerStats `json:"stats"`
}

// WorkerStats describes a worker process (or, in process, the whole
// coordinator process).
type WorkerStats struct {
	Agents       int           `json:"agents"`
	RSS          int64         `json:"rss"`
	CPU          time.Duration `json:"cpu"`
	Goroutines   int           `json:"goroutines"`
	HeapInuse    uint64        `json:"heap_inuse"`
	AgentsFailed int64         `json:"agents_failed"`
	CallsStarted int64         `json:"calls_started"`
	CallsFailed  int64         `json:"calls_failed"`
	HungUp       int64         `json:"hung_up"`
}

// RunWorker hosts the fakes and agents of spec until in ends or ctx is
// done. It is the `worker` mode of switchboard-load, and runs in process
// for small runs and tests.
func RunWorker(ctx context.Context, in io.Reader, out io.Writer) error {
	dec, enc := json.NewDecoder(in), json.NewEncoder(out)
	var spec WorkerSpec
	if err := dec.Decode(&spec); err != nil {
		return fmt.Errorf("worker: read spec: %w", err)
	}
	w, err := newSim(spec)
	if err != nil {
		_ = enc.Encode(workerReply{Error: err.Error()})
		return err
	}
	defer w.close()
	if err := enc.Encode(workerReply{OK: true, Stats: w.stats()}); err != nil {
		return fmt.Errorf("worker: reply: %w", err)
	}

	cmds := make(chan workerCmd)
	readErr := make(chan error, 1)
	go func() {
		for {
			var c workerCmd
			if err := dec.Decode(&c); err != nil {
				readErr <- err
				return
			}
			select {
			case cmds <- c:
			case <-w.ctx.Done():
				readErr <- w.ctx.Err()
				return
			}
		}
	}()
	for {
		var c workerCmd
		select {
		case <-ctx.Done():
			return nil
		case err := <-readErr:
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("worker: read command: %w", err)
		case c = <-cmds:
		}
		reply := workerReply{OK: true}
		switch c.Cmd {
		case cmdConnect:
			w.connect()
		case cmdHangup:
			w.hangupAll()
		case cmdStats:
		default:
			reply = workerReply{Error: fmt.Sprintf("unknown command %q", c.Cmd)}
		}
		reply.Stats = w.stats()
		if err := enc.Encode(reply); err != nil {
			return fmt.Errorf("worker: reply: %w", err)
		}
	}
}

// sim is one worker's simulated PBXs.
type sim struct {
	spec   WorkerSpec
	log    *slog.Logger
	logOut *asyncLog
	fakes  []*amitest.Server
	agents []*agent.Agent

	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	started bool

	failed, callsStarted, callsFailed, hungUp atomic.Int64
}

func newSim(spec WorkerSpec) (*sim, error) {
	w := &sim{spec: spec, log: slog.New(slog.DiscardHandler)}
	w.ctx, w.cancel = context.WithCancel(context.Background())
	if spec.LogFile != "" {
		var lv slog.Level
		if err := lv.UnmarshalText([]byte(spec.LogLevel)); err != nil {
			return nil, fmt.Errorf("worker: log level: %w", err)
		}
		f, err := os.Create(spec.LogFile)
		if err != nil {
			return nil, fmt.Errorf("worker: log file: %w", err)
		}
		w.logOut = newAsyncLog(f)
		w.log = slog.New(slog.NewTextHandler(w.logOut, &slog.HandlerOptions{Level: lv}))
	}
	quiet := slog.New(slog.DiscardHandler)
	for _, sa := range spec.Agents {
		fake, err := amitest.New(amitest.Config{
			Addr: spec.FakeHost + ":0", Logger: quiet,
			// The fakes keep no action history: 10,000 of them would
			// hold 10,000 actions each.
			MaxRecordedActions: -1,
		})
		if err == nil {
			err = fake.Start()
		}
		if err != nil {
			w.close()
			return nil, fmt.Errorf("worker %d: fake Asterisk for %s: %w", spec.Index, sa.Name, err)
		}
		w.fakes = append(w.fakes, fake)
		a, err := agent.New(agent.Config{
			Server:             spec.Server,
			MoreServers:        spec.MoreServers,
			Token:              sa.Token,
			AMI:                ami.Config{Addr: fake.Addr(), Username: amitest.DefaultUsername, Secret: amitest.DefaultSecret},
			Context:            "inoffice",
			Hostname:           sa.Name,
			Version:            "load",
			SubscriptionBuffer: spec.SubscriptionBuffer,
			MaxPendingEvents:   spec.MaxPendingEvents,
			ReconnectMin:       spec.ReconnectMin,
			ReconnectMax:       spec.ReconnectMax,
			HealthyAfter:       spec.HealthyAfter,
			Logger:             w.log.With("pbx", sa.Name),
		})
		if err != nil {
			w.close()
			return nil, fmt.Errorf("worker %d: agent %s: %w", spec.Index, sa.Name, err)
		}
		w.agents = append(w.agents, a)
	}
	return w, nil
}

// connect starts every agent at once: the control plane sees the whole
// worker's share dial in the same instant.
func (w *sim) connect() {
	if w.started {
		return
	}
	w.started = true
	for _, a := range w.agents {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			if err := a.Run(w.ctx); err != nil && w.ctx.Err() == nil {
				w.failed.Add(1)
				w.log.Error("agent stopped", "err", err)
			}
		}()
	}
	if w.spec.CallRate > 0 && len(w.fakes) > 0 {
		w.wg.Add(1)
		go func() { defer w.wg.Done(); w.directCalls() }()
	}
}

// directCalls starts calls on random fakes at CallRate, as phones and
// inbound trunks would, and ends each after CallHold: events the agents
// must report without any API request.
func (w *sim) directCalls() {
	type pending struct {
		due      time.Time
		fake     *amitest.Server
		linkedid string
	}
	var queue []pending // due times grow: CallHold is constant
	interval := time.Duration(float64(time.Second) / w.spec.CallRate)
	next := time.Now()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-w.ctx.Done():
			return
		case now := <-tick.C:
			for !next.After(now) {
				next = next.Add(interval)
				fake := w.fakes[rand.IntN(len(w.fakes))]
				from := fmt.Sprintf("1%02d", rand.IntN(100))
				id, err := fake.StartCall(from, "+375296254070")
				if err != nil {
					w.callsFailed.Add(1)
					continue
				}
				w.callsStarted.Add(1)
				queue = append(queue, pending{due: now.Add(w.spec.CallHold), fake: fake, linkedid: id})
			}
			for len(queue) > 0 && !queue[0].due.After(now) {
				if queue[0].fake.Hangup(queue[0].linkedid, 16) == nil {
					w.hungUp.Add(1)
				}
				queue = queue[1:]
			}
		}
	}
}

// hangupAll ends every live call on every fake (the API's calls stay up
// otherwise: the fake's dialplan answers and waits).
func (w *sim) hangupAll() {
	for _, f := range w.fakes {
		for _, ch := range f.Channels() {
			if f.Hangup(ch.Uniqueid, 16) == nil {
				w.hungUp.Add(1)
			}
		}
	}
}

func (w *sim) stats() WorkerStats {
	s := WorkerStats{
		Agents: len(w.agents), Goroutines: runtime.NumGoroutine(), AgentsFailed: w.failed.Load(),
		CallsStarted: w.callsStarted.Load(), CallsFailed: w.callsFailed.Load(), HungUp: w.hungUp.Load(),
	}
	if p, err := sampleProc(os.Getpid()); err == nil {
		s.RSS, s.CPU = p.RSS, p.CPU
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s.HeapInuse = ms.HeapInuse
	return s
}

// close stops the agents, then the fakes, and waits for all of them; an
// abandoning worker only flushes its log.
func (w *sim) close() {
	if w.spec.Abandon {
		if w.logOut != nil {
			w.logOut.Close()
		}
		return
	}
	w.cancel()
	w.wg.Wait()
	var wg sync.WaitGroup
	for _, f := range w.fakes {
		wg.Add(1)
		go func() { defer wg.Done(); f.Close() }()
	}
	wg.Wait()
	if w.logOut != nil {
		w.logOut.Close()
	}
}
