package agent

import (
	"cmp"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/switchboard-pbx/switchboard/agent/calls"
	"github.com/switchboard-pbx/switchboard/agent/ops"
	"github.com/switchboard-pbx/switchboard/agent/outbox"
	"github.com/switchboard-pbx/switchboard/protocol"
	"github.com/switchboard-pbx/switchboard/protocol/ami"
	"github.com/switchboard-pbx/switchboard/protocol/tunnel"
)

// Defaults of Config.
const (
	DefaultContext = ops.DefaultContext
	// DefaultMaxConcurrentOriginates bounds calls being set up at once.
	DefaultMaxConcurrentOriginates = ops.DefaultMaxConcurrentOriginates
	DefaultHeartbeatInterval       = 15 * time.Second
	DefaultMaxEventsPerBatch       = 100
	DefaultMaxRequests             = tunnel.DefaultMaxInFlight
	DefaultReconnectMin            = time.Second
	DefaultReconnectMax            = time.Minute
	DefaultHealthyAfter            = 30 * time.Second
	DefaultHelloTimeout            = 10 * time.Second
	DefaultWriteTimeout            = 10 * time.Second
	// DefaultSubscriptionBuffer holds the AMI events that arrive while the
	// consumer waits for a CoreShowChannels resync (a busy PBX sends
	// hundreds per second; a resync takes milliseconds to seconds).
	DefaultSubscriptionBuffer = 8192
	DefaultVersion            = "dev"
	// DefaultAMIEvents is the AMI login's event mask: the classes the
	// agent reads (channels, bridges, dials, hangups, spies and originate
	// results are "call", Cdr is "cdr", FullyBooted and Shutdown are
	// "system", queue members are "agent", the DTMFEnd that confirms a played
	// digit is "dtmf"). A user that may read more, like
	// the lab's read-all one, would otherwise be sent every "dialplan"
	// event too: VarSet and Newexten are 27 of the 69 events of one
	// originated call (capture 03), which the agent read and dropped, and
	// which Asterisk built for it. The least-privilege user reads
	// system,call,cdr,agent,dtmf anyway.
	DefaultAMIEvents = "system,call,cdr,agent,dtmf"
)

// Defaults of the event stream's limits (README "Limits and abuse").
const (
	// DefaultMaxBatchBytes bounds one EventBatch frame: a sixteenth of the
	// control plane's frame limit (protocol.DefaultMaxFrameBytes), and one
	// event may take at most a quarter of it (16 KiB).
	DefaultMaxBatchBytes = 64 << 10
	// DefaultMaxInFlightBytes bounds the event frames sent and not yet
	// acknowledged. It stays under the tunnel's stream window
	// (tunnel.StreamWindowBytes, 256 KiB), so a frame write never blocks on
	// a control plane that holds back its acks (rate limit, store down):
	// the agent waits for acks instead, and its write timeout only ever
	// measures a dead link.
	DefaultMaxInFlightBytes = 192 << 10
	// DefaultMaxEventFieldBytes bounds every text field of an event
	// (calls.DefaultMaxFieldBytes).
	DefaultMaxEventFieldBytes = calls.DefaultMaxFieldBytes
)

