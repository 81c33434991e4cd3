package api

import (
	"context"
	"crypto/subtle"
	"net/http"
	"strings"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/store"
)

// readyTimeout bounds the store checks of GET /readyz.
const readyTimeout = 2 * time.Second

type healthz struct {
	Status string `json:"status"`
}

// healthz is GET /healthz: the process answers.
func (a *API) healthz(c *call) error {
	return c.reply(http.StatusOK, healthz{Status: "alive"})
}

type readiness struct {
	Status          string `json:"status"`
	Reason          string `json:"reason,omitempty"`
	Migrations      int    `json:"migrations,omitempty"`
	Known           int    `json:"known,omitempty"`
	AgentsConnected int    `json:"agents_connected"`
}

// readyz is GET /readyz: ready when the store answers and every migration
// this build knows is applied (what a load balancer's health check asks).
func (a *API) readyz(c *call) error {
	ctx, cancel := context.WithTimeout(c.ctx(), readyTimeout)
	defer cancel()
	out := readiness{Status: "ready", AgentsConnected: a.cfg.Directory.Len(), Known: store.MigrationsKnown()}
	if err := a.cfg.Store.Ping(ctx); err != nil {
		out.Status, out.Reason = "not ready", "store unreachable"
		return c.reply(http.StatusServiceUnavailable, out)
	}
	n, err := a.cfg.Store.MigrationsApplied(ctx)
	out.Migrations = n
	if err != nil || n != out.Known {
		out.Status, out.Reason = "not ready", "migrations pending"
		return c.reply(http.StatusServiceUnavailable, out)
	}
	if a.cfg.StoreFailing != nil {
		if failing, err := a.cfg.StoreFailing(); failing {
			// Agents' events wait, unacknowledged, at their PBXs; requests
			// to PBXs still work. The error is logged, not shown here: the
			// route needs no credential.
			c.log.Warn("readyz: the store refuses agents' event batches", "err", err)
			out.Status, out.Reason = "not ready", "the store refuses agents' event batches (they wait at the PBXs)"
			return c.reply(http.StatusServiceUnavailable, out)
		}
	}
	return c.reply(http.StatusOK, out)
}

// metrics is GET /metrics (Prometheus), behind MetricsToken when set.
func (a *API) metrics(c *call) error {
	if a.cfg.Metrics == nil {
		return errorf(http.StatusNotFound, CodeNotFound, "metrics are not served on this listener")
	}
	if a.cfg.MetricsToken != "" {
		got, _ := strings.CutPrefix(c.r.Header.Get("Authorization"), "Bearer ")
		if subtle.ConstantTimeCompare([]byte(got), []byte(a.cfg.MetricsToken)) != 1 {
			c.setHeader("WWW-Authenticate", `Bearer realm="switchboard-metrics"`)
			return errorf(http.StatusUnauthorized, CodeUnauthorized, "metrics need the metrics token (--metrics-token-file)")
		}
	}
	c.serveOwn(a.cfg.Metrics)
	return nil
}

// connectAgent is GET /agent/v1/connect: the gateway authenticates the
// agent by its own token and serves the tunnel for the session's life. A
// refusal before the upgrade is answered here, in text, which the agent
// logs as it is.
func (a *API) connectAgent(c *call) error {
	c.wroteOwn = true
	if err := a.cfg.Agents.Connect(c.w, c.r); err != nil {
		c.wroteOwn = false
		return err
	}
	return nil
}
