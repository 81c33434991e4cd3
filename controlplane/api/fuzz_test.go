package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzPHPEscape: the PHP-style output decodes to exactly what Go's own
// encoding decodes to, and holds no raw '/' or non-ASCII byte.
func FuzzPHPEscape(f *testing.F) {
	for _, s := range []string{"PJSIP/150-0000002a", "подслушивание", "emoji 😀 /x", "\u2028", "a\"b\\c", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		plain, err := marshalNoHTML(map[string]string{"k": s})
		if err != nil {
			t.Fatal(err) // any string marshals: invalid UTF-8 becomes U+FFFD
		}
		esc := phpEscape(plain)
		for _, c := range esc {
			if c == '/' && !strings.Contains(string(esc), `\/`) || c >= 0x80 {
				t.Fatalf("raw %q in %s", c, esc)
			}
		}
		var a, b map[string]string
		if err := json.Unmarshal(plain, &a); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(esc, &b); err != nil {
			t.Fatalf("escaped %s: %v", esc, err)
		}
		if a["k"] != b["k"] {
			t.Fatalf("%q became %q", a["k"], b["k"])
		}
	})
}

// FuzzRedactedQuery: whatever the query, the secret of an API key passed
// as clientId never reaches the access log.
func FuzzRedactedQuery(f *testing.F) {
	const secret = "abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrst"
	for _, s := range []string{"code=150", "clientid=", "a=b;", "clientId=x", "%zz", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, prefix string) {
		q := prefix + "&clientId=sbk_key_aaaaaaaaaaaaaaaa_" + secret
		if out := redactedQuery(q); strings.Contains(out, secret[:20]) {
			t.Fatalf("%q logged as %q", q, out)
		}
	})
}

// FuzzLegacyHangupBody: any body, JSON or form, is either refused with a
// 400/413 or parsed; it never panics and never yields invalid UTF-8.
func FuzzLegacyHangupBody(f *testing.F) {
	f.Add(`{"channel":"SIP/1","force":"1","cause":"17"}`, true)
	f.Add(`channel=SIP%2F1&hangup_all=on`, false)
	f.Add(`{"uniqueid":1700000000.1}`, true)
	f.Fuzz(func(t *testing.T, body string, isJSON bool) {
		r := httptest.NewRequest("POST", "/api/v2/asterisk/call/hangup", strings.NewReader(body))
		if isJSON {
			r.Header.Set("Content-Type", "application/json")
		} else {
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		a := &API{cfg: Config{MaxBodyBytes: DefaultMaxBodyBytes}}
		r.Body = http.MaxBytesReader(httptest.NewRecorder(), r.Body, DefaultMaxBodyBytes)
		c := &call{api: a, r: r}
		req, err := c.legacyHangupBody()
		if err != nil {
			e, _ := asAPIError(err)
			if e.Status != 400 && e.Status != 413 {
				t.Fatalf("status %d for %q", e.Status, body)
			}
			return
		}
		for _, s := range []string{req.Channel, req.UniqueID, req.Reason, req.PBX} {
			if !strings.EqualFold(s, strings.ToValidUTF8(s, "")) {
				t.Fatalf("invalid UTF-8 passed: %q", s)
			}
		}
	})
}

// FuzzDecodeJSON: strict decoding of any body either fills the request or
// answers a 400/413 — never a 500.
func FuzzDecodeJSON(f *testing.F) {
	f.Add(`{"from":"150","to":"151","variables":{"A":"b"}}`)
	f.Add(`{"from":1}`)
	f.Add(`[]`)
	f.Add(`{"x":1}`)
	f.Fuzz(func(t *testing.T, body string) {
		r := httptest.NewRequest("POST", "/v1/calls", strings.NewReader(body))
		c := &call{r: r}
		var req originateRequest
		if err := c.decodeJSON(&req); err != nil {
			e, internal := asAPIError(err)
			if internal || e.Status != 400 && e.Status != 413 {
				t.Fatalf("%v for %q", err, body)
			}
		}
	})
}

// FuzzRequestID: only sane ids are kept.
func FuzzRequestID(f *testing.F) {
	f.Add("abc-1")
	f.Add("a b\n")
	f.Fuzz(func(t *testing.T, id string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set(RequestIDHeader, id)
		got := requestID(r)
		if got == id && !saneRequestID(id) || strings.ContainsAny(got, " \r\n\"=") || len(got) > maxRequestIDLen {
			t.Fatalf("%q → %q", id, got)
		}
	})
}
