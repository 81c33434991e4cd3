package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/pflag"

	"github.com/switchboard-pbx/switchboard/cmd/internal/flagfile"
	"github.com/switchboard-pbx/switchboard/controlplane"
	"github.com/switchboard-pbx/switchboard/protocol/tunnel"
)

// Limits of the commands that call the API.
const (
	// apiResponseLimit bounds one response body read into memory
	// (GET /v1/fleet?limit=10000 is about 4 MB).
	apiResponseLimit = 64 << 20
	// apiErrorBodyLimit bounds what of an error body is shown when it is
	// not the API's JSON error (a proxy's HTML page, say).
	apiErrorBodyLimit = 200
	// defaultAPITimeout bounds one command's requests (--timeout); the
	// server answers a PBX that is slow with 504 after its --ami-timeout.
	defaultAPITimeout = 30 * time.Second
)

// clientFlags are the connection settings of the commands that call the
// API. Only they come from the environment (SWITCHBOARD_SERVER,
// SWITCHBOARD_TOKEN, SWITCHBOARD_TOKEN_FILE, SWITCHBOARD_CA_FILE); a
// command's filters are always explicit.
type clientFlags struct {
	server, token, tokenFile, caFile string
	timeout                          time.Duration
}

// register adds the flags; credential names what the token is.
func (c *clientFlags) register(fs *pflag.FlagSet, credential string) {
	fs.StringVar(&c.server, "server", "http://"+controlplane.DefaultListen, "control plane `URL`")
	fs.StringVar(&c.tokenFile, "token-file", "", "`FILE` holding the "+credential)
	fs.StringVar(&c.token, "token", "", "the "+credential+" `TOKEN` itself (prefer --token-file or SWITCHBOARD_TOKEN: argv is visible in ps)")
	fs.StringVar(&c.caFile, "ca-file", "", "PEM `FILE` of the CAs that sign the control plane's certificate (default: system roots)")
	completeFiles(fs, "token-file", "ca-file")
}

// registerTimeout adds --timeout, for the commands that make requests
// (not for streams).
func (c *clientFlags) registerTimeout(fs *pflag.FlagSet, def time.Duration) {
	fs.DurationVar(&c.timeout, "timeout", def, "give up on the API after this `DURATION`")
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
	return secretArg("token", c.token, c.tokenFile, missing)
}

// secretArg is a secret given as --NAME VALUE or in --NAME-file FILE (one
// of them; the file's content trimmed, never empty); missing is the usage
// error when neither is set.
func secretArg(name, value, file, missing string) (string, error) {
	switch {
	case value != "" && file != "":
		return "", usagef("--%s and --%s-file exclude each other", name, name)
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("read %s file: %w", name, err)
		}
		s := strings.TrimSpace(string(b))
		if s == "" {
			return "", fmt.Errorf("%s file %s is empty", name, file)
		}
		return s, nil
	case value == "":
		return "", usagef("%s", missing)
	}
	return value, nil
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

// connect is the API client of a parsed command line: environment
// applied, credential read, server URL checked.
func (c *clientFlags) connect(fs *pflag.FlagSet, missing string) (*apiClient, error) {
	if err := c.applyEnv(fs); err != nil {
		return nil, err
	}
	tok, err := c.bearer(missing)
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(c.server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, usagef("--server: want an http:// or https:// URL, got %q", c.server)
	}
	hc, err := c.httpClient()
	if err != nil {
		return nil, err
	}
	return &apiClient{http: hc, base: strings.TrimRight(c.server, "/"), token: tok}, nil
}

// call connects (see connect) and makes one request within --timeout,
// answering the response's JSON as it came.
func (c *clientFlags) call(ctx context.Context, fs *pflag.FlagSet, missing string, req apiRequest) (json.RawMessage, error) {
	api, err := c.connect(fs, missing)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var raw json.RawMessage
	if err := api.do(ctx, req, &raw); err != nil {
		return nil, err
	}
	return raw, nil
}

