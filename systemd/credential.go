package systemd

import (
	"os"
	"path/filepath"
	"strings"
)

// Credential resolves a credential passed to the service with
// LoadCredential=name:… or SetCredential=name:…, returning the path of the
// read-only copy systemd placed under $CREDENTIALS_DIRECTORY. ok is false
// when the process has no credentials directory, when name could escape it
// (empty, ".", "..", or containing '/'), or when no such credential was
// passed — for example an optional LoadCredential= whose source is missing.
//
// The path, not the content, is returned so that callers reuse their
// existing *-file flags and never keep a secret in a string longer than
// they need to.
func Credential(name string) (path string, ok bool) {
	dir := os.Getenv("CREDENTIALS_DIRECTORY")
	if dir == "" || !validCredentialName(name) {
		return "", false
	}
	p := filepath.Join(dir, name)
	fi, err := os.Stat(p)
	if err != nil || !fi.Mode().IsRegular() {
		return "", false
	}
	return p, true
}

// validCredentialName mirrors systemd's credential_name_valid(): a single
// path component that is not "." or "..". systemd also caps names at
// NAME_MAX, which the stat above enforces for us.
func validCredentialName(name string) bool {
	return name != "" && name != "." && name != ".." && !strings.ContainsAny(name, "/\x00")
}
