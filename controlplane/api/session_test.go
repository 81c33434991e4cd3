package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane"
	"github.com/switchboard-pbx/switchboard/controlplane/api"
	"github.com/switchboard-pbx/switchboard/controlplane/auth"
	"github.com/switchboard-pbx/switchboard/controlplane/ratelimit"
	"github.com/switchboard-pbx/switchboard/controlplane/store"
	"github.com/switchboard-pbx/switchboard/internal/systemtest"
	"golang.org/x/time/rate"
)

type meBody struct {
	Kind       string   `json:"kind"`
	ID         string   `json:"id"`
	Enterprise string   `json:"enterprise"`
	Roles      []string `json:"roles"`
	ExpiresAt  string   `json:"expires_at"`
	Session    *struct {
		ID        string    `json:"id"`
		ExpiresAt time.Time `json:"expires_at"`
		CSRFToken string    `json:"csrf_token"`
	} `json:"session"`
	Actions map[string]struct {
		Allowed bool   `json:"allowed"`
		Reason  string `json:"reason"`
	} `json:"actions"`
}

// signIn exchanges token for a console session and returns the cookie
// and the CSRF token.
func signIn(t *testing.T, s *systemtest.Server, token string, headers ...string) (cookie string, me meBody, resp systemtest.Response) {
	t.Helper()
	r := s.Do(t, "POST", "/v1/session", token, nil, headers...)
	wantStatus(t, r, http.StatusCreated, "")
	r.JSON(t, &me)
	if me.Session == nil || me.Session.CSRFToken == "" {
		t.Fatalf("sign-in answer without a session: %s", r.Body)
	}
	for _, c := range (&http.Response{Header: r.Header}).Cookies() {
		if c.Name == api.SessionCookie {
			return c.Name + "=" + c.Value, me, r
		}
	}
	t.Fatalf("no %s cookie in %v", api.SessionCookie, r.Header)
	return "", me, r
}