// Config configures an Agent. Zero values take the defaults above.
type Config struct {
	// Server is the control plane's tunnel URL, wss://host[:port][/path];
	// a URL without a path gets protocol.ConnectPath.
	Server string
	// MoreServers are more control-plane URLs (replicas of one cluster),
	// for sites without a load balancer in front of them: each dial
	// attempt takes the next of Server and MoreServers in a random order
	// (shuffled again once all were tried), with the same backoff as one.
	MoreServers []string
	// Token is the agent token. Never logged.
	Token string
	// RootCAs verifies the control plane's certificate; nil means CAFile
	// if set, else the system roots.
	RootCAs *x509.CertPool
	// CAFile is a PEM file of CAs for a control plane whose certificate
	// no public CA signed; used when RootCAs is nil.
	CAFile string

	// AMI is the local Asterisk Manager login. Its Logger defaults to
	// Logger (the client adds component=ami). The secret is never logged.
	AMI ami.Config
	// Context is the dialplan context of Local/<ext>@<context>.
	Context string
	// Limits bound what one request may ask for (see ops.Limits).
	Limits ops.Limits
	// MaxConcurrentOriginates is the operations layer's limit: calls being
	// set up on the PBX at once, until Asterisk's OriginateResponse, so a
	// runaway client cannot ring every phone. It is the one per-PBX call
	// cap (the control plane has none). More are refused with
	// protocol.ErrCodeBusy. Default ops.DefaultMaxConcurrentOriginates.
	MaxConcurrentOriginates int
	// MaxConcurrentRequests is the tunnel layer's limit: requests of any
	// kind running at once, bounding the goroutines and memory a busy (or
	// compromised) control plane can make the agent spend. More are
	// refused with protocol.ErrCodeBusy. Default tunnel.DefaultMaxInFlight.
	MaxConcurrentRequests int
	// Ops is the allow-list of operations this agent runs (protocol.Ops
	// names); others are refused per request with op_disabled. Empty:
	// every operation. A PBX whose owner wants, say, no recording leaves
	// recording_* out.
	Ops []string
	// QueueMemberInterface is the template a queue member's interface is
	// made from: "{ext}" stands for the extension of a request (default
	// ops.DefaultQueueMemberInterface, Local/{ext}@from-queue/n; e.g.
	// PJSIP/{ext}).
	QueueMemberInterface string
	// RecordingsDir is the directory Asterisk records to, as the agent
	// sees it: recordings the agent starts go under it, and only those are
	// served (default ops.DefaultRecordingsDir).
	RecordingsDir string
	// ConfirmTimeout bounds the wait for the events that confirm an
	// operation (queue member changes, recordings, transfers, park and
	// pickup, DTMF), within the request's deadline; past it the operation
	// answers not_confirmed (default ops.DefaultConfirmTimeout; 100ms..1m).
	ConfirmTimeout time.Duration
	// MaxActiveRecordings bounds the recordings the agent runs at once
	// (default ops.DefaultMaxActiveRecordings).
	MaxActiveRecordings int
	// CallControl bounds transfer, park, DTMF and mute (ops.CallControl):
	// DTMF digits and durations, park timeouts, attended transfers
	// followed at once.
	CallControl ops.CallControl

	// HeartbeatInterval is how often Status is sent when the control
	// plane's Welcome does not say.
	HeartbeatInterval time.Duration
	// MaxPendingEvents bounds the unacknowledged events kept (see
	// outbox.Config.MaxPending).
	MaxPendingEvents int
	// MaxEventsPerBatch bounds the events of one EventBatch frame.
	MaxEventsPerBatch int
	// MaxBatchBytes bounds the bytes of one EventBatch frame; one event
	// may take at most a quarter of it, a larger one is replaced by a gap
	// event naming it. At least 4 KiB, below protocol.DefaultMaxFrameBytes.
	MaxBatchBytes int
	// MaxInFlightBytes bounds the event frames sent and not yet
	// acknowledged; at least MaxBatchBytes, at most the stream window.
	MaxInFlightBytes int
	// MaxEventFieldBytes bounds every text field of an event: longer
	// values (a caller id of 200 KB from a SIP peer) are cut and named in
	// the event's truncated list.
	MaxEventFieldBytes int
	// SubscriptionBuffer is the AMI event buffer of the consumer.
	SubscriptionBuffer int

	// ReconnectMin, ReconnectMax: the tunnel's redial backoff (capped,
	// exponential, jittered); reset after a session that lived
	// HealthyAfter.
	ReconnectMin time.Duration
	ReconnectMax time.Duration
	HealthyAfter time.Duration
	// HelloTimeout bounds dialling, Hello and Welcome of one session.
	HelloTimeout time.Duration
	// WriteTimeout bounds writing one frame (status, event batch).
	WriteTimeout time.Duration
	// Tunnel carries the remaining tunnel settings (keepalive, limits);
	// its URL, Token, RootCAs, Logger and UserAgent are set from the
	// fields above.
	Tunnel tunnel.DialConfig

	Logger   *slog.Logger // nil discards
	Version  string       // agent version reported in Hello and Status
	Hostname string       // default os.Hostname()
	Now      func() time.Time
}

