package amitest

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"
)

// Defaults, taken from the captures where they show one.
const (
	DefaultAddr             = "127.0.0.1:0"
	DefaultUsername         = "switchboard"
	DefaultSecret           = "switchboard-secret"
	DefaultContext          = "inoffice"
	DefaultAuthFailDelay    = time.Second            // transcripts 01b/01c: ~1000 ms
	DefaultChanSpyDelay     = 100 * time.Millisecond // transcript 07: ChanSpyStart ~102 ms after answer
	DefaultAnswerWait       = 500 * time.Millisecond // capture 18: Answer() holds a Local channel ~500 ms
	DefaultOriginateTimeout = 30 * time.Second       // Asterisk's Originate default
	// DefaultMaxMessageBytes bounds one received action. Asterisk keeps at
	// most 128 headers of at most 1024 bytes each.
	DefaultMaxMessageBytes = 128 * 1024
	// DefaultMaxQueuedBytes bounds what may wait to be written to one
	// client; a client that falls further behind is disconnected, as
	// Asterisk drops a session whose writes time out.
	DefaultMaxQueuedBytes = 8 << 20
	// DefaultMaxRecordedActions bounds the history kept for Actions and
	// WaitAction, so a long demo or load run does not grow without limit.
	DefaultMaxRecordedActions = 10000
	// DefaultTransferDigitTimeout is features.conf's transferdigittimeout:
	// captures 13 and 20i form the consultation ~3.4 s after Atxfer.
	DefaultTransferDigitTimeout = 3 * time.Second
)

// Config configures a Server. The zero value is usable: New fills defaults.
type Config struct {
	// Addr to listen on; default "127.0.0.1:0".
	Addr string
	// Users maps AMI username to secret; default {"switchboard": "switchboard-secret"}.
	Users map[string]string
	// Context is the dialplan context of the built-in dialplan; default "inoffice".
	Context string
	// Logger receives the server's own diagnostics; nil discards them.
	Logger *slog.Logger
	// Now is the clock used for every timestamp the server writes
	// (uniqueids, Timestamp, EventTV, Cdr times); default time.Now.
	// Delays (ringing, ChanSpy, auth failure) always use real time.
	Now func() time.Time
	// AuthFailDelay is how long a failed Login waits before its error
	// and the close, like Asterisk; default 1s. Negative means none.
	AuthFailDelay time.Duration
	// RingDelay is how long a dialled extension rings (Newstate Ringing,
	// DialState RINGING) before its outcome applies; 0 (the default)
	// answers at once, as the captured dialplan does.
	RingDelay time.Duration
	// ChanSpyDelay is how long after the spy answers ChanSpyStart comes;
	// default 100ms like the capture. Negative means none.
	ChanSpyDelay time.Duration
	// AnswerWait is how long an answered extension stays in Answer()
	// (priority 2) before its Wait(600): Asterisk waits up to 500 ms for
	// media, which Local channels never carry. A call that ends sooner
	// ends in Answer. Default 500ms; negative means none.
	AnswerWait time.Duration
	// OriginateTimeout applies when an Originate carries no Timeout;
	// default 30s like Asterisk.
	OriginateTimeout time.Duration
	// AsteriskVersion reported by Command/CoreSettings; default "22.10.1".
	AsteriskVersion string
	// MaxMessageBytes bounds one received action; default 128 KiB.
	MaxMessageBytes int
	// MaxQueuedBytes bounds the unsent output of one client; default 8 MiB.
	MaxQueuedBytes int
	// MaxRecordedActions bounds the action history; default 10000, the
	// oldest are forgotten first. Negative keeps none.
	MaxRecordedActions int
	// MaxConnections bounds concurrent clients; 0 means unlimited.
	MaxConnections int
	// MonitorDir is where MixMonitor puts a relative File, Asterisk's
	// spool monitor directory; default /var/spool/asterisk/monitor.
	MonitorDir string
	// WriteRecordings makes MixMonitor create its file (sub-folders
	// included) as the captures' Asterisk did: a 44-byte WAV header, Local
	// channels carrying no audio. Off by default: the fake writes no
	// files unless asked (WithRecordings).
	WriteRecordings bool
	// TransferDigitTimeout is how long the attended-transfer feature waits
	// for more digits before it dials the target (features.conf
	// transferdigittimeout); default 3s like Asterisk. Negative means none.
	TransferDigitTimeout time.Duration
}

// Option changes the Config of NewServer.
type Option func(*Config)

// WithConfig replaces the whole Config (later options still apply).
func WithConfig(c Config) Option { return func(dst *Config) { *dst = c } }

