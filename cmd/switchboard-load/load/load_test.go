package load

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/store/storetest"
	"github.com/switchboard-pbx/switchboard/internal/testbin"
)

// TestMain lets the test binary be a worker process, as switchboard-load
// is for its own runs.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "worker" && os.Getenv("LOADTEST_ROLE") == "worker" {
		if err := RunWorker(context.Background(), os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	code := storetest.Run(m) // the cluster run uses PostgreSQL
	if err := bins.Remove(); err != nil {
		fmt.Fprintln(os.Stderr, "remove test binaries:", err)
	}
	os.Exit(code)
}

// bins holds the switchboard binary the runs start, built on first use
// and removed by TestMain.
var bins = testbin.New("switchboard-load-bin-", "switchboard")

func buildSwitchboard() (string, error) {
	dir, err := bins.Dir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "switchboard"), nil
}

// TestRunSmall is the whole run with three PBXs, so the tool does not rot:
// the real `switchboard serve` as a child, agents and fakes in a worker
// process (or in this one), calls, the fleet view and a kill + restart.
func TestRunSmall(t *testing.T) {
	bin, err := buildSwitchboard()
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("LOADTEST_ROLE", "worker")
	tests := []struct {
		name    string
		workers int
		restart bool
	}{
		{"worker process, restart", 1, true},
		{"in process", 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var progress bytes.Buffer
			dir := t.TempDir()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			res, err := Run(ctx, Config{
				Agents: 3, Workers: tc.workers, Switchboard: bin, Self: self, Dir: dir,
				OriginateRate: 30, OriginateDuration: 500 * time.Millisecond, FleetQueries: 3,
				CallRate: 10, CallHold: 200 * time.Millisecond,
				Restart: tc.restart, ReconnectMin: 50 * time.Millisecond, ReconnectMax: time.Second, HealthyAfter: 100 * time.Millisecond,
				ConnectTimeout: 20 * time.Second, ReconnectTimeout: 20 * time.Second,
				Progress: &progress, CommandLine: "switchboard-load -n 3",
			})
			if err != nil {
				t.Fatalf("run: %v\n%s\n%s", err, progress.String(), logs(dir))
			}
			if res.Connect.All <= 0 || !res.Idle.Sampled || res.Idle.RSS <= 0 {
				t.Errorf("connect %+v, idle %+v", res.Connect, res.Idle)
			}
			if got := res.FleetFull.Codes[200]; got != 3 {
				t.Errorf("fleet answers %v, want 3×200", res.FleetFull.Codes)
			}
			if o := res.Originate; o.Target != 15 || o.Latency.Codes[201] != 15 || o.Latency.P50 <= 0 {
				t.Errorf("originate %+v, want 15 calls answered 201", o)
			}
			if res.EventsStored <= 0 {
				t.Errorf("no call events stored during the calls")
			}
			if tc.restart && (!res.Restarted || res.Reconnect.All <= 0 || res.ReconnectErr != "") {
				t.Errorf("restart: %+v %s", res.Reconnect, res.ReconnectErr)
			}
			if len(res.Load) != 1 || res.Load[0].Agents != 3 || res.Load[0].AgentsFailed != 0 {
				t.Errorf("load stats %+v", res.Load)
			}
			var md bytes.Buffer
			res.WriteMarkdown(&md)
			for _, want := range []string{"| Measure | Result | Goal |", "Control plane RSS, all connected", "`POST /v1/calls` at 30/s",
				"switchboard-load -n 3", "AMI subscription buffer 256"} {
				if !strings.Contains(md.String(), want) {
					t.Errorf("report lacks %q:\n%s", want, md.String())
				}
			}
			if tc.restart && !strings.Contains(md.String(), "All reconnected after SIGKILL") {
				t.Errorf("report lacks the restart:\n%s", md.String())
			}
		})
	}
}