// Validate says exactly what is wrong with the configuration.
func (c Config) Validate() error {
	var errs []error
	for i, u := range append([]string{c.Server}, c.MoreServers...) {
		switch _, err := connectURL(u); {
		case u == "" && i == 0:
			errs = append(errs, errors.New("Server is empty"))
		case u == "":
			// New would dial it, and fail, once a round.
			errs = append(errs, fmt.Errorf("MoreServers[%d] is empty", i-1))
		case err != nil:
			errs = append(errs, err)
		}
	}
	if c.Token == "" {
		errs = append(errs, errors.New("Token is empty"))
	} else if strings.ContainsAny(c.Token, " \t\r\n") {
		errs = append(errs, errors.New("Token contains blanks or line breaks (a stray newline from a token file?)"))
	}
	if c.RootCAs == nil && c.CAFile != "" {
		if _, err := os.Stat(c.CAFile); err != nil {
			errs = append(errs, fmt.Errorf("CAFile: %w", err))
		}
	}
	if err := c.AMI.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("AMI: %w", err))
	}
	if c.Context != "" {
		if err := ops.CheckContext(c.Context); err != nil {
			errs = append(errs, err)
		}
	}
	if err := c.Limits.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.CallControl.Validate(); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, ops.CheckOps(c.Ops))
	if err := (ops.QueueConfig{MemberInterface: c.QueueMemberInterface}).Validate(); err != nil {
		errs = append(errs, fmt.Errorf("QueueMemberInterface: %w", err))
	}
	if err := (ops.RecordingConfig{Dir: c.RecordingsDir}).Validate(); err != nil {
		errs = append(errs, fmt.Errorf("RecordingsDir: %w", err))
	}
	if err := ops.CheckConfirmTimeout(c.ConfirmTimeout); err != nil {
		errs = append(errs, err)
	}
	if err := (outbox.Config{MaxPending: c.MaxPendingEvents}).Validate(); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, c.validateEventLimits()...)
	ints := []struct {
		name string
		n    int
	}{
		{"MaxConcurrentOriginates", c.MaxConcurrentOriginates}, {"MaxConcurrentRequests", c.MaxConcurrentRequests},
		{"MaxEventsPerBatch", c.MaxEventsPerBatch}, {"SubscriptionBuffer", c.SubscriptionBuffer},
		{"MaxActiveRecordings", c.MaxActiveRecordings},
	}
	for _, i := range ints {
		if i.n < 0 {
			errs = append(errs, fmt.Errorf("%s %d is negative", i.name, i.n))
		}
	}
	durs := []struct {
		name string
		d    time.Duration
	}{
		{"HeartbeatInterval", c.HeartbeatInterval}, {"ReconnectMin", c.ReconnectMin},
		{"ReconnectMax", c.ReconnectMax}, {"HealthyAfter", c.HealthyAfter},
		{"HelloTimeout", c.HelloTimeout}, {"WriteTimeout", c.WriteTimeout},
	}
	for _, d := range durs {
		if d.d < 0 {
			errs = append(errs, fmt.Errorf("%s %v is negative", d.name, d.d))
		}
	}
	if c.ReconnectMin > 0 && c.ReconnectMax > 0 && c.ReconnectMax < c.ReconnectMin {
		errs = append(errs, fmt.Errorf("ReconnectMax %v is below ReconnectMin %v", c.ReconnectMax, c.ReconnectMin))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid agent config: %w", err)
	}
	return nil
}

