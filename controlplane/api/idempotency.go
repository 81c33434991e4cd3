package api

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"sync"

	"github.com/switchboard-pbx/switchboard/controlplane/store"
)

// IdempotencyKeyHeader makes POST /v1/calls safe to retry: the first
// successful result for a key is stored and replayed to every retry with
// the same body; the same key with another body is 409. Failures are not
// stored, so a retry after a 503 or 504 tries again.
const IdempotencyKeyHeader = "Idempotency-Key"

// IdempotentReplayHeader is set on a replayed response.
const IdempotentReplayHeader = "Idempotent-Replayed"

// keyedMutex serialises requests carrying the same idempotency key in this
// process, so two concurrent retries cannot both dial. (Across replicas
// the store's first-writer-wins record is the last line of defence.)
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

// idemState is one request's idempotency bookkeeping.
type idemState struct {
	key, hash string
	replayed  bool
	release   func()
}

func (s *idemState) unlock() {
	if s != nil && s.release != nil {
		s.release()
	}
}

// idempotency looks the request's key up. It returns replayed when the
// reply was set from the stored first result; otherwise the caller must
// unlock() when done and store() a success.
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
	st := &idemState{key: key, hash: hex.EncodeToString(sum[:])}
	st.release = c.api.idem.lock(strconv.FormatInt(c.principal.EnterpriseID, 10) + "\x00" + key)
	ctx, cancel := c.storeCtx()
	defer cancel()
	rec, err := c.api.cfg.Store.GetIdempotent(ctx, c.principal.EnterpriseID, key)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return st, nil
	case err != nil:
		st.unlock()
		if e := storeError(err); e != nil {
			return nil, e
		}
		return nil, err
	case !rec.Matches(st.hash):
		st.unlock()
		return nil, errorf(http.StatusConflict, CodeIdempotencyConflict,
			"%s %q was already used with a different request", IdempotencyKeyHeader, key)
	}
	st.unlock()
	st.replayed = true
	c.status, c.body = rec.StatusCode, rec.Body
	c.setHeader(IdempotentReplayHeader, "true")
	c.audit.Details, _ = json.Marshal(map[string]any{"idempotent_replay": true})
	var prev callResponse
	if json.Unmarshal(rec.Body, &prev) == nil {
		c.audit.UniqueID, c.audit.AgentID, c.audit.Channel = prev.CallID, prev.PBX, prev.Channel
	}
	return st, nil
}

// store records the reply as the key's first result. A failure to store
// is logged, not returned: the call was placed and the caller must learn
// its id.
func (s *idemState) store(c *call) {
	if s.key == "" {
		return
	}
	ctx, cancel := c.storeCtx()
	defer cancel()
	_, err := c.api.cfg.Store.PutIdempotent(ctx, store.Idempotent{
		EnterpriseID: c.principal.EnterpriseID, Key: s.key, RequestHash: s.hash, StatusCode: c.status, Body: c.body,
	})
	if err != nil {
		c.log.Error("idempotency record not stored; a retry would dial again", "err", err)
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
