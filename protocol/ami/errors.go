package ami

import (
	"errors"
	"fmt"
)

// Errors of the client, matched with errors.Is.
var (
	// ErrNotConnected: there is no logged-in session right now. Actions
	// fail at once instead of queueing behind a reconnect, so a caller
	// (an API request with its own deadline) can answer "PBX unreachable".
	ErrNotConnected = errors.New("ami: not connected")
	// ErrTimeout: no answer before the deadline. It is returned together
	// with context.DeadlineExceeded, so either can be matched.
	ErrTimeout = errors.New("ami: timeout")
	// ErrAuth: Asterisk refused the login ("Authentication failed").
	ErrAuth = errors.New("ami: authentication failed")
	// ErrDisconnected: the connection was lost while the action was in
	// flight; whether Asterisk ran it is unknown.
	ErrDisconnected = errors.New("ami: disconnected")
	// ErrClosed: the client was closed.
	ErrClosed = errors.New("ami: client closed")
	// ErrActionFailed is wrapped by *ResponseError.
	ErrActionFailed = errors.New("ami: action failed")
)

// ResponseError is Asterisk's "Response: Error" to an action, with its
// Message (e.g. "No such channel", "Originate failed").
type ResponseError struct {
	Action  string
	Message string
}

func (e *ResponseError) Error() string {
	return fmt.Sprintf("ami: %s: %s", e.Action, e.Message)
}

// Unwrap makes errors.Is(err, ErrActionFailed) true.
func (e *ResponseError) Unwrap() error { return ErrActionFailed }
