package main

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/spf13/pflag"

	"github.com/switchboard-pbx/switchboard/controlplane/auth"
)

// jwtCmd mints an HS256 operator token: for development, demos and ops
// scripts. Production identity providers mint their own with the same claims.
func jwtCmd(args []string, stdout io.Writer) error {
	if len(args) == 0 || args[0] != "mint" {
		return usagef("jwt: want `jwt mint`")
	}
	fs := pflag.NewFlagSet("jwt mint", pflag.ContinueOnError)
	secretFile := fs.String("secret-file", "", "HS256 secret file (the control plane's --jwt-secret-file)")
	sub := fs.String("sub", "", "operator id (the sub claim)")
	enterprise := fs.String("enterprise", "", "enterprise number (required unless roles include platform_admin)")
	roles := fs.String("roles", "", "comma-separated roles: operator, supervisor, telecom_admin, platform_admin")
	ttl := fs.Duration("ttl", time.Hour, "lifetime (the exp claim)")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args[1:]); err != nil {
		return usagef("%v", err)
	}
	if err := errorsJoin(mustNotBeEmpty("secret-file", *secretFile), mustNotBeEmpty("sub", *sub), mustNotBeEmpty("roles", *roles)); err != nil {
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
		return json.NewEncoder(stdout).Encode(map[string]any{"token": tok, "expires_in_s": int(ttl.Seconds())})
	}
	_, err = fmt.Fprintln(stdout, tok)
	return err
}
