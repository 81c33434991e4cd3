package auth

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// The matrix as documented in the report and README, written out
// independently of policy so a change to either shows up here.
var wantMatrix = []struct {
	action   Action
	scopes   []string // any one allows an API key
	operator bool
	super    bool
	telecom  bool
	platform bool
}{
	{Originate, []string{ScopeOriginate}, true, true, true, true},
	{Monitor, []string{ScopeMonitor}, false, true, true, true},
	{Hangup, []string{ScopeHangup}, false, true, true, false},
	{ChannelsRead, []string{ScopeChannelsRead}, true, true, true, true},
	{EventsRead, []string{ScopeEventsRead}, true, true, true, true},
	{AuditRead, []string{ScopeAuditRead}, false, true, true, true},
	{PBXRead, []string{ScopeChannelsRead, ScopeOriginate}, true, true, true, true},
	{FleetRead, nil, false, false, false, true},
	{CallsRead, []string{ScopeEventsRead, ScopeChannelsRead}, true, true, true, true},
	{WebhooksManage, []string{ScopeEventsRead}, false, true, true, false},
	{CallsControl, []string{ScopeCallsControl}, true, true, true, true},
	{RecordingControl, []string{ScopeRecordings}, false, true, true, true},
	{RecordingRead, []string{ScopeRecordingsRead}, false, true, true, true},
	{QueuesRead, []string{ScopeQueuesRead}, true, true, true, true},
	{QueuesManage, []string{ScopeQueuesManage}, false, true, true, true},
}

func TestMatrix(t *testing.T) {
	if len(wantMatrix) != len(Actions) || len(policy) != len(Actions) {
		t.Fatalf("matrix has %d rows, Actions %d, policy %d", len(wantMatrix), len(Actions), len(policy))
	}
	for _, row := range wantMatrix {
		t.Run(string(row.action), func(t *testing.T) {
			roles := map[string]bool{RoleOperator: row.operator, RoleSupervisor: row.super, RoleTelecomAdmin: row.telecom, RolePlatformAdmin: row.platform}
			for role, want := range roles {
				p := Principal{Kind: KindOperator, ID: "op", EnterpriseID: 7, Roles: []string{role}}
				err := p.Allows(row.action)
				if (err == nil) != want {
					t.Errorf("role %s: Allows = %v, want allowed=%v", role, err, want)
				}
				if err != nil && !errors.Is(err, ErrForbidden) {
					t.Errorf("role %s: error %v does not match ErrForbidden", role, err)
				}
			}
			for _, scope := range Scopes {
				p := Principal{Kind: KindAPIKey, ID: "k", EnterpriseID: 7, Scopes: []string{scope}}
				want := slices.Contains(row.scopes, scope)
				if err := p.Allows(row.action); (err == nil) != want {
					t.Errorf("scope %s: Allows = %v, want allowed=%v", scope, err, want)
				}
			}
			// No roles / no scopes: nothing is allowed.
			for _, p := range []Principal{{Kind: KindOperator, EnterpriseID: 7}, {Kind: KindAPIKey, EnterpriseID: 7}} {
				if err := p.Allows(row.action); err == nil {
					t.Errorf("%s with nothing: allowed", p.Kind)
				}
			}
		})
	}
}

func TestAllowsErrors(t *testing.T) {
	tests := []struct {
		name    string
		p       Principal
		action  Action
		wantMsg string
	}{
		{"operator missing role names roles", Principal{Kind: KindOperator, EnterpriseID: 1, Roles: []string{RoleOperator}}, Hangup,
			"hangup not allowed: requires role supervisor or telecom_admin"},
		{"key missing scope names scope", Principal{Kind: KindAPIKey, EnterpriseID: 1, Scopes: []string{ScopeOriginate}}, Monitor,
			"monitor not allowed: requires scope monitor"},
		{"key never gets fleet", Principal{Kind: KindAPIKey, EnterpriseID: 1, Scopes: Scopes}, FleetRead,
			"fleet:read not allowed: not available to API keys"},
		{"platform admin without enterprise cannot originate", Principal{Kind: KindOperator, Roles: []string{RolePlatformAdmin}}, Originate,
			"originate not allowed: credential is not bound to an enterprise"},
		{"unknown action", Principal{Kind: KindOperator, EnterpriseID: 1, Roles: Roles}, Action("reboot"),
			"reboot not allowed: unknown action"},
		{"zero principal", Principal{EnterpriseID: 1}, ChannelsRead,
			"channels:read not allowed: unknown credential kind"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.p.Allows(tc.action)
			var fe *ForbiddenError
			if !errors.As(err, &fe) || !errors.Is(err, ErrForbidden) {
				t.Fatalf("Allows = %v, want *ForbiddenError", err)
			}
			if err.Error() != tc.wantMsg {
				t.Errorf("message %q, want %q", err.Error(), tc.wantMsg)
			}
		})
	}
	admin := Principal{Kind: KindOperator, ID: "root", Roles: []string{RolePlatformAdmin}}
	if err := admin.Allows(FleetRead); err != nil {
		t.Errorf("platform admin without enterprise: FleetRead = %v", err)
	}
}

func TestCredentialIDNamespaces(t *testing.T) {
	k := Principal{Kind: KindAPIKey, ID: "abc"}
	o := Principal{Kind: KindOperator, ID: "abc"}
	if k.CredentialID() == o.CredentialID() {
		t.Fatalf("key and operator with the same id share %q", k.CredentialID())
	}
	if !strings.HasPrefix(k.CredentialID(), "key:") || !strings.HasPrefix(o.CredentialID(), "op:") {
		t.Errorf("ids %q %q", k.CredentialID(), o.CredentialID())
	}
	// The same subject in two enterprises is two credentials (one rate
	// limit bucket each).
	a := Principal{Kind: KindOperator, ID: "op-1", EnterpriseNumber: "0367"}
	b := Principal{Kind: KindOperator, ID: "op-1", EnterpriseNumber: "0420"}
	if a.CredentialID() == b.CredentialID() {
		t.Fatalf("operators of two enterprises share %q", a.CredentialID())
	}
}
