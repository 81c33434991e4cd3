package api

import (
	"encoding/json"
	"net/http"

	"github.com/switchboard-pbx/switchboard/protocol"
)

// Audit actions of the queue member routes.
const (
	AuditQueueMemberAdd     = "queue_member_add"
	AuditQueueMemberRemove  = "queue_member_remove"
	AuditQueueMemberPause   = "queue_member_pause"
	AuditQueueMemberPenalty = "queue_member_penalty"
)

// maxQueueNameLen bounds {queue} here; the agent checks its characters.
const maxQueueNameLen = 79

func checkQueue(q string) error {
	if q == "" || len(q) > maxQueueNameLen {
		return invalidf("queue name must be 1-%d characters, got %d", maxQueueNameLen, len(q))
	}
	return nil
}

// pbxQueues is one PBX's answer in GET /v1/queues.
type pbxQueues struct {
	PBX    string           `json:"pbx"`
	Name   string           `json:"name"`
	Queues []protocol.Queue `json:"queues"`
	// Error says why the PBX did not answer (offline, an agent too old…).
	Error *v1ErrorBody `json:"error,omitempty"`
}

type queuesResponse struct {
	PBXs []pbxQueues `json:"pbxs"`
}

// listQueues is GET /v1/queues[?pbx=]: every queue of every PBX of the
// enterprise (asked at once, at most DefaultChannelsConcurrency in
// flight), each PBX's list or why it has none. With ?pbx= only that PBX,
// and its failure is the response's.
func (a *API) listQueues(c *call) error {
	answers, err := askPBXs[protocol.QueuesResult](c, c.r.URL.Query().Get("pbx"), protocol.OpQueues, protocol.QueuesArgs{})
	if err != nil {
		return err
	}
	out := queuesResponse{PBXs: make([]pbxQueues, 0, len(answers))}
	for _, an := range answers {
		p := pbxQueues{PBX: an.Agent.ID, Name: an.Agent.Name, Queues: an.Result.Queues}
		if an.Err != nil {
			e, _ := asAPIError(an.Err)
			p.Error, p.Queues = &v1ErrorBody{Code: e.Code, Message: e.Message}, nil
		} else if p.Queues == nil {
			p.Queues = []protocol.Queue{}
		}
		out.PBXs = append(out.PBXs, p)
	}
	return c.reply(http.StatusOK, out)
}

type queueResponse struct {
	PBX string `json:"pbx"`
	protocol.Queue
	// Always present for one queue (they shadow Queue's omitempty ones).
	Members []protocol.QueueMember `json:"members"`
	Waiting []protocol.QueueCaller `json:"waiting"`
}

// getQueue is GET /v1/queues/{queue}[?pbx=]: one queue with its members
// and the callers waiting. A queue the PBX does not have is a 404.
func (a *API) getQueue(c *call) error {
	name := c.r.PathValue("queue")
	if err := checkQueue(name); err != nil {
		return err
	}
	ag, err := c.selectPBX(c.r.URL.Query().Get("pbx"))
	if err != nil {
		return err
	}
	var res protocol.QueuesResult
	if err := c.agentCall(ag.ID, protocol.OpQueues, protocol.QueuesArgs{Queue: name}, &res); err != nil {
		return err
	}
	if len(res.Queues) == 0 {
		return notFound("queue", name)
	}
	out := queueResponse{PBX: ag.ID, Queue: res.Queues[0], Members: res.Queues[0].Members, Waiting: res.Queues[0].Waiting}
	out.Queue.Members, out.Queue.Waiting = nil, nil
	if out.Members == nil {
		out.Members = []protocol.QueueMember{}
	}
	if out.Waiting == nil {
		out.Waiting = []protocol.QueueCaller{}
	}
	return c.reply(http.StatusOK, out)
}

type memberRequest struct {
	PBX       string `json:"pbx,omitempty"`
	Extension string `json:"extension"`
	Name      string `json:"name,omitempty"`
	Penalty   *int   `json:"penalty,omitempty"`
	Paused    *bool  `json:"paused,omitempty"`
	Reason    string `json:"reason,omitempty"`
}

type memberResponse struct {
	PBX     string                 `json:"pbx"`
	Members []protocol.QueueMember `json:"members"`
}

