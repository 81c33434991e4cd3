package auth

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func newTickets(t testing.TB, cfg TicketConfig) (*Tickets, *testClock) {
	t.Helper()
	clk := newClock()
	cfg.Now = clk.Now
	tk, err := NewTickets(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return tk, clk
}

var ticketPrincipal = Principal{Kind: KindOperator, ID: "op-42", EnterpriseID: 7, EnterpriseNumber: "0367", Roles: []string{RoleSupervisor}}

func TestTickets(t *testing.T) {
	other, _ := newTickets(t, TicketConfig{})
	foreign, err := other.Issue(context.Background(), ticketPrincipal, 0)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(s string, i int) string {
		b := []byte(s)
		b[i] ^= 1
		return string(b)
	}
	tests := []struct {
		name    string
		ttl     time.Duration
		advance time.Duration
		mangle  func(string) string
		wantErr error
	}{
		{"redeem at once", 0, 0, nil, nil},
		{"redeem just before default TTL", 0, DefaultTicketTTL - time.Nanosecond, nil, nil},
		{"expired at default TTL", 0, DefaultTicketTTL, nil, ErrTokenExpired},
		{"custom TTL honoured", 10 * time.Second, 11 * time.Second, nil, ErrTokenExpired},
		{"TTL capped at MaxTTL", time.Hour, DefaultMaxTicketTTL, nil, ErrTokenExpired},
		{"flipped id byte", 0, 0, func(s string) string { return flip(s, len(TicketPrefix)+2) }, ErrInvalidTicket},
		{"flipped MAC byte", 0, 0, func(s string) string { return flip(s, len(s)-3) }, ErrInvalidTicket},
		{"extended expiry", 0, 0, extendTicket, ErrInvalidTicket},
		{"truncated", 0, 0, func(s string) string { return s[:len(s)-1] }, ErrInvalidTicket},
		{"no prefix", 0, 0, func(s string) string { return strings.TrimPrefix(s, TicketPrefix) }, ErrInvalidTicket},
		{"another process's ticket", 0, 0, func(string) string { return foreign }, ErrInvalidTicket},
		{"an API key", 0, 0, func(string) string { return goodKey }, ErrInvalidTicket},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tk, clk := newTickets(t, TicketConfig{})
			s, err := tk.Issue(context.Background(), ticketPrincipal, tc.ttl)
			if err != nil {
				t.Fatal(err)
			}
			if tc.mangle != nil {
				s = tc.mangle(s)
			}
			clk.Advance(tc.advance)
			p, err := tk.Redeem(context.Background(), s)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) || !errors.Is(err, ErrInvalidCredentials) {
					t.Fatalf("Redeem error %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil || p.ID != "op-42" || p.EnterpriseID != 7 || p.Roles[0] != RoleSupervisor {
				t.Fatalf("Redeem = %+v, %v", p, err)
			}
			if _, err := tk.Redeem(context.Background(), s); !errors.Is(err, ErrInvalidTicket) {
				t.Fatalf("second Redeem: %v, want ErrInvalidTicket (single use)", err)
			}
			if n := tk.Outstanding(); n != 0 {
				t.Fatalf("%d tickets outstanding after redeem", n)
			}
		})
	}
}

// extendTicket moves the signed expiry a year on without re-signing.
func extendTicket(s string) string {
	raw, _ := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(s, TicketPrefix))
	raw[16]++
	return TicketPrefix + base64.RawURLEncoding.EncodeToString(raw)
}

func TestTicketsBounded(t *testing.T) {
	tk, clk := newTickets(t, TicketConfig{MaxOutstanding: 3, TTL: 10 * time.Second})
	var issued []string
	for i := range 3 {
		s, err := tk.Issue(context.Background(), ticketPrincipal, 0)
		if err != nil {
			t.Fatalf("ticket %d: %v", i, err)
		}
		issued = append(issued, s)
		clk.Advance(time.Second)
	}
	if _, err := tk.Issue(context.Background(), ticketPrincipal, 0); !errors.Is(err, ErrTooManyTickets) {
		t.Fatalf("4th ticket: %v, want ErrTooManyTickets", err)
	}
	// Redeeming frees a slot at once.
	if _, err := tk.Redeem(context.Background(), issued[1]); err != nil {
		t.Fatal(err)
	}
	if _, err := tk.Issue(context.Background(), ticketPrincipal, 0); err != nil {
		t.Fatalf("after a redeem: %v", err)
	}
	// Expiry frees slots too: the first ticket expires 10 s after issue.
	clk.Advance(8 * time.Second)
	if _, err := tk.Issue(context.Background(), ticketPrincipal, 0); err != nil {
		t.Fatalf("after the first expired: %v", err)
	}
	if _, err := tk.Redeem(context.Background(), issued[0]); !errors.Is(err, ErrInvalidTicket) {
		t.Fatalf("swept ticket: %v", err)
	}
	if n := tk.Outstanding(); n != 3 {
		t.Fatalf("outstanding %d, want 3", n)
	}
}

