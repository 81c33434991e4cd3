package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/events"
	"github.com/switchboard-pbx/switchboard/controlplane/store"
)

// Audit actions of the webhook routes.
const (
	AuditWebhookCreate = "webhook_create"
	AuditWebhookDelete = "webhook_delete"
)

// webhookView is a webhook as the API shows it; Secret only in the
// creation response.
type webhookView struct {
	ID          string    `json:"id"`
	URL         string    `json:"url"`
	EventTypes  []string  `json:"event_types"`
	PBX         string    `json:"pbx,omitempty"`
	Description string    `json:"description,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	Secret      string    `json:"secret,omitempty"`
}

func viewWebhook(w store.Webhook) webhookView {
	types := w.EventTypes
	if types == nil {
		types = []string{}
	}
	return webhookView{ID: w.ID, URL: w.URL, EventTypes: types, PBX: w.AgentID, Description: w.Description, CreatedAt: w.CreatedAt.UTC()}
}

type createWebhookRequest struct {
	URL         string   `json:"url"`
	EventTypes  []string `json:"event_types"`
	PBX         string   `json:"pbx"`
	Secret      string   `json:"secret"`
	Description string   `json:"description"`
}

// auditWebhook names the webhook in the request's audit row.
func (c *call) auditWebhook(id, url string) {
	if c.audit != nil {
		c.audit.Details, _ = json.Marshal(map[string]string{"webhook_id": id, "url": url})
	}
}

// createWebhook is POST /v1/webhooks. The answer carries the secret, once.
func (a *API) createWebhook(c *call) error {
	var req createWebhookRequest
	if err := c.decodeJSON(&req); err != nil {
		return err
	}
	c.auditWebhook("", req.URL)
	if req.URL == "" {
		return invalidf("url is required")
	}
	for _, t := range req.EventTypes {
		if !slices.Contains(events.EventTypes, t) {
			return invalidf("event_types: unknown event type %q (want any of %s)", t, strings.Join(events.EventTypes, ","))
		}
	}
	slices.Sort(req.EventTypes)
	req.EventTypes = slices.Compact(req.EventTypes)
	var err error
	if req.PBX, err = c.resolvePBX(req.PBX); err != nil {
		return err
	}
	ctx, cancel := c.storeCtx()
	defer cancel()
	if err := a.cfg.Events.CheckWebhookURL(ctx, req.URL); err != nil {
		return err
	}
	wh, err := a.cfg.Store.CreateWebhook(ctx, store.Webhook{EnterpriseID: c.principal.EnterpriseID, URL: req.URL, Secret: req.Secret,
		EventTypes: req.EventTypes, AgentID: req.PBX, Description: req.Description})
	if errors.Is(err, store.ErrConflict) {
		return errorf(http.StatusConflict, CodeConflict, "the enterprise already has %d webhooks (the limit)", store.MaxWebhooksPerEnterprise)
	}
	if err != nil {
		return err
	}
	c.auditWebhook(wh.ID, wh.URL)
	v := viewWebhook(wh)
	v.Secret = wh.Secret
	c.setHeader("Location", "/v1/webhooks/"+wh.ID)
	return c.reply(http.StatusCreated, v)
}

type webhooksPage struct {
	Webhooks []webhookView `json:"webhooks"`
}

func (a *API) listWebhooks(c *call) error {
	ctx, cancel := c.storeCtx()
	defer cancel()
	hooks, err := a.cfg.Store.ListWebhooks(ctx, c.principal.EnterpriseID)
	if err != nil {
		return err
	}
	out := webhooksPage{Webhooks: make([]webhookView, 0, len(hooks))}
	for _, h := range hooks {
		out.Webhooks = append(out.Webhooks, viewWebhook(h))
	}
	return c.reply(http.StatusOK, out)
}

func (a *API) getWebhook(c *call) error {
	ctx, cancel := c.storeCtx()
	defer cancel()
	id := c.r.PathValue("id")
	wh, err := a.cfg.Store.WebhookByID(ctx, c.principal.EnterpriseID, id)
	if errors.Is(err, store.ErrNotFound) {
		return notFound("webhook", id)
	}
	if err != nil {
		return err
	}
	return c.reply(http.StatusOK, viewWebhook(wh))
}

func (a *API) deleteWebhook(c *call) error {
	id := c.r.PathValue("id")
	c.auditWebhook(id, "")
	ctx, cancel := c.storeCtx()
	defer cancel()
	err := a.cfg.Store.DeleteWebhook(ctx, c.principal.EnterpriseID, id)
	if errors.Is(err, store.ErrNotFound) {
		return notFound("webhook", id)
	}
	if err != nil {
		return err
	}
	return c.reply(http.StatusNoContent, nil)
}

type attemptView struct {
	Attempt    int       `json:"attempt"`
	At         time.Time `json:"at"`
	DurationMS int64     `json:"duration_ms"`
	StatusCode int       `json:"status_code,omitempty"`
	Error      string    `json:"error,omitempty"`
}

type deliveryView struct {
	ID             string        `json:"id"` // the Switchboard-Delivery header
	Seq            int64         `json:"seq"`
	EventType      string        `json:"event_type"`
	Status         string        `json:"status"`
	Attempts       int           `json:"attempts"`
	CreatedAt      time.Time     `json:"created_at"`
	NextAttemptAt  *time.Time    `json:"next_attempt_at,omitempty"`
	FinishedAt     *time.Time    `json:"finished_at,omitempty"`
	LastStatusCode int           `json:"last_status_code,omitempty"`
	LastError      string        `json:"last_error,omitempty"`
	AttemptLog     []attemptView `json:"attempt_log"`
}

type deliveriesPage struct {
	Deliveries []deliveryView `json:"deliveries"`
	NextCursor string         `json:"next_cursor,omitempty"`
}

func viewDelivery(d store.Delivery) deliveryView {
	v := deliveryView{ID: events.DeliveryID(d.WebhookID, d.Seq), Seq: d.Seq, EventType: d.EventType, Status: d.Status, Attempts: d.Attempts,
		CreatedAt: d.CreatedAt.UTC(), FinishedAt: timePtr(d.FinishedAt), LastStatusCode: d.LastStatusCode, LastError: d.LastError,
		AttemptLog: make([]attemptView, 0, len(d.AttemptLog))}
	if d.Status == store.DeliveryPending {
		v.NextAttemptAt = timePtr(d.NextAttemptAt)
	}
	for _, at := range d.AttemptLog {
		v.AttemptLog = append(v.AttemptLog, attemptView{Attempt: at.Attempt, At: at.At.UTC(), DurationMS: at.Duration.Milliseconds(),
			StatusCode: at.StatusCode, Error: at.Error})
	}
	return v
}

// listDeliveries is GET /v1/webhooks/{id}/deliveries?status=&cursor=&limit=.
func (a *API) listDeliveries(c *call) error {
	q := c.r.URL.Query()
	f := store.DeliveryFilter{EnterpriseID: c.principal.EnterpriseID, WebhookID: c.r.PathValue("id"), Status: q.Get("status")}
	if v := q.Get("cursor"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			return invalidf("cursor: not a cursor this server returned")
		}
		f.Before = n
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > store.MaxDeliveryPageSize {
			return invalidf("limit: want 1-%d, got %q", store.MaxDeliveryPageSize, v)
		}
		f.Limit = n
	}
	ctx, cancel := c.storeCtx()
	defer cancel()
	ds, next, err := a.cfg.Store.ListDeliveries(ctx, f)
	if errors.Is(err, store.ErrNotFound) {
		return notFound("webhook", f.WebhookID)
	}
	if err != nil {
		return err
	}
	out := deliveriesPage{Deliveries: make([]deliveryView, 0, len(ds))}
	for _, d := range ds {
		out.Deliveries = append(out.Deliveries, viewDelivery(d))
	}
	if next > 0 {
		out.NextCursor = strconv.FormatInt(next, 10)
	}
	return c.reply(http.StatusOK, out)
}
