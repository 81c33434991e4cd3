package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/switchboard-pbx/switchboard/controlplane/auth"
	"github.com/switchboard-pbx/switchboard/controlplane/store"
)

// Error codes, the same strings as the api package's so a client handles
// every v1 route alike ({"error":{"code":…,"message":…}}).
const (
	CodeInvalidRequest   = "invalid_request"    // 400
	CodeUnauthorized     = "unauthorized"       // 401
	CodeForbidden        = "forbidden"          // 403
	CodeNotFound         = "not_found"          // 404
	CodeConflict         = "conflict"           // 409: e.g. the enterprise's webhook limit
	CodeBodyTooLarge     = "body_too_large"     // 413
	CodeUnavailable      = "unavailable"        // 503: store down, too many subscribers
	CodeInternal         = "internal"           // 500
	CodeMethodNotAllowed = "method_not_allowed" // 405 (the mux answers these)
)

// Error is a failure as a route reports it; Message is safe to show.
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

func errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

func invalidf(format string, args ...any) *Error {
	return errorf(http.StatusBadRequest, CodeInvalidRequest, format, args...)
}

// notFound: the same words whether it does not exist or is another
// enterprise's.
func notFound(what, id string) *Error {
	return errorf(http.StatusNotFound, CodeNotFound, "%s %q not found", what, id)
}

var errInternal = &Error{Status: http.StatusInternalServerError, Code: CodeInternal, Message: "internal error"}

// asError maps any error to what the caller may see; internal reports an
// error the caller must not see details of (the caller logs it).
func asError(err error) (e *Error, internal bool) {
	var ve *store.ValidationError
	switch {
	case errors.As(err, &e):
		return e, false
	case errors.Is(err, auth.ErrMissingCredentials), errors.Is(err, auth.ErrInvalidCredentials):
		return &Error{Status: http.StatusUnauthorized, Code: CodeUnauthorized, Message: "missing or invalid credentials"}, false
	case errors.Is(err, auth.ErrForbidden):
		return &Error{Status: http.StatusForbidden, Code: CodeForbidden, Message: err.Error()}, false
	case errors.As(err, &ve):
		return invalidf("%s", ve.Error()), false
	case errors.Is(err, context.DeadlineExceeded):
		return errorf(http.StatusServiceUnavailable, CodeUnavailable, "the database did not answer in time"), false
	}
	return errInternal, true
}

type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":{"code":"internal","message":"internal error"}}`)
	}
	b = append(b, '\n')
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func writeError(w http.ResponseWriter, e *Error) {
	if e.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="switchboard"`)
	}
	var body errorBody
	body.Error.Code, body.Error.Message = e.Code, e.Message
	writeJSON(w, e.Status, body)
}
