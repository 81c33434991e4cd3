package tunnel

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/coder/websocket"

	"github.com/switchboard-pbx/switchboard/protocol"
)

// ErrUnauthorized matches a HandshakeError whose status is 401: the control
// plane refused the agent token. Retrying with the same token is pointless.
var ErrUnauthorized = errors.New("agent token refused")

// ErrProtocolVersion matches a HandshakeError (dial side) or VersionError
// (accept side) caused by the two ends speaking different protocol
// versions. The agent needs an upgrade (or the control plane does).
var ErrProtocolVersion = errors.New("protocol version mismatch")

// HandshakeError is returned by Dial when the control plane answers the
// upgrade request with anything but 101 Switching Protocols.
type HandshakeError struct {
	StatusCode int
	// Message is the body text the control plane sent (first KiB), e.g.
	// "unsupported protocol version 4: this control plane speaks
	// protocols 1 to 2".
	Message string
	// ServerProtocol is the newest protocol version the control plane
	// announced when refusing ours, or 0.
	ServerProtocol int
}

func (e *HandshakeError) Error() string {
	msg := "control plane answered " + strconv.Itoa(e.StatusCode) + " " + http.StatusText(e.StatusCode)
	if e.Message != "" {
		msg += ": " + e.Message
	}
	return msg
}

// Unwrap lets errors.Is match ErrUnauthorized and ErrProtocolVersion.
func (e *HandshakeError) Unwrap() error {
	switch {
	case e.StatusCode == http.StatusUnauthorized:
		return ErrUnauthorized
	case e.StatusCode == http.StatusBadRequest && e.ServerProtocol != 0:
		// Only a version refusal (RefuseVersion's shape) names a
		// version.
		return ErrProtocolVersion
	}
	return nil
}

// LoadCAFile reads PEM certificates for DialConfig.RootCAs, for a control
// plane whose certificate is not signed by a public CA.
func LoadCAFile(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("load CA file %s: no PEM certificate found", path)
	}
	return pool, nil
}

// Dial connects to the control plane and starts the agent's side of the
// tunnel (the yamux client). ctx bounds the life of the whole session, not
// just the dial: cancel it to tear the tunnel down. The handshake alone is
// bounded by HandshakeTimeout.
//
// Dial offers cfg.Protocol (protocol.Version by default). A control plane
// that does not speak it refuses with its own newest version; if that is
// older than the offer and at least protocol.MinVersion, Dial redials at
// once offering it, so a newer agent works with an older control plane
// (Session.Protocol tells which version was agreed). Any other refusal is
// a *HandshakeError.
func Dial(ctx context.Context, cfg DialConfig) (*Session, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.HandshakeTimeout == 0 {
		cfg.HandshakeTimeout = DefaultHandshakeTimeout
	}
	mc := cfg.mux()
	mc.fill()
	mc.logger = mc.logger.With("component", "tunnel", "side", "agent")
	offer := cmp.Or(cfg.Protocol, protocol.Version)
	s, err := dialOnce(ctx, cfg, mc, offer)
	var he *HandshakeError
	if errors.As(err, &he) && errors.Is(he, ErrProtocolVersion) &&
		he.ServerProtocol >= protocol.MinVersion && he.ServerProtocol < offer {
		mc.logger.Debug("redialling with the protocol of an older control plane",
			"offered", offer, "control_plane_protocol", he.ServerProtocol)
		s, err = dialOnce(ctx, cfg, mc, he.ServerProtocol)
	}
	return s, err
}

// dialOnce makes one upgrade request offering version.
func dialOnce(ctx context.Context, cfg DialConfig, mc muxConfig, version int) (*Session, error) {
	transport := &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		TLSClientConfig: &tls.Config{
			RootCAs:    cfg.RootCAs,
			MinVersion: tls.VersionTLS12,
		},
	}
	// The upgraded connection is not the transport's to manage; nothing
	// stays idle in it once the handshake is over.
	defer transport.CloseIdleConnections()

	hdr := http.Header{}
	hdr.Set("Authorization", "Bearer "+cfg.Token)
	hdr.Set(protocol.VersionHeader, strconv.Itoa(version))
	if cfg.UserAgent != "" {
		hdr.Set("User-Agent", cfg.UserAgent)
	}

	hctx, cancel := context.WithTimeout(ctx, cfg.HandshakeTimeout)
	defer cancel()
	ws, resp, err := websocket.Dial(hctx, cfg.URL, &websocket.DialOptions{
		HTTPClient: &http.Client{Transport: transport},
		HTTPHeader: hdr,
	})
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			return nil, fmt.Errorf("dial control plane: %w", handshakeError(resp))
		}
		return nil, fmt.Errorf("dial control plane: %w", err)
	}
	s, err := newSession(ctx, ws, urlAddr(hostOf(cfg.URL)), true, version, mc)
	if err != nil {
		return nil, fmt.Errorf("dial control plane: %w", err)
	}
	return s, nil
}

func handshakeError(resp *http.Response) *HandshakeError {
	he := &HandshakeError{StatusCode: resp.StatusCode}
	if resp.Body != nil {
		// coder/websocket keeps only the first KiB of the body.
		b, _ := io.ReadAll(resp.Body)
		he.Message = strings.TrimSpace(string(b))
	}
	if v := resp.Header.Get(protocol.VersionHeader); v != "" {
		he.ServerProtocol, _ = strconv.Atoi(v)
	}
	return he
}

func hostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	return u.Host
}
