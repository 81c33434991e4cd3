package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/switchboard-pbx/switchboard/controlplane/auth"
	"github.com/switchboard-pbx/switchboard/controlplane/events"
	"github.com/switchboard-pbx/switchboard/controlplane/fleet"
	"github.com/switchboard-pbx/switchboard/controlplane/gateway"
	"github.com/switchboard-pbx/switchboard/controlplane/store"
	"github.com/switchboard-pbx/switchboard/protocol"
)

// Stable error codes of the v1 API ({"error":{"code":…}}). Codes are only
// ever added; clients branch on them, never on messages.
const (
	CodeInvalidRequest        = "invalid_request"         // 400: a field is missing or malformed
	CodePBXRequired           = "pbx_required"            // 400: the enterprise has several PBXs; name one
	CodeUnauthorized          = "unauthorized"            // 401: missing or bad credentials
	CodeForbidden             = "forbidden"               // 403: role or scope missing
	CodeNotFound              = "not_found"               // 404: no such channel, call, PBX or route
	CodeMethodNotAllowed      = "method_not_allowed"      // 405
	CodeIdempotencyConflict   = "idempotency_conflict"    // 409: Idempotency-Key reused with another body
	CodeIdempotencyInProgress = "idempotency_in_progress" // 409: a request with this Idempotency-Key is still running (retry later)
	CodeConflict              = "conflict"                // 409: e.g. the enterprise's webhook limit
	CodeOpDisabled            = "op_disabled"             // 403: the PBX's agent does not run this operation (its ops = …)
	CodeCSRFFailed            = "csrf_failed"             // 403: a request with the console's session cookie lacks its CSRF header
	CodeAgentTooOld           = "agent_too_old"           // 409: the PBX's agent predates the operation; upgrade it
	CodeRequestTimeout        = "request_timeout"         // 408: the request body did not arrive in time
	CodeBodyTooLarge          = "body_too_large"          // 413
	CodeRateLimited           = "rate_limited"            // 429: credential or enterprise rate limit
	CodePBXBusy               = "pbx_busy"                // 429: too many originates in flight on the PBX
	CodeInternal              = "internal"                // 500
	CodeAMIError              = "ami_error"               // 502: Asterisk refused the action
	CodeAgentError            = "agent_error"             // 502: the agent failed the request
	CodePBXOffline            = "pbx_offline"             // 503: the PBX's agent is not connected
	CodeAMIDown               = "ami_down"                // 503: the agent has no AMI session
	CodeUnavailable           = "unavailable"             // 503: the store did not answer
	CodeAMITimeout            = "ami_timeout"             // 504: no answer before the AMI timeout
	// Call-centre operations.
	CodeMemberNotDynamic = "member_not_dynamic" // 409: a queues.conf member cannot be removed through AMI
	CodeNotConfirmed     = "not_confirmed"      // 502: Asterisk said Success but the events that must follow did not come
	// Call control.
	CodeCallState      = "call_state"      // 409: the call is not in the state the operation needs (not bridged, no transfer in progress)
	CodeFeatureMissing = "feature_missing" // 409: the PBX lacks what the operation needs (the message says what to configure)
)

// Error is a failure as the API reports it: an HTTP status, a stable code
// and a message safe to show to the caller (never an internal error
// chain). RetryAfter, when set, becomes a Retry-After header.
type Error struct {
	Status     int
	Code       string
	Message    string
	RetryAfter int // seconds
	// body, when set, replaces the style's usual error body (the FastAPI
	// service's 422 validation list).
	body any
	// final: already in a legacy route's own words; legacyFailure keeps it.
	final bool
	// header is added to the reply (the agent endpoint's protocol version).
	header http.Header
}

func (e *Error) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

func errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

func invalidf(format string, args ...any) *Error {
	return errorf(http.StatusBadRequest, CodeInvalidRequest, format, args...)
}

// notFound is the one answer for anything the caller may not see: the same
// words whether it does not exist or belongs to another enterprise.
func notFound(what, id string) *Error {
	return errorf(http.StatusNotFound, CodeNotFound, "%s %q not found", what, id)
}

var errInternal = &Error{Status: http.StatusInternalServerError, Code: CodeInternal, Message: "internal error"}

// asAPIError turns any error a handler returns into an *Error: the one
// place the errors of the parts behind the API (auth, store, events, the
// gateway) become statuses and codes. Anything it does not know is
// internal; the caller logs it and the client learns nothing of it.
func asAPIError(err error) (e *Error, internal bool) {
	var (
		ie *events.InputError
		ve *store.ValidationError
		re *gateway.RefusedError
	)
	switch {
	case errors.As(err, &e):
		return e, false
	case errors.Is(err, auth.ErrMissingCredentials), errors.Is(err, auth.ErrInvalidCredentials):
		return &Error{Status: http.StatusUnauthorized, Code: CodeUnauthorized, Message: auth.Reason(err)}, false
	case errors.Is(err, auth.ErrForbidden):
		return &Error{Status: http.StatusForbidden, Code: CodeForbidden, Message: err.Error()}, false
	case errors.As(err, &ie):
		return invalidf("%s", ie.Message), false
	case errors.As(err, &ve):
		return invalidf("%s", ve.Error()), false
	case errors.Is(err, events.ErrTooManySubscribers):
		return &Error{Status: http.StatusServiceUnavailable, Code: CodeUnavailable, Message: err.Error() + "; retry later", RetryAfter: 5}, false
	case errors.As(err, &re):
		return &Error{Status: re.Status, Code: re.Code, Message: re.Reason, header: re.Header}, false
	case errors.Is(err, context.DeadlineExceeded):
		return errorf(http.StatusServiceUnavailable, CodeUnavailable, "the database did not answer in time"), false
	}
	return errInternal, true
}

