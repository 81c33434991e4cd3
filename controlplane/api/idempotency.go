package api

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/store"
)

// IdempotencyKeyHeader makes POST /v1/calls safe to retry: the first
// successful result for a key is stored and replayed to every retry with
// the same body; the same key with another body is 409. Failures are not
// stored, so a retry after a 503 or 504 tries again. The key is claimed
// in the store before the PBX is called, so the same key sent to several
// replicas at once is one call.
const IdempotencyKeyHeader = "Idempotency-Key"

// IdempotentReplayHeader is set on a replayed response.
const IdempotentReplayHeader = "Idempotent-Replayed"

// keyedMutex serialises requests carrying the same idempotency key in this
// process, so they wait here rather than poll the store's claim.
type keyedMutex struct {
	mu    sync.Mutex
	locks map[string]*keyLock
}

type keyLock struct {
	mu   sync.Mutex
	refs int
}

func (k *keyedMutex) lock(key string) (unlock func()) {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = make(map[string]*keyLock)
	}
	l := k.locks[key]
	if l == nil {
		l = &keyLock{}
		k.locks[key] = l
	}
	l.refs++
	k.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		k.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(k.locks, key)
		}
		k.mu.Unlock()
	}
}

// idemPoll is how often a request waits before asking again for a key
// another request (on another replica) holds.
const idemPoll = 20 * time.Millisecond

// idemState is one request's idempotency bookkeeping.
type idemState struct {
	key, hash string
	replayed  bool
	release   func()
	// token is the store's claim of the key while this request runs;
	// stored: the PBX was called, so the claim is kept (completed by the
	// result, or left to its lease if that could not be stored).
	token  string
	stored bool
	c      *call
}

// unlock ends the request's hold on the key: a claim whose request
// failed is given back, so a retry acts again.
func (s *idemState) unlock() {
	if s == nil {
		return
	}
	if s.token != "" && !s.stored {
		ctx, cancel := s.c.storeCtx()
		if err := s.c.api.cfg.Store.ReleaseIdempotent(ctx, s.c.principal.EnterpriseID, s.key, s.token); err != nil {
			// The claim's lease ends it.
			s.c.log.Warn("release idempotency key", "err", err)
		}
		cancel()
		s.token = ""
	}
	if s.release != nil {
		s.release()
		s.release = nil
	}
}

// idemLease bounds a claim whose replica stopped during its request: the
// request itself ends within the AMI timeout, and its result is stored
// within a store timeout.
func (a *API) idemLease() time.Duration { return a.cfg.AMITimeout + 2*a.cfg.StoreTimeout }

