package load

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Defaults of Config.
const (
	DefaultAgents            = 100
	DefaultPBXsPerEnterprise = 1
	DefaultOriginateRate     = 1000
	DefaultOriginateDuration = 10 * time.Second
	DefaultMaxInFlight       = 4000
	DefaultFleetQueries      = 100
	DefaultSettle            = 20 * time.Second
	DefaultCallRate          = 20
	DefaultCallHold          = 10 * time.Second
	DefaultConnectTimeout    = 5 * time.Minute
	DefaultReconnectTimeout  = 3 * time.Minute
	// DefaultReconnectGoal is the goal for all agents to be back
	// after a control plane restart; the run keeps waiting up to
	// ReconnectTimeout to say how long it really took.
	DefaultReconnectGoal = 60 * time.Second
	// DefaultSubscriptionBuffer replaces the agent's 8192-event AMI
	// buffer: it is allocated up front (≈ 200 KiB per agent, 2 GiB for
	// 10,000 simulated agents in one machine) and a fake PBX with a call
	// every few minutes never needs it.
	DefaultSubscriptionBuffer = 256
	// DefaultMaxPendingEvents replaces the agent's 10,000 for the same
	// reason: it only bounds a backlog, which the run keeps small.
	DefaultMaxPendingEvents = 1000
	// DefaultRollingRate is the calls per second a retrying client sends
	// during the rolling restart of a cluster run.
	DefaultRollingRate = 50
	// DefaultSubscribers is how many enterprises of the killed replica's
	// PBXs a cluster run subscribes to, on a surviving replica.
	DefaultSubscribers = 20
	// MaxReplicas bounds a cluster run.
	MaxReplicas = 9
	// DefaultAgentLogLevel keeps 10,000 agents' "tunnel down" warnings of
	// a restart in the log file without flooding it at info level.
	DefaultAgentLogLevel = "warn"
	// MaxAgents bounds one run.
	MaxAgents = 50000
	// fdsPerAgent: the fake's listener, the agent's two AMI sessions (the
	// second one plays DTMF) at both ends, and its tunnel connection. At 4
	// (one AMI session), three workers of 3,333 agents sat exactly at a
	// limit of 20,000 and the agents of a stopped replica could not redial.
	fdsPerAgent = 6
	// fdReserve is kept for everything else a process opens.
	fdReserve = 512
)

// Config of a run. Zero values take the defaults above.
type Config struct {
	// Agents is N, the number of simulated PBXs.
	Agents int
	// PBXsPerEnterprise groups agents into enterprises, each with one
	// API key; 1 (the default) is the common case of one PBX per customer.
	PBXsPerEnterprise int
	// Workers is how many worker processes host the simulated PBXs: -1
	// (the default) picks the fewest that fit the file-descriptor limit;
	// 0 runs them inside this process (tests, small N).
	Workers int
	// Switchboard is the `switchboard` binary run as `serve`; empty finds
	// one next to this program or in PATH. Ignored with Profile.
	Switchboard string
	// Profile, if set, runs the control plane as this program's own
	// `controlplane` mode (the same control plane and API as serve) and
	// writes per-phase CPU profiles, heap profiles and goroutine dumps
	// into this directory (see RunProfiledControlPlane).
	Profile string
	// Self is this program, re-run as worker and profiled control plane;
	// empty means os.Executable().
	Self string
	// ControlPlaneFlags are added to `switchboard serve`'s command line
	// (e.g. --memory-limit=900MiB). Not with Profile.
	ControlPlaneFlags []string
	// DB is the control plane's store; empty means a new SQLite file in
	// Dir. A postgres:// DSN must name an empty database: the run
	// provisions it.
	DB string
	// Dir holds the store, secrets and logs; empty makes a temp dir,
	// removed at the end unless Keep.
	Dir  string
	Keep bool

	OriginateRate     int           // POST /v1/calls per second; negative skips the phase
	OriginateDuration time.Duration // how long
	MaxInFlight       int           // requests outstanding before the generator counts a miss
	FleetQueries      int           // GET /v1/fleet samples; negative skips them
	Settle            time.Duration // idle time with all connected: CPU and RSS are read over it
	CallRate          float64       // calls per second started on the fakes directly (events without API)
	CallHold          time.Duration // how long those calls last
	// Restart kills and restarts the control plane; RestartSignal is
	// "kill" (SIGKILL, a crash; the default) or "term" (graceful).
	Restart       bool
	RestartSignal string

	ConnectTimeout   time.Duration
	ReconnectTimeout time.Duration
	ReconnectGoal    time.Duration

	// Agent settings; zero keeps the load defaults above, or the agent's
	// own defaults for the reconnect backoff.
	SubscriptionBuffer int
	MaxPendingEvents   int
	ReconnectMin       time.Duration
	ReconnectMax       time.Duration
	HealthyAfter       time.Duration
	AgentLogLevel      string

	// Replicas > 1 runs that many control planes clustered on the
	// PostgreSQL DB (see runCluster): the agents get every replica's URL
	// (tried in random order), requests go to random replicas, one
	// replica is killed and the others restarted one by one.
	Replicas int
	// RollingRate is the calls per second of the retrying client during
	// a cluster run's rolling restart; negative skips the restart.
	RollingRate int
	// Subscribers is the enterprises of the killed replica's PBXs whose
	// events are streamed from a surviving replica and checked.
	Subscribers int

	// Progress receives one line per step; nil discards.
	Progress io.Writer
	// CommandLine is shown in the report.
	CommandLine string
}

