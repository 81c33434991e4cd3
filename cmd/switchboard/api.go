package main

import (
	"crypto"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/time/rate"

	"github.com/switchboard-pbx/switchboard/controlplane/api"
	"github.com/switchboard-pbx/switchboard/controlplane/auth"
	"github.com/switchboard-pbx/switchboard/controlplane/ratelimit"
)

// apiFlags are the HTTP API's limits, all named and documented in the README.
type apiFlags struct {
	amiTimeout              time.Duration
	recordingTimeout        time.Duration
	ratePerCredential       float64
	burstPerCredential      int
	ratePerEnterprise       float64
	burstPerEnterprise      int
	maxConcurrentOriginates int // deprecated: the agent enforces it
	maxBodyBytes            int64
	idempotencyTTL          time.Duration
	hideChannelNames        bool
	jwtIssuer, jwtAudience  string
	jwtMaxTTL               time.Duration
	maxTicketsPerEnterprise int
	timezone                string
	keyCacheTTL             time.Duration
	pbxCacheTTL             time.Duration
	consoleSessionTTL       time.Duration
	consoleMaxSessions      int
}

func (f *apiFlags) register(fs *pflag.FlagSet) {
	fs.DurationVar(&f.amiTimeout, "ami-timeout", api.DefaultAMITimeout, "bound on one request to a PBX (tunnel + AMI); past it the API answers 504")
	fs.DurationVar(&f.recordingTimeout, "recording-download-timeout", api.DefaultRecordingDownloadTimeout, "bound on one recording download through the PBX's tunnel, first byte to last; past it the transfer is cut")
	fs.Float64Var(&f.ratePerCredential, "rate-per-credential", float64(ratelimit.DefaultPerCredential), "requests per second per API key or operator (429 past it)")
	fs.IntVar(&f.burstPerCredential, "burst-per-credential", ratelimit.DefaultCredentialBurst, "burst of --rate-per-credential")
	fs.Float64Var(&f.ratePerEnterprise, "rate-per-enterprise", float64(ratelimit.DefaultPerEnterprise), "requests per second per enterprise, all credentials together")
	fs.IntVar(&f.burstPerEnterprise, "burst-per-enterprise", ratelimit.DefaultEnterpriseBurst, "burst of --rate-per-enterprise")
	fs.IntVar(&f.maxConcurrentOriginates, "max-concurrent-originates", 0, "ignored: the agent caps the calls being set up on its PBX (its own --max-concurrent-originates)")
	_ = fs.MarkDeprecated("max-concurrent-originates", "the agent caps calls being set up on its PBX: set max-concurrent-originates in the agent's config")
	fs.IntVar(&f.maxTicketsPerEnterprise, "max-event-tickets-per-enterprise", auth.DefaultMaxTicketsPerEnterprise, "browser tickets (POST /v1/events/ticket) one enterprise may hold unredeemed (503 past it)")
	fs.Int64Var(&f.maxBodyBytes, "max-body-bytes", api.DefaultMaxBodyBytes, "largest accepted request body (413 past it)")
	fs.DurationVar(&f.idempotencyTTL, "idempotency-ttl", api.DefaultIdempotencyTTL, "how long an Idempotency-Key replays its first result")
	fs.BoolVar(&f.hideChannelNames, "hide-channel-names", false, "legacy hangup responses show <technology>/*** instead of real channel names")
	fs.StringVar(&f.jwtIssuer, "jwt-issuer", "", "require this iss claim in operator JWTs (empty: not checked)")
	fs.StringVar(&f.jwtAudience, "jwt-audience", "", "require this aud claim in operator JWTs (empty: not checked)")
	fs.DurationVar(&f.jwtMaxTTL, "jwt-max-ttl", auth.DefaultMaxTTL, "refuse operator JWTs meant to live longer than this (exp − iat, or exp − now)")
	fs.StringVar(&f.timezone, "timezone", "", "IANA zone of the legacy hangup's terminated_at, e.g. Asia/Tehran (empty: the server's local zone)")
	fs.DurationVar(&f.keyCacheTTL, "key-cache-ttl", api.DefaultKeyCacheTTL, "how long a verified API key is trusted without a store lookup; revocations are checked in the store every half of it, so a revoked key, its event streams and tickets, and a revoked agent's tunnel, end within it; negative: no cache")
	fs.DurationVar(&f.pbxCacheTTL, "pbx-cache-ttl", api.DefaultPBXCacheTTL, "how long an enterprise's PBX list is reused; negative: off")
	fs.DurationVar(&f.consoleSessionTTL, "console-session-ttl", api.DefaultSessionTTL, "how long a web console sign-in lasts (never past its token's exp)")
	fs.IntVar(&f.consoleMaxSessions, "console-max-sessions-per-credential", api.DefaultMaxSessionsPerCredential, "web console sessions one API key or operator may hold; signing in past it ends the oldest")
}

// jwtVerifier builds the operator JWT verifier from the flags; nil when
// neither a secret nor public keys are configured (API keys only).
func jwtVerifier(f serveFlags) (*auth.JWTVerifier, error) {
	if f.jwtSecretFile == "" && f.jwtPublicKey == "" {
		return nil, nil
	}
	if f.api.jwtMaxTTL <= 0 {
		return nil, usagef("--jwt-max-ttl must be positive")
	}
	jc := auth.JWTConfig{Issuer: f.api.jwtIssuer, Audience: f.api.jwtAudience, MaxTTL: f.api.jwtMaxTTL}
	if f.jwtSecretFile != "" {
		secret, err := auth.LoadHMACSecret(f.jwtSecretFile)
		if err != nil {
			return nil, err
		}
		jc.HMACSecret = secret
	}
	if f.jwtPublicKey != "" {
		keys, err := auth.LoadPublicKeys(f.jwtPublicKey)
		if err != nil {
			return nil, err
		}
		jc.PublicKeys = append([]crypto.PublicKey(nil), keys...)
	}
	return auth.NewJWTVerifier(jc)
}

// apiConfig builds the HTTP API's configuration from the flags.
func apiConfig(f serveFlags) (api.Config, error) {
	ac := api.Config{
		AMITimeout:               f.api.amiTimeout,
		MaxBodyBytes:             f.api.maxBodyBytes,
		IdempotencyTTL:           f.api.idempotencyTTL,
		HideChannelNames:         f.api.hideChannelNames,
		KeyCacheTTL:              f.api.keyCacheTTL,
		PBXCacheTTL:              f.api.pbxCacheTTL,
		MaxTicketsPerEnterprise:  f.api.maxTicketsPerEnterprise,
		SessionTTL:               f.api.consoleSessionTTL,
		MaxSessionsPerCredential: f.api.consoleMaxSessions,
		RateLimit: ratelimit.Config{
			PerCredential: rate.Limit(f.api.ratePerCredential), CredentialBurst: f.api.burstPerCredential,
			PerEnterprise: rate.Limit(f.api.ratePerEnterprise), EnterpriseBurst: f.api.burstPerEnterprise,
		},
	}
	ac.RecordingDownloadTimeout = f.api.recordingTimeout
	if f.api.timezone != "" {
		loc, err := time.LoadLocation(f.api.timezone)
		if err != nil {
			return ac, usagef("--timezone: %v", err)
		}
		ac.Location = loc
	}
	jwt, err := jwtVerifier(f)
	if err != nil {
		return ac, err
	}
	ac.JWT = jwt
	return ac, nil
}