// idempotency claims the request's key in the store before anything is
// sent to a PBX, so the same key sent to two replicas at once is one
// call: the second waits for the first's result and replays it. It
// returns replayed when the reply was set from the stored first result;
// otherwise the caller must unlock() when done and store() a success.
func (c *call) idempotency(req any) (*idemState, error) {
	key := c.r.Header.Get(IdempotencyKeyHeader)
	if key == "" {
		return &idemState{}, nil
	}
	if len(key) > store.MaxIdempotencyKeyLen || !printableASCII(key) {
		return nil, invalidf("header %s must be 1-%d printable ASCII characters", IdempotencyKeyHeader, store.MaxIdempotencyKeyLen)
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(append([]byte(c.rt.pattern()+"\n"), body...))
	st := &idemState{key: key, hash: hex.EncodeToString(sum[:]), c: c}
	st.release = c.api.idem.lock(strconv.FormatInt(c.principal.EnterpriseID, 10) + "\x00" + key)
	lease := c.api.idemLease()
	giveUp := time.Now().Add(lease)
	for {
		ctx, cancel := c.storeCtx()
		token, rec, err := c.api.cfg.Store.ClaimIdempotent(ctx, store.Idempotent{EnterpriseID: c.principal.EnterpriseID, Key: key, RequestHash: st.hash}, lease)
		cancel()
		switch {
		case err == nil && token != "":
			st.token = token
			return st, nil
		case err == nil:
			st.unlock()
			return st, c.replay(st, rec)
		case errors.Is(err, store.ErrIdempotencyInFlight) && !rec.Matches(st.hash):
			st.unlock()
			return nil, errorf(http.StatusConflict, CodeIdempotencyConflict,
				"%s %q was already used with a different request", IdempotencyKeyHeader, key)
		case errors.Is(err, store.ErrIdempotencyInFlight) && time.Now().After(giveUp):
			st.unlock()
			return nil, &Error{Status: http.StatusConflict, Code: CodeIdempotencyInProgress, RetryAfter: int(lease / time.Second),
				Message: fmt.Sprintf("a request with %s %q is still in progress; retry later", IdempotencyKeyHeader, key)}
		case errors.Is(err, store.ErrIdempotencyInFlight):
			// Another replica runs it: its result is replayed here.
			t := time.NewTimer(idemPoll)
			select {
			case <-t.C:
			case <-c.ctx().Done():
				t.Stop()
				st.unlock()
				return nil, errorf(http.StatusServiceUnavailable, CodeUnavailable, "request canceled")
			}
		default:
			st.unlock()
			return nil, storeError(err)
		}
	}
}

// replay sets the reply from the key's stored first result.
func (c *call) replay(st *idemState, rec store.Idempotent) error {
	if !rec.Matches(st.hash) {
		return errorf(http.StatusConflict, CodeIdempotencyConflict,
			"%s %q was already used with a different request", IdempotencyKeyHeader, st.key)
	}
	st.replayed = true
	c.status, c.body = rec.StatusCode, rec.Body
	c.setHeader(IdempotentReplayHeader, "true")
	c.audit.Details, _ = json.Marshal(map[string]any{"idempotent_replay": true})
	var prev callResponse
	if json.Unmarshal(rec.Body, &prev) == nil {
		c.audit.UniqueID, c.audit.AgentID, c.audit.Channel = prev.CallID, prev.PBX, prev.Channel
	}
	return nil
}

// store records the reply as the key's first result. A failure to store
// is logged, not returned: the call was placed and the caller must learn
// its id; the claim then holds the key until its lease ends.
func (s *idemState) store(c *call) {
	if s.key == "" {
		return
	}
	ctx, cancel := c.storeCtx()
	defer cancel()
	_, err := c.api.cfg.Store.PutIdempotent(ctx, store.Idempotent{
		EnterpriseID: c.principal.EnterpriseID, Key: s.key, RequestHash: s.hash, StatusCode: c.status, Body: c.body,
	})
	// Stored or not, the PBX was called: the claim is not given back (a
	// retry replays the result, or waits for the claim's lease to end).
	s.stored = true
	if err != nil {
		c.log.Error("idempotency record not stored; a retry after the key's lease would dial again", "err", err)
	}
	c.api.maybePruneIdempotency(c)
}

// maybePruneIdempotency deletes expired records, at most once per
// IdempotencyPruneEvery, on the request path: one indexed DELETE, and no
// background goroutine to own.
func (a *API) maybePruneIdempotency(c *call) {
	now := a.cfg.Now()
	a.pruneMu.Lock()
	if now.Sub(a.lastPrune) < a.cfg.IdempotencyPruneEvery {
		a.pruneMu.Unlock()
		return
	}
	a.lastPrune = now
	a.pruneMu.Unlock()
	ctx, cancel := c.storeCtx()
	defer cancel()
	if n, err := a.cfg.Store.DeleteIdempotentBefore(ctx, now.Add(-a.cfg.IdempotencyTTL)); err != nil {
		c.log.Warn("prune idempotency records", "err", err)
	} else if n > 0 {
		c.log.Info("pruned idempotency records", "count", n)
	}
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] >= 0x7f {
			return false
		}
	}
	return true
}
