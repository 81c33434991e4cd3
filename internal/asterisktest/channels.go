package asterisktest

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Channel is one line of `core show channels concise`.
type Channel struct {
	Name        string // Local/150@inoffice-00000000;1
	Context     string
	Exten       string
	Priority    string
	State       string // Up, Ring, Ringing, Down…
	Application string // Dial, Wait, ChanSpy, AppDial, Queue…
	Data        string // the application's arguments
	CallerID    string
	BridgeID    string
	UniqueID    string
}

// conciseFields is how many '!'-separated fields a concise line has:
// Channel!Context!Exten!Priority!State!Application!Data!CallerID!
// AccountCode!PeerAccount!AMAFlags!Duration!BridgeID!Uniqueid.
const conciseFields = 14

// ParseChannels parses the output of `core show channels concise`. Data is
// the only field Asterisk does not escape, so a '!' in it is kept by
// counting fields from both ends.
func ParseChannels(out string) ([]Channel, error) {
	var chans []Channel
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimRight(line, "\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		f := strings.Split(line, "!")
		if len(f) < conciseFields {
			return nil, fmt.Errorf("concise channel line has %d fields, want %d: %q", len(f), conciseFields, line)
		}
		// A '!' inside Data splits it: join the middle back.
		extra := len(f) - conciseFields
		data := strings.Join(f[6:7+extra], "!")
		f = append(append(f[:6:6], data), f[7+extra:]...)
		chans = append(chans, Channel{
			Name: f[0], Context: f[1], Exten: f[2], Priority: f[3], State: f[4],
			Application: f[5], Data: f[6], CallerID: f[7], BridgeID: f[12], UniqueID: f[13],
		})
	}
	return chans, nil
}

// Channels lists Asterisk's live channels.
func (p *PBX) Channels(ctx context.Context) ([]Channel, error) {
	out, err := p.CLI(ctx, "core show channels concise")
	if err != nil {
		return nil, err
	}
	return ParseChannels(out)
}

// WaitChannels polls the live channels until ok accepts them or ctx ends;
// it returns the last list seen either way.
func (p *PBX) WaitChannels(ctx context.Context, ok func([]Channel) bool) ([]Channel, error) {
	var last []Channel
	var lastErr error
	for {
		chans, err := p.Channels(ctx)
		if err == nil {
			if ok(chans) {
				return chans, nil
			}
			last = chans
		} else if ctx.Err() == nil {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			if lastErr != nil {
				return last, fmt.Errorf("channels in Asterisk: %w; last CLI error: %w (last seen: %s)", ctx.Err(), lastErr, Names(last))
			}
			return last, fmt.Errorf("channels in Asterisk: %w (last seen: %s)", ctx.Err(), Names(last))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// HangupAll hangs up every channel and waits until Asterisk has none. It
// asks again every half second: an async Originate still being set up
// creates its channels after the first request.
func (p *PBX) HangupAll(ctx context.Context) error {
	for {
		if _, err := p.CLI(ctx, "channel request hangup all"); err != nil {
			return err
		}
		wctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		_, err := p.WaitChannels(wctx, func(c []Channel) bool { return len(c) == 0 })
		cancel()
		if err == nil || ctx.Err() != nil {
			return err
		}
	}
}

// Names lists channel names, for messages.
func Names(chans []Channel) string {
	names := make([]string, len(chans))
	for i, c := range chans {
		names[i] = c.Name + "(" + c.Application + " " + c.Data + ")"
	}
	return "[" + strings.Join(names, ", ") + "]"
}

// Find returns the first channel that ok accepts.
func Find(chans []Channel, ok func(Channel) bool) (Channel, bool) {
	for _, c := range chans {
		if ok(c) {
			return c, true
		}
	}
	return Channel{}, false
}
