package ops

import (
	"cmp"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/switchboard-pbx/switchboard/protocol"
)

// Limits bound what one request may ask for. Zero fields take the
// Default* values; see Validate for the ranges accepted.
type Limits struct {
	// MaxNumberLen bounds extensions and numbers (digits, *, #, an
	// optional leading +). E.164 needs 16 with the +; 32 leaves room for
	// access codes and DTMF suffixes.
	MaxNumberLen int
	// MaxCallerIDNameBytes bounds the name part of a caller id; phones
	// show far less, and Asterisk truncates at 80 (AST_MAX_EXTENSION).
	MaxCallerIDNameBytes int
	// MaxVariables bounds the channel variables of one originate.
	MaxVariables int
	// MaxVariableValueBytes bounds one variable's value.
	MaxVariableValueBytes int
	// DefaultTimeout is how long the first leg rings when the request
	// does not say; MinTimeout..MaxTimeout is what a request may ask.
	DefaultTimeout time.Duration
	MinTimeout     time.Duration
	MaxTimeout     time.Duration
	// MaxChannelNameBytes bounds a channel name in a hangup request.
	// Asterisk's own names fit in 80 bytes (AST_CHANNEL_NAME).
	MaxChannelNameBytes int
	// MaxCallIDBytes bounds a call id given by the caller, and a uniqueid
	// in a hangup request (Asterisk allows 150, AST_MAX_UNIQUEID).
	MaxCallIDBytes int
}

// Defaults of Limits.
const (
	DefaultMaxNumberLen          = 32
	DefaultMaxCallerIDNameBytes  = 64
	DefaultMaxVariables          = 32
	DefaultMaxVariableValueBytes = 256
	DefaultOriginateTimeout      = 30 * time.Second
	DefaultMinOriginateTimeout   = 1 * time.Second
	DefaultMaxOriginateTimeout   = 300 * time.Second
	DefaultMaxChannelNameBytes   = 128
	DefaultMaxCallIDBytes        = 64
	// DefaultCause is Q.850 16, normal clearing, as in the seed.
	DefaultCause = 16
	// MaxCause is the largest Q.850 cause value.
	MaxCause = 127
	// maxVariableNameLen is the 64 of [A-Za-z_][A-Za-z0-9_]{0,63}.
	maxVariableNameLen = 64
	// hardMaxValueBytes keeps "Variable: <name>=<value>" under
	// Asterisk's 1024-byte line limit whatever the configuration says.
	hardMaxValueBytes = 900
)

func (l *Limits) fill() {
	l.MaxNumberLen = cmp.Or(l.MaxNumberLen, DefaultMaxNumberLen)
	l.MaxCallerIDNameBytes = cmp.Or(l.MaxCallerIDNameBytes, DefaultMaxCallerIDNameBytes)
	l.MaxVariables = cmp.Or(l.MaxVariables, DefaultMaxVariables)
	l.MaxVariableValueBytes = cmp.Or(l.MaxVariableValueBytes, DefaultMaxVariableValueBytes)
	l.DefaultTimeout = cmp.Or(l.DefaultTimeout, DefaultOriginateTimeout)
	l.MinTimeout = cmp.Or(l.MinTimeout, DefaultMinOriginateTimeout)
	l.MaxTimeout = cmp.Or(l.MaxTimeout, DefaultMaxOriginateTimeout)
	l.MaxChannelNameBytes = cmp.Or(l.MaxChannelNameBytes, DefaultMaxChannelNameBytes)
	l.MaxCallIDBytes = cmp.Or(l.MaxCallIDBytes, DefaultMaxCallIDBytes)
}

// Validate says exactly what is wrong. Zero fields are fine (defaults).
func (l Limits) Validate() error {
	var errs []error
	rng := func(name string, v, lo, hi int) {
		if v != 0 && (v < lo || v > hi) {
			errs = append(errs, fmt.Errorf("%s %d is outside %d..%d", name, v, lo, hi))
		}
	}
	rng("MaxNumberLen", l.MaxNumberLen, 1, 64)
	rng("MaxCallerIDNameBytes", l.MaxCallerIDNameBytes, 1, 80)
	rng("MaxVariables", l.MaxVariables, 1, 256)
	rng("MaxVariableValueBytes", l.MaxVariableValueBytes, 1, hardMaxValueBytes)
	rng("MaxChannelNameBytes", l.MaxChannelNameBytes, 16, 512)
	rng("MaxCallIDBytes", l.MaxCallIDBytes, 8, 150)
	f := l
	f.fill()
	if f.MinTimeout < time.Second || f.MaxTimeout < f.MinTimeout || f.MaxTimeout > time.Hour {
		errs = append(errs, fmt.Errorf("originate timeouts %v..%v must satisfy 1s <= min <= max <= 1h", f.MinTimeout, f.MaxTimeout))
	}
	if f.DefaultTimeout < f.MinTimeout || f.DefaultTimeout > f.MaxTimeout {
		errs = append(errs, fmt.Errorf("DefaultTimeout %v is outside %v..%v", f.DefaultTimeout, f.MinTimeout, f.MaxTimeout))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid limits: %w", err)
	}
	return nil
}