// WithUser adds an AMI user.
func WithUser(name, secret string) Option {
	return func(c *Config) {
		if c.Users == nil {
			c.Users = map[string]string{}
		}
		c.Users[name] = secret
	}
}

// WithAuthFailDelay sets Config.AuthFailDelay.
func WithAuthFailDelay(d time.Duration) Option { return func(c *Config) { c.AuthFailDelay = d } }

// WithRingDelay sets Config.RingDelay.
func WithRingDelay(d time.Duration) Option { return func(c *Config) { c.RingDelay = d } }

// WithAnswerWait sets Config.AnswerWait.
func WithAnswerWait(d time.Duration) Option { return func(c *Config) { c.AnswerWait = d } }

// WithChanSpyDelay sets Config.ChanSpyDelay.
func WithChanSpyDelay(d time.Duration) Option { return func(c *Config) { c.ChanSpyDelay = d } }

// WithNow sets Config.Now.
func WithNow(now func() time.Time) Option { return func(c *Config) { c.Now = now } }

// WithLogger sets Config.Logger.
func WithLogger(l *slog.Logger) Option { return func(c *Config) { c.Logger = l } }

// WithTransferDigitTimeout sets Config.TransferDigitTimeout.
func WithTransferDigitTimeout(d time.Duration) Option {
	return func(c *Config) { c.TransferDigitTimeout = d }
}

// WithContext sets Config.Context.
func WithContext(ctx string) Option { return func(c *Config) { c.Context = ctx } }

// ErrInvalidConfig is wrapped by every Validate error.
var ErrInvalidConfig = errors.New("amitest: invalid config")

func (c *Config) fillDefaults() {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.Users == nil {
		c.Users = map[string]string{DefaultUsername: DefaultSecret}
	}
	if c.Context == "" {
		c.Context = DefaultContext
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.AuthFailDelay == 0 {
		c.AuthFailDelay = DefaultAuthFailDelay
	}
	if c.AuthFailDelay < 0 {
		c.AuthFailDelay = 0
	}
	if c.ChanSpyDelay == 0 {
		c.ChanSpyDelay = DefaultChanSpyDelay
	}
	if c.ChanSpyDelay < 0 {
		c.ChanSpyDelay = 0
	}
	if c.AnswerWait == 0 {
		c.AnswerWait = DefaultAnswerWait
	}
	if c.AnswerWait < 0 {
		c.AnswerWait = 0
	}
	if c.OriginateTimeout == 0 {
		c.OriginateTimeout = DefaultOriginateTimeout
	}
	if c.AsteriskVersion == "" {
		c.AsteriskVersion = "22.10.1"
	}
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if c.MaxQueuedBytes == 0 {
		c.MaxQueuedBytes = DefaultMaxQueuedBytes
	}
	if c.MaxRecordedActions == 0 {
		c.MaxRecordedActions = DefaultMaxRecordedActions
	}
	if c.TransferDigitTimeout == 0 {
		c.TransferDigitTimeout = DefaultTransferDigitTimeout
	}
	if c.TransferDigitTimeout < 0 {
		c.TransferDigitTimeout = 0
	}
}

// Validate says exactly what is wrong with a Config (after defaults).
func (c Config) Validate() error {
	var errs []string
	if _, _, err := net.SplitHostPort(c.Addr); c.Addr != "" && err != nil {
		errs = append(errs, fmt.Sprintf("Addr %q is not host:port: %v", c.Addr, err))
	}
	for u := range c.Users {
		if u == "" || strings.ContainsAny(u, "\r\n") {
			errs = append(errs, fmt.Sprintf("username %q is empty or holds CR/LF", u))
		}
	}
	if strings.ContainsAny(c.Context, "\r\n@/;,") {
		errs = append(errs, fmt.Sprintf("Context %q holds one of CR LF @ / ; ,", c.Context))
	}
	if c.RingDelay < 0 {
		errs = append(errs, fmt.Sprintf("RingDelay %v is negative", c.RingDelay))
	}
	if c.OriginateTimeout < 0 {
		errs = append(errs, fmt.Sprintf("OriginateTimeout %v is negative", c.OriginateTimeout))
	}
	if c.MaxMessageBytes < 1024 {
		errs = append(errs, fmt.Sprintf("MaxMessageBytes %d is below one 1024-byte line", c.MaxMessageBytes))
	}
	if c.MaxQueuedBytes < 0 {
		errs = append(errs, fmt.Sprintf("MaxQueuedBytes %d is negative", c.MaxQueuedBytes))
	}
	if c.MaxConnections < 0 {
		errs = append(errs, fmt.Sprintf("MaxConnections %d is negative", c.MaxConnections))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, strings.Join(errs, "; "))
	}
	return nil
}