// TestConsoleSession: the console's session authenticates in the one
// chain as the credential it was exchanged for: same scopes, same rate
// limit bucket, same audit actor; mutations need the CSRF header; it ends
// when the key is revoked, when signed out, and never outlives a JWT.
func TestConsoleSession(t *testing.T) {
	t.Parallel()
	s := systemtest.New(t, systemtest.Options{Config: controlplane.Config{API: api.Config{
		RateLimit: ratelimit.Config{PerCredential: rate.Limit(0.02), CredentialBurst: 12}, // a token per 50 s
	}}})
	s.Enterprise(t, "0367", "june")
	pbx := s.AddPBX(t, "0367")
	key := s.APIKey(t, "0367", auth.ScopeOriginate, auth.ScopeChannelsRead, auth.ScopeEventsRead)
	keyID := store.PublicID(key)

	cookie, me, r := signIn(t, s, key) // 1 token of 12
	setCookie := r.Header.Get("Set-Cookie")
	for _, want := range []string{"HttpOnly", "SameSite=Strict", "Path=/"} {
		if !strings.Contains(setCookie, want) {
			t.Errorf("Set-Cookie %q lacks %s", setCookie, want)
		}
	}
	if strings.Contains(setCookie, "Secure") {
		t.Errorf("Set-Cookie %q is Secure on plain HTTP: the browser would drop it", setCookie)
	}
	if me.Kind != "api_key" || me.ID != keyID || me.Enterprise != "0367" || !me.Actions["originate"].Allowed ||
		me.Actions["hangup"].Allowed || !strings.Contains(me.Actions["hangup"].Reason, "requires scope hangup") {
		t.Fatalf("me = %+v", me)
	}
	csrf := me.Session.CSRFToken

	// Reads with the cookie alone; mutations need the CSRF header.
	wantStatus(t, s.Do(t, "GET", "/v1/pbxs", "", nil, "Cookie", cookie), 200, "") // 2
	body := map[string]string{"from": "150", "to": "+375296254070"}
	wantStatus(t, s.Do(t, "POST", "/v1/calls", "", body, "Cookie", cookie), 403, api.CodeCSRFFailed)                                                    // refused before the rate limit
	wantStatus(t, s.Do(t, "POST", "/v1/calls", "", body, "Cookie", cookie, api.CSRFHeader, csrf+"x"), 403, api.CodeCSRFFailed)                          // wrong token
	wantStatus(t, s.Do(t, "POST", "/v1/calls", "", body, "Cookie", cookie, api.CSRFHeader, csrf), 201, "")                                              // 3
	wantStatus(t, s.Do(t, "POST", "/v1/calls/hangup", "", map[string]any{"all": true}, "Cookie", cookie, api.CSRFHeader, csrf), 403, api.CodeForbidden) // 4: the key's scopes
	wantStatus(t, s.Do(t, "POST", "/v1/events/ticket", "", nil, "Cookie", cookie, api.CSRFHeader, csrf), 201, "")                                       // 5
	// Legacy routes never take the cookie: they are GETs that act.
	wantStatus(t, s.Do(t, "GET", "/api/makecallexternal?code=150&phone=%2B375296254070", "", nil, "Cookie", cookie), 401, "")

	// GET /v1/me with the cookie gives the CSRF token back (a reload).
	var again meBody
	r = s.Do(t, "GET", "/v1/me", "", nil, "Cookie", cookie) // 6
	wantStatus(t, r, 200, "")
	r.JSON(t, &again)
	if again.Session == nil || again.Session.CSRFToken != csrf || again.ID != keyID {
		t.Fatalf("GET /v1/me = %s", r.Body)
	}

	// The audit rows name the API key, as for a bearer request.
	seen := map[string]string{}
	waitFor(t, func() bool {
		rows, _, err := s.Store().ListAudit(context.Background(), pbx.Agent.EnterpriseID, "", 50)
		if err != nil {
			t.Fatal(err)
		}
		for _, row := range rows {
			seen[row.Action+"/"+row.Result] = row.ActorID
		}
		return len(seen) >= 3
	})
	for _, want := range []string{"console_sign_in/success", "asterisk_originate_call/success", "asterisk_hangup_call/error"} {
		if seen[want] != keyID {
			t.Errorf("audit %s by %q, want %s; rows %v", want, seen[want], keyID, seen)
		}
	}

	// One bucket: the bearer and the cookie share the key's 12 tokens.
	for i := 0; i < 6; i++ {
		wantStatus(t, s.Do(t, "GET", "/v1/pbxs", key, nil), 200, "") // 7-12
	}
	wantStatus(t, s.Do(t, "GET", "/v1/pbxs", "", nil, "Cookie", cookie), 429, api.CodeRateLimited)

	// Revoking the key ends the session.
	if err := s.Store().RevokeAPIKey(context.Background(), keyID); err != nil {
		t.Fatal(err)
	}
	r = s.Do(t, "GET", "/v1/me", "", nil, "Cookie", cookie)
	wantStatus(t, r, 401, api.CodeUnauthorized)
	if !strings.Contains(string(r.Body), "console session ended") {
		t.Errorf("revoked key's session: %s", r.Body)
	}
}

