package api

import (
	"io"
	"net/http"
	"time"
)

// ClusterCallPath is the internal route of requests another replica
// forwards to the one holding a PBX's tunnel (cluster.CallPath).
const ClusterCallPath = "/cluster/v1/call"

// ClusterFetchPath is the internal route of body requests (a recording's
// bytes) forwarded to the replica holding the PBX (cluster.FetchPath).
const ClusterFetchPath = "/cluster/v1/fetch"

// clusterCall is POST /cluster/v1/call. Its credential is the cluster
// signature, checked by the cluster; the replica that forwarded it has
// already authenticated, rate-limited and audited the client's request,
// so this route does none of that again.
func (a *API) clusterCall(c *call) error {
	body, err := a.clusterBody(c)
	if err != nil {
		return err
	}
	out, err := a.cfg.Cluster.HandleCall(c.ctx(), c.r.Header, body)
	if err := a.clusterRefused(c, err); err != nil {
		return err
	}
	c.status, c.body = http.StatusOK, out
	return nil
}

// clusterFetch is POST /cluster/v1/fetch: clusterCall for a body op,
// whose answer the cluster streams itself once the call is authenticated
// (its download's deadline bounds it, not the API's WriteTimeout).
func (a *API) clusterFetch(c *call) error {
	body, err := a.clusterBody(c)
	if err != nil {
		return err
	}
	err = a.cfg.Cluster.HandleFetch(c.ctx(), c.r.Header, body, func() io.Writer {
		c.wroteOwn = true
		c.finishBody()
		_ = http.NewResponseController(c.w).SetWriteDeadline(time.Time{})
		c.w.Header().Set("Content-Type", "application/octet-stream")
		c.w.WriteHeader(http.StatusOK)
		return c.w
	})
	if c.wroteOwn {
		if err != nil {
			c.log.Warn("forwarded fetch ended early", "err", err)
		}
		return nil
	}
	return a.clusterRefused(c, err)
}

// clusterBody reads an internal call's body.
func (a *API) clusterBody(c *call) ([]byte, error) {
	if a.cfg.Cluster == nil {
		return nil, errorf(http.StatusNotFound, CodeNotFound, "no route %s %s: this replica runs without clustering", c.r.Method, c.r.URL.Path)
	}
	if c.r.Body == nil {
		return nil, invalidf("request body is empty")
	}
	body, err := io.ReadAll(c.r.Body)
	if err != nil {
		return nil, decodeError(err)
	}
	return body, nil
}

// clusterRefused answers a refused signature 401 (and logs it).
func (a *API) clusterRefused(c *call, err error) error {
	if a.cfg.Cluster.Unauthenticated(err) {
		c.log.Warn("internal call refused", "remote", c.r.RemoteAddr, "err", err)
		return errorf(http.StatusUnauthorized, CodeUnauthorized, "internal call not authenticated")
	}
	return err
}
