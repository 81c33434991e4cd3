package auth

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Limits and defaults for operator JWTs.
const (
	// MinHMACSecretBytes: HS256 secrets shorter than this are refused,
	// because a short secret can be brute-forced offline from one token.
	MinHMACSecretBytes = 32
	// MinRSABits: smaller RSA public keys are refused.
	MinRSABits = 2048
	// DefaultLeeway absorbs clock skew between the issuer and us for exp,
	// nbf and iat.
	DefaultLeeway = 30 * time.Second
	// maxClaimLen bounds sub and enterprise, which end up in logs and audit
	// rows.
	maxClaimLen = 256
)

// Signing algorithms we accept. Nothing else, ever: in particular not
// "none", and not HS256 with a public key as the secret.
const (
	AlgHS256 = "HS256"
	AlgRS256 = "RS256"
	AlgEdDSA = "EdDSA"
)

// OperatorClaims are the claims of an operator JWT.
type OperatorClaims struct {
	// Subject ("sub") is the operator id. Required.
	Subject string
	// Enterprise ("enterprise") is the enterprise number, e.g. "0367".
	// Required unless Roles contains platform_admin.
	Enterprise string
	// Roles ("roles"): see Roles. Verify keeps known roles only.
	Roles []string
	// Issuer ("iss") and Audience ("aud") are optional.
	Issuer   string
	Audience []string
	// IssuedAt ("iat"): MintHS256 uses time.Now when zero.
	IssuedAt time.Time
	// ExpiresAt ("exp") is set by Verify; MintHS256 derives it from its ttl.
	ExpiresAt time.Time
}

// wireClaims is the JSON shape of the token payload.
type wireClaims struct {
	Enterprise string   `json:"enterprise,omitempty"`
	Roles      []string `json:"roles"`
	jwt.RegisteredClaims
}

// JWTConfig configures NewJWTVerifier. At least one of HMACSecret and
// PublicKeys must be set; only the algorithms they imply are accepted.
type JWTConfig struct {
	// HMACSecret enables HS256 (see LoadHMACSecret). At least
	// MinHMACSecretBytes long.
	HMACSecret []byte
	// PublicKeys enable RS256 (*rsa.PublicKey) and EdDSA
	// (ed25519.PublicKey); see LoadPublicKeys. A token is accepted if any
	// key of its algorithm verifies it, so keys can be rotated by listing
	// old and new together.
	PublicKeys []crypto.PublicKey
	// Issuer, when set, must equal the token's "iss".
	Issuer string
	// Audience, when set, must be one of the token's "aud".
	Audience string
	// Leeway for exp, nbf and iat. Zero means DefaultLeeway.
	Leeway time.Duration
	// MaxTTL refuses a token meant to live longer (exp − iat, or exp −
	// now): a leaked long-lived token is a standing credential. Zero
	// means DefaultMaxTTL.
	MaxTTL time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// DefaultMaxTTL is JWTConfig.MaxTTL's default: an operator's working day
// and then some.
const DefaultMaxTTL = 24 * time.Hour

// Validate says what is wrong with c, if anything.
func (c JWTConfig) Validate() error {
	if len(c.HMACSecret) == 0 && len(c.PublicKeys) == 0 {
		return errors.New("jwt: no HMAC secret and no public keys: nothing could verify a token")
	}
	if len(c.HMACSecret) > 0 && len(c.HMACSecret) < MinHMACSecretBytes {
		return fmt.Errorf("jwt: HMAC secret is %d bytes, need at least %d", len(c.HMACSecret), MinHMACSecretBytes)
	}
	for i, k := range c.PublicKeys {
		if err := checkPublicKey(k); err != nil {
			return fmt.Errorf("jwt: public key %d: %w", i+1, err)
		}
	}
	if c.Leeway < 0 {
		return fmt.Errorf("jwt: leeway %v is negative", c.Leeway)
	}
	if c.MaxTTL < 0 {
		return fmt.Errorf("jwt: max TTL %v is negative", c.MaxTTL)
	}
	return nil
}

func checkPublicKey(k crypto.PublicKey) error {
	switch k := k.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < MinRSABits {
			return fmt.Errorf("RSA key is %d bits, need at least %d", k.N.BitLen(), MinRSABits)
		}
		return nil
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return fmt.Errorf("Ed25519 key is %d bytes, want %d", len(k), ed25519.PublicKeySize)
		}
		return nil
	default:
		return fmt.Errorf("unsupported key type %T (want RSA for RS256 or Ed25519 for EdDSA)", k)
	}
}

