package gateway

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"
	"unicode/utf8"

	"github.com/switchboard-pbx/switchboard/protocol"
)

// Limits bound what one agent can make the control plane do; README
// "Limits and abuse" lists them with their metrics. Zero values take the
// defaults below.
type Limits struct {
	// EventRate is the events per second one agent's session may have
	// stored, with EventBurst on top. Past it the gateway holds the batch
	// before storing it and reads nothing more from that agent meanwhile:
	// its acks come later and the agent keeps its events (its frames in
	// flight are bounded, so it waits rather than times out). Nothing is
	// dropped. Negative: no limit.
	EventRate  float64
	EventBurst int
	// StoreRetryMin and StoreRetryMax bound the capped, doubling wait
	// between attempts to store a batch the store refused (disk full,
	// database down). The session stays up meanwhile: status, requests
	// and originates go on; the batch is not acknowledged until stored.
	StoreRetryMin time.Duration
	StoreRetryMax time.Duration
	// StreamBacklog bounds the streams an agent may have opened and the
	// gateway not yet accepted (yamux's AcceptBacklog; more are reset).
	// Each may hold a stream window (256 KiB, yamux's minimum) of data,
	// so this bounds what an agent can park in memory to StreamBacklog ×
	// 256 KiB. An agent opens two: control and events.
	StreamBacklog int
	// MaxControlFrameBytes bounds a Hello or Status frame (MaxFrameBytes
	// bounds the events frames).
	MaxControlFrameBytes int
	// MaxHelloFieldBytes bounds each text field of Hello and Status
	// (hostname, versions, context, AMI error, each capability); longer
	// values are cut and the cut is logged with the field's name and
	// length, never its value.
	MaxHelloFieldBytes int
}

// Defaults of Limits.
const (
	// DefaultEventRate and DefaultEventBurst: a busy PBX makes tens of
	// events a second (a call is about five); the burst takes a full
	// agent outbox resent after an outage in a few seconds.
	DefaultEventRate  = 500
	DefaultEventBurst = 5000
	// DefaultStoreRetryMin/Max: retries of a batch the store refused.
	DefaultStoreRetryMin = 500 * time.Millisecond
	DefaultStoreRetryMax = 15 * time.Second
	// DefaultStreamBacklog: control and events, and room for a newer
	// agent's stream kinds to be refused one at a time.
	DefaultStreamBacklog = 4
	// DefaultMaxControlFrameBytes: a Hello or Status is a few hundred
	// bytes.
	DefaultMaxControlFrameBytes = 16 << 10
	// DefaultMaxHelloFieldBytes: hostnames are at most 253 bytes.
	DefaultMaxHelloFieldBytes = 256
	// MinMaxFrameBytes is the smallest events frame limit: agents send
	// frames of up to 64 KiB by default, and cannot go below 4 KiB.
	MinMaxFrameBytes = 64 << 10
	// maxCapabilities bounds the capabilities kept from a Hello.
	maxCapabilities = 64
)

func (l *Limits) fill() {
	l.EventRate = cmp.Or(l.EventRate, DefaultEventRate)
	l.EventBurst = cmp.Or(l.EventBurst, DefaultEventBurst)
	l.StoreRetryMin = cmp.Or(l.StoreRetryMin, DefaultStoreRetryMin)
	l.StoreRetryMax = cmp.Or(l.StoreRetryMax, max(DefaultStoreRetryMax, l.StoreRetryMin))
	l.StreamBacklog = cmp.Or(l.StreamBacklog, DefaultStreamBacklog)
	l.MaxControlFrameBytes = cmp.Or(l.MaxControlFrameBytes, DefaultMaxControlFrameBytes)
	l.MaxHelloFieldBytes = cmp.Or(l.MaxHelloFieldBytes, DefaultMaxHelloFieldBytes)
}

