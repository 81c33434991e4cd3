package main

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/switchboard-pbx/switchboard/cmd/internal/flagfile"
	"github.com/switchboard-pbx/switchboard/controlplane"
	"github.com/switchboard-pbx/switchboard/protocol/tunnel"
)

// clientFlags are the connection settings of the commands that call the
// API (fleet status, events tail). Only they come from the environment
// (SWITCHBOARD_SERVER, SWITCHBOARD_TOKEN, SWITCHBOARD_TOKEN_FILE,
// SWITCHBOARD_CA_FILE); a command's filters are always explicit.
type clientFlags struct {
	server, token, tokenFile, caFile string
}

// register adds the flags; credential names what the token is.
func (c *clientFlags) register(fs *pflag.FlagSet, credential string) {
	fs.StringVar(&c.server, "server", "http://"+controlplane.DefaultListen, "control plane URL")
	fs.StringVar(&c.token, "token", "", credential+" (prefer --token-file or SWITCHBOARD_TOKEN: argv is visible in ps)")
	fs.StringVar(&c.tokenFile, "token-file", "", "file holding the "+credential)
	fs.StringVar(&c.caFile, "ca-file", "", "PEM CAs that sign the control plane's certificate (default: system roots)")
}

// applyEnv fills the connection flags not given on the command line.
func (c *clientFlags) applyEnv(fs *pflag.FlagSet) error {
	conn := pflag.NewFlagSet("connection", pflag.ContinueOnError)
	for _, name := range []string{"server", "token", "token-file", "ca-file"} {
		conn.AddFlag(fs.Lookup(name))
	}
	if err := flagfile.Apply(conn, envPrefix, ""); err != nil {
		return usagef("%v", err)
	}
	return nil
}

// bearer is the credential from --token or --token-file (not both);
// missing is the usage error when neither is set.
func (c *clientFlags) bearer(missing string) (string, error) {
	switch {
	case c.token != "" && c.tokenFile != "":
		return "", usagef("--token and --token-file exclude each other")
	case c.tokenFile != "":
		b, err := os.ReadFile(c.tokenFile)
		if err != nil {
			return "", fmt.Errorf("read token file: %w", err)
		}
		token := strings.TrimSpace(string(b))
		if token == "" {
			return "", fmt.Errorf("token file %s is empty", c.tokenFile)
		}
		return token, nil
	case c.token == "":
		return "", usagef("%s", missing)
	}
	return c.token, nil
}

// httpClient trusts --ca-file's CAs when set, else the system roots.
func (c *clientFlags) httpClient() (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if c.caFile != "" {
		roots, err := tunnel.LoadCAFile(c.caFile)
		if err != nil {
			return nil, err
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: tr}, nil
}