// agentError maps what fleet.Caller returned to the API's statuses. The
// agent's own messages are ours (validation text, Asterisk's short
// answers), so they are passed on; Go error chains are not.
func agentError(pbx string, timeout string, err error) *Error {
	var (
		pe *protocol.Error
		re *fleet.ReplicaError
	)
	switch {
	case errors.As(err, &re):
		// Another replica holds the PBX's tunnel and is dead or cannot be
		// reached: the agent reconnects to a live replica within seconds.
		msg := fmt.Sprintf("PBX %s is connected to control-plane replica %s, which %s; its agent reconnects to another replica: retry shortly", pbx, re.Replica, re.Reason)
		return &Error{Status: http.StatusServiceUnavailable, Code: CodePBXOffline, Message: msg, RetryAfter: 2}
	case errors.Is(err, fleet.ErrOffline):
		return errorf(http.StatusServiceUnavailable, CodePBXOffline, "PBX %s is not connected", pbx)
	case errors.Is(err, fleet.ErrDirectoryDown):
		return &Error{Status: http.StatusServiceUnavailable, Code: CodeUnavailable, Message: "the database did not say which control-plane replica holds PBX " + pbx + "; retry shortly", RetryAfter: 1}
	case errors.Is(err, context.DeadlineExceeded):
		return errorf(http.StatusGatewayTimeout, CodeAMITimeout, "PBX %s did not answer within %s", pbx, timeout)
	case errors.As(err, &pe):
		switch pe.Code {
		case protocol.ErrCodeInvalid:
			return invalidf("%s", pe.Message)
		case protocol.ErrCodeNotFound:
			return errorf(http.StatusNotFound, CodeNotFound, "%s", pe.Message)
		case protocol.ErrCodeTimeout:
			return errorf(http.StatusGatewayTimeout, CodeAMITimeout, "PBX %s did not answer within %s", pbx, timeout)
		case protocol.ErrCodeAMIDown:
			return errorf(http.StatusServiceUnavailable, CodeAMIDown, "PBX %s: %s", pbx, pe.Message)
		case protocol.ErrCodeAMIError:
			return errorf(http.StatusBadGateway, CodeAMIError, "PBX %s: %s", pbx, pe.Message)
		case protocol.ErrCodeAgentTooOld:
			// 409, not 501: the API implements the operation, and the
			// request is valid; it conflicts with the current state of
			// this one PBX (its agent's version), which an upgrade
			// resolves, after which the same request succeeds. A 5xx
			// would count against the control plane and invite retries.
			return errorf(http.StatusConflict, CodeAgentTooOld, "PBX %s: %s", pbx, pe.Message)
		case protocol.ErrCodeBusy:
			return &Error{Status: http.StatusTooManyRequests, Code: CodePBXBusy, Message: fmt.Sprintf("PBX %s: %s", pbx, pe.Message), RetryAfter: 1}
		case protocol.ErrCodeNotConfirmed:
			return errorf(http.StatusBadGateway, CodeNotConfirmed, "PBX %s: %s", pbx, pe.Message)
		case protocol.ErrCodeConflict:
			return errorf(http.StatusConflict, CodeConflict, "PBX %s: %s", pbx, pe.Message)
		case protocol.ErrCodeMemberNotDynamic:
			return errorf(http.StatusConflict, CodeMemberNotDynamic, "PBX %s: %s", pbx, pe.Message)
		case protocol.ErrCodeCallState:
			return errorf(http.StatusConflict, CodeCallState, "PBX %s: %s", pbx, pe.Message)
		case protocol.ErrCodeFeatureMissing:
			return errorf(http.StatusConflict, CodeFeatureMissing, "PBX %s: %s", pbx, pe.Message)
		case protocol.ErrCodeOpDisabled:
			// The PBX's owner turned the operation off in its agent's
			// config: a refusal of policy, like a missing scope.
			return errorf(http.StatusForbidden, CodeOpDisabled, "PBX %s: %s", pbx, pe.Message)
		default:
			return errorf(http.StatusBadGateway, CodeAgentError, "PBX %s failed the request (%s)", pbx, pe.Code)
		}
	case errors.Is(err, context.Canceled):
		return errorf(http.StatusServiceUnavailable, CodeUnavailable, "request canceled")
	}
	return errInternal
}

// storeError maps a store failure on the request path: validation errors
// are the caller's, a store that did not answer in time is an outage;
// anything else is returned as it is (internal, logged by the chain).
func storeError(err error) error {
	var ve *store.ValidationError
	if errors.As(err, &ve) {
		return invalidf("%s", ve.Error())
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return errorf(http.StatusServiceUnavailable, CodeUnavailable, "the database did not answer in time")
	}
	return err
}
