package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"github.com/switchboard-pbx/switchboard/controlplane/auth"
)

// jwtCommand mints an HS256 operator token: for development, demos and
// ops scripts. Production identity providers mint their own with the same
// claims.
func jwtCommand() *command {
	return &command{
		path: "jwt mint", args: "--secret-file F --sub ID --roles R1,R2", group: groupTenants,
		summary: "mint an HS256 operator JWT signed with the control plane's secret",
		about: `For development, demos and scripts: production identity providers mint
their own tokens with the same claims (sub, enterprise, roles, exp).`,
		define: func(fs *pflag.FlagSet) action {
			secretFile := fs.String("secret-file", "", "HS256 secret `FILE` (the control plane's --jwt-secret-file)")
			sub := fs.String("sub", "", "operator `ID` (the sub claim)")
			enterprise := fs.String("enterprise", "", "enterprise `NUMBER` (required unless the roles include platform_admin)")
			roles := fs.String("roles", "", "comma-separated `ROLES`: operator, supervisor, telecom_admin, platform_admin")
			ttl := fs.Duration("ttl", time.Hour, "lifetime (the exp claim)")
			asJSON := fs.Bool("json", false, "print JSON")
			completeFiles(fs, "secret-file")
			return func(ctx context.Context, e *env, args []string) error {
				if err := errorsJoin(noArgs("jwt mint", args), mustNotBeEmpty("secret-file", *secretFile), mustNotBeEmpty("sub", *sub), mustNotBeEmpty("roles", *roles)); err != nil {
					return err
				}
				secret, err := auth.LoadHMACSecret(*secretFile)
				if err != nil {
					return err
				}
				tok, err := auth.MintHS256(secret, auth.OperatorClaims{Subject: *sub, Enterprise: *enterprise, Roles: splitList(*roles)}, *ttl)
				if err != nil {
					return err
				}
				if *asJSON {
					return json.NewEncoder(e.stdout).Encode(map[string]any{"token": tok, "expires_in_s": int(ttl.Seconds())})
				}
				_, err = fmt.Fprintln(e.stdout, tok)
				return err
			}
		},
	}
}
