package api

import (
	"context"
	"sync"

	"github.com/switchboard-pbx/switchboard/controlplane/auth"
	"github.com/switchboard-pbx/switchboard/controlplane/events"
)

// RevokeAPIKeys makes API keys revoked in the store stop on this server at
// once, rather than when its caches expire: their cached verifications are
// forgotten, their unredeemed browser tickets dropped and their open
// /v1/events WebSockets closed (1008, "credential revoked"). ids are key
// ids (key_…). It says how many streams and tickets it ended; calling it
// again with the same ids is harmless (the control plane's revocation
// check does, for a while, to catch a stream opened in a race).
func (a *API) RevokeAPIKeys(ids []string) (streams, tickets int) {
	if len(ids) == 0 {
		return 0, 0
	}
	set := make(map[string]bool, len(ids))
	for _, id := range ids {
		set[id] = true
	}
	a.keys.forget(set)
	for id := range set {
		cred := auth.Principal{Kind: auth.KindAPIKey, ID: id}.CredentialID()
		ctx, cancel := context.WithTimeout(context.Background(), a.cfg.StoreTimeout)
		n, err := a.tickets.Revoke(ctx, cred)
		cancel()
		if err != nil {
			// Its tickets expire within a minute; a redeem meanwhile
			// authenticates with the revoked key, which the key check
			// refuses no later than the key cache's TTL.
			a.log.Warn("drop a revoked key's tickets", "credential", cred, "err", err)
		}
		tickets += n
		streams += a.streams.close(cred, events.ErrCredentialRevoked)
	}
	return streams, tickets
}

// openStreams are the open /v1/events WebSockets by credential.
type openStreams struct {
	mu     sync.Mutex
	byCred map[string]map[*openStream]struct{}
}

type openStream struct{ cancel context.CancelCauseFunc }

// add registers a stream whose context cancel ends it; the returned func
// removes it.
func (o *openStreams) add(cred string, cancel context.CancelCauseFunc) (remove func()) {
	s := &openStream{cancel: cancel}
	o.mu.Lock()
	if o.byCred == nil {
		o.byCred = map[string]map[*openStream]struct{}{}
	}
	if o.byCred[cred] == nil {
		o.byCred[cred] = map[*openStream]struct{}{}
	}
	o.byCred[cred][s] = struct{}{}
	o.mu.Unlock()
	return func() {
		o.mu.Lock()
		defer o.mu.Unlock()
		delete(o.byCred[cred], s)
		if len(o.byCred[cred]) == 0 {
			delete(o.byCred, cred)
		}
	}
}

// close ends every stream of the credential with cause.
func (o *openStreams) close(cred string, cause error) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	for s := range o.byCred[cred] {
		s.cancel(cause)
	}
	n := len(o.byCred[cred])
	delete(o.byCred, cred)
	return n
}