// InvalidError is a request refused by validation. Field is the JSON name
// of the argument; Reason says what is allowed.
type InvalidError struct {
	Field  string
	Reason string
}

func (e *InvalidError) Error() string {
	if e.Field == "" {
		return e.Reason
	}
	return e.Field + ": " + e.Reason
}

func invalid(field, format string, a ...any) *InvalidError {
	return &InvalidError{Field: field, Reason: fmt.Sprintf(format, a...)}
}

var (
	// numberRe: extensions and numbers. No letters, no '@', '/', ',', ';'
	// or '&': they end up inside Local/<n>@<context> and Dial's data, where
	// those characters would change what is dialled.
	numberRe = regexp.MustCompile(`^\+?[0-9*#]+$`)
	// variableNameRe rejects function calls such as CHANNEL(…) or
	// FILE(…), which Asterisk would execute when setting them.
	variableNameRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	// callIDRe: ids we put in ChannelId and that end up in CDRs, logs and
	// URLs: keep them to characters that need no quoting anywhere.
	callIDRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	// contextRe: an Asterisk dialplan context name we can put after '@'.
	contextRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,79}$`)
)

// checkNumber validates an extension or a number.
func (l Limits) checkNumber(field, s string) error {
	if s == "" {
		return invalid(field, "is required")
	}
	if len(s) > l.MaxNumberLen || !numberRe.MatchString(s) {
		return invalid(field, "must be 1 to %d of the characters 0-9 * # with an optional leading +", l.MaxNumberLen)
	}
	return nil
}

// CheckContext validates a dialplan context name (agent configuration).
func CheckContext(s string) error {
	if !contextRe.MatchString(s) {
		return invalid("context", "must be 1 to 79 of the characters A-Z a-z 0-9 _ -")
	}
	return nil
}

// hasControl reports a byte that must never reach AMI or a phone display:
// C0 controls (CR, LF, NUL, TAB…) and DEL.
func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// callerID parses a caller id given as "num", "name <num>", "\"name\"
// <num>" or "name", and renders it in the one form Asterisk parses
// unambiguously: "\"name\" <num>". Names may not contain the quotes,
// angle brackets or backslashes that delimit that form.
func (l Limits) callerID(field, s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", nil
	}
	if !utf8.ValidString(s) || hasControl(s) {
		return "", invalid(field, "must be printable UTF-8 without CR, LF or NUL")
	}
	name, num := s, ""
	if i := strings.IndexByte(s, '<'); i >= 0 {
		if !strings.HasSuffix(s, ">") {
			return "", invalid(field, `must look like "name <number>"`)
		}
		name, num = strings.TrimSpace(s[:i]), s[i+1:len(s)-1]
		if err := l.checkNumber(field+" number", num); err != nil {
			return "", err
		}
	} else if numberRe.MatchString(s) {
		if err := l.checkNumber(field, s); err != nil {
			return "", err
		}
		name, num = "", s
	}
	if len(name) >= 2 && name[0] == '"' && name[len(name)-1] == '"' {
		name = strings.TrimSpace(name[1 : len(name)-1])
	}
	if strings.ContainsAny(name, "\"<>\\") {
		return "", invalid(field, `name may not contain " < > or \`)
	}
	if len(name) > l.MaxCallerIDNameBytes {
		return "", invalid(field, "name is longer than %d bytes", l.MaxCallerIDNameBytes)
	}
	switch {
	case name == "" && num == "":
		return "", nil
	case name == "":
		return "<" + num + ">", nil
	case num == "":
		return `"` + name + `"`, nil
	}
	return `"` + name + `" <` + num + ">", nil
}