// TestConsoleSessionOperator: an operator's session keeps its roles, ends
// at its JWT's exp, and signs out; a sign-in link works once.
func TestConsoleSessionOperator(t *testing.T) {
	t.Parallel()
	s := systemtest.New(t, systemtest.Options{})
	s.Enterprise(t, "0367", "june")
	s.AddPBX(t, "0367")
	jwt, err := auth.MintHS256(s.JWTSecret, auth.OperatorClaims{Subject: "op-1", Enterprise: "0367", Roles: []string{auth.RoleOperator}}, 20*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	cookie, me, r := signIn(t, s, jwt, "X-Forwarded-Proto", "https")
	if sc := r.Header.Get("Set-Cookie"); !strings.Contains(sc, "; Secure") {
		t.Errorf("Set-Cookie %q behind a TLS proxy is not Secure", sc)
	}
	if got := time.Until(me.Session.ExpiresAt); got > 20*time.Minute || got < 18*time.Minute {
		t.Errorf("session of a 20-minute JWT ends in %v", got)
	}
	if me.Actions["hangup"].Allowed || me.Actions["hangup"].Reason != "hangup not allowed: requires role supervisor or telecom_admin" {
		t.Errorf("operator's hangup verdict %+v", me.Actions["hangup"])
	}
	csrf := me.Session.CSRFToken
	wantStatus(t, s.Do(t, "POST", "/v1/calls/hangup", "", map[string]any{"all": true}, "Cookie", cookie, api.CSRFHeader, csrf), 403, api.CodeForbidden)
	// A second exchange over a session is refused; sign out needs CSRF.
	wantStatus(t, s.Do(t, "POST", "/v1/session", "", nil, "Cookie", cookie, api.CSRFHeader, csrf), 400, api.CodeInvalidRequest)
	wantStatus(t, s.Do(t, "DELETE", "/v1/session", "", nil, "Cookie", cookie), 403, api.CodeCSRFFailed)
	r = s.Do(t, "DELETE", "/v1/session", "", nil, "Cookie", cookie, api.CSRFHeader, csrf, "X-Forwarded-Proto", "https")
	wantStatus(t, r, 204, "")
	if sc := r.Header.Get("Set-Cookie"); !strings.Contains(sc, api.SessionCookie+"=;") || !strings.Contains(sc, "Max-Age=0") || !strings.Contains(sc, "Secure") {
		t.Errorf("sign out's Set-Cookie %q", sc)
	}
	wantStatus(t, s.Do(t, "GET", "/v1/me", "", nil, "Cookie", cookie), 401, api.CodeUnauthorized)
	wantStatus(t, s.Do(t, "DELETE", "/v1/session", jwt, nil), 400, api.CodeInvalidRequest)

	// A link: a supervisor, once; never a bearer elsewhere.
	_, link, err := s.Store().CreateConsoleLink(context.Background(), "0367", "", []string{auth.RoleSupervisor}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, s.Do(t, "GET", "/v1/pbxs", link, nil), 401, api.CodeUnauthorized)
	_, lme, _ := signIn(t, s, link)
	if lme.Kind != "operator" || !strings.HasPrefix(lme.ID, "lnk_") || !lme.Actions["hangup"].Allowed || lme.Enterprise != "0367" {
		t.Errorf("link session %+v", lme)
	}
	r = s.Do(t, "POST", "/v1/session", link, nil)
	wantStatus(t, r, 401, api.CodeUnauthorized)
	if !strings.Contains(string(r.Body), "already used") {
		t.Errorf("second use: %s", r.Body)
	}
	wantStatus(t, s.Do(t, "GET", "/v1/me", "", nil, "Cookie", api.SessionCookie+"=sbs_ses_nonsense"), 401, api.CodeUnauthorized)
}

// TestConsoleSessionsBounded: past --console-max-sessions-per-credential a
// sign-in ends the credential's oldest session, and /metrics counts it.
func TestConsoleSessionsBounded(t *testing.T) {
	t.Parallel()
	s := systemtest.New(t, systemtest.Options{Config: controlplane.Config{API: api.Config{MaxSessionsPerCredential: 2}}})
	s.Enterprise(t, "0367", "june")
	key := s.APIKey(t, "0367")
	first, _, _ := signIn(t, s, key)
	second, _, _ := signIn(t, s, key)
	third, _, _ := signIn(t, s, key)
	wantStatus(t, s.Do(t, "GET", "/v1/me", "", nil, "Cookie", first), 401, api.CodeUnauthorized)
	for _, c := range []string{second, third} {
		wantStatus(t, s.Do(t, "GET", "/v1/me", "", nil, "Cookie", c), 200, "")
	}
	// Another credential of the enterprise keeps its own.
	other, _, _ := signIn(t, s, s.JWT(t, "0367", "sup-1", auth.RoleSupervisor))
	wantStatus(t, s.Do(t, "GET", "/v1/me", "", nil, "Cookie", other), 200, "")
	if got := s.Metric(t, `switchboard_rate_limited_total{scope="console_sessions"}`); got != 1 {
		t.Errorf("switchboard_rate_limited_total{scope=\"console_sessions\"} = %v, want 1", got)
	}
}

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
