package auth

import (
	"container/heap"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Limits for browser tickets.
const (
	// DefaultTicketTTL: a browser asks for a ticket and opens the
	// WebSocket right away, so a minute is plenty.
	DefaultTicketTTL = 60 * time.Second
	// DefaultMaxTicketTTL caps what Issue grants whatever it is asked.
	DefaultMaxTicketTTL = 5 * time.Minute
	// DefaultMaxTickets bounds memory: unredeemed, unexpired tickets held
	// at once (about 300 bytes each).
	DefaultMaxTickets = 10_000
	// DefaultMaxTicketsPerEnterprise bounds one enterprise's share, so one
	// tenant taking every ticket leaves the others theirs.
	DefaultMaxTicketsPerEnterprise = 200
)

// TicketPrefix starts every ticket, so logs and handlers can tell a ticket
// from an API key (sbk_) at a glance.
const TicketPrefix = "sbt_"

var (
	// ErrInvalidTicket: forged, mangled, unknown, or already redeemed.
	// Returned wrapped together with ErrInvalidCredentials.
	ErrInvalidTicket = errors.New("invalid or already used ticket")
	// ErrTooManyTickets: MaxOutstanding unexpired tickets are waiting to
	// be redeemed (answer 503).
	ErrTooManyTickets = errors.New("too many outstanding tickets")
)

// TicketConfig configures NewTickets.
type TicketConfig struct {
	// TTL is granted when Issue is asked for zero. Default DefaultTicketTTL.
	TTL time.Duration
	// MaxTTL caps every ticket. Default DefaultMaxTicketTTL.
	MaxTTL time.Duration
	// MaxOutstanding bounds memory. Default DefaultMaxTickets.
	MaxOutstanding int
	// MaxPerEnterprise bounds one enterprise's outstanding tickets.
	// Default DefaultMaxTicketsPerEnterprise.
	MaxPerEnterprise int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Key MACs the tickets; empty draws a random key at start. Replicas
	// that share a Store share a Key (derived from the cluster secret).
	Key []byte
	// Store, if set, keeps outstanding tickets outside the process, so a
	// ticket issued by one replica is redeemed on any, once; nil keeps
	// them in memory (MaxOutstanding bounds them).
	Store TicketStore
}

// TicketStore keeps tickets for several replicas (the control plane's
// store). id is a digest of the ticket's random part.
type TicketStore interface {
	// Put stores a ticket, or fails with ErrTooManyTickets (wrapped) when
	// the enterprise holds maxPerEnterprise.
	Put(ctx context.Context, id string, p Principal, exp time.Time, maxPerEnterprise int) error
	// Take deletes the ticket and returns what it was issued for; an
	// error wrapping ErrInvalidTicket when it is not there.
	Take(ctx context.Context, id string) (Principal, time.Time, error)
	// Revoke deletes a credential's tickets and says how many.
	Revoke(ctx context.Context, credentialID string) (int, error)
}

// Validate says what is wrong with c, if anything.
func (c TicketConfig) Validate() error {
	switch {
	case len(c.Key) > 0 && len(c.Key) < 32:
		return fmt.Errorf("tickets: Key is %d bytes; want at least 32", len(c.Key))
	case c.TTL < 0:
		return fmt.Errorf("tickets: TTL %v is negative", c.TTL)
	case c.MaxTTL < 0:
		return fmt.Errorf("tickets: MaxTTL %v is negative", c.MaxTTL)
	case c.MaxTTL > 0 && c.TTL > c.MaxTTL:
		return fmt.Errorf("tickets: TTL %v exceeds MaxTTL %v", c.TTL, c.MaxTTL)
	case c.MaxOutstanding < 0:
		return fmt.Errorf("tickets: MaxOutstanding %d is negative", c.MaxOutstanding)
	case c.MaxPerEnterprise < 0:
		return fmt.Errorf("tickets: MaxPerEnterprise %d is negative", c.MaxPerEnterprise)
	}
	return nil
}

// Tickets issues and redeems short-lived, single-use tickets that stand in
// for a Principal where a browser cannot set an Authorization header (the
// events WebSocket: GET /v1/events?ticket=…). A ticket is a random id and
// an expiry, MACed with a key drawn at start-up (tickets then die with the
// process) or given (TicketConfig.Key, with a TicketStore: any replica
// redeems them), so a forged or altered one is refused before any lookup.
// It is safe for concurrent use.
type Tickets struct {
	cfg TicketConfig
	key []byte

	mu      sync.Mutex
	pending map[ticketID]*pendingTicket
	byExp   expiryHeap
	perEnt  map[int64]int // outstanding tickets by enterprise id
}

type ticketID [16]byte

type pendingTicket struct {
	id    ticketID
	p     Principal
	exp   time.Time
	index int // in byExp
}

// Layout of a ticket before base64: id | expiry (unix ns, big endian) | MAC.
const (
	ticketPayloadLen = 16 + 8
	ticketMACLen     = sha256.Size
)

// NewTickets validates cfg and fills defaults.
func NewTickets(cfg TicketConfig) (*Tickets, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.MaxTTL == 0 {
		cfg.MaxTTL = DefaultMaxTicketTTL
	}
	if cfg.TTL == 0 {
		cfg.TTL = min(DefaultTicketTTL, cfg.MaxTTL)
	}
	if cfg.MaxOutstanding == 0 {
		cfg.MaxOutstanding = DefaultMaxTickets
	}
	if cfg.MaxPerEnterprise == 0 {
		cfg.MaxPerEnterprise = DefaultMaxTicketsPerEnterprise
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	t := &Tickets{cfg: cfg, key: cfg.Key, pending: make(map[ticketID]*pendingTicket), perEnt: make(map[int64]int)}
	if len(t.key) == 0 {
		t.key = make([]byte, 32)
		rand.Read(t.key)
	}
	return t, nil
}

// storeID is a stored ticket's key: a digest of its random id, so the
// store never holds what a ticket redeems with.
func storeID(id ticketID) string {
	sum := sha256.Sum256(id[:])
	return hex.EncodeToString(sum[:])
}

// Issue returns a ticket for p valid for ttl (zero: the configured TTL;
// capped at MaxTTL). It fails with ErrTooManyTickets (this process or p's
// enterprise holds as many as it may), or with the Store's error.
func (t *Tickets) Issue(ctx context.Context, p Principal, ttl time.Duration) (string, error) {
	if ttl <= 0 {
		ttl = t.cfg.TTL
	}
	ttl = min(ttl, t.cfg.MaxTTL)
	now := t.cfg.Now()
	pt := &pendingTicket{p: p.clone(), exp: now.Add(ttl)}
	rand.Read(pt.id[:])
	if t.cfg.Store != nil {
		if err := t.cfg.Store.Put(ctx, storeID(pt.id), pt.p, pt.exp, t.cfg.MaxPerEnterprise); err != nil {
			return "", err
		}
		return t.encode(pt), nil
	}

	t.mu.Lock()
	t.expireLocked(now)
	if len(t.pending) >= t.cfg.MaxOutstanding {
		t.mu.Unlock()
		return "", ErrTooManyTickets
	}
	if t.perEnt[p.EnterpriseID] >= t.cfg.MaxPerEnterprise {
		t.mu.Unlock()
		return "", fmt.Errorf("%w for the enterprise (%d)", ErrTooManyTickets, t.cfg.MaxPerEnterprise)
	}
	t.perEnt[p.EnterpriseID]++
	t.pending[pt.id] = pt
	heap.Push(&t.byExp, pt)
	t.mu.Unlock()
	return t.encode(pt), nil
}

func (t *Tickets) encode(pt *pendingTicket) string {
	var raw [ticketPayloadLen + ticketMACLen]byte
	copy(raw[:16], pt.id[:])
	binary.BigEndian.PutUint64(raw[16:ticketPayloadLen], uint64(pt.exp.UnixNano()))
	copy(raw[ticketPayloadLen:], t.mac(raw[:ticketPayloadLen]))
	return TicketPrefix + base64.RawURLEncoding.EncodeToString(raw[:])
}

// Redeem returns the Principal a ticket was issued for, once. Errors match
// ErrInvalidCredentials and either ErrInvalidTicket or ErrTokenExpired,
// or are the Store's.
func (t *Tickets) Redeem(ctx context.Context, ticket string) (Principal, error) {
	enc, ok := strings.CutPrefix(ticket, TicketPrefix)
	if !ok || base64.RawURLEncoding.DecodedLen(len(enc)) != ticketPayloadLen+ticketMACLen {
		return Principal{}, invalid(ErrInvalidTicket)
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(enc)
	if err != nil || len(raw) != ticketPayloadLen+ticketMACLen {
		return Principal{}, invalid(ErrInvalidTicket)
	}
	if !hmac.Equal(raw[ticketPayloadLen:], t.mac(raw[:ticketPayloadLen])) {
		return Principal{}, invalid(ErrInvalidTicket)
	}
	var id ticketID
	copy(id[:], raw[:16])
	now := t.cfg.Now()
	if t.cfg.Store != nil {
		p, exp, err := t.cfg.Store.Take(ctx, storeID(id))
		if errors.Is(err, ErrInvalidTicket) {
			return Principal{}, invalid(ErrInvalidTicket)
		}
		if err != nil {
			return Principal{}, err
		}
		if !now.Before(exp) {
			return Principal{}, invalid(ErrTokenExpired)
		}
		return p, nil
	}

	t.mu.Lock()
	defer t.mu.Unlock()
	pt, ok := t.pending[id]
	if !ok {
		return Principal{}, invalid(ErrInvalidTicket)
	}
	t.removeLocked(pt)
	if !now.Before(pt.exp) {
		return Principal{}, invalid(ErrTokenExpired)
	}
	return pt.p, nil
}

// Revoke drops every unredeemed ticket issued to the credential (a
// Principal's CredentialID) and says how many: the credential was revoked,
// so what it was given must not be redeemed either.
func (t *Tickets) Revoke(ctx context.Context, credentialID string) (int, error) {
	if t.cfg.Store != nil {
		return t.cfg.Store.Revoke(ctx, credentialID)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	var drop []*pendingTicket
	for _, pt := range t.pending {
		if pt.p.CredentialID() == credentialID {
			drop = append(drop, pt)
		}
	}
	for _, pt := range drop {
		t.removeLocked(pt)
	}
	return len(drop), nil
}

// Outstanding reports how many tickets await redemption in this process
// (for metrics; 0 with a Store).
func (t *Tickets) Outstanding() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.pending)
}

func (t *Tickets) mac(payload []byte) []byte {
	m := hmac.New(sha256.New, t.key)
	m.Write([]byte("switchboard ticket v1\x00"))
	m.Write(payload)
	return m.Sum(nil)
}

func (t *Tickets) expireLocked(now time.Time) {
	for len(t.byExp) > 0 && !now.Before(t.byExp[0].exp) {
		t.removeLocked(t.byExp[0])
	}
}

func (t *Tickets) removeLocked(pt *pendingTicket) {
	heap.Remove(&t.byExp, pt.index)
	delete(t.pending, pt.id)
	if t.perEnt[pt.p.EnterpriseID]--; t.perEnt[pt.p.EnterpriseID] <= 0 {
		delete(t.perEnt, pt.p.EnterpriseID)
	}
}

// expiryHeap orders pending tickets by expiry so expired ones are dropped
// in O(log n) each, without scanning.
type expiryHeap []*pendingTicket

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].exp.Before(h[j].exp) }
func (h expiryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}
func (h *expiryHeap) Push(x any) {
	pt := x.(*pendingTicket)
	pt.index = len(*h)
	*h = append(*h, pt)
}
func (h *expiryHeap) Pop() any {
	old := *h
	pt := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return pt
}