// timeout turns timeout_s into a duration within the limits.
func (l Limits) timeout(seconds int) (time.Duration, error) {
	if seconds == 0 {
		return l.DefaultTimeout, nil
	}
	d := time.Duration(seconds) * time.Second
	if seconds < 0 || d < l.MinTimeout || d > l.MaxTimeout {
		return 0, invalid("timeout_s", "must be %d to %d seconds", int(l.MinTimeout/time.Second), int(l.MaxTimeout/time.Second))
	}
	return d, nil
}

// variable is one channel variable of an originate.
type variable struct{ Name, Value string }

// variables validates an originate's variables and returns them sorted by
// name, so the action is the same bytes for the same request.
//
// Values may not contain ',' '"' or '\': Asterisk splits a Variable header
// into name=value pairs with its application-argument parser
// (manager.c, man_do_variable_value → AST_STANDARD_APP_ARGS), so a comma
// would let a value set a second variable — even a dialplan function such
// as FILE(…) — and quotes and backslashes would be silently removed.
func (l Limits) variables(vars map[string]string) ([]variable, error) {
	if len(vars) > l.MaxVariables {
		return nil, invalid("variables", "at most %d variables", l.MaxVariables)
	}
	out := make([]variable, 0, len(vars))
	for name, value := range vars {
		if len(name) > maxVariableNameLen || !variableNameRe.MatchString(name) {
			return nil, invalid("variables", "name %q must match [A-Za-z_][A-Za-z0-9_]{0,63}", truncate(name, 80))
		}
		if len(value) > l.MaxVariableValueBytes {
			return nil, invalid("variables", "value of %s is longer than %d bytes", name, l.MaxVariableValueBytes)
		}
		if !utf8.ValidString(value) || hasControl(value) {
			return nil, invalid("variables", "value of %s must be printable UTF-8 without CR, LF or NUL", name)
		}
		if strings.ContainsAny(value, ",\"\\") {
			return nil, invalid("variables", `value of %s may not contain , " or \ (Asterisk would split or alter it)`, name)
		}
		out = append(out, variable{name, value})
	}
	slices.SortFunc(out, func(a, b variable) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// checkCallID validates a call id given by the caller.
func (l Limits) checkCallID(field, s string) error {
	if len(s) > l.MaxCallIDBytes || !callIDRe.MatchString(s) {
		return invalid(field, "must be 1 to %d of the characters A-Z a-z 0-9 . _ - (not starting with . _ -)", l.MaxCallIDBytes)
	}
	return nil
}

// checkChannelName validates a channel name given by the caller. A
// leading '/' is refused: Asterisk's Hangup treats "/…/" as a regular
// expression over every channel, which a caller must not be able to send.
func (l Limits) checkChannelName(s string) error {
	switch {
	case s == "":
		return invalid("channel", "is empty")
	case len(s) > l.MaxChannelNameBytes:
		return invalid("channel", "is longer than %d bytes", l.MaxChannelNameBytes)
	case !utf8.ValidString(s) || hasControl(s) || strings.ContainsAny(s, " \t"):
		return invalid("channel", "must be printable UTF-8 without blanks, CR, LF or NUL")
	case s[0] == '/':
		return invalid("channel", "may not start with '/' (a regular expression)")
	}
	return nil
}

// checkUniqueID validates a uniqueid given by the caller. It is only
// looked up in the channel table, never sent to AMI, but it still gets a
// bound and no control bytes.
func (l Limits) checkUniqueID(s string) error {
	if s == "" || len(s) > 150 || !utf8.ValidString(s) || hasControl(s) {
		return invalid("uniqueid", "must be 1 to 150 printable bytes")
	}
	return nil
}

// cause turns a request's cause into a Q.850 value (0 means default).
func cause(c int) (int, error) {
	if c == 0 {
		return DefaultCause, nil
	}
	if c < 0 || c > MaxCause {
		return 0, invalid("cause", "must be 1 to %d (Q.850)", MaxCause)
	}
	return c, nil
}

// chanSpyOptions maps a monitor mode to ChanSpy options: b spies only on
// bridged channels (never on a half still in the dialplan), q skips the
// beep, w whispers to the target, B barges into both directions.
var chanSpyOptions = map[string]string{
	protocol.MonitorSpy:     "bq",
	protocol.MonitorWhisper: "bqw",
	protocol.MonitorBarge:   "Bbqw",
}

// spyPrefixRe: a ChanSpy prefix goes into ChanSpy's argument list, where
// ',' '|' '(' and ')' would change the arguments.
var spyPrefixRe = regexp.MustCompile(`^[A-Za-z0-9/@._+*#:;-]+$`)

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