// JWTVerifier checks operator tokens. It is safe for concurrent use.
type JWTVerifier struct {
	maxTTL time.Duration
	now    func() time.Time
	hmac   []byte
	rsa    []jwt.VerificationKey
	ed     []jwt.VerificationKey
	algs   []string // the algorithms of the configured keys
	parser *jwt.Parser
}

// NewJWTVerifier validates cfg and builds a verifier.
func NewJWTVerifier(cfg JWTConfig) (*JWTVerifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Leeway == 0 {
		cfg.Leeway = DefaultLeeway
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxTTL == 0 {
		cfg.MaxTTL = DefaultMaxTTL
	}
	v := &JWTVerifier{maxTTL: cfg.MaxTTL, now: cfg.Now}
	var algs []string
	if len(cfg.HMACSecret) > 0 {
		v.hmac = slices.Clone(cfg.HMACSecret)
		algs = append(algs, AlgHS256)
	}
	for _, k := range cfg.PublicKeys {
		switch k := k.(type) {
		case *rsa.PublicKey:
			v.rsa = append(v.rsa, k)
		case ed25519.PublicKey:
			v.ed = append(v.ed, k)
		}
	}
	if len(v.rsa) > 0 {
		algs = append(algs, AlgRS256)
	}
	if len(v.ed) > 0 {
		algs = append(algs, AlgEdDSA)
	}
	v.algs = algs
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(algs),
		jwt.WithLeeway(cfg.Leeway),
		jwt.WithTimeFunc(cfg.Now),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	v.parser = jwt.NewParser(opts...)
	return v, nil
}

// keyFor hands the parser only keys of the token's own algorithm, compared
// by method identity rather than by name, so no header can make an RSA
// public key act as an HMAC secret.
func (v *JWTVerifier) keyFor(t *jwt.Token) (any, error) {
	switch t.Method {
	case jwt.SigningMethodHS256:
		if v.hmac != nil {
			return v.hmac, nil
		}
	case jwt.SigningMethodRS256:
		if len(v.rsa) > 0 {
			return jwt.VerificationKeySet{Keys: v.rsa}, nil
		}
	case jwt.SigningMethodEdDSA:
		if len(v.ed) > 0 {
			return jwt.VerificationKeySet{Keys: v.ed}, nil
		}
	}
	return nil, errors.New("algorithm not configured")
}

// Verify checks token's algorithm, signature, exp/nbf/iat (with leeway),
// iss/aud when configured, and Switchboard's own claims. Unknown roles are
// dropped rather than refused, so an identity provider may put roles for
// other applications in the same claim; a token left with no known role
// verifies but is allowed nothing.
//
// Every error matches ErrInvalidCredentials and one specific reason; its
// text never contains the token.
func (v *JWTVerifier) Verify(token string) (OperatorClaims, error) {
	var wc wireClaims
	if _, err := v.parser.ParseWithClaims(token, &wc, v.keyFor); err != nil {
		if v.algorithmRefused(token) {
			return OperatorClaims{}, invalid(ErrTokenAlgorithm)
		}
		return OperatorClaims{}, invalid(jwtReason(err))
	}
	c := OperatorClaims{
		Subject:    wc.Subject,
		Enterprise: wc.Enterprise,
		Issuer:     wc.Issuer,
		Audience:   []string(wc.Audience),
	}
	if wc.IssuedAt != nil {
		c.IssuedAt = wc.IssuedAt.Time
	}
	if wc.ExpiresAt != nil {
		c.ExpiresAt = wc.ExpiresAt.Time
	}
	for _, r := range wc.Roles {
		if slices.Contains(Roles, r) && !slices.Contains(c.Roles, r) {
			c.Roles = append(c.Roles, r)
		}
	}
	if err := checkClaims(c, wc.Roles != nil); err != nil {
		return OperatorClaims{}, invalid(fmt.Errorf("%w: %w", ErrTokenClaims, &claimsError{problem: err.Error()}))
	}
	if err := v.checkLifetime(c); err != nil {
		return OperatorClaims{}, invalid(fmt.Errorf("%w: %w", ErrTokenClaims, err))
	}
	return c, nil
}

// checkLifetime refuses a token meant to live longer than MaxTTL.
func (v *JWTVerifier) checkLifetime(c OperatorClaims) error {
	life := c.ExpiresAt.Sub(v.now())
	if !c.IssuedAt.IsZero() {
		life = max(life, c.ExpiresAt.Sub(c.IssuedAt))
	}
	if life > v.maxTTL {
		return &claimsError{problem: fmt.Sprintf("lifetime %v is over this server's maximum %v (--jwt-max-ttl)", life.Round(time.Second), v.maxTTL)}
	}
	return nil
}

// algorithmRefused reports whether a token that failed to verify names an
// algorithm this verifier does not accept (its header only: nothing of it
// is trusted, it only chooses the words of the refusal).
func (v *JWTVerifier) algorithmRefused(token string) bool {
	t, _, err := jwt.NewParser().ParseUnverified(token, jwt.MapClaims{})
	if err != nil || t == nil {
		return false
	}
	alg, _ := t.Header["alg"].(string)
	return !slices.Contains(v.algs, alg)
}

// checkClaims applies the rules shared by Verify and MintHS256.
func checkClaims(c OperatorClaims, hasRoles bool) error {
	if !printable(c.Subject, maxClaimLen) {
		return errors.New(`"sub" missing or not a printable string`)
	}
	if !hasRoles {
		return errors.New(`"roles" missing`)
	}
	if c.Enterprise == "" {
		if !slices.Contains(c.Roles, RolePlatformAdmin) {
			return errors.New(`"enterprise" missing (only platform_admin may omit it)`)
		}
	} else if !printable(c.Enterprise, maxClaimLen) {
		return errors.New(`"enterprise" is not a printable string`)
	}
	return nil
}

// printable: 1..max bytes of visible ASCII or any non-control Unicode, so
// the value is safe to log and store.
func printable(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '\uFFFD' {
			return false
		}
	}
	return true
}

