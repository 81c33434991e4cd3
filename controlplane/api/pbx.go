package api

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/fleet"
	"github.com/switchboard-pbx/switchboard/controlplane/store"
	"github.com/switchboard-pbx/switchboard/protocol"
)

// AMI states as the API reports them; "unknown" when the agent is not
// connected (its last report would be stale).
const amiUnknown = "unknown"

// enterpriseAgents returns the live (unrevoked) PBXs of the caller's
// enterprise; fresh bypasses the cache.
func (c *call) enterpriseAgents(fresh bool) ([]store.Agent, error) {
	ctx, cancel := c.storeCtx()
	defer cancel()
	agents, err := c.api.agents.get(ctx, c.principal.EnterpriseID, fresh)
	if err != nil {
		return nil, storeError(err)
	}
	return agents, nil
}

// selectPBX resolves the request's "pbx" (an agent id or its name; names
// are unique among an enterprise's live PBXs) within the caller's
// enterprise. Empty is fine when the enterprise has exactly one PBX. A PBX
// of another enterprise is reported exactly like one that does not exist:
// only the caller's own enterprise's list is ever searched.
func (c *call) selectPBX(pbx string) (store.Agent, error) {
	agents, err := c.enterpriseAgents(false)
	if err != nil {
		return store.Agent{}, err
	}
	if pbx != "" {
		ag, ok, err := c.findAgent(agents, pbx)
		if err == nil && !ok {
			err = notFound("PBX", pbx)
		}
		return ag, err
	}
	switch len(agents) {
	case 0:
		return store.Agent{}, errorf(http.StatusNotFound, CodeNotFound, "enterprise %s has no PBX", c.principal.EnterpriseNumber)
	case 1:
		return agents[0], nil
	}
	names := make([]string, len(agents))
	for i, a := range agents {
		names[i] = a.Name + " (" + a.ID + ")"
	}
	return store.Agent{}, errorf(http.StatusBadRequest, CodePBXRequired,
		"field \"pbx\" is required: enterprise %s has %d PBXs: %s", c.principal.EnterpriseNumber, len(agents), strings.Join(names, ", "))
}

// findAgent finds ref (an agent id or name) among agents, the caller's
// cached list, else in the list read again: a PBX registered a moment ago
// is found at once.
func (c *call) findAgent(agents []store.Agent, ref string) (store.Agent, bool, error) {
	if ag, ok := findPBX(agents, ref); ok {
		return ag, true, nil
	}
	agents, err := c.enterpriseAgents(true)
	if err != nil {
		return store.Agent{}, false, err
	}
	ag, ok := findPBX(agents, ref)
	return ag, ok, nil
}

// findPBX finds ref among agents by id, else by name.
func findPBX(agents []store.Agent, ref string) (store.Agent, bool) {
	for _, ag := range agents {
		if ag.ID == ref {
			return ag, true
		}
	}
	for _, ag := range agents {
		if ag.Name == ref {
			return ag, true
		}
	}
	return store.Agent{}, false
}