func (c *Config) fill() {
	if c.Agents == 0 {
		c.Agents = DefaultAgents
	}
	if c.PBXsPerEnterprise == 0 {
		c.PBXsPerEnterprise = DefaultPBXsPerEnterprise
	}
	if c.OriginateRate == 0 {
		c.OriginateRate = DefaultOriginateRate
	}
	if c.OriginateDuration == 0 {
		c.OriginateDuration = DefaultOriginateDuration
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.FleetQueries == 0 {
		c.FleetQueries = DefaultFleetQueries
	}
	if c.CallHold == 0 {
		c.CallHold = DefaultCallHold
	}
	if c.RestartSignal == "" {
		c.RestartSignal = "kill"
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.ReconnectTimeout == 0 {
		c.ReconnectTimeout = DefaultReconnectTimeout
	}
	if c.ReconnectGoal == 0 {
		c.ReconnectGoal = DefaultReconnectGoal
	}
	if c.SubscriptionBuffer == 0 {
		c.SubscriptionBuffer = DefaultSubscriptionBuffer
	}
	if c.MaxPendingEvents == 0 {
		c.MaxPendingEvents = DefaultMaxPendingEvents
	}
	if c.AgentLogLevel == "" {
		c.AgentLogLevel = DefaultAgentLogLevel
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.RollingRate == 0 {
		c.RollingRate = DefaultRollingRate
	}
	if c.Subscribers == 0 {
		c.Subscribers = DefaultSubscribers
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
}

// Validate says exactly what is wrong with the configuration.
func (c Config) Validate() error {
	var errs []error
	if c.Agents < 1 || c.Agents > MaxAgents {
		errs = append(errs, fmt.Errorf("agents %d: want 1-%d", c.Agents, MaxAgents))
	}
	if c.PBXsPerEnterprise < 1 {
		errs = append(errs, fmt.Errorf("pbxs-per-enterprise %d: want at least 1", c.PBXsPerEnterprise))
	}
	if c.Workers < -1 {
		errs = append(errs, fmt.Errorf("workers %d: want -1 (auto), 0 (in process) or more", c.Workers))
	}
	if c.MaxInFlight < 1 {
		errs = append(errs, fmt.Errorf("max in flight %d: want at least 1", c.MaxInFlight))
	}
	for name, d := range map[string]time.Duration{
		"originate duration": c.OriginateDuration, "settle": c.Settle, "call hold": c.CallHold,
		"connect timeout": c.ConnectTimeout, "reconnect timeout": c.ReconnectTimeout,
		"reconnect min": c.ReconnectMin, "reconnect max": c.ReconnectMax, "healthy after": c.HealthyAfter,
	} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("%s %v is negative", name, d))
		}
	}
	if c.CallRate < 0 {
		errs = append(errs, fmt.Errorf("call rate %v is negative", c.CallRate))
	}
	if c.RestartSignal != "kill" && c.RestartSignal != "term" {
		errs = append(errs, fmt.Errorf("restart signal %q: want kill or term", c.RestartSignal))
	}
	if c.Replicas < 1 || c.Replicas > MaxReplicas {
		errs = append(errs, fmt.Errorf("replicas %d: want 1-%d", c.Replicas, MaxReplicas))
	}
	if c.Replicas > 1 && !strings.HasPrefix(c.DB, "postgres://") && !strings.HasPrefix(c.DB, "postgresql://") {
		errs = append(errs, errors.New("several replicas need a PostgreSQL --db (postgres://… naming an empty database)"))
	}
	if c.Replicas > 1 && c.Profile != "" {
		errs = append(errs, errors.New("--profile runs one control plane: not with --replicas"))
	}
	if c.SubscriptionBuffer < 0 || c.MaxPendingEvents < 0 {
		errs = append(errs, errors.New("subscription buffer and max pending events must not be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("load config: %w", err)
	}
	return nil
}
