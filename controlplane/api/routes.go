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
		// v1: queues and recordings (queues.go, recordings.go)
		{method: "GET", path: "/v1/queues", action: auth.QueuesRead, handle: a.listQueues},
		{method: "GET", path: "/v1/queues/{queue}", action: auth.QueuesRead, handle: a.getQueue},
		{method: "POST", path: "/v1/queues/{queue}/members", action: auth.QueuesManage, audit: AuditQueueMemberAdd, selfAuthorize: true, handle: a.addMember},
		{method: "DELETE", path: "/v1/queues/{queue}/members/{extension}", action: auth.QueuesManage, audit: AuditQueueMemberRemove, selfAuthorize: true, handle: a.removeMember},
		{method: "POST", path: "/v1/queues/{queue}/members/{extension}/pause", action: auth.QueuesManage, audit: AuditQueueMemberPause, selfAuthorize: true, handle: a.pauseMember},
		{method: "POST", path: "/v1/queues/members/{extension}/pause", action: auth.QueuesManage, audit: AuditQueueMemberPause, selfAuthorize: true, handle: a.pauseMember},
		{method: "PUT", path: "/v1/queues/{queue}/members/{extension}/penalty", action: auth.QueuesManage, audit: AuditQueueMemberPenalty, selfAuthorize: true, handle: a.setPenalty},
		{method: "POST", path: "/v1/calls/{id}/recording/start", action: auth.RecordingControl, audit: AuditRecordingStart, selfAuthorize: true, handle: a.startRecording},
		{method: "POST", path: "/v1/calls/{id}/recording/stop", action: auth.RecordingControl, audit: AuditRecordingStop, selfAuthorize: true, handle: a.stopRecording},
		{method: "POST", path: "/v1/calls/{id}/recording/mute", action: auth.RecordingControl, audit: AuditRecordingMute, selfAuthorize: true, handle: a.muteRecording},
		{method: "GET", path: "/v1/recordings/{id}", action: auth.RecordingRead, audit: AuditRecordingDownload, handle: a.downloadRecording},
		// v1: call control (callcontrol.go)
		{method: "POST", path: "/v1/calls/{id}/transfer", action: auth.CallsControl, audit: AuditTransfer, selfAuthorize: true, handle: a.transferCall},
		{method: "POST", path: "/v1/calls/{id}/transfer/complete", action: auth.CallsControl, audit: AuditTransferComplete, selfAuthorize: true, handle: a.completeTransfer},
		{method: "POST", path: "/v1/calls/{id}/transfer/cancel", action: auth.CallsControl, audit: AuditTransferCancel, selfAuthorize: true, handle: a.cancelTransfer},
		{method: "POST", path: "/v1/calls/{id}/dtmf", action: auth.CallsControl, audit: AuditDTMF, selfAuthorize: true, handle: a.sendDTMF},
		{method: "POST", path: "/v1/calls/{id}/park", action: auth.CallsControl, audit: AuditPark, selfAuthorize: true, handle: a.parkCall},
		{method: "POST", path: "/v1/calls/{id}/mute", action: auth.CallsControl, audit: AuditMute, selfAuthorize: true, handle: a.muteCall},
		{method: "GET", path: "/v1/parked", action: auth.QueuesRead, handle: a.listParked},
		{method: "POST", path: "/v1/parked/{lot}/{space}/pickup", action: auth.CallsControl, audit: AuditPickup, selfAuthorize: true, handle: a.pickupParked},
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
		// v1: who am I, and the web console's session exchange
		{method: "GET", path: "/v1/me", authOnly: true, handle: a.getMe},
		{method: "POST", path: "/v1/session", authOnly: true, signIn: true, audit: AuditConsoleSignIn, handle: a.createSession},
		{method: "DELETE", path: "/v1/session", authOnly: true, audit: AuditConsoleSignOut, handle: a.deleteSession},
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
		{method: "POST", path: ClusterFetchPath, internal: true, handle: a.clusterFetch},
		// Unknown paths get the API's own error bodies (404, or 405 when
		// another method of the path exists), not the mux's text/plain.
		{path: "/v1/", handle: a.unknownRoute},
		{path: "/api/", style: styleFastAPI, handle: a.unknownRoute},
		// The web console (controlplane/console): every other path.
		{path: "/", handle: a.console},
	}
}

func (a *API) openAPI(c *call) error {
	c.status, c.body = http.StatusOK, openAPIDocument
	c.setHeader("Cache-Control", "public, max-age=300")
	return nil
}
