// Package console owns the web console's assets: plain HTML, CSS and ES
// modules, embedded in the binary, served by `switchboard serve` at "/".
// There is no build step and nothing is fetched from elsewhere (no CDN, no
// web fonts), so the console works on a network with no internet and
// `go run ./cmd/switchboard demo` needs nothing but Go.
//
// The console is a client of the public HTTP API and nothing else: it signs
// in by exchanging an API key, an operator JWT or a sign-in link for a
// session cookie (POST /v1/session), then calls the same /v1 routes any
// CRM calls, through the same chain (roles, scopes, rate limits, audit),
// and follows /v1/events over a WebSocket opened with a browser ticket. This
// package only holds and describes the files; controlplane/api serves them
// as one row of its route table.
//
// Its browser tests (console_browser_test.go) drive headless Chromium
// through github.com/chromedp/chromedp against the whole control plane with
// the AMI fake (internal/systemtest); only this package's tests import
// chromedp (internal/depcheck).
package console
