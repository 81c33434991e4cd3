package api

import (
	"net/http"

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
	answers, err := askPBXs[protocol.ChannelsResult](c, c.r.URL.Query().Get("pbx"), protocol.OpChannels, nil)
	if err != nil {
		return err
	}
	out := channelsResponse{Channels: []pbxChannel{}, Unavailable: []pbxUnavailable{}}
	for _, an := range answers {
		if an.Err != nil {
			out.Unavailable = append(out.Unavailable, unavailable(an.Agent, an.Err))
			continue
		}
		for _, ch := range an.Result.Channels {
			out.Channels = append(out.Channels, pbxChannel{PBX: an.Agent.ID, Channel: ch})
		}
	}
	return c.reply(http.StatusOK, out)
}
