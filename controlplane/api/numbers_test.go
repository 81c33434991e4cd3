package api_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// testNumbersAsPasted: "to" and "from" are taken as people paste them
// (spaces, dashes, dots, parentheses dropped), the answer carries the
// normalised number, and anything else is still refused.
func testNumbersAsPasted(t *testing.T, e *env) {
	for _, to := range []string{"+375 29 625-40-70", "+375 (29) 625-40-70", "375296254070 ", "+375.29.625.40.70"} {
		t.Run(to, func(t *testing.T) {
			r := e.s.Do(t, "POST", "/v1/calls", e.a.key, map[string]any{"from": " 150 ", "to": to})
			wantStatus(t, r, http.StatusCreated, "")
			want := strings.NewReplacer(" ", "", "-", "", ".", "", "(", "", ")", "").Replace(to)
			if got := jsonField(t, r.Body, "to"); got != want {
				t.Fatalf("to %q, want %q", got, want)
			}
			if got := jsonField(t, r.Body, "from"); got != "150" {
				t.Fatalf("from %q, want 150", got)
			}
		})
	}
	for _, bad := range []string{"+375 29 abc", "375_29", "+ -", "3+75"} {
		t.Run("refused "+bad, func(t *testing.T) {
			r := e.s.Do(t, "POST", "/v1/calls", e.a.key, map[string]any{"from": "150", "to": bad})
			wantStatus(t, r, http.StatusBadRequest, "invalid_request")
			if msg := jsonErrorMessage(t, r); !strings.Contains(msg, `"to" must be digits`) {
				t.Fatalf("message %q", msg)
			}
		})
	}
	t.Run("legacy: an unencoded + arrives as a space", func(t *testing.T) {
		// What curl sends for ?phone=+375 29 625 40 70 typed unencoded.
		q := "code=150&phone=+375+29+625-40-70&clientId=" + url.QueryEscape(e.a.key)
		r := e.s.Do(t, "GET", "/api/makecallexternal?"+q, "", nil)
		if r.Status != http.StatusOK || !strings.Contains(string(r.Body), `"to_phone":"+375296254070"`) {
			t.Fatalf("%d %s", r.Status, r.Body)
		}
	})
}
