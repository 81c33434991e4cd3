package auth

import (
	"slices"
	"strconv"
	"time"
)

// Kind says which sort of credential a Principal came from.
type Kind string

const (
	KindAPIKey   Kind = "api_key"
	KindOperator Kind = "operator"
)

// Scopes an enterprise API key may carry.
const (
	ScopeOriginate    = "originate"
	ScopeMonitor      = "monitor"
	ScopeHangup       = "hangup"
	ScopeChannelsRead = "channels:read"
	ScopeEventsRead   = "events:read"
	ScopeAuditRead    = "audit:read"
	// Call-centre operations.
	ScopeCallsControl   = "calls:control"   // transfer, park, DTMF, mute
	ScopeRecordings     = "recordings"      // start, stop, mute a recording
	ScopeRecordingsRead = "recordings:read" // download recordings
	ScopeQueuesRead     = "queues:read"
	ScopeQueuesManage   = "queues:manage" // queue members: add, remove, pause, penalty
)

// Scopes lists every scope an API key may carry, for validating
// `switchboard apikey create --scopes`.
var Scopes = []string{ScopeOriginate, ScopeMonitor, ScopeHangup, ScopeChannelsRead, ScopeEventsRead, ScopeAuditRead,
	ScopeCallsControl, ScopeRecordings, ScopeRecordingsRead, ScopeQueuesRead, ScopeQueuesManage}

// Operator roles carried in the JWT "roles" claim, lowest first.
const (
	RoleOperator      = "operator"
	RoleSupervisor    = "supervisor"
	RoleTelecomAdmin  = "telecom_admin"
	RolePlatformAdmin = "platform_admin"
)

// Roles lists every role the JWT "roles" claim may carry. Other strings in
// the claim are ignored (see JWTVerifier).
var Roles = []string{RoleOperator, RoleSupervisor, RoleTelecomAdmin, RolePlatformAdmin}

// Action is something a request wants to do; Principal.Allows decides.
type Action string

const (
	Originate    Action = "originate"
	Monitor      Action = "monitor"
	Hangup       Action = "hangup"
	ChannelsRead Action = "channels:read"
	EventsRead   Action = "events:read"
	AuditRead    Action = "audit:read"
	PBXRead      Action = "pbx:read"
	FleetRead    Action = "fleet:read"
	// CallsRead is the call history (GET /v1/calls): the same facts as
	// the event stream, and what a key that lists live channels sees.
	CallsRead Action = "calls:read"
	// WebhooksManage creates and deletes webhooks, which send every
	// call's facts off the platform.
	WebhooksManage Action = "webhooks:manage"
	// Call-centre operations.
	CallsControl     Action = "calls:control"   // transfer, park and pickup, DTMF, mute
	RecordingControl Action = "recordings"      // start, stop, mute a recording
	RecordingRead    Action = "recordings:read" // download a recording
	QueuesRead       Action = "queues:read"     // queues, members, callers waiting, parked calls
	QueuesManage     Action = "queues:manage"   // add, remove, pause a member; set its penalty
)

// rule is one row of the access matrix.
type rule struct {
	// scopes: an API key needs any one of these; empty means API keys are
	// never allowed.
	scopes []string
	// roles: an operator needs any one of these.
	roles []string
	// enterprise: the action is confined to one enterprise, so the
	// credential must name one. Only the fleet-wide view is not.
	enterprise bool
}

// policy is the whole access matrix, in one place on purpose: every
// decision about who may do what is read from here.
//
// Choices beyond the issue text, so a reviewer can disagree with them:
//   - hangup stays exactly as in the seed (supervisor, telecom_admin):
//     platform_admin is the fleet-wide view, not a PBX operator, and an
//     account that needs both holds both roles;
//   - audit:read for operators needs supervisor or above, because the audit
//     log shows other operators' actions;
//   - the PBX list (GET /v1/pbxs) is allowed to keys with channels:read or
//     originate, because a key that may place calls must be able to choose
//     the PBX to place them on;
//   - a key with events:read may manage its enterprise's webhooks (it could
//     read the same events anyway); an operator needs supervisor or
//     telecom_admin, since a webhook sends every call off the platform;
//   - call control (transfer, park, DTMF, mute) and queue reads are an
//     operator's everyday work; recordings and queue membership are a
//     supervisor's, and downloading a recording needs its own scope.
var policy = map[Action]rule{
	Originate:        {scopes: []string{ScopeOriginate}, roles: []string{RoleOperator, RoleSupervisor, RoleTelecomAdmin, RolePlatformAdmin}, enterprise: true},
	Monitor:          {scopes: []string{ScopeMonitor}, roles: []string{RoleSupervisor, RoleTelecomAdmin, RolePlatformAdmin}, enterprise: true},
	Hangup:           {scopes: []string{ScopeHangup}, roles: []string{RoleSupervisor, RoleTelecomAdmin}, enterprise: true},
	ChannelsRead:     {scopes: []string{ScopeChannelsRead}, roles: []string{RoleOperator, RoleSupervisor, RoleTelecomAdmin, RolePlatformAdmin}, enterprise: true},
	EventsRead:       {scopes: []string{ScopeEventsRead}, roles: []string{RoleOperator, RoleSupervisor, RoleTelecomAdmin, RolePlatformAdmin}, enterprise: true},
	AuditRead:        {scopes: []string{ScopeAuditRead}, roles: []string{RoleSupervisor, RoleTelecomAdmin, RolePlatformAdmin}, enterprise: true},
	PBXRead:          {scopes: []string{ScopeChannelsRead, ScopeOriginate}, roles: []string{RoleOperator, RoleSupervisor, RoleTelecomAdmin, RolePlatformAdmin}, enterprise: true},
	FleetRead:        {roles: []string{RolePlatformAdmin}},
	CallsRead:        {scopes: []string{ScopeEventsRead, ScopeChannelsRead}, roles: []string{RoleOperator, RoleSupervisor, RoleTelecomAdmin, RolePlatformAdmin}, enterprise: true},
	WebhooksManage:   {scopes: []string{ScopeEventsRead}, roles: []string{RoleSupervisor, RoleTelecomAdmin}, enterprise: true},
	CallsControl:     {scopes: []string{ScopeCallsControl}, roles: []string{RoleOperator, RoleSupervisor, RoleTelecomAdmin, RolePlatformAdmin}, enterprise: true},
	RecordingControl: {scopes: []string{ScopeRecordings}, roles: []string{RoleSupervisor, RoleTelecomAdmin, RolePlatformAdmin}, enterprise: true},
	RecordingRead:    {scopes: []string{ScopeRecordingsRead}, roles: []string{RoleSupervisor, RoleTelecomAdmin, RolePlatformAdmin}, enterprise: true},
	QueuesRead:       {scopes: []string{ScopeQueuesRead}, roles: []string{RoleOperator, RoleSupervisor, RoleTelecomAdmin, RolePlatformAdmin}, enterprise: true},
	QueuesManage:     {scopes: []string{ScopeQueuesManage}, roles: []string{RoleSupervisor, RoleTelecomAdmin, RolePlatformAdmin}, enterprise: true},
}

