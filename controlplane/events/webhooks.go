package events

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/auth"
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

// canManage: API keys with events:read may manage their enterprise's
// webhooks (they could read the same events anyway); operators need
// supervisor or telecom_admin, since a webhook sends every call's facts
// off the platform.
func canManage(p auth.Principal) error {
	if p.Kind == auth.KindOperator && !p.HasRole(auth.RoleSupervisor) && !p.HasRole(auth.RoleTelecomAdmin) {
		return &auth.ForbiddenError{Action: "webhooks:manage", Kind: p.Kind, AnyOf: []string{auth.RoleSupervisor, auth.RoleTelecomAdmin}}
	}
	return nil
}

func (s *Service) createWebhook(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	if err := canManage(p); err != nil {
		return err
	}
	var req createWebhookRequest
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errorf(http.StatusRequestEntityTooLarge, CodeBodyTooLarge, "body over %d bytes", mbe.Limit)
		}
		return invalidf("body: %s", jsonProblem(err))
	}
	if dec.More() {
		return invalidf("body: one JSON object expected")
	}
	if _, err := dec.Token(); err != io.EOF {
		return invalidf("body: one JSON object expected")
	}
	if req.URL == "" {
		return invalidf("url is required")
	}
	for _, t := range req.EventTypes {
		if !slices.Contains(EventTypes, t) {
			return invalidf("event_types: unknown event type %q (want any of %s)", t, strings.Join(EventTypes, ","))
		}
	}
	slices.Sort(req.EventTypes)
	req.EventTypes = slices.Compact(req.EventTypes)
	ctx, cancel := s.storeCtx(r)
	defer cancel()
	if err := s.agentOf(ctx, p.EnterpriseID, req.PBX); err != nil {
		return err
	}
	if err := checkWebhookURL(ctx, req.URL, s.cfg.AllowPrivateTargets, net.DefaultResolver); err != nil {
		return err
	}
	wh, err := s.cfg.Store.CreateWebhook(ctx, store.Webhook{EnterpriseID: p.EnterpriseID, URL: req.URL, Secret: req.Secret,
		EventTypes: req.EventTypes, AgentID: req.PBX, Description: req.Description})
	if errors.Is(err, store.ErrConflict) {
		return errorf(http.StatusConflict, CodeConflict, "the enterprise already has %d webhooks (the limit)", store.MaxWebhooksPerEnterprise)
	}
	if err != nil {
		return err
	}
	s.audit(w, r, p, AuditWebhookCreate, wh.ID, wh.URL)
	v := viewWebhook(wh)
	v.Secret = wh.Secret
	w.Header().Set("Location", "/v1/webhooks/"+wh.ID)
	writeJSON(w, http.StatusCreated, v)
	return nil
}

func jsonProblem(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("invalid JSON at byte %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("field %q must be %s", te.Field, te.Type)
	case errors.Is(err, io.EOF):
		return "empty"
	case strings.HasPrefix(err.Error(), "json: unknown field"):
		return strings.TrimPrefix(err.Error(), "json: ")
	}
	return "invalid JSON"
}

// audit writes the audit row of a webhook change; a failure is logged,
// not returned: the change is done.
func (s *Service) audit(w http.ResponseWriter, r *http.Request, p auth.Principal, action, id, url string) {
	actor := store.ActorAPIKey
	if p.Kind == auth.KindOperator {
		actor = store.ActorOperator
	}
	ctx, cancel := s.storeCtx(r)
	defer cancel()
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	details, _ := json.Marshal(map[string]string{"webhook_id": id, "url": url})
	if _, err := s.cfg.Store.InsertAudit(ctx, store.AuditEntry{EnterpriseID: p.EnterpriseID, ActorType: actor, ActorID: p.ID,
		Action: action, Result: store.ResultSuccess, RequestID: w.Header().Get(RequestIDHeader), ClientAddr: host, Details: details}); err != nil {
		s.log.Warn("audit webhook change", "action", action, "webhook", id, "err", err)
	}
}

func (s *Service) listWebhooks(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	ctx, cancel := s.storeCtx(r)
	defer cancel()
	hooks, err := s.cfg.Store.ListWebhooks(ctx, p.EnterpriseID)
	if err != nil {
		return err
	}
	out := make([]webhookView, 0, len(hooks))
	for _, h := range hooks {
		out = append(out, viewWebhook(h))
	}
	writeJSON(w, http.StatusOK, map[string]any{"webhooks": out})
	return nil
}

func (s *Service) getWebhook(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	ctx, cancel := s.storeCtx(r)
	defer cancel()
	wh, err := s.cfg.Store.WebhookByID(ctx, p.EnterpriseID, r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) {
		return notFound("webhook", r.PathValue("id"))
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, viewWebhook(wh))
	return nil
}

func (s *Service) deleteWebhook(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	if err := canManage(p); err != nil {
		return err
	}
	ctx, cancel := s.storeCtx(r)
	defer cancel()
	id := r.PathValue("id")
	err := s.cfg.Store.DeleteWebhook(ctx, p.EnterpriseID, id)
	if errors.Is(err, store.ErrNotFound) {
		return notFound("webhook", id)
	}
	if err != nil {
		return err
	}
	s.audit(w, r, p, AuditWebhookDelete, id, "")
	w.WriteHeader(http.StatusNoContent)
	return nil
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

func utcPtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// listDeliveries: GET /v1/webhooks/{id}/deliveries?status=&cursor=&limit=
func (s *Service) listDeliveries(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	q := r.URL.Query()
	f := store.DeliveryFilter{EnterpriseID: p.EnterpriseID, WebhookID: r.PathValue("id"), Status: q.Get("status")}
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
	ctx, cancel := s.storeCtx(r)
	defer cancel()
	ds, next, err := s.cfg.Store.ListDeliveries(ctx, f)
	if errors.Is(err, store.ErrNotFound) {
		return notFound("webhook", f.WebhookID)
	}
	if err != nil {
		return err
	}
	out := make([]deliveryView, 0, len(ds))
	for _, d := range ds {
		v := deliveryView{ID: DeliveryID(d.WebhookID, d.Seq), Seq: d.Seq, EventType: d.EventType, Status: d.Status, Attempts: d.Attempts,
			CreatedAt: d.CreatedAt.UTC(), FinishedAt: utcPtr(d.FinishedAt), LastStatusCode: d.LastStatusCode, LastError: d.LastError,
			AttemptLog: []attemptView{}}
		if d.Status == store.DeliveryPending {
			v.NextAttemptAt = utcPtr(d.NextAttemptAt)
		}
		for _, a := range d.AttemptLog {
			v.AttemptLog = append(v.AttemptLog, attemptView{Attempt: a.Attempt, At: a.At.UTC(), DurationMS: a.Duration.Milliseconds(),
				StatusCode: a.StatusCode, Error: a.Error})
		}
		out = append(out, v)
	}
	resp := map[string]any{"deliveries": out}
	if next > 0 {
		resp["next_cursor"] = strconv.FormatInt(next, 10)
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}
