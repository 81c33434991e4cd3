package api

import (
	"cmp"
	"context"
	"crypto/rand"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"runtime/debug"
	"strings"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/auth"
)

// RequestIDHeader carries the request id in both directions.
const RequestIDHeader = "X-Request-Id"

// maxRequestIDLen bounds a caller's X-Request-Id; longer or odd ones are
// replaced, so a log line can never be forged or bloated through it.
const maxRequestIDLen = 128

type requestIDKey struct{}

// requestID returns the caller's X-Request-Id when it is sane (1-128
// characters of letters, digits and ._:-), else a new random one.
func requestID(r *http.Request) string {
	if id := r.Header.Get(RequestIDHeader); saneRequestID(id) {
		return id
	}
	return rand.Text()
}

func saneRequestID(id string) bool {
	if id == "" || len(id) > maxRequestIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-') {
			return false
		}
	}
	return true
}

// contextHandler adds the request id carried by a log call's context, so
// lines logged by other packages (auth's refusals) carry it too.
type contextHandler struct{ slog.Handler }

func (h contextHandler) Handle(ctx context.Context, r slog.Record) error {
	if id, ok := ctx.Value(requestIDKey{}).(string); ok {
		r.AddAttrs(slog.String("request_id", id))
	}
	return h.Handler.Handle(ctx, r)
}

func (h contextHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return contextHandler{h.Handler.WithAttrs(as)}
}

func (h contextHandler) WithGroup(name string) slog.Handler {
	return contextHandler{h.Handler.WithGroup(name)}
}

// recorder remembers what was written, for the access log and for panic
// recovery (which may only write a body if nothing was written yet).
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *recorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush sends what was written; the audit row is stored after it.
func (w *recorder) Flush() { _ = http.NewResponseController(w.ResponseWriter).Flush() }

// redactedQuery is the query string as the access log shows it: a legacy
// clientId (a whole API key) is replaced by the key's public id.
func redactedQuery(q string) string {
	if q == "" || !strings.Contains(q, "clientId") && !strings.Contains(strings.ToLower(q), "clientid") {
		return q
	}
	vals, err := url.ParseQuery(q)
	if err != nil {
		return "[unparsable query redacted]"
	}
	for k, vs := range vals {
		if !strings.EqualFold(k, "clientId") {
			continue
		}
		for i, v := range vs {
			if id, ok := auth.ParseAPIKeyID(v); ok {
				vs[i] = id
			} else {
				vs[i] = "REDACTED"
			}
		}
	}
	return vals.Encode()
}

func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// serve runs one request of route rt through the chain every route takes:
// request id, panic recovery, body limits (size and time), then
// (call.run) the connection's admission, authentication,
// rate limits, the handler, the error envelope and the audit row, and last
// the access log and metrics.
func (a *API) serve(rt *route, w http.ResponseWriter, r *http.Request) {
	start := a.cfg.Now()
	id := requestID(r)
	w.Header().Set(RequestIDHeader, id)
	ctx := context.WithValue(r.Context(), requestIDKey{}, id)
	r = r.WithContext(ctx)
	rec := &recorder{ResponseWriter: w}
	// A keep-alive connection keeps the write deadline of its previous
	// response (finishBody); this request's handler may run longer.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Time{})
	b := newBody(rec, r, a.cfg.MaxBodyBytes, a.cfg.BodyTimeout)
	c := &call{api: a, rt: rt, w: rec, r: r, reqBody: b, id: id, log: a.log.With("request_id", id), start: start}
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			c.log.Error("panic serving request", "route", rt.pattern(), "panic", v, "stack", string(debug.Stack()))
			if rec.status == 0 {
				c.fail(errInternal)
			}
			c.finishAudit(errInternal)
		}
		a.accessLog(c, rec, start)
	}()
	c.run()
}

// status is what was written, for the access log and metrics.
func (w *recorder) code() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}

func (a *API) accessLog(c *call, rec *recorder, start time.Time) {
	status := rec.code()
	a.cfg.Observer.HTTPRequest(c.rt.pattern(), c.r.Method, status, a.cfg.Now().Sub(start), c.rt.longLived)
	attrs := []slog.Attr{
		slog.String("method", c.r.Method),
		slog.String("path", c.r.URL.Path),
		slog.Int("status", status),
		slog.Int64("bytes", rec.bytes),
		slog.Float64("duration_ms", float64(cmp.Or(c.replied, a.cfg.Now()).Sub(start).Microseconds())/1000),
		slog.String("remote", clientAddr(c.r)),
		slog.String("request_id", c.id),
	}
	if q := redactedQuery(c.r.URL.RawQuery); q != "" {
		attrs = append(attrs, slog.String("query", q))
	}
	if c.principal != nil {
		attrs = append(attrs, slog.String("credential", c.principal.CredentialID()))
	}
	if c.errCode != "" {
		attrs = append(attrs, slog.String("error_code", c.errCode))
	}
	level := slog.LevelInfo
	switch {
	case status >= 500:
		level = slog.LevelWarn
	case c.rt.longLived:
		level = slog.LevelDebug // the gateway logs the session itself
	case c.rt.internal:
		level = slog.LevelDebug // the replica the client called logs the request
	}
	a.accessLogger.LogAttrs(c.r.Context(), level, "http request", attrs...)
}
