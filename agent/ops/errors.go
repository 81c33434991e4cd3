package ops

import (
	"context"
	"errors"
	"strings"

	"github.com/switchboard-pbx/switchboard/protocol"
	"github.com/switchboard-pbx/switchboard/protocol/ami"
)

// Errors of the operations, matched with errors.Is. Validation failures
// are *InvalidError.
var (
	// ErrNotFound: the channel, uniqueid or extension has no live channel.
	ErrNotFound = errors.New("not found")
	// ErrBusy: MaxConcurrentOriginates calls are already being set up.
	ErrBusy = errors.New("too many originates in progress")
	// ErrUnsupported: the op is not one this agent knows.
	ErrUnsupported = errors.New("unsupported operation")
	// ErrConflict: the PBX's state refuses the request (a call not
	// answered yet, a recording already stopped).
	ErrConflict = errors.New("conflict")
)

// noSuchChannel is Asterisk's answer to a Hangup (or Status, Redirect…)
// of a channel that does not exist (transcript 08b).
const noSuchChannel = "No such channel"

// ErrorFor maps an operation's error to the stable code sent to the
// control plane. Messages are ours or Asterisk's short answers, never Go
// error chains with internal details; anything unexpected is "internal".
func ErrorFor(err error) *protocol.Error {
	var pe *protocol.Error
	var inv *InvalidError
	var re *ami.ResponseError
	var nc *notConfirmedError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &pe):
		return pe
	case errors.As(err, &inv):
		return &protocol.Error{Code: protocol.ErrCodeInvalid, Message: inv.Error()}
	case errors.Is(err, ErrNotFound):
		return &protocol.Error{Code: protocol.ErrCodeNotFound, Message: err.Error()}
	case errors.Is(err, ErrBusy):
		return &protocol.Error{Code: protocol.ErrCodeBusy, Message: err.Error()}
	case errors.Is(err, ErrUnsupported):
		return &protocol.Error{Code: protocol.ErrCodeUnsupported, Message: err.Error()}
	case errors.As(err, &nc):
		return &protocol.Error{Code: protocol.ErrCodeNotConfirmed, Message: nc.msg}
	case errors.Is(err, ErrConflict):
		return &protocol.Error{Code: protocol.ErrCodeConflict, Message: err.Error()}
	case errors.As(err, &re):
		if strings.EqualFold(re.Message, noSuchChannel) {
			return &protocol.Error{Code: protocol.ErrCodeNotFound, Message: "asterisk: " + re.Message}
		}
		return &protocol.Error{Code: protocol.ErrCodeAMIError, Message: "asterisk: " + re.Message}
	case errors.Is(err, ami.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return &protocol.Error{Code: protocol.ErrCodeTimeout, Message: "no answer from Asterisk before the deadline"}
	case errors.Is(err, ami.ErrNotConnected), errors.Is(err, ami.ErrClosed):
		return &protocol.Error{Code: protocol.ErrCodeAMIDown, Message: "the agent has no AMI session"}
	case errors.Is(err, ami.ErrDisconnected):
		return &protocol.Error{Code: protocol.ErrCodeAMIDown, Message: "AMI connection lost during the request; it may or may not have run"}
	case errors.Is(err, ami.ErrInjection):
		// Validation should have refused it first; still the caller's input.
		return &protocol.Error{Code: protocol.ErrCodeInvalid, Message: "argument would inject into the AMI stream"}
	case errors.Is(err, context.Canceled):
		return &protocol.Error{Code: protocol.ErrCodeInternal, Message: "request canceled: the agent is shutting down"}
	}
	return &protocol.Error{Code: protocol.ErrCodeInternal, Message: "internal error"}
}
