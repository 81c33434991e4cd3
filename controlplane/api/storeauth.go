package api

import (
	"context"
	"errors"
	"fmt"

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