// memberOp runs one queue member operation after the route's checks:
// the caller's authorisation (after the body, so a refusal's audit row
// names the target), the PBX, the audit row, the agent.
func (c *call) memberOp(pbx, queue, ext, op string, args any, details map[string]any, status int) error {
	details["queue"] = queue
	c.audit.AgentID, c.audit.FromExt = pbx, ext
	c.audit.Details, _ = json.Marshal(details)
	if err := checkNumber("extension", ext); err != nil {
		return err
	}
	if queue != "" {
		if err := checkQueue(queue); err != nil {
			return err
		}
	}
	if err := c.authorize(); err != nil {
		return err
	}
	ag, err := c.selectPBX(pbx)
	if err != nil {
		return err
	}
	c.audit.AgentID = ag.ID
	var res protocol.QueueMemberResult
	if err := c.agentCall(ag.ID, op, args, &res); err != nil {
		return err
	}
	if res.Members == nil {
		res.Members = []protocol.QueueMember{}
	}
	return c.reply(status, memberResponse{PBX: ag.ID, Members: res.Members})
}

// addMember is POST /v1/queues/{queue}/members.
func (a *API) addMember(c *call) error {
	var req memberRequest
	if err := c.decodeJSON(&req); err != nil {
		return err
	}
	queue := c.r.PathValue("queue")
	args := protocol.QueueMemberAddArgs{Queue: queue, Extension: req.Extension, Name: req.Name, Reason: req.Reason}
	if req.Penalty != nil {
		args.Penalty = *req.Penalty
	}
	if req.Paused != nil {
		args.Paused = *req.Paused
	}
	c.audit.Reason = req.Reason
	return c.memberOp(req.PBX, queue, req.Extension, protocol.OpQueueMemberAdd, args,
		map[string]any{"name": req.Name, "penalty": args.Penalty, "paused": args.Paused}, http.StatusCreated)
}

// removeMember is DELETE /v1/queues/{queue}/members/{extension}[?pbx=]. A
// static member (queues.conf) is a 409 member_not_dynamic.
func (a *API) removeMember(c *call) error {
	queue, ext := c.r.PathValue("queue"), c.r.PathValue("extension")
	return c.memberOp(c.r.URL.Query().Get("pbx"), queue, ext, protocol.OpQueueMemberDel,
		protocol.QueueMemberRemoveArgs{Queue: queue, Extension: ext}, map[string]any{}, http.StatusOK)
}

// pauseMember is POST /v1/queues/{queue}/members/{extension}/pause and,
// without {queue}, POST /v1/queues/members/{extension}/pause: the member
// in every queue it belongs to.
func (a *API) pauseMember(c *call) error {
	var req memberRequest
	if err := c.decodeJSON(&req); err != nil {
		return err
	}
	queue, ext := c.r.PathValue("queue"), c.r.PathValue("extension")
	if req.Paused == nil {
		return invalidf("field \"paused\" is required: true or false")
	}
	if req.Extension != "" || req.Name != "" || req.Penalty != nil {
		return invalidf("only \"paused\", \"reason\" and \"pbx\" are accepted here (the extension is in the path)")
	}
	c.audit.Reason = req.Reason
	return c.memberOp(req.PBX, queue, ext, protocol.OpQueueMemberPause,
		protocol.QueueMemberPauseArgs{Queue: queue, Extension: ext, Paused: *req.Paused, Reason: req.Reason},
		map[string]any{"paused": *req.Paused, "all_queues": queue == ""}, http.StatusOK)
}

// setPenalty is PUT /v1/queues/{queue}/members/{extension}/penalty.
func (a *API) setPenalty(c *call) error {
	var req memberRequest
	if err := c.decodeJSON(&req); err != nil {
		return err
	}
	queue, ext := c.r.PathValue("queue"), c.r.PathValue("extension")
	if req.Penalty == nil {
		return invalidf("field \"penalty\" is required")
	}
	if req.Extension != "" || req.Name != "" || req.Paused != nil || req.Reason != "" {
		return invalidf("only \"penalty\" and \"pbx\" are accepted here (the extension is in the path)")
	}
	return c.memberOp(req.PBX, queue, ext, protocol.OpQueuePenalty,
		protocol.QueuePenaltyArgs{Queue: queue, Extension: ext, Penalty: *req.Penalty},
		map[string]any{"penalty": *req.Penalty}, http.StatusOK)
}
