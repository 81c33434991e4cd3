package api

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/auth"
	"github.com/switchboard-pbx/switchboard/controlplane/store"
)

// The web console signs in by exchanging a credential for a session
// (POST /v1/session): an HttpOnly cookie naming a row of the store, so it
// works on every replica. A request carrying the cookie (and no
// Authorization header) is authenticated here, in the one chain, as the
// credential the session stands for: the same principal, so the same
// roles, scopes, rate-limit buckets and audit actor as that credential
// sent directly.
const (
	// SessionCookie names the console's session cookie.
	SessionCookie = "sb_session"
	// CSRFHeader must carry the session's CSRF token on every request made
	// with the cookie that is not a GET or HEAD.
	CSRFHeader = "X-CSRF-Token"
	// DefaultSessionTTL: a console session lasts a working day, never past
	// its credential's exp.
	DefaultSessionTTL = 12 * time.Hour
	// DefaultMaxSessionsPerCredential bounds the sessions one credential
	// holds; signing in past it ends its oldest session.
	DefaultMaxSessionsPerCredential = 20
)

// Audit actions of the session routes.
const (
	AuditConsoleSignIn  = "console_sign_in"
	AuditConsoleSignOut = "console_sign_out"
)

// session is the console session a request was authenticated by.
type session struct {
	id    string
	token string
}

// csrfToken derives a session's CSRF token from its cookie: the browser's
// script cannot read the HttpOnly cookie, so it learns the token from the
// sign-in answer or GET /v1/me, and another site can learn neither.
func csrfToken(cookie string) string {
	m := hmac.New(sha256.New, []byte(cookie))
	m.Write([]byte("switchboard console csrf v1"))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// sessionCookie returns the request's session cookie when it carries one
// and nothing else that authenticates (an Authorization header wins).
func sessionCookie(r *http.Request) string {
	if len(r.Header.Values("Authorization")) > 0 {
		return ""
	}
	ck, err := r.Cookie(SessionCookie)
	if err != nil {
		return ""
	}
	return ck.Value
}

// authenticateSession turns a session cookie into the principal of the
// credential it stands for, and checks the CSRF header of a request that
// may change something.
func (c *call) authenticateSession(cookie string) (auth.Principal, error) {
	ctx, cancel := c.storeCtx()
	defer cancel()
	s, err := c.api.cfg.Store.ConsoleSessionByToken(ctx, cookie)
	switch {
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrRevoked), errors.Is(err, store.ErrEnterpriseInactive):
		c.log.Info("console session refused", "reason", err.Error())
		return auth.Principal{}, auth.Invalid(auth.ErrSessionEnded)
	case err != nil:
		c.log.Error("console session lookup", "err", err)
		return auth.Principal{}, errorf(http.StatusServiceUnavailable, CodeUnavailable, "credentials could not be checked right now")
	}
	if m := c.r.Method; m != http.MethodGet && m != http.MethodHead {
		got := c.r.Header.Get(CSRFHeader)
		if got == "" || !hmac.Equal([]byte(got), []byte(csrfToken(cookie))) {
			return auth.Principal{}, errorf(http.StatusForbidden, CodeCSRFFailed,
				"a request made with the console's session cookie needs its %s header (from POST /v1/session or GET /v1/me)", CSRFHeader)
		}
	}
	c.session = &session{id: s.ID, token: cookie}
	p := auth.Principal{ID: s.ActorID, EnterpriseID: s.EnterpriseID, EnterpriseNumber: s.EnterpriseNumber, Expires: s.ExpiresAt}
	if s.ActorType == store.ActorAPIKey {
		p.Kind, p.Scopes = auth.KindAPIKey, s.Scopes
	} else {
		p.Kind, p.Roles = auth.KindOperator, knownRoles(s.Roles)
	}
	return p, nil
}

// knownRoles keeps the roles this build knows, as JWT verification does.
func knownRoles(roles []string) []string {
	var out []string
	for _, r := range roles {
		if slices.Contains(auth.Roles, r) && !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out
}

// redeemLink authenticates POST /v1/session with a single-use sign-in link
// (`switchboard console-link`): an operator with the link's roles until
// the link's expiry.
func (c *call) redeemLink(token string) (auth.Principal, error) {
	ctx, cancel := c.storeCtx()
	defer cancel()
	l, err := c.api.cfg.Store.RedeemConsoleLink(ctx, token)
	switch {
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrEnterpriseInactive):
		c.log.Warn("credentials refused", "source", "console link", "reason", err.Error(), "remote", c.r.RemoteAddr)
		return auth.Principal{}, auth.Invalid(auth.ErrLinkUsed)
	case err != nil:
		c.log.Error("console link lookup", "err", err)
		return auth.Principal{}, errorf(http.StatusServiceUnavailable, CodeUnavailable, "credentials could not be checked right now")
	}
	return auth.Principal{Kind: auth.KindOperator, ID: l.Subject, EnterpriseID: l.EnterpriseID,
		EnterpriseNumber: l.EnterpriseNumber, Roles: knownRoles(l.Roles), Expires: l.ExpiresAt}, nil
}

// bearerLink returns the request's bearer token when it is a sign-in link.
func bearerLink(r *http.Request) string {
	h := r.Header.Values("Authorization")
	if len(h) != 1 {
		return ""
	}
	scheme, tok, _ := strings.Cut(strings.TrimSpace(h[0]), " ")
	tok = strings.TrimSpace(tok)
	if !strings.EqualFold(scheme, "Bearer") || !strings.HasPrefix(tok, store.ConsoleLinkPrefix) {
		return ""
	}
	return tok
}

