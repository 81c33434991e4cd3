package cluster

import (
	"cmp"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/events"
	"github.com/switchboard-pbx/switchboard/controlplane/fleet"
	"github.com/switchboard-pbx/switchboard/controlplane/store"
)

// Defaults of Config.
const (
	// DefaultHeartbeat is how often a replica beats its row.
	DefaultHeartbeat = 3 * time.Second
	// DefaultMissedBeats: a replica that missed this many beats is dead
	// (coder's replicasync counts 3).
	DefaultMissedBeats = 3
	// DefaultPeerDialTimeout bounds connecting to another replica: past
	// it the owner is unreachable (503), nothing having been sent.
	DefaultPeerDialTimeout = time.Second
	// DefaultNotifyDelay is the least time between two NOTIFYs of stored
	// event batches: a batch stored after a quiet spell is announced at
	// once, the ones stored within it of the last NOTIFY go together in
	// the next. At most 1/DefaultNotifyDelay NOTIFYs/s, whatever the
	// batches.
	DefaultNotifyDelay = 5 * time.Millisecond
	// DefaultRefresh is how often the other replicas' agents are read for
	// the fleet view, and each enterprise's latest event compared with
	// what this replica's subscribers were told (catching a missed NOTIFY).
	DefaultRefresh = 2 * time.Second
	// DefaultStatusInterval is how often the status of this replica's
	// agents is written for the other replicas' fleet view (changes only).
	DefaultStatusInterval = time.Second
	// DefaultSignatureWindow bounds the clock skew between replicas and
	// how long a signed internal call may be replayed (it never is: each
	// signature is accepted once).
	DefaultSignatureWindow = 30 * time.Second
	// MinSecretBytes is the shortest cluster secret accepted.
	MinSecretBytes = 32
)

// Config of a Cluster. Zero values take the defaults above.
type Config struct {
	Store *store.Store
	// Registry is this replica's agent sessions.
	Registry *fleet.Registry
	// Secret is the cluster secret shared by every replica
	// (--cluster-secret-file); nil runs a lone replica. It signs the
	// internal calls and keys the browser tickets; it is never logged.
	Secret []byte
	// URL is how the other replicas reach this one (--replica-url):
	// http(s)://host:port, the same listener as the API.
	URL string
	// ID names this run of the replica; empty draws a random one.
	ID       string
	Hostname string
	Version  string
	// Heartbeat and MissedBeats: see the defaults. A replica is dead
	// after Heartbeat × MissedBeats without a beat.
	Heartbeat   time.Duration
	MissedBeats int
	// PeerDialTimeout, NotifyDelay, Refresh, StatusInterval,
	// SignatureWindow: see the defaults.
	PeerDialTimeout time.Duration
	NotifyDelay     time.Duration
	Refresh         time.Duration
	StatusInterval  time.Duration
	SignatureWindow time.Duration
	// PeerTLS verifies replicas that serve HTTPS (their --tls-cert-file);
	// nil uses the system roots.
	PeerTLS *tls.Config
	// Hub is the in-process broker the cluster's Broker wraps; nil makes
	// one with the events package's default bounds.
	Hub      *events.Hub
	Observer Observer
	Logger   *slog.Logger
	Now      func() time.Time
}

// Observer is told what the cluster does (the control plane's metrics).
// Its methods must not block.
type Observer interface {
	// Forwarded: a request was sent to the replica holding its agent;
	// result is ok, an agent error code, offline, timeout or unreachable.
	Forwarded(result string, d time.Duration)
	// Notified: one NOTIFY statement carried n messages.
	Notified(n int)
	// ListenLost: the LISTEN connection dropped (subscribers catch up from
	// the store once it is back).
	ListenLost()
	// Superseded: this replica closed a session because the agent
	// reconnected to another replica.
	Superseded()
	// Resynced: subscribers of n enterprises were told to read a gap
	// from the store (a NOTIFY was missed).
	Resynced(n int)
}

type nopObserver struct{}

func (nopObserver) Forwarded(string, time.Duration) {}
func (nopObserver) Notified(int)                    {}
func (nopObserver) ListenLost()                     {}
func (nopObserver) Superseded()                     {}
func (nopObserver) Resynced(int)                    {}

// Clustered reports whether the config asks for clustering.
func (c Config) Clustered() bool { return len(c.Secret) > 0 }

// Validate says what is wrong with the configuration.
func (c Config) Validate() error {
	var errs []error
	if c.Clustered() {
		if len(c.Secret) < MinSecretBytes {
			errs = append(errs, fmt.Errorf("the cluster secret is %d bytes; use at least %d (e.g. head -c 48 /dev/urandom | base64)", len(c.Secret), MinSecretBytes))
		}
		if c.URL == "" {
			errs = append(errs, errors.New("clustering needs this replica's URL, which the other replicas call: give --replica-url (e.g. http://10.0.0.5:8080), or --listen with a host (not 0.0.0.0)"))
		}
	}
	if c.URL != "" {
		if err := CheckURL(c.URL); err != nil {
			errs = append(errs, err)
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"Heartbeat", c.Heartbeat}, {"PeerDialTimeout", c.PeerDialTimeout}, {"NotifyDelay", c.NotifyDelay},
		{"Refresh", c.Refresh}, {"StatusInterval", c.StatusInterval}, {"SignatureWindow", c.SignatureWindow}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s %v is negative", d.name, d.v))
		}
	}
	if c.MissedBeats < 0 {
		errs = append(errs, fmt.Errorf("MissedBeats %d is negative", c.MissedBeats))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("cluster config: %w", err)
	}
	return nil
}

// CheckURL says what is wrong with a replica URL: http(s), a host and a
// port, nothing else.
func CheckURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("replica URL %q: %w", raw, err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("replica URL %q: want http:// or https://", raw)
	case u.Host == "" || u.Port() == "":
		return fmt.Errorf("replica URL %q: want a host and a port, e.g. http://10.0.0.5:8080", raw)
	case u.User != nil || u.RawQuery != "" || u.Fragment != "" || (u.Path != "" && u.Path != "/"):
		return fmt.Errorf("replica URL %q: want scheme://host:port only", raw)
	}
	return nil
}

func (c *Config) fill() {
	c.Heartbeat = cmp.Or(c.Heartbeat, DefaultHeartbeat)
	c.MissedBeats = cmp.Or(c.MissedBeats, DefaultMissedBeats)
	c.PeerDialTimeout = cmp.Or(c.PeerDialTimeout, DefaultPeerDialTimeout)
	c.NotifyDelay = cmp.Or(c.NotifyDelay, DefaultNotifyDelay)
	c.Refresh = cmp.Or(c.Refresh, DefaultRefresh)
	c.StatusInterval = cmp.Or(c.StatusInterval, DefaultStatusInterval)
	c.SignatureWindow = cmp.Or(c.SignatureWindow, DefaultSignatureWindow)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Observer == nil {
		c.Observer = nopObserver{}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Hub == nil {
		c.Hub = events.NewHub(events.DefaultMaxSubscribers, events.DefaultMaxSubscribersPerEnterprise)
	}
}

// DeadAfter is how long without a beat makes a replica dead.
func (c Config) DeadAfter() time.Duration {
	return cmp.Or(c.Heartbeat, DefaultHeartbeat) * time.Duration(cmp.Or(c.MissedBeats, DefaultMissedBeats))
}
