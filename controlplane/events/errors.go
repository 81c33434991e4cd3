package events

import "fmt"

// InputError is input the service refuses (a webhook URL, a resume point
// beyond the latest event). Its message is safe to show to the caller;
// nothing was changed.
type InputError struct{ Message string }

func (e *InputError) Error() string { return e.Message }

func invalidf(format string, args ...any) error {
	return &InputError{Message: fmt.Sprintf(format, args...)}
}
