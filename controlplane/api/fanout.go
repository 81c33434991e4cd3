package api

import (
	"sync"

	"github.com/switchboard-pbx/switchboard/controlplane/store"
)

// pbxAnswer is one PBX's answer to a request asked of several at once.
type pbxAnswer[R any] struct {
	Agent  store.Agent
	Result R
	Err    error
}

// askPBXs sends op to the PBX ref names, or, when ref is empty, to every
// PBX of the enterprise at once, at most DefaultChannelsConcurrency in
// flight: one slow PBX must not hold the others' answers, nor may one
// request open a stream to each of thousands of PBXs together. With ref,
// that PBX's failure is the request's (a caller that named one PBX wants
// its error); without, each failure stays with its PBX, for the response
// to list.
func askPBXs[R any](c *call, ref, op string, args any) ([]pbxAnswer[R], error) {
	if ref != "" {
		ag, err := c.selectPBX(ref)
		if err != nil {
			return nil, err
		}
		out := []pbxAnswer[R]{{Agent: ag}}
		if err := c.agentCall(ag.ID, op, args, &out[0].Result); err != nil {
			return nil, err
		}
		return out, nil
	}
	agents, err := c.enterpriseAgents(false)
	if err != nil {
		return nil, err
	}
	out := make([]pbxAnswer[R], len(agents))
	sem := make(chan struct{}, DefaultChannelsConcurrency)
	var wg sync.WaitGroup
	for i, ag := range agents {
		out[i].Agent = ag
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			out[i].Err = c.agentCall(ag.ID, op, args, &out[i].Result)
		})
	}
	wg.Wait()
	return out, nil
}

// unavailable says why a PBX could not answer, in a list's "unavailable".
func unavailable(ag store.Agent, err error) pbxUnavailable {
	e, _ := asAPIError(err)
	return pbxUnavailable{PBX: ag.ID, Code: e.Code, Message: e.Message}
}