// TestRunCluster is a cluster run with six PBXs on three replicas: every
// phase, including the SIGKILL of a replica, the subscribers' check and
// the rolling restart, so the --replicas path does not rot.
func TestRunCluster(t *testing.T) {
	bin, err := buildSwitchboard()
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("LOADTEST_ROLE", "worker")
	var progress bytes.Buffer
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, err := Run(ctx, Config{
		Agents: 6, Workers: 1, Switchboard: bin, Self: self, Dir: dir, DB: storetest.PostgresDSN(t), Replicas: 3,
		OriginateRate: 30, OriginateDuration: 500 * time.Millisecond, FleetQueries: 3, Settle: 500 * time.Millisecond,
		CallRate: 5, CallHold: 200 * time.Millisecond, RollingRate: 10, Subscribers: 3,
		Restart: true, ReconnectMin: 50 * time.Millisecond, ReconnectMax: 500 * time.Millisecond, HealthyAfter: 100 * time.Millisecond,
		ConnectTimeout: 30 * time.Second, ReconnectTimeout: 60 * time.Second,
		Progress: &progress, CommandLine: "switchboard-load -n 6 --replicas 3",
	})
	if err != nil {
		t.Fatalf("run: %v\n%s\n%s", err, progress.String(), logs(dir))
	}
	cr := res.Cluster
	if cr == nil || len(cr.Replicas) != 3 {
		t.Fatalf("cluster result %+v", cr)
	}
	total := 0
	for i, rp := range cr.Replicas {
		total += rp.Agents
		if !rp.Idle.Sampled || rp.Fleet.Codes[200] != 3 {
			t.Errorf("replica %d: %+v", i, rp)
		}
	}
	if total != 6 {
		t.Errorf("agents per replica add up to %d", total)
	}
	if o := res.Originate; o.Latency.Codes[201] != 15 {
		t.Errorf("originate %+v, want 15 calls answered 201", o)
	}
	if cr.KilledIndex < 1 || cr.Recovered <= 0 || cr.RecoverErr != "" {
		t.Errorf("kill: %+v", cr)
	}
	if cr.Subscribed == 0 || cr.EventsSeen == 0 || cr.EventsLost != 0 || cr.EventsDuplicated != 0 {
		t.Errorf("subscribers: %d, %d events seen, %d lost, %d duplicated", cr.Subscribed, cr.EventsSeen, cr.EventsLost, cr.EventsDuplicated)
	}
	if cr.Rolling.Calls == 0 || cr.Rolling.Failed != 0 || cr.Rolling.OK != cr.Rolling.Calls {
		t.Errorf("rolling restart: %+v", cr.Rolling)
	}
	var md bytes.Buffer
	res.WriteMarkdown(&md)
	for _, want := range []string{"Replica 2, all connected", "from replica 1", "SIGKILL of replica", "Rolling restart", "lost", "load average"} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, md.String())
		}
	}
	t.Logf("%s\n%s", progress.String(), md.String())
}

func logs(dir string) string {
	var b strings.Builder
	paths, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	more, _ := filepath.Glob(filepath.Join(dir, "*.stderr"))
	for _, p := range append(paths, more...) {
		data, _ := os.ReadFile(p)
		fmt.Fprintf(&b, "--- %s\n%s", filepath.Base(p), data)
	}
	return b.String()
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"defaults", Config{}, ""},
		{"too many agents", Config{Agents: MaxAgents + 1}, "agents"},
		{"bad workers", Config{Workers: -2}, "workers"},
		{"bad signal", Config{RestartSignal: "hup"}, "restart signal"},
		{"negative settle", Config{Settle: -time.Second}, "settle"},
		{"negative call rate", Config{CallRate: -1}, "call rate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.fill()
			err := tc.cfg.Validate()
			if (err == nil) != (tc.want == "") || err != nil && !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want an error about %q", err, tc.want)
			}
		})
	}
}

func TestSummarize(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(101-i)*time.Millisecond)
	}
	l := summarize(d, map[int]int{201: 99, 0: 1})
	if l.P50 != 50*time.Millisecond || l.P99 != 99*time.Millisecond || l.Max != 100*time.Millisecond || l.Count != 100 {
		t.Fatalf("summarize = %+v", l)
	}
	if got := l.codesString(); got != "error×1, 201×99" {
		t.Fatalf("codes %q", got)
	}
	if e := summarize(nil, nil); e.Count != 0 || e.P99 != 0 {
		t.Fatalf("empty: %+v", e)
	}
}

func TestSampleProcSelf(t *testing.T) {
	s, err := sampleProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if s.RSS <= 0 || s.PeakRSS < s.RSS || s.Threads <= 0 || s.OpenFDs <= 0 {
		t.Fatalf("sample %+v", s)
	}
	if _, err := sampleProc(1 << 30); err == nil {
		t.Fatal("no error for a pid that cannot exist")
	}
}

func TestThousandsAndFDBudget(t *testing.T) {
	for n, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 10000: "10,000", 1234567: "1,234,567"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
	if got := agentsPerProcess(20000); got != (20000-fdReserve)/fdsPerAgent {
		t.Errorf("agentsPerProcess(20000) = %d", got)
	}
	if got := agentsPerProcess(100); got != 0 {
		t.Errorf("agentsPerProcess(100) = %d", got)
	}
}