// meView is GET /v1/me: who the credential is and what it may do.
type meView struct {
	Kind       string   `json:"kind"`
	ID         string   `json:"id"`
	Enterprise string   `json:"enterprise,omitempty"`
	Roles      []string `json:"roles,omitempty"`
	Scopes     []string `json:"scopes,omitempty"`
	// ExpiresAt: the credential's end (a JWT's exp, a session's end).
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	// Session is set when the request came with the console's cookie.
	Session *sessionView             `json:"session,omitempty"`
	Actions map[string]actionVerdict `json:"actions"`
}

type sessionView struct {
	ID        string    `json:"id"`
	ExpiresAt time.Time `json:"expires_at"`
	CSRFToken string    `json:"csrf_token"`
}

type actionVerdict struct {
	Allowed bool   `json:"allowed"`
	Reason  string `json:"reason,omitempty"`
}

func (c *call) me(p auth.Principal, s *session, expires time.Time) meView {
	v := meView{Kind: string(p.Kind), ID: p.ID, Enterprise: p.EnterpriseNumber, Roles: p.Roles, Scopes: p.Scopes,
		ExpiresAt: timePtr(p.Expires), Actions: make(map[string]actionVerdict, len(auth.Actions))}
	for _, a := range auth.Actions {
		if err := p.Allows(a); err != nil {
			v.Actions[string(a)] = actionVerdict{Reason: err.Error()}
		} else {
			v.Actions[string(a)] = actionVerdict{Allowed: true}
		}
	}
	if s != nil {
		v.Session = &sessionView{ID: s.id, ExpiresAt: expires.UTC(), CSRFToken: csrfToken(s.token)}
	}
	return v
}

// getMe is GET /v1/me: any credential may ask what it may do.
func (a *API) getMe(c *call) error {
	return c.reply(http.StatusOK, c.me(*c.principal, c.session, c.principal.Expires))
}

// createSession is POST /v1/session: the request's credential (API key,
// operator JWT or sign-in link, in the Authorization header) is exchanged
// for a console session cookie that ends after SessionTTL, or at the
// credential's own expiry if sooner.
func (a *API) createSession(c *call) error {
	if c.session != nil {
		return invalidf("this request is already signed in with a console session; sign out first")
	}
	p := *c.principal
	now := a.cfg.Now()
	exp := now.Add(a.cfg.SessionTTL)
	if !p.Expires.IsZero() && p.Expires.Before(exp) {
		exp = p.Expires
	}
	actor := store.ActorOperator
	if p.Kind == auth.KindAPIKey {
		actor = store.ActorAPIKey
	}
	ctx, cancel := c.storeCtx()
	defer cancel()
	s, token, evicted, err := a.cfg.Store.CreateConsoleSession(ctx, store.ConsoleSession{ActorType: actor, ActorID: p.ID,
		EnterpriseID: p.EnterpriseID, Roles: p.Roles, ExpiresAt: exp}, a.cfg.MaxSessionsPerCredential)
	if errors.Is(err, store.ErrInvalid) {
		return auth.Invalid(auth.ErrTokenExpired) // it expires within the store's clock step
	}
	if err != nil {
		return storeError(err)
	}
	for range evicted {
		a.cfg.Observer.RateLimited("console_sessions")
	}
	if c.audit != nil {
		c.audit.Details = mustJSON(map[string]string{"session": s.ID, "expires_at": s.ExpiresAt.Format(time.RFC3339)})
	}
	c.setCookie(&http.Cookie{Name: SessionCookie, Value: token, Path: "/", Expires: s.ExpiresAt,
		MaxAge: max(1, int(s.ExpiresAt.Sub(now)/time.Second))})
	sess := &session{id: s.ID, token: token}
	return c.reply(http.StatusCreated, c.me(p, sess, s.ExpiresAt))
}

// deleteSession is DELETE /v1/session: sign out. The session's row is
// deleted, so the cookie stops working on every replica at once.
func (a *API) deleteSession(c *call) error {
	if c.session == nil {
		return invalidf("no console session on this request: sign out ends the session of the %s cookie", SessionCookie)
	}
	ctx, cancel := c.storeCtx()
	defer cancel()
	if err := a.cfg.Store.DeleteConsoleSession(ctx, c.session.id); err != nil && !errors.Is(err, store.ErrNotFound) {
		return storeError(err)
	}
	if c.audit != nil {
		c.audit.Details = mustJSON(map[string]string{"session": c.session.id})
	}
	c.setCookie(&http.Cookie{Name: SessionCookie, Value: "", Path: "/", MaxAge: -1})
	return c.reply(http.StatusNoContent, nil)
}

// setCookie adds a cookie with the attributes every console cookie has:
// HttpOnly, SameSite=Strict, and Secure when the client reached us over
// TLS (directly, or through a proxy that says so).
func (c *call) setCookie(ck *http.Cookie) {
	ck.HttpOnly = true
	ck.SameSite = http.SameSiteStrictMode
	ck.Secure = c.r.TLS != nil || strings.EqualFold(c.r.Header.Get("X-Forwarded-Proto"), "https")
	if c.headers == nil {
		c.headers = http.Header{}
	}
	c.headers.Add("Set-Cookie", ck.String())
	c.headers.Set("Cache-Control", "no-store")
}

// mustJSON encodes an audit detail (a map of strings cannot fail).
func mustJSON(v map[string]string) []byte {
	b, _ := json.Marshal(v)
	return b
}
