package api

import (
	_ "embed"
	"net/http"

	"github.com/switchboard-pbx/switchboard/controlplane/auth"
	"github.com/switchboard-pbx/switchboard/protocol"
)

// openAPIDocument is openapi.json, the description of every route.
//
//go:embed openapi.json
var openAPIDocument []byte

// OpenAPI returns the OpenAPI 3 document served at /v1/openapi.json.
func OpenAPI() []byte { return append([]byte(nil), openAPIDocument...) }

// table is every route the control plane serves, in one place: each goes
// through the same chain (request id, body limit, authentication, rate
// limits, audit, error envelope, access log, metrics; see serve).
func (a *API) table() []*route {
	return []*route{
		// v1: calls
		{method: "POST", path: "/v1/calls", action: auth.Originate, audit: AuditOriginate, selfAuthorize: true, handle: a.createCall},
		{method: "GET", path: "/v1/calls", action: auth.CallsRead, handle: a.listCalls},
		{method: "GET", path: "/v1/calls/{id}", action: auth.CallsRead, handle: a.getCall},
		{method: "POST", path: "/v1/calls/hangup", action: auth.Hangup, audit: AuditHangup, selfAuthorize: true, handle: a.hangupCall},
		{method: "DELETE", path: "/v1/calls/{id}", action: auth.Hangup, audit: AuditHangup, selfAuthorize: true, handle: a.deleteCall},
		{method: "POST", path: "/v1/monitor", action: auth.Monitor, audit: AuditMonitor, selfAuthorize: true, handle: a.startMonitor},
		{method: "GET", path: "/v1/channels", action: auth.ChannelsRead, handle: a.listChannels},
		// v1: PBXs, fleet, audit
		{method: "GET", path: "/v1/pbxs", action: auth.PBXRead, handle: a.listPBXs},
		{method: "GET", path: "/v1/pbxs/{id}", action: auth.PBXRead, handle: a.getPBX},
		{method: "GET", path: "/v1/fleet", action: auth.FleetRead, handle: a.fleet},
		{method: "GET", path: "/v1/audit", action: auth.AuditRead, handle: a.listAudit},
		// v1: events and webhooks
		{method: "GET", path: "/v1/events", action: auth.EventsRead, ticket: true, handle: a.events},
		{method: "POST", path: "/v1/events/ticket", action: auth.EventsRead, handle: a.issueTicket},
		{method: "POST", path: "/v1/webhooks", action: auth.WebhooksManage, audit: AuditWebhookCreate, handle: a.createWebhook},
		{method: "GET", path: "/v1/webhooks", action: auth.EventsRead, handle: a.listWebhooks},
		{method: "GET", path: "/v1/webhooks/{id}", action: auth.EventsRead, handle: a.getWebhook},
		{method: "DELETE", path: "/v1/webhooks/{id}", action: auth.WebhooksManage, audit: AuditWebhookDelete, handle: a.deleteWebhook},
		{method: "GET", path: "/v1/webhooks/{id}/deliveries", action: auth.EventsRead, handle: a.listDeliveries},
		{method: "GET", path: "/v1/openapi.json", handle: a.openAPI},
		// legacy, byte-compatible
		{method: "GET", path: "/api/makecallexternal", style: styleFastAPI, action: auth.Originate, audit: AuditOriginate, selfAuthorize: true, clientID: true, handle: a.legacyMakeCall},
		{method: "GET", path: "/api/monitor", style: styleFastAPI, action: auth.Monitor, audit: AuditMonitor, selfAuthorize: true, clientID: true, handle: a.legacyMonitor},
		{method: "POST", path: "/api/v2/asterisk/call/hangup", style: styleLaravel, action: auth.Hangup, audit: AuditHangup, selfAuthorize: true, handle: a.legacyHangup},
		{method: "GET", path: "/health", style: styleFastAPI, handle: a.health},
		{method: "GET", path: "/api/status", style: styleFastAPI, clientID: true, handle: a.status},
		// operations
		{method: "GET", path: "/healthz", handle: a.healthz},
		{method: "GET", path: "/readyz", handle: a.readyz},
		{method: "GET", path: "/metrics", handle: a.metrics},
		{method: "GET", path: protocol.ConnectPath, style: stylePlain, longLived: true, handle: a.connectAgent},
		// between replicas: a request for a PBX whose tunnel this replica holds
		{method: "POST", path: ClusterCallPath, internal: true, handle: a.clusterCall},
		// Unknown paths get the API's own error bodies (404, or 405 when
		// another method of the path exists), not the mux's text/plain.
		{path: "/v1/", handle: a.unknownRoute},
		{path: "/api/", style: styleFastAPI, handle: a.unknownRoute},
		{path: "/", handle: a.unknownRoute},
	}
}

func (a *API) openAPI(c *call) error {
	c.status, c.body = http.StatusOK, openAPIDocument
	c.setHeader("Cache-Control", "public, max-age=300")
	return nil
}