// Actions lists every action, in a stable order (for docs and tests).
var Actions = []Action{Originate, Monitor, Hangup, ChannelsRead, EventsRead, AuditRead, PBXRead, FleetRead, CallsRead, WebhooksManage,
	CallsControl, RecordingControl, RecordingRead, QueuesRead, QueuesManage}

// Principal is an authenticated caller.
type Principal struct {
	Kind Kind
	// ID is the API key's public id or the operator's JWT subject.
	ID string
	// EnterpriseID is 0 only for a platform_admin token without an
	// enterprise claim; such a principal may use the fleet-wide view only.
	EnterpriseID     int64
	EnterpriseNumber string
	// Scopes of an API key (nil for operators).
	Scopes []string
	// Roles of an operator, known roles only (nil for API keys).
	Roles []string
	// Expires is when the credential stops being valid: an operator
	// JWT's exp, a console session's end; zero for an API key, which
	// lives until it is revoked.
	Expires time.Time
}

// Allows reports whether p may perform action: nil, or a *ForbiddenError
// naming the scopes or roles that would have allowed it.
func (p Principal) Allows(action Action) error {
	r, ok := policy[action]
	if !ok {
		return &ForbiddenError{Action: action, Kind: p.Kind, Reason: "unknown action"}
	}
	if r.enterprise && p.EnterpriseID == 0 {
		return &ForbiddenError{Action: action, Kind: p.Kind, Reason: "credential is not bound to an enterprise"}
	}
	switch p.Kind {
	case KindAPIKey:
		if len(r.scopes) == 0 {
			return &ForbiddenError{Action: action, Kind: p.Kind, Reason: "not available to API keys"}
		}
		if !anyIn(r.scopes, p.Scopes) {
			return &ForbiddenError{Action: action, Kind: p.Kind, AnyOf: slices.Clone(r.scopes)}
		}
		return nil
	case KindOperator:
		if !anyIn(r.roles, p.Roles) {
			return &ForbiddenError{Action: action, Kind: p.Kind, AnyOf: slices.Clone(r.roles)}
		}
		return nil
	default:
		return &ForbiddenError{Action: action, Kind: p.Kind, Reason: "unknown credential kind"}
	}
}

// HasRole reports whether an operator principal holds role.
func (p Principal) HasRole(role string) bool { return slices.Contains(p.Roles, role) }

// CredentialID names the credential for rate limiting and logs, with the
// kind as a prefix so an API key id can never collide with an operator
// subject: "key:<public id>" or "op:<enterprise number>:<sub>". An
// operator's subject is only unique within its issuer's enterprise, so two
// enterprises' "op-1" are two credentials with two rate-limit buckets.
func (p Principal) CredentialID() string {
	if p.Kind == KindAPIKey {
		return "key:" + p.ID
	}
	return "op:" + p.EnterpriseNumber + ":" + p.ID
}

// String is safe for logs: it names the credential, never a secret.
func (p Principal) String() string {
	return string(p.Kind) + " " + strconv.Quote(p.ID) + " enterprise " + strconv.Quote(p.EnterpriseNumber)
}

func anyIn(want, have []string) bool {
	for _, w := range want {
		if slices.Contains(have, w) {
			return true
		}
	}
	return false
}

// clone returns a copy that shares no slices with p, so a Principal handed
// out (e.g. from a ticket) cannot be changed through another copy.
func (p Principal) clone() Principal {
	p.Scopes = slices.Clone(p.Scopes)
	p.Roles = slices.Clone(p.Roles)
	return p
}
