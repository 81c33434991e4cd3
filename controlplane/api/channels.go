package api

import (
	"net/http"
	"sync"

	"github.com/switchboard-pbx/switchboard/controlplane/store"
	"github.com/switchboard-pbx/switchboard/protocol"
)

// pbxChannel is a live channel with the PBX it is on.
type pbxChannel struct {
	PBX string `json:"pbx"`
	protocol.Channel
}

type pbxUnavailable struct {
	PBX     string `json:"pbx"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

type channelsResponse struct {
	Channels    []pbxChannel     `json:"channels"`
	Unavailable []pbxUnavailable `json:"unavailable"`
}

// listChannels is GET /v1/channels: the live channels of the caller's
// PBXs, asked of every PBX at once (at most DefaultChannelsConcurrency in
// flight). With ?pbx= only that PBX is asked and its failure is the
// response's; without, PBXs that could not answer are listed under
// "unavailable" next to the channels of those that did.
func (a *API) listChannels(c *call) error {
	var agents []store.Agent
	if id := c.r.URL.Query().Get("pbx"); id != "" {
		ag, err := c.selectPBX(id)
		if err != nil {
			return err
		}
		var res protocol.ChannelsResult
		if err := c.agentCall(ag.ID, protocol.OpChannels, nil, &res); err != nil {
			return err
		}
		out := channelsResponse{Channels: make([]pbxChannel, 0, len(res.Channels)), Unavailable: []pbxUnavailable{}}
		for _, ch := range res.Channels {
			out.Channels = append(out.Channels, pbxChannel{PBX: ag.ID, Channel: ch})
		}
		return c.reply(http.StatusOK, out)
	}
	agents, err := c.enterpriseAgents(false)
	if err != nil {
		return err
	}
	results := make([]protocol.ChannelsResult, len(agents))
	errs := make([]error, len(agents))
	sem := make(chan struct{}, DefaultChannelsConcurrency)
	var wg sync.WaitGroup
	for i, ag := range agents {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs[i] = c.agentCall(ag.ID, protocol.OpChannels, nil, &results[i])
		}()
	}
	wg.Wait()
	out := channelsResponse{Channels: []pbxChannel{}, Unavailable: []pbxUnavailable{}}
	for i, ag := range agents {
		if errs[i] != nil {
			e, _ := asAPIError(errs[i])
			out.Unavailable = append(out.Unavailable, pbxUnavailable{PBX: ag.ID, Code: e.Code, Message: e.Message})
			continue
		}
		for _, ch := range results[i].Channels {
			out.Channels = append(out.Channels, pbxChannel{PBX: ag.ID, Channel: ch})
		}
	}
	return c.reply(http.StatusOK, out)
}
