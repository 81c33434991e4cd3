package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/auth"
	"github.com/switchboard-pbx/switchboard/controlplane/store"
)

// storeKeys adapts the store to auth's lookups, mapping the store's
// sentinels to auth's so auth never imports the store.
type storeKeys struct{ s *store.Store }

func (k storeKeys) LookupAPIKey(ctx context.Context, token string) (auth.Key, error) {
	key, err := k.s.APIKeyByToken(ctx, token)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return auth.Key{}, auth.ErrUnknownKey
	case errors.Is(err, store.ErrRevoked):
		return auth.Key{}, auth.ErrRevokedKey
	case errors.Is(err, store.ErrEnterpriseInactive):
		return auth.Key{}, auth.ErrUnknownEnterprise
	case err != nil:
		return auth.Key{}, err
	}
	return auth.Key{ID: key.ID, EnterpriseID: key.EnterpriseID, EnterpriseNumber: key.EnterpriseNumber, Scopes: key.Scopes}, nil
}

func (k storeKeys) EnterpriseIDByNumber(ctx context.Context, number string) (int64, error) {
	e, err := k.s.EnterpriseByNumber(ctx, number)
	switch {
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrInvalid):
		return 0, auth.ErrUnknownEnterprise
	case err != nil:
		return 0, err
	case !e.Active:
		return 0, fmt.Errorf("enterprise %s inactive: %w", number, auth.ErrUnknownEnterprise)
	}
	return e.ID, nil
}

// storeTickets keeps browser tickets in the store for several replicas
// (auth.TicketStore).
type storeTickets struct{ s *store.Store }

func (t storeTickets) Put(ctx context.Context, id string, p auth.Principal, exp time.Time, maxPerEnterprise int) error {
	enc, err := json.Marshal(p)
	if err != nil {
		return err
	}
	err = t.s.PutTicket(ctx, store.Ticket{ID: id, EnterpriseID: p.EnterpriseID, CredentialID: p.CredentialID(), Principal: string(enc), ExpiresAt: exp}, maxPerEnterprise)
	if errors.Is(err, store.ErrTooManyTickets) {
		return fmt.Errorf("%w for the enterprise (%d)", auth.ErrTooManyTickets, maxPerEnterprise)
	}
	return err
}

func (t storeTickets) Take(ctx context.Context, id string) (auth.Principal, time.Time, error) {
	tk, err := t.s.TakeTicket(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return auth.Principal{}, time.Time{}, auth.ErrInvalidTicket
	}
	if err != nil {
		return auth.Principal{}, time.Time{}, err
	}
	var p auth.Principal
	if err := json.Unmarshal([]byte(tk.Principal), &p); err != nil {
		return auth.Principal{}, time.Time{}, fmt.Errorf("decode stored ticket: %w", err)
	}
	return p, tk.ExpiresAt, nil
}

func (t storeTickets) Revoke(ctx context.Context, credentialID string) (int, error) {
	return t.s.RevokeTickets(ctx, credentialID)
}