// Validate says exactly what is wrong with the limits (zero values are
// the defaults).
func (l Limits) Validate() error {
	var errs []error
	if math.IsNaN(l.EventRate) || math.IsInf(l.EventRate, 0) {
		errs = append(errs, fmt.Errorf("EventRate %v is not a number of events per second", l.EventRate))
	}
	if l.EventBurst < 0 {
		errs = append(errs, fmt.Errorf("EventBurst %d is negative", l.EventBurst))
	}
	if l.StoreRetryMin < 0 || l.StoreRetryMax < 0 {
		errs = append(errs, fmt.Errorf("StoreRetryMin %v and StoreRetryMax %v must not be negative", l.StoreRetryMin, l.StoreRetryMax))
	}
	if l.StoreRetryMin > 0 && l.StoreRetryMax > 0 && l.StoreRetryMax < l.StoreRetryMin {
		errs = append(errs, fmt.Errorf("StoreRetryMax %v is below StoreRetryMin %v", l.StoreRetryMax, l.StoreRetryMin))
	}
	if l.StreamBacklog < 0 || (l.StreamBacklog > 0 && l.StreamBacklog < 2) {
		errs = append(errs, fmt.Errorf("StreamBacklog %d must be at least 2 (the control and events streams)", l.StreamBacklog))
	}
	if l.MaxControlFrameBytes < 0 || (l.MaxControlFrameBytes > 0 && l.MaxControlFrameBytes < 1024) {
		errs = append(errs, fmt.Errorf("MaxControlFrameBytes %d must be at least 1024", l.MaxControlFrameBytes))
	}
	if l.MaxHelloFieldBytes < 0 || (l.MaxHelloFieldBytes > 0 && l.MaxHelloFieldBytes < 64) {
		errs = append(errs, fmt.Errorf("MaxHelloFieldBytes %d must be at least 64", l.MaxHelloFieldBytes))
	}
	return errors.Join(errs...)
}

// boundHello cuts Hello's text fields to the field limit, keeps at most
// maxCapabilities capabilities and an AMI state it knows, and logs each
// cut by field name and length: a hostname of 1 MB must not become a
// 1 MB log line.
func (g *Gateway) boundHello(h *protocol.Hello, log *slog.Logger) {
	cut := g.boundFields(log, "hello", map[string]*string{
		"agent_version": &h.AgentVersion, "hostname": &h.Hostname,
		"asterisk_version": &h.AsteriskVersion, "context": &h.Context,
	})
	if len(h.Capabilities) > maxCapabilities {
		log.Warn("agent hello has too many capabilities; extra ones ignored", "count", len(h.Capabilities), "limit", maxCapabilities)
		h.Capabilities = h.Capabilities[:maxCapabilities]
		cut = true
	}
	for i := range h.Capabilities {
		if len(h.Capabilities[i]) > g.cfg.MaxHelloFieldBytes {
			log.Warn("agent hello field too long; truncated", "field", "capabilities", "bytes", len(h.Capabilities[i]), "limit", g.cfg.MaxHelloFieldBytes)
			h.Capabilities[i] = cutUTF8(h.Capabilities[i], g.cfg.MaxHelloFieldBytes)
			cut = true
		}
	}
	if h.AMI != protocol.AMIUp && h.AMI != protocol.AMIDown {
		h.AMI = protocol.AMIDown
	}
	if cut {
		g.cfg.Observer.AgentProtocolError("field_truncated")
	}
}

// boundStatus is boundHello for Status; it also keeps counts sane. Status
// comes every heartbeat: log is nil once a cut was logged this session.
func (g *Gateway) boundStatus(st *protocol.Status, log *slog.Logger) bool {
	cut := g.boundFields(log, "status", map[string]*string{
		"agent_version": &st.AgentVersion, "asterisk_version": &st.AsteriskVersion, "ami_error": &st.AMIError,
	})
	if st.AMI != protocol.AMIUp && st.AMI != protocol.AMIDown {
		st.AMI = protocol.AMIDown
	}
	st.LiveChannels, st.LiveCalls, st.EventsPending = max(st.LiveChannels, 0), max(st.LiveCalls, 0), max(st.EventsPending, 0)
	if cut {
		g.cfg.Observer.AgentProtocolError("field_truncated")
	}
	return cut
}

func (g *Gateway) boundFields(log *slog.Logger, msg string, fields map[string]*string) bool {
	cut := false
	for name, v := range fields {
		if len(*v) <= g.cfg.MaxHelloFieldBytes {
			continue
		}
		if log != nil {
			log.Warn("agent "+msg+" field too long; truncated", "field", name, "bytes", len(*v), "limit", g.cfg.MaxHelloFieldBytes)
		}
		*v = cutUTF8(*v, g.cfg.MaxHelloFieldBytes)
		cut = true
	}
	return cut
}

// countTooLarge counts a hello or status frame over MaxControlFrameBytes
// (it ends the session).
func (g *Gateway) countTooLarge(err error) {
	var tooLarge *protocol.FrameTooLargeError
	if errors.As(err, &tooLarge) {
		g.cfg.Observer.AgentProtocolError("control_frame_too_large")
	}
}

// cutUTF8 returns a prefix of s of at most n bytes that does not split a
// character; the remains of invalid bytes become U+FFFD when the value is
// next encoded.
func cutUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for i := n; i > 0 && i > n-utf8.UTFMax; i-- {
		if utf8.RuneStart(s[i]) {
			return s[:i]
		}
	}
	return s[:n]
}
