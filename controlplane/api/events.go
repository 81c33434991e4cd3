package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/auth"
	"github.com/switchboard-pbx/switchboard/controlplane/events"
)

// events is GET /v1/events: a WebSocket when the request asks for an
// upgrade, else one JSON page (polling). Either way it is one request to
// the chain, so a stream counts once against the rate limits, at its
// upgrade.
func (a *API) events(c *call) error {
	q, err := events.ParseQuery(c.r.URL.Query())
	if err != nil {
		return err
	}
	if q.Filter.AgentID, err = c.resolvePBX(q.Filter.AgentID); err != nil {
		return err
	}
	if !events.IsWebSocket(c.r) {
		page, err := a.cfg.Events.Page(c.ctx(), c.principal.EnterpriseID, q)
		if err != nil {
			return err
		}
		return c.reply(http.StatusOK, page)
	}
	c.wroteOwn = true
	// Registered by credential so that revoking it (RevokeAPIKeys) ends
	// the stream.
	ctx, cancel := context.WithCancelCause(c.ctx())
	defer cancel(nil)
	defer a.streams.add(c.principal.CredentialID(), cancel)()
	if err := a.cfg.Events.Stream(c.w, c.r.WithContext(ctx), c.principal.EnterpriseID, q, c.principal.CredentialID()); err != nil {
		c.wroteOwn = false // nothing was written: the chain answers
		return err
	}
	return nil
}

type ticketResponse struct {
	Ticket     string `json:"ticket"`
	ExpiresInS int    `json:"expires_in_s"`
	URL        string `json:"url"`
}

// issueTicket is POST /v1/events/ticket: a single-use ticket that opens
// the WebSocket, for browsers that cannot set headers on it.
func (a *API) issueTicket(c *call) error {
	ctx, cancel := c.storeCtx()
	defer cancel()
	t, err := a.tickets.Issue(ctx, *c.principal, 0)
	if errors.Is(err, auth.ErrTooManyTickets) {
		a.cfg.Observer.RateLimited("event_tickets")
		return &Error{Status: http.StatusServiceUnavailable, Code: CodeUnavailable, Message: err.Error() + "; retry shortly", RetryAfter: 1}
	}
	if err != nil {
		return err
	}
	return c.reply(http.StatusCreated, ticketResponse{Ticket: t, ExpiresInS: int(auth.DefaultTicketTTL / time.Second), URL: "/v1/events?ticket=" + t})
}
