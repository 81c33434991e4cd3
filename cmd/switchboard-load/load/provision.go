package load

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/auth"
	"github.com/switchboard-pbx/switchboard/controlplane/store"
)

// SimAgent is one provisioned PBX: its agent record and secrets.
type SimAgent struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Token  string `json:"token"`
	APIKey string `json:"-"` // its enterprise's key; the coordinator's only
}

// fleetPlan is what provisioning made.
type fleetPlan struct {
	DSN        string
	JWTFile    string
	AdminJWT   string // platform_admin, for GET /v1/fleet
	Agents     []SimAgent
	Took       time.Duration
	Enterprise int
}

// keyOf maps each PBX to its enterprise's API key.
func (p *fleetPlan) keyOf() map[string]string {
	m := make(map[string]string, len(p.Agents))
	for _, a := range p.Agents {
		m[a.ID] = a.APIKey
	}
	return m
}

// provision creates, in the store at dsn (empty: a new SQLite file in
// dir), N agents in N/perEnterprise
// enterprises (one API key each) and a JWT secret, before the control
// plane starts: a separate `switchboard serve` then finds them in --db.
func provision(ctx context.Context, dir, dsn string, n, perEnterprise int) (*fleetPlan, error) {
	start := time.Now()
	if dsn == "" {
		dsn = "sqlite:" + filepath.Join(dir, "switchboard.db")
	}
	p := &fleetPlan{DSN: dsn, JWTFile: filepath.Join(dir, "jwt.secret")}
	secret := []byte(rand.Text() + rand.Text())
	if err := os.WriteFile(p.JWTFile, secret, 0o600); err != nil {
		return nil, fmt.Errorf("write jwt secret: %w", err)
	}
	jwt, err := auth.MintHS256(secret, auth.OperatorClaims{Subject: "load-admin", Roles: []string{"platform_admin"}}, 24*time.Hour)
	if err != nil {
		return nil, fmt.Errorf("mint admin jwt: %w", err)
	}
	p.AdminJWT = jwt
	st, err := store.Open(ctx, p.DSN, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, err
	}
	defer st.Close()
	var number, key string
	for i := range n {
		if i%perEnterprise == 0 {
			number = fmt.Sprintf("9%05d", i/perEnterprise)
			if _, err := st.CreateEnterprise(ctx, number, "load "+number); err != nil {
				return nil, fmt.Errorf("provision enterprise %s: %w", number, err)
			}
			if _, key, err = st.CreateAPIKey(ctx, number, "load", store.AllowedScopes()); err != nil {
				return nil, fmt.Errorf("provision API key: %w", err)
			}
			p.Enterprise++
		}
		name := fmt.Sprintf("sim-%05d", i)
		a, token, err := st.CreateAgent(ctx, number, name, "inoffice")
		if err != nil {
			return nil, fmt.Errorf("provision agent %s: %w", name, err)
		}
		p.Agents = append(p.Agents, SimAgent{ID: a.ID, Name: name, Token: token, APIKey: key})
	}
	p.Took = time.Since(start)
	return p, nil
}