func TestTicketPrincipalIsACopy(t *testing.T) {
	tk, _ := newTickets(t, TicketConfig{})
	p := ticketPrincipal.clone()
	s, err := tk.Issue(context.Background(), p, 0)
	if err != nil {
		t.Fatal(err)
	}
	p.Roles[0] = RolePlatformAdmin
	got, err := tk.Redeem(context.Background(), s)
	if err != nil || got.Roles[0] != RoleSupervisor {
		t.Fatalf("ticket principal changed through the caller's slice: %+v, %v", got, err)
	}
}

func TestTicketRedeemedOnceUnderRace(t *testing.T) {
	tk, _ := newTickets(t, TicketConfig{})
	s, err := tk.Issue(context.Background(), ticketPrincipal, 0)
	if err != nil {
		t.Fatal(err)
	}
	var ok atomic.Int32
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			if _, err := tk.Redeem(context.Background(), s); err == nil {
				ok.Add(1)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 1 {
		t.Fatalf("redeemed %d times, want 1", ok.Load())
	}
}

func TestTicketConfigValidate(t *testing.T) {
	tests := []struct {
		cfg  TicketConfig
		want string
	}{
		{TicketConfig{TTL: -1}, "TTL -1ns is negative"},
		{TicketConfig{MaxTTL: -1}, "MaxTTL -1ns is negative"},
		{TicketConfig{TTL: time.Hour, MaxTTL: time.Minute}, "TTL 1h0m0s exceeds MaxTTL 1m0s"},
		{TicketConfig{MaxOutstanding: -1}, "MaxOutstanding -1 is negative"},
	}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			if _, err := NewTickets(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
}

// TestTicketsPerEnterprise: one enterprise taking every ticket it may
// leaves the others theirs (the attack: one key took the process's whole
// pool in 3 s and every other enterprise got 503 for a minute).
func TestTicketsPerEnterprise(t *testing.T) {
	tk, clk := newTickets(t, TicketConfig{MaxOutstanding: 100, MaxPerEnterprise: 5, TTL: 10 * time.Second})
	greedy := ticketPrincipal
	other := ticketPrincipal
	other.EnterpriseID, other.EnterpriseNumber = 8, "0420"
	var first string
	for i := range 5 {
		s, err := tk.Issue(context.Background(), greedy, 0)
		if err != nil {
			t.Fatalf("ticket %d: %v", i, err)
		}
		if i == 0 {
			first = s
		}
	}
	if _, err := tk.Issue(context.Background(), greedy, 0); !errors.Is(err, ErrTooManyTickets) {
		t.Fatalf("6th ticket of one enterprise: %v, want ErrTooManyTickets", err)
	}
	if _, err := tk.Issue(context.Background(), other, 0); err != nil {
		t.Fatalf("another enterprise: %v", err)
	}
	// Its share comes back as tickets are redeemed or expire.
	if _, err := tk.Redeem(context.Background(), first); err != nil {
		t.Fatal(err)
	}
	if _, err := tk.Issue(context.Background(), greedy, 0); err != nil {
		t.Fatalf("after a redeem: %v", err)
	}
	clk.Advance(11 * time.Second)
	for range 5 {
		if _, err := tk.Issue(context.Background(), greedy, 0); err != nil {
			t.Fatalf("after expiry: %v", err)
		}
	}
}

// TestTicketsRevoke: a revoked credential's unredeemed tickets are refused;
// another credential's stay good, and the enterprise's share is given back.
func TestTicketsRevoke(t *testing.T) {
	tk, _ := newTickets(t, TicketConfig{MaxPerEnterprise: 2})
	key := Principal{Kind: KindAPIKey, ID: "key_a", EnterpriseID: 7, EnterpriseNumber: "0367"}
	other := Principal{Kind: KindAPIKey, ID: "key_b", EnterpriseID: 7, EnterpriseNumber: "0367"}
	t1, err := tk.Issue(context.Background(), key, 0)
	if err != nil {
		t.Fatal(err)
	}
	t2, err := tk.Issue(context.Background(), other, 0)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := tk.Revoke(context.Background(), key.CredentialID()); n != 1 {
		t.Fatalf("Revoke dropped %d tickets, want 1", n)
	}
	if _, err := tk.Redeem(context.Background(), t1); !errors.Is(err, ErrInvalidTicket) {
		t.Fatalf("revoked credential's ticket: %v, want ErrInvalidTicket", err)
	}
	if p, err := tk.Redeem(context.Background(), t2); err != nil || p.ID != "key_b" {
		t.Fatalf("other credential's ticket: %+v, %v", p, err)
	}
	// The enterprise's two slots are free again.
	for range 2 {
		if _, err := tk.Issue(context.Background(), other, 0); err != nil {
			t.Fatalf("issue after revoke: %v", err)
		}
	}
	if n, _ := tk.Revoke(context.Background(), key.CredentialID()); n != 0 {
		t.Fatalf("second Revoke dropped %d", n)
	}
}
