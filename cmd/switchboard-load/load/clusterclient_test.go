package load

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestGetJSON: only a 200 answer decodes; an error answer is an error, not
// an empty result (the killed replica's PBXs, the stored events would
// otherwise be none, and the run would measure nothing and pass).
func TestGetJSON(t *testing.T) {
	tests := []struct {
		name    string
		status  int
		body    string
		wantErr string
		want    int
	}{
		{"ok", http.StatusOK, `{"n":3}`, "", 3},
		{"refused token", http.StatusUnauthorized, `{"error":{"code":"unauthorized"}}`, "401 Unauthorized: {\"error\"", 0},
		{"not JSON", http.StatusOK, `<html>`, "invalid character", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if got := r.Header.Get("Authorization"); got != "Bearer tok" {
					t.Errorf("Authorization %q", got)
				}
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.body))
			}))
			defer srv.Close()
			var v struct{ N int }
			err := getJSON(context.Background(), srv.Client(), srv.URL+"/x", "tok", &v)
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
			if v.N != tc.want {
				t.Errorf("decoded %d, want %d", v.N, tc.want)
			}
		})
	}
}
