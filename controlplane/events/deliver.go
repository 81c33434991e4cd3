package events

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/store"
)

// Webhook request headers.
const (
	// SignatureHeader is "t=<unix seconds>,v1=<hex HMAC-SHA256>": the MAC,
	// keyed with the webhook's secret, of "<t>.<body>". Receivers recompute
	// it, compare in constant time, and refuse a t too far from now.
	SignatureHeader = "Switchboard-Signature"
	// DeliveryHeader is the same on every attempt of one (webhook, event):
	// "<webhook id>:<seq>". Receivers de-duplicate on it.
	DeliveryHeader = "Switchboard-Delivery"
	EventHeader    = "Switchboard-Event"   // the event type
	AttemptHeader  = "Switchboard-Attempt" // 1, 2, …
	userAgent      = "Switchboard-Webhooks/1"
)

// Sign returns the SignatureHeader value for body at time t.
func Sign(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

func mac(secret, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Errors of Verify.
var (
	ErrBadSignature = errors.New("webhook signature does not match")
	ErrStaleRequest = errors.New("webhook timestamp outside tolerance")
)

// Verify checks a SignatureHeader value against body as a receiver
// would: a v1 MAC matching the secret, and a timestamp within tolerance
// of now (replay protection). It is exported for Go receivers and tests.
func Verify(secret, header string, body []byte, now time.Time, tolerance time.Duration) error {
	var ts string
	var sigs [][]byte
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			if b, err := hex.DecodeString(v); err == nil {
				sigs = append(sigs, b)
			}
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return fmt.Errorf("%w: malformed header", ErrBadSignature)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return ErrStaleRequest
	}
	want := mac(secret, ts, body)
	for _, s := range sigs {
		if hmac.Equal(s, want) {
			return nil
		}
	}
	return ErrBadSignature
}

// DeliveryID is the DeliveryHeader value of a (webhook, event).
func DeliveryID(webhookID string, seq int64) string {
	return webhookID + ":" + strconv.FormatInt(seq, 10)
}

func newWebhookClient(cfg Config) *http.Client {
	d := &net.Dialer{Timeout: cfg.AttemptTimeout, KeepAlive: 30 * time.Second}
	if !cfg.AllowPrivateTargets {
		d.Control = guardControl
	}
	tr := &http.Transport{
		Proxy:                 nil, // an environment proxy would bypass the address guard
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   max(2, cfg.DeliveryConcurrency),
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   cfg.AttemptTimeout,
		ResponseHeaderTimeout: cfg.AttemptTimeout,
	}
	return &http.Client{
		Transport: tr,
		Timeout:   cfg.AttemptTimeout,
		// A redirect is a failed attempt: following it could lead anywhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func (s *Service) claim(ctx context.Context, free int) ([]store.Delivery, error) {
	cctx, cancel := context.WithTimeout(ctx, s.cfg.StoreTimeout)
	defer cancel()
	ds, rep, err := s.cfg.Store.ClaimDeliveries(cctx, store.Claim{Limit: free, Lease: s.cfg.DeliveryLease,
		PerWebhook: s.cfg.MaxDeliveriesPerWebhook, PerEnterprise: s.cfg.MaxDeliveriesPerEnterprise, ProbeAfter: s.cfg.SuspendAfter})
	if rep.WebhooksAtCap > 0 {
		s.cfg.Observer.WebhookCapReached("webhook", rep.WebhooksAtCap)
	}
	if rep.EnterprisesAtCap > 0 {
		s.cfg.Observer.WebhookCapReached("enterprise", rep.EnterprisesAtCap)
	}
	return ds, err
}

// deliverLoop claims due deliveries and posts them, at most
// DeliveryConcurrency at once, and at most the per-webhook and
// per-enterprise caps for one receiver (the store's claim goes round
// robin over webhooks). It wakes on new events (OnEvents), on a finished
// attempt, and every DeliveryPollInterval (retries coming due, other
// replicas' events).
func (s *Service) deliverLoop(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	slots := make(chan struct{}, s.cfg.DeliveryConcurrency)
	tick := time.NewTicker(s.cfg.DeliveryPollInterval)
	defer tick.Stop()
	for {
		if free := cap(slots) - len(slots); free > 0 {
			ds, err := s.claim(ctx, free)
			if err != nil && ctx.Err() == nil {
				s.log.Warn("claim webhook deliveries", "err", err)
			}
			for _, d := range ds {
				slots <- struct{}{}
				wg.Go(func() {
					defer func() {
						<-slots
						s.nudge()
					}()
					s.attempt(ctx, d)
				})
			}
			if len(ds) == free {
				continue // likely more due
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.wake:
		case <-tick.C:
		}
	}
}

// attempt posts one delivery and records the outcome.
func (s *Service) attempt(ctx context.Context, d store.Delivery) {
	n := d.Attempts + 1
	log := s.log.With("webhook", d.WebhookID, "seq", d.Seq, "attempt", n)
	finish := func(o store.AttemptOutcome) {
		o.Attempt.Attempt = n
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.StoreTimeout)
		defer cancel()
		h, err := s.cfg.Store.FinishAttempt(fctx, d.ID, o)
		if err != nil {
			// The lease runs out and the delivery is tried again: at least once.
			log.Warn("record webhook attempt", "err", err)
			return
		}
		if o.ReceiverFailed && !h.Suspended && h.Failures >= s.cfg.SuspendAfter {
			s.suspend(fctx, d.WebhookID, h.Failures, log)
		}
	}
	if d.Event == nil {
		finish(store.AttemptOutcome{Attempt: store.DeliveryAttempt{Error: "event no longer stored (retention)"}})
		log.Warn("webhook delivery dropped: its event was pruned")
		return
	}
	body, err := EncodeEvent(*d.Event)
	if err != nil {
		finish(store.AttemptOutcome{Attempt: store.DeliveryAttempt{Error: "encode event: " + err.Error()}})
		return
	}
	start := s.cfg.Now()
	code, err := s.post(ctx, d, body, n, start)
	if ctx.Err() != nil {
		return // shutting down: not an attempt; the lease expires and it is retried
	}
	a := store.DeliveryAttempt{At: start, Duration: s.cfg.Now().Sub(start), StatusCode: code}
	if err == nil {
		s.cfg.Observer.WebhookAttempt("ok", n > 1)
		s.cfg.Observer.EventsDelivered("webhook", 1)
		finish(store.AttemptOutcome{Attempt: a, Delivered: true})
		log.Debug("webhook delivered", "status", code, "duration", a.Duration)
		return
	}
	s.cfg.Observer.WebhookAttempt("error", n > 1)
	a.Error = err.Error()
	o := store.AttemptOutcome{Attempt: a, ReceiverFailed: true}
	if n < s.cfg.MaxAttempts && s.cfg.Now().Sub(d.CreatedAt) < s.cfg.MaxDeliveryAge {
		o.RetryAt = s.cfg.Now().Add(s.backoff(n))
	}
	finish(o)
	if o.RetryAt.IsZero() {
		log.Warn("webhook delivery failed for good", "err", err, "attempts", n)
	} else {
		log.Info("webhook delivery failed; will retry", "err", err, "retry_at", o.RetryAt)
	}
}

// suspend holds back every delivery of a webhook whose receiver failed
// `failures` attempts in a row (SuspendAfter or more), for the retry
// backoff of the attempts past SuspendAfter: a receiver that hangs would
// otherwise hold MaxDeliveriesPerWebhook slots for AttemptTimeout, again
// and again. When the suspension ends one delivery probes the receiver;
// a success lifts it, another failure suspends it for twice as long
// (attempts started before a suspension do not count: see
// store.WebhookHealth).
func (s *Service) suspend(ctx context.Context, webhookID string, failures int, log *slog.Logger) {
	until := s.cfg.Now().Add(s.backoff(failures - s.cfg.SuspendAfter + 1))
	ok, err := s.cfg.Store.SuspendWebhook(ctx, webhookID, until)
	if err != nil {
		log.Warn("suspend webhook", "err", err)
		return
	}
	if !ok {
		return // another attempt of the same outage suspended it first
	}
	s.cfg.Observer.WebhookSuspended()
	log.Warn("webhook suspended: its receiver failed too many attempts in a row; its deliveries wait",
		"failures", failures, "until", until)
}

// backoff is the wait after the n-th failed attempt: RetryInitial·2^(n-1),
// capped at RetryMax, ±20% jitter so receivers coming back are not hit by
// every retry at once.
func (s *Service) backoff(n int) time.Duration {
	d := s.cfg.RetryInitial
	for i := 1; i < n && d < s.cfg.RetryMax; i++ {
		d *= 2
	}
	d = min(d, s.cfg.RetryMax)
	j := time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
	return max(j, time.Millisecond)
}

// post sends the request; a nil error means a 2xx answer.
func (s *Service) post(ctx context.Context, d store.Delivery, body []byte, attempt int, now time.Time) (int, error) {
	rctx, cancel := context.WithTimeout(ctx, s.cfg.AttemptTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, d.Webhook.URL, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("bad webhook URL: %w", err)
	}
	h := req.Header
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", userAgent)
	h.Set(SignatureHeader, Sign(d.Webhook.Secret, now, body))
	h.Set(DeliveryHeader, DeliveryID(d.WebhookID, d.Seq))
	h.Set(EventHeader, d.EventType)
	h.Set(AttemptHeader, strconv.Itoa(attempt))
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, describeHTTPError(err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, DefaultMaxResponseBody))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return resp.StatusCode, nil
}

// describeHTTPError shortens a client error for the attempt log: the URL
// is the caller's own, the rest is the reason.
func describeHTTPError(err error) error {
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) {
		if inner := ue.Unwrap(); inner != nil {
			err = inner
		}
	}
	switch {
	case errors.Is(err, ErrForbiddenTarget):
		return fmt.Errorf("refused: %w", err)
	case errors.Is(err, context.DeadlineExceeded):
		return errors.New("timed out")
	}
	return err
}