// jwtReason turns the library's error into one of our fixed reasons, so
// nothing the library chose to quote ends up in our errors.
func jwtReason(err error) error {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return ErrMalformedCredentials
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return ErrTokenSignature
	case errors.Is(err, jwt.ErrTokenExpired):
		return ErrTokenExpired
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return ErrTokenNotYetValid
	default:
		return ErrTokenClaims
	}
}

// MintHS256 signs an operator token with secret, valid for ttl from
// c.IssuedAt (or now). It is a development and operations helper
// (`switchboard jwt mint`, tests); production operators normally get their
// tokens from an identity provider. It refuses what Verify would refuse,
// and also unknown roles, so a typo fails at mint time.
func MintHS256(secret []byte, c OperatorClaims, ttl time.Duration) (string, error) {
	if len(secret) < MinHMACSecretBytes {
		return "", fmt.Errorf("mint jwt: secret is %d bytes, need at least %d", len(secret), MinHMACSecretBytes)
	}
	if ttl <= 0 {
		return "", fmt.Errorf("mint jwt: ttl %v must be positive", ttl)
	}
	if len(c.Roles) == 0 {
		return "", fmt.Errorf("mint jwt: no roles (known: %s)", strings.Join(Roles, ", "))
	}
	for _, r := range c.Roles {
		if !slices.Contains(Roles, r) {
			return "", fmt.Errorf("mint jwt: unknown role %q (known: %s)", r, strings.Join(Roles, ", "))
		}
	}
	if err := checkClaims(c, true); err != nil {
		return "", fmt.Errorf("mint jwt: %w", err)
	}
	iat := c.IssuedAt
	if iat.IsZero() {
		iat = time.Now()
	}
	wc := wireClaims{
		Enterprise: c.Enterprise,
		Roles:      c.Roles,
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   c.Subject,
			Issuer:    c.Issuer,
			Audience:  c.Audience,
			IssuedAt:  jwt.NewNumericDate(iat),
			ExpiresAt: jwt.NewNumericDate(iat.Add(ttl)),
		},
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, wc).SignedString(secret)
	if err != nil {
		return "", fmt.Errorf("mint jwt: %w", err)
	}
	return s, nil
}

