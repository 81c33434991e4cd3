package console

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed assets
var assets embed.FS

// ContentSecurityPolicy is sent with every console file: scripts, styles
// and connections (fetch and the event WebSocket) only to this origin,
// nothing inline, no frames.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// File is one console asset.
type File struct {
	Name        string // its path under assets/
	ContentType string
	Body        []byte
	ETag        string
}

var files = load()

// load reads every embedded asset once, with its type and ETag.
func load() map[string]File {
	out := map[string]File{}
	err := fs.WalkDir(assets, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := assets.ReadFile(p)
		if err != nil {
			return err
		}
		name := strings.TrimPrefix(p, "assets/")
		ct := mime.TypeByExtension(path.Ext(name))
		switch path.Ext(name) {
		case ".js":
			ct = "text/javascript; charset=utf-8" // mime's table varies by system
		case ".html":
			ct = "text/html; charset=utf-8"
		case ".css":
			ct = "text/css; charset=utf-8"
		}
		sum := sha256.Sum256(b)
		out[name] = File{Name: name, ContentType: ct, Body: b, ETag: `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`}
		return nil
	})
	if err != nil {
		panic("console: embedded assets unreadable: " + err.Error())
	}
	return out
}

// Lookup returns the file served at urlPath: "/" is the console's page,
// "/assets/…" its other files. Anything else is not the console's.
func Lookup(urlPath string) (File, bool) {
	name := ""
	switch {
	case urlPath == "/" || urlPath == "/index.html":
		name = "index.html"
	case strings.HasPrefix(urlPath, "/assets/"):
		name = strings.TrimPrefix(urlPath, "/assets/")
		if name == "index.html" {
			return File{}, false
		}
	default:
		return File{}, false
	}
	f, ok := files[name]
	return f, ok
}

// Names lists the embedded files (for tests).
func Names() []string {
	out := make([]string, 0, len(files))
	for n := range files {
		out = append(out, n)
	}
	return out
}

// Serve writes f: its type, ETag and security headers, and 304 to a
// browser that has it already. Every file is revalidated on each load
// (no-cache), so an upgraded control plane's console is picked up at once.
func Serve(w http.ResponseWriter, r *http.Request, f File) {
	h := w.Header()
	h.Set("Content-Type", f.ContentType)
	h.Set("ETag", f.ETag)
	h.Set("Cache-Control", "no-cache")
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	http.ServeContent(w, r, f.Name, time.Time{}, bytes.NewReader(f.Body))
}
