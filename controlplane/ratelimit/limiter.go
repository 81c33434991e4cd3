package ratelimit

import (
	"fmt"
	"math"
	"time"

	"golang.org/x/time/rate"
)

// Defaults. A CRM or dashboard stays far below them; a runaway script hits
// them within a second.
const (
	// DefaultPerCredential is the sustained rate of one API key or operator.
	DefaultPerCredential rate.Limit = 20
	// DefaultCredentialBurst lets a credential catch up after a pause.
	DefaultCredentialBurst = 40
	// DefaultPerEnterprise is the sustained rate of all of one enterprise's
	// credentials together, so many keys cannot add up to a flood.
	DefaultPerEnterprise rate.Limit = 100
	// DefaultEnterpriseBurst is the enterprise bucket's size.
	DefaultEnterpriseBurst = 200
	// DefaultMaxKeys caps the buckets of each kind (credentials,
	// enterprises) held at once: about 200 bytes each.
	DefaultMaxKeys = 100_000
	// DefaultIdleTTL: a bucket unused this long is dropped. It is full by
	// then anyway, so dropping it changes nothing.
	DefaultIdleTTL = 10 * time.Minute
)

// Config configures New. Zero fields take the defaults above. A rate of
// rate.Inf switches that tier off.
type Config struct {
	PerCredential   rate.Limit
	CredentialBurst int
	PerEnterprise   rate.Limit
	EnterpriseBurst int
	// MaxKeys caps the credential buckets and, separately, the enterprise
	// buckets. Past it the least recently used bucket is dropped.
	MaxKeys int
	// IdleTTL must be at least the time an empty bucket takes to refill
	// (burst / rate): dropping a bucket sooner would hand its owner a full
	// one early.
	IdleTTL time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Share, when set, is the number of control-plane replicas enforcing
	// the same limits (the live replicas of a cluster): each bucket then
	// admits 1/Share of its rate and burst, so a credential whose requests
	// a load balancer spreads over the replicas gets about its rate in
	// total. Nil or a value below 1 means 1.
	Share func() int
}

func (c *Config) fillDefaults() {
	if c.PerCredential == 0 {
		c.PerCredential = DefaultPerCredential
	}
	if c.CredentialBurst == 0 {
		c.CredentialBurst = DefaultCredentialBurst
	}
	if c.PerEnterprise == 0 {
		c.PerEnterprise = DefaultPerEnterprise
	}
	if c.EnterpriseBurst == 0 {
		c.EnterpriseBurst = DefaultEnterpriseBurst
	}
	if c.MaxKeys == 0 {
		c.MaxKeys = DefaultMaxKeys
	}
	if c.IdleTTL == 0 {
		c.IdleTTL = DefaultIdleTTL
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Validate says what is wrong with c once defaults are filled in.
func (c Config) Validate() error {
	c.fillDefaults()
	if err := validTier("credential", c.PerCredential, c.CredentialBurst, c.IdleTTL); err != nil {
		return err
	}
	if err := validTier("enterprise", c.PerEnterprise, c.EnterpriseBurst, c.IdleTTL); err != nil {
		return err
	}
	if c.MaxKeys < 0 {
		return fmt.Errorf("ratelimit: MaxKeys %d is negative", c.MaxKeys)
	}
	if c.IdleTTL < 0 {
		return fmt.Errorf("ratelimit: IdleTTL %v is negative", c.IdleTTL)
	}
	return nil
}

func validTier(name string, r rate.Limit, burst int, idle time.Duration) error {
	if r < 0 {
		return fmt.Errorf("ratelimit: %s rate %v is negative", name, r)
	}
	if burst < 0 {
		return fmt.Errorf("ratelimit: %s burst %d is negative", name, burst)
	}
	if r == rate.Inf {
		return nil
	}
	refill := time.Duration(float64(burst) / float64(r) * float64(time.Second))
	if idle < refill {
		return fmt.Errorf("ratelimit: IdleTTL %v is shorter than the %s bucket's refill time %v (burst %d / %v per second)", idle, name, refill, burst, float64(r))
	}
	return nil
}

// Limiter applies two token buckets to every request: the credential's
// and its enterprise's. A request passes only if both have a token, and a
// refused request costs nothing. It is safe for concurrent use and starts
// no goroutines.
type Limiter struct {
	now   func() time.Time
	share func() int
	creds *table[string]
	ents  *table[int64]
}

// New validates cfg, fills defaults and returns a Limiter.
func New(cfg Config) (*Limiter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.fillDefaults()
	l := &Limiter{now: cfg.Now, share: cfg.Share}
	if cfg.PerCredential != rate.Inf {
		l.creds = newTable[string](cfg.PerCredential, cfg.CredentialBurst, cfg.MaxKeys, cfg.IdleTTL)
	}
	if cfg.PerEnterprise != rate.Inf {
		l.ents = newTable[int64](cfg.PerEnterprise, cfg.EnterpriseBurst, cfg.MaxKeys, cfg.IdleTTL)
	}
	return l, nil
}

// Allow takes one token from credentialID's bucket and one from
// enterpriseID's. When either is empty it takes none and returns how long
// until both would have one (for Retry-After, rounded up to seconds by
// the caller). An enterpriseID of 0 (a platform admin with no enterprise)
// skips the enterprise bucket; an empty credentialID is one shared bucket,
// so a caller bug limits too much rather than not at all.
func (l *Limiter) Allow(credentialID string, enterpriseID int64) (ok bool, retryAfter time.Duration) {
	now := l.now()
	var cred, ent *entry
	if l.ents != nil && enterpriseID != 0 {
		ent = l.ents.get(enterpriseID, now)
	}
	if l.creds != nil {
		cred = l.creds.get(credentialID, now)
	}
	// Check both buckets, then take from both, holding both buckets' locks
	// (enterprise first, always), so the pair is atomic: a refused request
	// takes nothing. Reserving and cancelling instead would leak tokens
	// whenever two refusals overlap, and one abusive key could then drive
	// its whole enterprise's bucket into lasting debt.
	if ent != nil {
		ent.mu.Lock()
		defer ent.mu.Unlock()
	}
	if cred != nil {
		cred.mu.Lock()
		defer cred.mu.Unlock()
	}
	if l.share != nil {
		share := max(1, l.share())
		for _, e := range []*entry{ent, cred} {
			if e != nil {
				e.setShare(share, now)
			}
		}
	}
	retryAfter = max(wait(cred, now), wait(ent, now))
	if retryAfter > 0 {
		return false, retryAfter
	}
	if cred != nil {
		cred.lim.AllowN(now, 1)
	}
	if ent != nil {
		ent.lim.AllowN(now, 1)
	}
	return true, 0
}

// wait is how long until e's bucket has a whole token; zero if it has one
// now.
func wait(e *entry, now time.Time) time.Duration {
	if e == nil {
		return 0
	}
	tokens := e.lim.TokensAt(now)
	if tokens >= 1 {
		return 0
	}
	d := time.Duration(math.Round((1 - tokens) / float64(e.limit) * float64(time.Second)))
	return max(d, time.Nanosecond)
}

// Buckets reports how many credential and enterprise buckets are held (for
// metrics and tests).
func (l *Limiter) Buckets() (credentials, enterprises int) {
	if l.creds != nil {
		credentials = l.creds.len()
	}
	if l.ents != nil {
		enterprises = l.ents.len()
	}
	return credentials, enterprises
}