// show makes one operator request (see clientFlags.call) and prints its
// answer: as it came with --json, else decoded into T, the part a command
// shows, and handed to print.
func show[T any](ctx context.Context, e *env, fs *pflag.FlagSet, cf *clientFlags, req apiRequest, asJSON bool, print func(*env, T) error) error {
	raw, err := cf.call(ctx, fs, missingCredential(operatorCredential), req)
	if err != nil {
		return err
	}
	if asJSON {
		return writeRawJSON(e, raw)
	}
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		return fmt.Errorf("%s %s: decode: %w", req.method, req.path, err)
	}
	return print(e, v)
}

// writeRawJSON prints an API answer as it came, indented.
func writeRawJSON(e *env, raw json.RawMessage) error {
	var b bytes.Buffer
	if err := json.Indent(&b, raw, "", "  "); err != nil {
		return fmt.Errorf("answer is not JSON: %w", err)
	}
	b.WriteByte('\n')
	_, err := e.stdout.Write(b.Bytes())
	return err
}

// apiClient calls the control plane's v1 API.
type apiClient struct {
	http  *http.Client
	base  string // no trailing slash
	token string
}

// apiRequest is one call of the API.
type apiRequest struct {
	method, path string
	query        url.Values
	body         any // sent as JSON when not nil
	header       http.Header
}

// do sends r and decodes a 2xx answer into out (when not nil; a
// *json.RawMessage gets the body as it is). Any other answer is an
// *apiError that carries the server's own message.
func (a *apiClient) do(ctx context.Context, r apiRequest, out any) error {
	method, path := r.method, r.path
	u := a.base + path
	if len(r.query) > 0 {
		u += "?" + r.query.Encode()
	}
	var rd io.Reader
	if r.body != nil {
		b, err := json.Marshal(r.body)
		if err != nil {
			return fmt.Errorf("%s %s: encode: %w", method, path, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	for k, v := range r.header {
		req.Header[k] = v
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	req.Header.Set("Accept", "application/json")
	if r.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, apiResponseLimit+1))
	if err != nil {
		return fmt.Errorf("%s %s: read: %w", method, path, err)
	}
	if len(raw) > apiResponseLimit {
		return fmt.Errorf("%s %s: response larger than %d bytes", method, path, apiResponseLimit)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return newAPIError(method, path, resp, raw)
	}
	if out == nil {
		return nil
	}
	if rawOut, ok := out.(*json.RawMessage); ok {
		*rawOut = raw
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("%s %s: decode: %w", method, path, err)
	}
	return nil
}

// apiError is an answer other than 2xx, with the v1 error envelope
// ({"error":{"code","message"}}) read when there is one.
type apiError struct {
	method, path string
	status       int
	statusText   string // "403 Forbidden"
	code         string // the envelope's; empty when there was none
	message      string // the envelope's message, or the start of the body
	requestID    string
}

func newAPIError(method, path string, resp *http.Response, body []byte) *apiError {
	e := &apiError{method: method, path: path, status: resp.StatusCode, statusText: resp.Status,
		requestID: resp.Header.Get("X-Request-Id")}
	var env struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if json.Unmarshal(body, &env) == nil && env.Error.Code != "" {
		e.code, e.message = env.Error.Code, env.Error.Message
		return e
	}
	msg, _, _ := strings.Cut(strings.TrimSpace(string(body)), "\n")
	msg = strings.TrimSpace(msg)
	if len(msg) > apiErrorBodyLimit {
		cut := apiErrorBodyLimit
		for cut > 0 && !utf8.RuneStart(msg[cut]) {
			cut-- // not inside a character
		}
		msg = msg[:cut] + "…"
	}
	e.message = msg
	return e
}

func (e *apiError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: ", e.method, e.path)
	switch {
	case e.code != "":
		fmt.Fprintf(&b, "%s (%d %s)", e.message, e.status, e.code)
	case e.message != "":
		fmt.Fprintf(&b, "%s (%s)", e.message, e.statusText)
	default:
		b.WriteString(e.statusText)
	}
	if e.requestID != "" {
		fmt.Fprintf(&b, " [request %s]", e.requestID)
	}
	return b.String()
}

// authProblem says whether the credential was refused (401) or lacks a
// role or scope (403).
func (e *apiError) authProblem() bool {
	return e.status == http.StatusUnauthorized || e.status == http.StatusForbidden
}
