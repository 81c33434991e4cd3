package api

import (
	"io"
	"net/http"
)

// ClusterCallPath is the internal route of requests another replica
// forwards to the one holding a PBX's tunnel (cluster.CallPath).
const ClusterCallPath = "/cluster/v1/call"

// clusterCall is POST /cluster/v1/call. Its credential is the cluster
// signature, checked by the cluster; the replica that forwarded it has
// already authenticated, rate-limited and audited the client's request,
// so this route does none of that again.
func (a *API) clusterCall(c *call) error {
	if a.cfg.Cluster == nil {
		return errorf(http.StatusNotFound, CodeNotFound, "no route %s %s: this replica runs without clustering", c.r.Method, c.r.URL.Path)
	}
	if c.r.Body == nil {
		return invalidf("request body is empty")
	}
	body, err := io.ReadAll(c.r.Body)
	if err != nil {
		return decodeError(err)
	}
	out, err := a.cfg.Cluster.HandleCall(c.ctx(), c.r.Header, body)
	if a.cfg.Cluster.Unauthenticated(err) {
		c.log.Warn("internal call refused", "remote", c.r.RemoteAddr, "err", err)
		return errorf(http.StatusUnauthorized, CodeUnauthorized, "internal call not authenticated")
	}
	if err != nil {
		return err
	}
	c.status, c.body = http.StatusOK, out
	return nil
}
