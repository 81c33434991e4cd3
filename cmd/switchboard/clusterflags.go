package main

import (
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/switchboard-pbx/switchboard/controlplane"
	"github.com/switchboard-pbx/switchboard/controlplane/cluster"
)

// clusterFlags run several replicas on one PostgreSQL (README "Running
// several replicas").
type clusterFlags struct {
	secretFile, replicaURL string
	heartbeat              time.Duration
	missedBeats            int
	peerDialTimeout        time.Duration
	notifyDelay, refresh   time.Duration
	signatureWindow        time.Duration
}

func (f *clusterFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.secretFile, "cluster-secret-file", "", "file holding the secret every replica shares (at least 32 bytes; e.g. head -c 48 /dev/urandom | base64): runs this replica clustered with the others on the same PostgreSQL --db; it signs the calls between replicas and is never logged. Empty: this replica runs alone, and refuses to start beside another")
	fs.StringVar(&f.replicaURL, "replica-url", "", "URL the other replicas call this one at, e.g. http://10.0.0.5:8080 (the --listen port); empty: derived from --listen when it names a host")
	fs.DurationVar(&f.heartbeat, "cluster-heartbeat", cluster.DefaultHeartbeat, "how often this replica beats its row in the store")
	fs.IntVar(&f.missedBeats, "cluster-missed-beats", cluster.DefaultMissedBeats, "a replica that missed this many beats is dead: its PBXs stop counting as connected and requests for them fail at once with 503 until they reconnect elsewhere")
	fs.DurationVar(&f.peerDialTimeout, "cluster-peer-dial-timeout", cluster.DefaultPeerDialTimeout, "longest wait to connect to the replica holding a PBX; past it the request fails with 503, nothing sent")
	fs.DurationVar(&f.notifyDelay, "cluster-notify-delay", cluster.DefaultNotifyDelay, "least time between two NOTIFYs telling the other replicas of stored event batches (a batch after a quiet spell goes at once; the ones within it of the last NOTIFY wait for the next)")
	fs.DurationVar(&f.refresh, "cluster-refresh", cluster.DefaultRefresh, "how often the other replicas' PBXs are read for the fleet view, and subscribers checked for events whose NOTIFY was missed")
	fs.DurationVar(&f.signatureWindow, "cluster-signature-window", cluster.DefaultSignatureWindow, "how far apart the replicas' clocks may be: a signed call between replicas older or newer than this is refused")
}

// apply sets cfg.Cluster. Clustering needs a PostgreSQL --db; the store
// refuses it on SQLite when it opens (cluster.ErrSQLite).
func (f clusterFlags) apply(cfg *controlplane.Config) error {
	for _, v := range []struct {
		name string
		bad  bool
	}{
		{"--cluster-heartbeat", f.heartbeat <= 0}, {"--cluster-missed-beats", f.missedBeats <= 0},
		{"--cluster-peer-dial-timeout", f.peerDialTimeout <= 0}, {"--cluster-notify-delay", f.notifyDelay <= 0},
		{"--cluster-refresh", f.refresh <= 0}, {"--cluster-signature-window", f.signatureWindow <= 0},
	} {
		if v.bad {
			return usagef("%s must be positive", v.name)
		}
	}
	cfg.Cluster = cluster.Config{URL: f.replicaURL, Heartbeat: f.heartbeat, MissedBeats: f.missedBeats, PeerDialTimeout: f.peerDialTimeout,
		NotifyDelay: f.notifyDelay, Refresh: f.refresh, SignatureWindow: f.signatureWindow}
	if f.secretFile == "" {
		if f.replicaURL != "" {
			return usagef("--replica-url needs --cluster-secret-file: a replica is reached by the others only when clustered")
		}
		return nil
	}
	b, err := os.ReadFile(f.secretFile)
	if err != nil {
		return usagef("--cluster-secret-file: %v", err)
	}
	secret := []byte(strings.TrimSpace(string(b)))
	if len(secret) < cluster.MinSecretBytes {
		return usagef("--cluster-secret-file: the secret is %d bytes; use at least %d (e.g. head -c 48 /dev/urandom | base64)", len(secret), cluster.MinSecretBytes)
	}
	if !strings.HasPrefix(cfg.DB, "postgres://") && !strings.HasPrefix(cfg.DB, "postgresql://") {
		return usagef("--cluster-secret-file needs a PostgreSQL --db (postgres://…): %v", cluster.ErrSQLite)
	}
	cfg.Cluster.Secret = secret
	return nil
}