// LoadHMACSecret reads an HS256 secret from path. One trailing newline
// ("\n" or "\r\n", as left by editors and echo) is removed; everything else
// is the secret, byte for byte. Secrets shorter than MinHMACSecretBytes are
// refused. Generate one with: head -c 48 /dev/urandom | base64 > jwt.secret
func LoadHMACSecret(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read jwt secret: %w", err)
	}
	b = trimOneNewline(b)
	if len(b) < MinHMACSecretBytes {
		return nil, fmt.Errorf("jwt secret %s is %d bytes, need at least %d (e.g. head -c 48 /dev/urandom | base64)", path, len(b), MinHMACSecretBytes)
	}
	return b, nil
}

func trimOneNewline(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
		if n := len(b); n > 0 && b[n-1] == '\r' {
			b = b[:n-1]
		}
	}
	return b
}

// LoadPublicKeys reads one or more PEM blocks from path: "PUBLIC KEY"
// (PKIX: RSA or Ed25519), "RSA PUBLIC KEY" (PKCS#1) or "CERTIFICATE" (its
// public key is used; the certificate itself is not validated). A private
// key in the file is an error: the control plane must never hold one.
func LoadPublicKeys(path string) ([]crypto.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read jwt public keys: %w", err)
	}
	keys, err := ParsePublicKeys(data)
	if err != nil {
		return nil, fmt.Errorf("jwt public keys %s: %w", path, err)
	}
	return keys, nil
}

// ParsePublicKeys is LoadPublicKeys on bytes.
func ParsePublicKeys(data []byte) ([]crypto.PublicKey, error) {
	var keys []crypto.PublicKey
	rest := data
	for n := 1; ; n++ {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		k, err := parsePEMBlock(block)
		if err != nil {
			return nil, fmt.Errorf("PEM block %d: %w", n, err)
		}
		if err := checkPublicKey(k); err != nil {
			return nil, fmt.Errorf("PEM block %d: %w", n, err)
		}
		keys = append(keys, k)
	}
	if len(strings.TrimSpace(string(rest))) > 0 {
		return nil, fmt.Errorf("unparsable data after %d PEM block(s)", len(keys))
	}
	if len(keys) == 0 {
		return nil, errors.New("no PEM public key found")
	}
	return keys, nil
}

func parsePEMBlock(b *pem.Block) (crypto.PublicKey, error) {
	switch b.Type {
	case "PUBLIC KEY":
		return x509.ParsePKIXPublicKey(b.Bytes)
	case "RSA PUBLIC KEY":
		return x509.ParsePKCS1PublicKey(b.Bytes)
	case "CERTIFICATE":
		cert, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, err
		}
		return cert.PublicKey, nil
	default:
		if strings.Contains(b.Type, "PRIVATE KEY") {
			return nil, fmt.Errorf("%q: this is a private key; give the public key only", b.Type)
		}
		return nil, fmt.Errorf("unsupported PEM type %q", b.Type)
	}
}
