package main

import (
	"crypto"
	"net/http"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/time/rate"

	"github.com/switchboard-pbx/switchboard/controlplane"
	"github.com/switchboard-pbx/switchboard/controlplane/api"
	"github.com/switchboard-pbx/switchboard/controlplane/auth"
	"github.com/switchboard-pbx/switchboard/controlplane/events"
	"github.com/switchboard-pbx/switchboard/controlplane/ratelimit"
)

// apiFlags are the HTTP API's limits, all named and documented in the README.
type apiFlags struct {
	amiTimeout              time.Duration
	ratePerCredential       float64
	burstPerCredential      int
	ratePerEnterprise       float64
	burstPerEnterprise      int
	maxConcurrentOriginates int
	maxBodyBytes            int64
	idempotencyTTL          time.Duration
	hideChannelNames        bool
	jwtIssuer, jwtAudience  string
	timezone                string
	keyCacheTTL             time.Duration
	pbxCacheTTL             time.Duration
}

func (f *apiFlags) register(fs *pflag.FlagSet) {
	fs.DurationVar(&f.amiTimeout, "ami-timeout", api.DefaultAMITimeout, "bound on one request to a PBX (tunnel + AMI); past it the API answers 504")
	fs.Float64Var(&f.ratePerCredential, "rate-per-credential", float64(ratelimit.DefaultPerCredential), "requests per second per API key or operator (429 past it)")
	fs.IntVar(&f.burstPerCredential, "burst-per-credential", ratelimit.DefaultCredentialBurst, "burst of --rate-per-credential")
	fs.Float64Var(&f.ratePerEnterprise, "rate-per-enterprise", float64(ratelimit.DefaultPerEnterprise), "requests per second per enterprise, all credentials together")
	fs.IntVar(&f.burstPerEnterprise, "burst-per-enterprise", ratelimit.DefaultEnterpriseBurst, "burst of --rate-per-enterprise")
	fs.IntVar(&f.maxConcurrentOriginates, "max-concurrent-originates", ratelimit.DefaultMaxConcurrentOriginates, "calls being set up at once per PBX (429 pbx_busy past it)")
	fs.Int64Var(&f.maxBodyBytes, "max-body-bytes", api.DefaultMaxBodyBytes, "largest accepted request body (413 past it)")
	fs.DurationVar(&f.idempotencyTTL, "idempotency-ttl", api.DefaultIdempotencyTTL, "how long an Idempotency-Key replays its first result")
	fs.BoolVar(&f.hideChannelNames, "hide-channel-names", false, "legacy hangup responses show <technology>/*** instead of real channel names")
	fs.StringVar(&f.jwtIssuer, "jwt-issuer", "", "require this iss claim in operator JWTs (empty: not checked)")
	fs.StringVar(&f.jwtAudience, "jwt-audience", "", "require this aud claim in operator JWTs (empty: not checked)")
	fs.StringVar(&f.timezone, "timezone", "", "IANA zone of the legacy hangup's terminated_at, e.g. Asia/Tehran (empty: the server's local zone)")
	fs.DurationVar(&f.keyCacheTTL, "key-cache-ttl", api.DefaultKeyCacheTTL, "how long a verified API key is trusted without a store lookup (a revoked key works at most this long); negative: off")
	fs.DurationVar(&f.pbxCacheTTL, "pbx-cache-ttl", api.DefaultPBXCacheTTL, "how long an enterprise's PBX list is reused; negative: off")
}

// jwtVerifier builds the operator JWT verifier from the flags; nil when
// neither a secret nor public keys are configured (API keys only).
func jwtVerifier(f serveFlags) (*auth.JWTVerifier, error) {
	if f.jwtSecretFile == "" && f.jwtPublicKey == "" {
		return nil, nil
	}
	jc := auth.JWTConfig{Issuer: f.api.jwtIssuer, Audience: f.api.jwtAudience}
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

// configureAPI builds the HTTP API and the events service from the flags
// and registers both on the server. The caller runs the returned service
// (webhook deliveries, retention) next to the server.
func configureAPI(cfg *controlplane.Config, f serveFlags) (*events.Service, error) {
	ac := api.Config{
		AMITimeout:              f.api.amiTimeout,
		MaxConcurrentOriginates: f.api.maxConcurrentOriginates,
		MaxBodyBytes:            f.api.maxBodyBytes,
		IdempotencyTTL:          f.api.idempotencyTTL,
		HideChannelNames:        f.api.hideChannelNames,
		KeyCacheTTL:             f.api.keyCacheTTL,
		PBXCacheTTL:             f.api.pbxCacheTTL,
		RateLimit: ratelimit.Config{
			PerCredential: rate.Limit(f.api.ratePerCredential), CredentialBurst: f.api.burstPerCredential,
			PerEnterprise: rate.Limit(f.api.ratePerEnterprise), EnterpriseBurst: f.api.burstPerEnterprise,
		},
	}
	if f.api.timezone != "" {
		loc, err := time.LoadLocation(f.api.timezone)
		if err != nil {
			return nil, usagef("--timezone: %v", err)
		}
		ac.Location = loc
	}
	jwt, err := jwtVerifier(f)
	if err != nil {
		return nil, err
	}
	ac.JWT = jwt
	svc, err := newEvents(f.events, jwt)
	if err != nil {
		return nil, err
	}
	apiRoutes := api.Routes(ac)
	cfg.Routes = func(mux *http.ServeMux, s *controlplane.Server) error {
		if err := apiRoutes(mux, s); err != nil {
			return err
		}
		return svc.Routes(mux, s)
	}
	return svc, nil
}
