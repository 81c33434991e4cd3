package main

import (
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestAPIErrorMessage(t *testing.T) {
	resp := func(code int, requestID string) *http.Response {
		h := http.Header{}
		if requestID != "" {
			h.Set("X-Request-Id", requestID)
		}
		return &http.Response{StatusCode: code, Status: http.StatusText(code), Header: h}
	}
	tests := []struct {
		name string
		code int
		rid  string
		body string
		want string
	}{
		{"envelope", 404, "r-1", `{"error":{"code":"not_found","message":"call sb-1 not found"}}`,
			"DELETE /v1/calls/sb-1: call sb-1 not found (404 not_found) [request r-1]"},
		{"plain text from a proxy", 502, "", "upstream connect error\nmore lines", "DELETE /v1/calls/sb-1: upstream connect error (Bad Gateway)"},
		{"empty body", 503, "", "", "DELETE /v1/calls/sb-1: Service Unavailable"},
		{"JSON that is not the envelope", 400, "", `{"detail":"Invalid clientId"}`, `DELETE /v1/calls/sb-1: {"detail":"Invalid clientId"} (Bad Request)`},
		{"a long page", 500, "", strings.Repeat("é", 150), "DELETE /v1/calls/sb-1: " + strings.Repeat("é", 100) + "… (Internal Server Error)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := newAPIError("DELETE", "/v1/calls/sb-1", resp(tc.code, tc.rid), []byte(tc.body)).Error()
			if got != tc.want {
				t.Fatalf("\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

func FuzzAPIError(f *testing.F) {
	f.Add(400, []byte(`{"error":{"code":"invalid_request","message":"bad"}}`))
	f.Add(502, []byte("<html>\n<body>Bad Gateway</body>"))
	f.Add(500, []byte(strings.Repeat("ж", 300)))
	f.Fuzz(func(t *testing.T, code int, body []byte) {
		e := newAPIError("GET", "/v1/x", &http.Response{StatusCode: code, Status: "x", Header: http.Header{}}, body)
		msg := e.Error()
		if e.code == "" {
			// Not the API's envelope: one line, bounded, and valid UTF-8
			// when the body was.
			if strings.Contains(e.message, "\n") || len(e.message) > apiErrorBodyLimit+len("…") {
				t.Fatalf("message %q: more than one bounded line", e.message)
			}
			if utf8.Valid(body) && !utf8.ValidString(msg) {
				t.Fatalf("message %q cuts a character", msg)
			}
		}
		if !strings.HasPrefix(msg, "GET /v1/x: ") {
			t.Fatalf("message %q", msg)
		}
	})
}