func (c *Config) fill() {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.AMI.Logger == nil {
		// The client scopes its logger with component=ami itself.
		c.AMI.Logger = c.Logger
	}
	c.Context = cmp.Or(c.Context, DefaultContext)
	c.AMI.Events = cmp.Or(c.AMI.Events, DefaultAMIEvents)
	c.MaxConcurrentRequests = cmp.Or(c.MaxConcurrentRequests, DefaultMaxRequests)
	c.HeartbeatInterval = cmp.Or(c.HeartbeatInterval, DefaultHeartbeatInterval)
	c.MaxPendingEvents = cmp.Or(c.MaxPendingEvents, outbox.DefaultMaxPending)
	c.MaxEventsPerBatch = cmp.Or(c.MaxEventsPerBatch, DefaultMaxEventsPerBatch)
	c.MaxBatchBytes, c.MaxInFlightBytes = c.eventByteLimits()
	c.MaxEventFieldBytes = cmp.Or(c.MaxEventFieldBytes, DefaultMaxEventFieldBytes)
	c.SubscriptionBuffer = cmp.Or(c.SubscriptionBuffer, DefaultSubscriptionBuffer)
	c.ReconnectMin = cmp.Or(c.ReconnectMin, DefaultReconnectMin)
	c.ReconnectMax = cmp.Or(c.ReconnectMax, max(DefaultReconnectMax, c.ReconnectMin))
	c.HealthyAfter = cmp.Or(c.HealthyAfter, DefaultHealthyAfter)
	c.HelloTimeout = cmp.Or(c.HelloTimeout, DefaultHelloTimeout)
	c.WriteTimeout = cmp.Or(c.WriteTimeout, DefaultWriteTimeout)
	c.Version = cmp.Or(c.Version, DefaultVersion)
	if c.Hostname == "" {
		c.Hostname, _ = os.Hostname()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// minBatchBytes leaves room for one event of outbox.MinMaxEventBytes.
const minBatchBytes = 4 * outbox.MinMaxEventBytes

// validateEventLimits checks the event stream's byte limits against each
// other and against the protocol's frame limit and the tunnel's window.
func (c Config) validateEventLimits() []error {
	var errs []error
	batch, inFlight := c.eventByteLimits()
	if batch < minBatchBytes || batch > protocol.DefaultMaxFrameBytes {
		errs = append(errs, fmt.Errorf("MaxBatchBytes %d must be %d to %d (the control plane's frame limit)", batch, minBatchBytes, protocol.DefaultMaxFrameBytes))
	}
	if inFlight < batch || inFlight > tunnel.StreamWindowBytes-batch/4 {
		errs = append(errs, fmt.Errorf("MaxInFlightBytes %d must be at least MaxBatchBytes %d and at most %d (the tunnel's stream window, less room for frame headers): a write must never wait for the window", inFlight, batch, tunnel.StreamWindowBytes-batch/4))
	}
	if c.MaxEventFieldBytes != 0 {
		if err := (calls.Config{MaxFieldBytes: c.MaxEventFieldBytes}).Validate(); err != nil {
			errs = append(errs, fmt.Errorf("MaxEventFieldBytes: %w", err))
		}
	}
	return errs
}

// eventByteLimits is MaxBatchBytes and MaxInFlightBytes, zero ones
// replaced by their defaults.
func (c Config) eventByteLimits() (batch, inFlight int) {
	batch = cmp.Or(c.MaxBatchBytes, DefaultMaxBatchBytes)
	return batch, cmp.Or(c.MaxInFlightBytes, max(DefaultMaxInFlightBytes, batch))
}

// maxEventBytes is the largest event the agent sends: a quarter of a batch.
func (c Config) maxEventBytes() int { return max(c.MaxBatchBytes/4, outbox.MinMaxEventBytes) }

// LogValue keeps the token and the AMI secret out of logs even when a
// whole Config is logged by mistake.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("server", c.Server),
		slog.Any("more_servers", c.MoreServers),
		slog.Bool("token_set", c.Token != ""),
		slog.String("ca_file", c.CAFile),
		slog.String("ami_addr", c.AMI.Addr),
		slog.String("ami_user", c.AMI.Username),
		slog.String("context", c.Context),
		slog.String("version", c.Version),
		slog.String("hostname", c.Hostname),
	)
}

// connectURL checks the server URL and gives it the connect path when it
// has none, so "wss://switchboard.example.com" is enough in a config file.
func connectURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("Server: %w", err)
	}
	switch u.Scheme {
	case "ws", "wss", "http", "https":
	default:
		return "", fmt.Errorf("Server scheme %q is not wss or ws", u.Scheme)
	}
	if u.Host == "" {
		return "", errors.New("Server URL has no host")
	}
	if u.User != nil {
		return "", errors.New("Server URL may not carry credentials; use Token")
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = protocol.ConnectPath
	}
	return u.String(), nil
}
