package ops

import (
	"context"
	"encoding/json"

	"github.com/switchboard-pbx/switchboard/protocol"
)

// InFlightOriginates is how many originates hold a slot right now.
func (h *Handler) InFlightOriginates() int { return len(h.slots) }

// call runs req as the tunnel does (under its deadline, the result
// encoded), so the tests see the Response the control plane would.
func call(h *Handler, req protocol.Request) protocol.Response {
	ctx, cancel := context.WithDeadline(context.Background(), req.Deadline)
	defer cancel()
	resp := protocol.Response{ID: req.ID}
	result, err := h.Serve(ctx, req)
	if err != nil {
		resp.Error = ErrorFor(err)
		return resp
	}
	raw, err := json.Marshal(result)
	if err != nil {
		resp.Error = &protocol.Error{Code: protocol.ErrCodeInternal, Message: err.Error()}
		return resp
	}
	resp.Result = raw
	return resp
}
