package api

import (
	_ "embed"
	"net/http"

	"github.com/switchboard-pbx/switchboard/controlplane/auth"
)

// openAPIDocument is openapi.json, the description of every route.
//
//go:embed openapi.json
var openAPIDocument []byte

// OpenAPI returns the OpenAPI 3 document served at /v1/openapi.json.
func OpenAPI() []byte { return append([]byte(nil), openAPIDocument...) }

// table is every route the API serves.
func (a *API) table() []*route {
	return []*route{
		// v1
		{method: "POST", path: "/v1/calls", action: auth.Originate, audit: AuditOriginate, selfAuthorize: true, handle: a.createCall},
		{method: "POST", path: "/v1/calls/hangup", action: auth.Hangup, audit: AuditHangup, selfAuthorize: true, handle: a.hangupCall},
		{method: "DELETE", path: "/v1/calls/{id}", action: auth.Hangup, audit: AuditHangup, selfAuthorize: true, handle: a.deleteCall},
		{method: "POST", path: "/v1/monitor", action: auth.Monitor, audit: AuditMonitor, selfAuthorize: true, handle: a.startMonitor},
		{method: "GET", path: "/v1/channels", action: auth.ChannelsRead, handle: a.listChannels},
		{method: "GET", path: "/v1/pbxs", action: auth.PBXRead, handle: a.listPBXs},
		{method: "GET", path: "/v1/pbxs/{id}", action: auth.PBXRead, handle: a.getPBX},
		{method: "GET", path: "/v1/fleet", action: auth.FleetRead, handle: a.fleet},
		{method: "GET", path: "/v1/audit", action: auth.AuditRead, handle: a.listAudit},
		{method: "GET", path: "/v1/openapi.json", handle: a.openAPI},
		// legacy, byte-compatible
		{method: "GET", path: "/api/makecallexternal", style: styleFastAPI, action: auth.Originate, audit: AuditOriginate, selfAuthorize: true, clientID: true, handle: a.legacyMakeCall},
		{method: "GET", path: "/api/monitor", style: styleFastAPI, action: auth.Monitor, audit: AuditMonitor, selfAuthorize: true, clientID: true, handle: a.legacyMonitor},
		{method: "POST", path: "/api/v2/asterisk/call/hangup", style: styleLaravel, action: auth.Hangup, audit: AuditHangup, selfAuthorize: true, handle: a.legacyHangup},
		{method: "GET", path: "/health", style: styleFastAPI, handle: a.health},
		{method: "GET", path: "/api/status", style: styleFastAPI, handle: a.status},
	}
}

func (a *API) openAPI(c *call) error {
	c.status, c.body = http.StatusOK, openAPIDocument
	c.setHeader("Cache-Control", "public, max-age=300")
	return nil
}
