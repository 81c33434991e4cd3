package cluster

import (
	"errors"
	"net/http"
	"testing"
	"time"
)

func TestSigner(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	secret := []byte("0123456789abcdef0123456789abcdef")
	a, b := newSigner(secret, 30*time.Second, clock), newSigner(secret, 30*time.Second, clock)
	other := newSigner([]byte("another secret of 32 bytes or mo"), 30*time.Second, clock)
	body := []byte(`{"agent":"agt_1","op":"ping"}`)
	signed := func(s *signer, at time.Time) http.Header {
		h := http.Header{}
		saved := s.now
		s.now = func() time.Time { return at }
		s.sign(h, "POST", CallPath, "rpl_a", body)
		s.now = saved
		return h
	}
	tests := []struct {
		name   string
		h      http.Header
		method string
		path   string
		body   []byte
		ok     bool
	}{
		{"good", signed(a, now), "POST", CallPath, body, true},
		{"skew within the window", signed(a, now.Add(-20*time.Second)), "POST", CallPath, body, true},
		{"stale", signed(a, now.Add(-time.Minute)), "POST", CallPath, body, false},
		{"from the future", signed(a, now.Add(time.Minute)), "POST", CallPath, body, false},
		{"another body", signed(a, now.Add(time.Second)), "POST", CallPath, []byte(`{"agent":"agt_2","op":"ping"}`), false},
		{"another path", signed(a, now.Add(2*time.Second)), "POST", "/cluster/v1/other", body, false},
		{"another secret", signed(other, now), "POST", CallPath, body, false},
		{"no headers", http.Header{}, "POST", CallPath, body, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			from, err := b.verify(tc.h, tc.method, tc.path, tc.body)
			if tc.ok != (err == nil) {
				t.Fatalf("verify = %q, %v; want ok %v", from, err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrUnauthenticated) {
				t.Fatalf("refusal %v is not ErrUnauthenticated", err)
			}
			if tc.ok && from != "rpl_a" {
				t.Fatalf("from = %q", from)
			}
		})
	}
	// A signature is accepted once: a call captured on the wire does not
	// dial twice.
	h := signed(a, now.Add(3*time.Second))
	if _, err := b.verify(h, "POST", CallPath, body); err != nil {
		t.Fatal(err)
	}
	if _, err := b.verify(h, "POST", CallPath, body); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("replay = %v", err)
	}
	// Each use of the secret has its own key.
	if string(deriveKey(secret, "replica-call")) == string(deriveKey(secret, "event-tickets")) {
		t.Fatal("derived keys are equal")
	}
}

func TestConfigValidate(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"alone", Config{}, true},
		{"clustered", Config{Secret: secret, URL: "http://10.0.0.5:8080"}, true},
		{"short secret", Config{Secret: []byte("short"), URL: "http://10.0.0.5:8080"}, false},
		{"clustered without URL", Config{Secret: secret}, false},
		{"URL without port", Config{Secret: secret, URL: "http://10.0.0.5"}, false},
		{"URL with a path", Config{Secret: secret, URL: "http://10.0.0.5:8080/x"}, false},
		{"URL of another scheme", Config{Secret: secret, URL: "ws://10.0.0.5:8080"}, false},
		{"negative heartbeat", Config{Heartbeat: -time.Second}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.cfg.Validate(); tc.ok != (err == nil) {
				t.Fatalf("Validate = %v, want ok %v", err, tc.ok)
			}
		})
	}
}
