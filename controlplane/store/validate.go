package store

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Input limits, checked before anything is written.
const (
	MaxEnterpriseNumberLen = 16
	MaxNameLen             = 100 // enterprise, agent and API key names, in characters
	MaxContextLen          = 79  // Asterisk's AST_MAX_CONTEXT minus the terminator
	DefaultContext         = "inoffice"
)

func validateEnterpriseNumber(number string) error {
	if number == "" || len(number) > MaxEnterpriseNumberLen {
		return invalid("enterprise number", "must be 1-%d digits, got %d characters", MaxEnterpriseNumberLen, len(number))
	}
	for _, c := range number {
		if c < '0' || c > '9' {
			return invalid("enterprise number", "must contain only digits 0-9, got %q", number)
		}
	}
	return nil
}

// cleanName trims surrounding space and checks what is left.
func cleanName(field, name string) (string, error) {
	name = strings.TrimSpace(name)
	if name == "" {
		return "", invalid(field, "must not be empty")
	}
	if !utf8.ValidString(name) {
		return "", invalid(field, "must be valid UTF-8")
	}
	if n := utf8.RuneCountInString(name); n > MaxNameLen {
		return "", invalid(field, "must be at most %d characters, got %d", MaxNameLen, n)
	}
	for _, r := range name {
		if unicode.IsControl(r) {
			return "", invalid(field, "must not contain control characters")
		}
	}
	return name, nil
}

// validateContext keeps the dialplan context to characters that cannot
// change the meaning of an AMI dial string the agent builds from it.
func validateContext(ctx string) error {
	if ctx == "" || len(ctx) > MaxContextLen {
		return invalid("context", "must be 1-%d characters, got %d", MaxContextLen, len(ctx))
	}
	for _, c := range ctx {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.'
		if !ok {
			return invalid("context", "may contain only letters, digits, '_', '-' and '.', got %q", ctx)
		}
	}
	return nil
}
