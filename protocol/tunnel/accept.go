package tunnel

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/coder/websocket"

	"github.com/switchboard-pbx/switchboard/protocol"
)

// VersionError is a tunnel request whose protocol version this control
// plane does not speak. Its Error text is written verbatim to the agent.
type VersionError struct {
	// Got is the header value the agent sent; empty when missing.
	Got string
}

func (e *VersionError) Error() string {
	if e.Got == "" {
		return fmt.Sprintf("missing %s header: this control plane speaks %s", protocol.VersionHeader, speaks())
	}
	return fmt.Sprintf("unsupported protocol version %s: this control plane speaks %s", e.Got, speaks())
}

func speaks() string {
	if protocol.MinVersion == protocol.Version {
		return fmt.Sprintf("protocol %d", protocol.Version)
	}
	return fmt.Sprintf("protocols %d to %d", protocol.MinVersion, protocol.Version)
}

// Unwrap lets errors.Is match ErrProtocolVersion.
func (e *VersionError) Unwrap() error { return ErrProtocolVersion }

// CheckVersion returns the protocol version the agent's header offers if
// this control plane speaks it (protocol.Supported), or a *VersionError.
// Accept calls it again; a handler calls it first and refuses with a 400
// carrying RefusalHeader.
func CheckVersion(r *http.Request) (int, error) {
	got := strings.TrimSpace(r.Header.Get(protocol.VersionHeader))
	v, err := strconv.Atoi(got)
	if err != nil || !protocol.Supported(v) {
		return 0, &VersionError{Got: got}
	}
	return v, nil
}

// RefusalHeader is the header of the answer to a request that failed
// CheckVersion: our newest version. With a 400 and the error's text as
// body, Dial turns the answer into a HandshakeError matching
// ErrProtocolVersion, after redialling with that version if the agent
// speaks it too: an agent newer than this control plane still connects.
// The control plane's api package writes that answer.
func RefusalHeader() http.Header {
	return http.Header{protocol.VersionHeader: {strconv.Itoa(protocol.Version)}}
}

// RefuseVersion writes that answer, for fakes of the control plane in
// tests (fleettest); the control plane itself answers through its api.
func RefuseVersion(w http.ResponseWriter, err error) {
	for k, v := range RefusalHeader() {
		w.Header()[k] = v
	}
	http.Error(w, err.Error(), http.StatusBadRequest)
}

// Accept upgrades an authenticated agent request to a tunnel and starts
// the control plane's side (the yamux server). The caller authenticates the
// agent and checks its version (CheckVersion) first, answering refusals
// itself; Accept writes no answer but the upgrade: a version outside
// [protocol.MinVersion, protocol.Version] or a bad config is returned with
// nothing written, and a failed upgrade has been answered by the
// WebSocket library. The session's Protocol is the version the agent
// offered.
//
// ctx bounds the session's life. http.Server cancels r.Context() when the
// handler returns, so a handler that passes it must stay in ServeHTTP
// until the session is Done; with a context of its own the handler may
// return at once (the connection is hijacked: net/http lets it be).
func Accept(ctx context.Context, w http.ResponseWriter, r *http.Request, cfg AcceptConfig) (*Session, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	version, err := CheckVersion(r)
	if err != nil {
		return nil, err
	}
	mc := cfg.mux()
	mc.fill()
	mc.logger = mc.logger.With("component", "tunnel", "side", "control", "remote", r.RemoteAddr)

	ws, err := websocket.Accept(smallBuffers{ResponseWriter: w,
		read: cmp.Or(cfg.ReadBufferBytes, DefaultAcceptBufferBytes), write: cmp.Or(cfg.WriteBufferBytes, DefaultAcceptBufferBytes)}, r, nil)
	if err != nil {
		return nil, fmt.Errorf("accept tunnel: %w", err)
	}
	var remote net.Addr
	if a, err := net.ResolveTCPAddr("tcp", r.RemoteAddr); err == nil {
		remote = a
	}
	s, err := newSession(ctx, ws, remote, false, version, mc)
	if err != nil {
		return nil, fmt.Errorf("accept tunnel: %w", err)
	}
	return s, nil
}

// smallBuffers hands the WebSocket library the hijacked connection with
// buffers of its own sizes instead of net/http's 4 KiB each, which the
// library keeps for the connection's life. Bytes net/http had already
// read past the upgrade request (its background read may have taken the
// client's first byte) are in the new reader's buffer: the library reads
// what is buffered, then resets the reader onto the connection.
type smallBuffers struct {
	http.ResponseWriter
	read, write int
}

func (s smallBuffers) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(s.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	n := brw.Reader.Buffered()
	if n == 0 {
		return c, bufio.NewReadWriter(bufio.NewReaderSize(c, s.read), bufio.NewWriterSize(c, s.write)), nil
	}
	b, _ := brw.Reader.Peek(n)
	br := bufio.NewReaderSize(io.MultiReader(bytes.NewReader(bytes.Clone(b)), c), max(s.read, n))
	if _, err := br.Peek(n); err != nil { // the copy: never the connection
		_ = c.Close()
		return nil, nil, err
	}
	return c, bufio.NewReadWriter(br, bufio.NewWriterSize(c, s.write)), nil
}