// pbxView is a PBX as GET /v1/pbxs and GET /v1/fleet show it.
type pbxView struct {
	ID              string     `json:"id"`
	Name            string     `json:"name"`
	Context         string     `json:"context"`
	Connected       bool       `json:"connected"`
	ConnectedSince  *time.Time `json:"connected_since,omitempty"`
	LastSeen        *time.Time `json:"last_seen,omitempty"`
	Hostname        string     `json:"hostname,omitempty"`
	AgentVersion    string     `json:"agent_version,omitempty"`
	AgentProtocol   int        `json:"agent_protocol,omitempty"`
	AsteriskVersion string     `json:"asterisk_version,omitempty"`
	AMI             string     `json:"ami"`
	LiveChannels    int        `json:"live_channels"`
	LiveCalls       int        `json:"live_calls"`
	StatusAt        *time.Time `json:"status_at,omitempty"`
	// Replica is the control-plane replica holding the tunnel, when
	// several run.
	Replica string `json:"replica,omitempty"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

func viewPBX(ag store.Agent, conn *fleet.Conn) pbxView {
	var st protocol.Status
	var at time.Time
	if conn != nil {
		st, at = conn.Status()
	}
	return viewPBXAt(ag, conn, st, at)
}

// viewPBXAt is viewPBX with conn's status st received at at, as read.
func viewPBXAt(ag store.Agent, conn *fleet.Conn, st protocol.Status, at time.Time) pbxView {
	v := pbxView{ID: ag.ID, Name: ag.Name, Context: ag.Context, AMI: amiUnknown, LastSeen: timePtr(ag.LastSeenAt)}
	if conn == nil {
		return v
	}
	v.Connected = true
	v.Replica = conn.Replica
	v.ConnectedSince = timePtr(conn.ConnectedAt)
	v.Hostname = conn.Hello.Hostname
	v.AgentVersion = cmp.Or(st.AgentVersion, conn.Hello.AgentVersion)
	v.AgentProtocol = conn.Protocol
	v.AsteriskVersion = cmp.Or(st.AsteriskVersion, conn.Hello.AsteriskVersion)
	v.AMI = string(conn.Hello.AMI)
	if !at.IsZero() {
		v.AMI = string(st.AMI)
		v.LiveChannels, v.LiveCalls = st.LiveChannels, st.LiveCalls
		v.StatusAt = timePtr(at)
		if v.LastSeen == nil || at.After(*v.LastSeen) {
			v.LastSeen = timePtr(at)
		}
	}
	if v.AMI == "" {
		v.AMI = amiUnknown
	}
	return v
}

// amiOf is the AMI state viewPBX would report, and the last status.
func amiOf(conn *fleet.Conn) (string, protocol.Status) {
	if conn == nil {
		return amiUnknown, protocol.Status{}
	}
	st, at := conn.Status()
	state := string(conn.Hello.AMI)
	if !at.IsZero() {
		state = string(st.AMI)
	}
	return cmp.Or(state, amiUnknown), st
}

func (a *API) conn(agentID string) *fleet.Conn {
	c, ok := a.cfg.Directory.Get(agentID)
	if !ok {
		return nil
	}
	return c
}

type pbxList struct {
	PBXs []pbxView `json:"pbxs"`
}

func (a *API) listPBXs(c *call) error {
	agents, err := c.enterpriseAgents(false)
	if err != nil {
		return err
	}
	out := pbxList{PBXs: make([]pbxView, 0, len(agents))}
	for _, ag := range agents {
		out.PBXs = append(out.PBXs, viewPBX(ag, a.conn(ag.ID)))
	}
	return c.reply(http.StatusOK, out)
}

func (a *API) getPBX(c *call) error {
	ag, err := c.selectPBX(c.r.PathValue("id"))
	if err != nil {
		return err
	}
	return c.reply(http.StatusOK, viewPBX(ag, a.conn(ag.ID)))
}

// fleetAgent is one agent of the fleet-wide view.
type fleetAgent struct {
	Enterprise string `json:"enterprise"`
	Revoked    bool   `json:"revoked,omitempty"`
	pbxView
}

type fleetTotals struct {
	Agents       int `json:"agents"`
	Connected    int `json:"connected"`
	AMIUp        int `json:"ami_up"`
	AMIDown      int `json:"ami_down"`
	LiveChannels int `json:"live_channels"`
	LiveCalls    int `json:"live_calls"`
}

// fleetResponse is GET /v1/fleet's answer (replyFleet writes it from
// cached rows, in this field order).
type fleetResponse struct {
	Totals     fleetTotals  `json:"totals"`
	Matched    int          `json:"matched"`
	Agents     []fleetAgent `json:"agents"`
	NextCursor string       `json:"next_cursor,omitempty"`
}

// fleet is the platform-wide view. It reads the agent list (from the
// store at most once per PBXCacheTTL) and the in-memory registry, never
// the PBXs, so 10,000 agents cost a map lookup each. Totals cover every unrevoked agent; filters
// (?enterprise=, ?connected=, ?ami=, ?revoked=, ?version=, ?search=) and paging (?limit=,
// ?cursor= = the last agent id of the previous page) only shape the list.
func (a *API) fleet(c *call) error {
	q := c.r.URL.Query()
	var connected, revoked *bool
	for name, dst := range map[string]**bool{"connected": &connected, "revoked": &revoked} {
		if s := q.Get(name); s != "" {
			b, err := strconv.ParseBool(s)
			if err != nil {
				return invalidf("query %q must be true or false, got %q", name, s)
			}
			*dst = &b
		}
	}
	ami := q.Get("ami")
	if ami != "" && ami != string(protocol.AMIUp) && ami != string(protocol.AMIDown) && ami != amiUnknown {
		return invalidf("query \"ami\" must be up, down or unknown, got %q", ami)
	}
	limit, err := pageSize(q.Get("limit"), DefaultFleetPageSize, MaxFleetPageSize)
	if err != nil {
		return err
	}
	enterprise, cursor := q.Get("enterprise"), q.Get("cursor")
	search, version := strings.ToLower(strings.TrimSpace(q.Get("search"))), q.Get("version")

	ctx, cancel := c.storeCtx()
	defer cancel()
	all, err := a.agents.fleet(ctx)
	if err != nil {
		return storeError(err)
	}
	var out fleetResponse
	page := make([]fleetPick, 0, min(limit+1, len(all)))
	for i := range all {
		ag := all[i]
		// Totals and filters need only the connection and its status;
		// the full view is built for the page's agents alone.
		var conn *fleet.Conn
		if !ag.Revoked() {
			conn = a.conn(ag.ID)
		}
		state, st := amiOf(conn)
		if !ag.Revoked() {
			out.Totals.Agents++
			if conn != nil {
				out.Totals.Connected++
				out.Totals.LiveChannels += st.LiveChannels
				out.Totals.LiveCalls += st.LiveCalls
			}
			switch state {
			case string(protocol.AMIUp):
				out.Totals.AMIUp++
			case string(protocol.AMIDown):
				out.Totals.AMIDown++
			}
		}
		switch {
		case enterprise != "" && ag.EnterpriseNumber != enterprise,
			connected != nil && (conn != nil) != *connected,
			ami != "" && state != ami,
			revoked == nil && ag.Revoked(),
			revoked != nil && ag.Revoked() != *revoked,
			version != "" && agentVersion(conn, st) != version,
			search != "" && !fleetMatch(ag, conn, search):
			continue
		}
		out.Matched++
		if ag.ID <= cursor || len(page) > limit {
			continue
		}
		page = append(page, fleetPick{ag: &all[i], conn: conn})
	}
	if len(page) > limit {
		page = page[:limit]
		out.NextCursor = page[limit-1].ag.ID
	}
	a.fleetRows.prune(all)
	return a.replyFleet(c, out.Totals, out.Matched, page, out.NextCursor)
}

// agentVersion is the version GET /v1/fleet shows for a connected agent
// ("" for one not connected).
func agentVersion(conn *fleet.Conn, st protocol.Status) string {
	if conn == nil {
		return ""
	}
	return cmp.Or(st.AgentVersion, conn.Hello.AgentVersion)
}

// fleetMatch is ?search=: a case-insensitive substring of the agent's id,
// name, enterprise number or (connected) host name.
func fleetMatch(ag store.Agent, conn *fleet.Conn, lower string) bool {
	for _, s := range []string{ag.ID, ag.Name, ag.EnterpriseNumber} {
		if strings.Contains(strings.ToLower(s), lower) {
			return true
		}
	}
	return conn != nil && strings.Contains(strings.ToLower(conn.Hello.Hostname), lower)
}

// pageSize parses ?limit=.
func pageSize(s string, def, max int) (int, error) {
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > max {
		return 0, invalidf("query \"limit\" must be 1-%d, got %q", max, s)
	}
	return n, nil
}

// resolvePBX names a PBX of the caller's enterprise for a filter: ref is
// an agent id or name. A live PBX is found by either; a revoked one (its
// history stays readable) by its id. Another enterprise's is reported
// exactly like an unknown one. Empty stays empty.
func (c *call) resolvePBX(ref string) (string, error) {
	if ref == "" {
		return "", nil
	}
	agents, err := c.enterpriseAgents(false)
	if err != nil {
		return "", err
	}
	if ag, ok, err := c.findAgent(agents, ref); err != nil || ok {
		return ag.ID, err
	}
	ctx, cancel := c.storeCtx()
	defer cancel()
	ag, err := c.api.cfg.Store.AgentByID(ctx, ref)
	if errors.Is(err, store.ErrNotFound) || (err == nil && ag.EnterpriseID != c.principal.EnterpriseID) {
		return "", notFound("PBX", ref)
	}
	if err != nil {
		return "", fmt.Errorf("look up PBX: %w", err)
	}
	return ag.ID, nil
}
