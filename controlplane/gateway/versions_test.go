package gateway_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/gateway"
	"github.com/switchboard-pbx/switchboard/internal/testio"
	"github.com/switchboard-pbx/switchboard/protocol"
	"github.com/switchboard-pbx/switchboard/protocol/tunnel"
)

// goldenFrame reads protocol/testdata/v<v>/<name>.frame: the bytes agents
// and control planes of that version put on the wire.
func goldenFrame(t *testing.T, v int, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "protocol", "testdata", fmt.Sprintf("v%d", v), name+".frame"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// frameKeys are the JSON field names of a frame's body.
func frameKeys(t *testing.T, frame []byte) []string {
	t.Helper()
	if len(frame) < 4 || int(binary.BigEndian.Uint32(frame)) != len(frame)-4 {
		t.Fatalf("not one frame: %q", frame)
	}
	var m map[string]any
	if err := json.Unmarshal(frame[4:], &m); err != nil {
		t.Fatal(err)
	}
	return slices.Sorted(maps.Keys(m))
}

// An agent of every supported version, speaking its version's golden
// hello byte for byte, gets a welcome with exactly that version's fields
// (v1 agents what a v1 control plane sent them), is registered with its
// version, and a request reaches it.
func TestGoldenHelloOfEveryVersion(t *testing.T) {
	for v := protocol.MinVersion; v <= protocol.Version; v++ {
		t.Run(fmt.Sprint("protocol ", v), func(t *testing.T) {
			r := newRigWith(t, func(c *gateway.Config) { c.Version = "9.9.9-test" })
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			sess, err := tunnel.Dial(ctx, tunnel.DialConfig{URL: r.url, Token: r.token, Protocol: v})
			if err != nil {
				t.Fatal(err)
			}
			defer sess.Close()
			go func() {
				_ = tunnel.ServeRequests(ctx, sess, func(context.Context, protocol.Request) (any, error) {
					return protocol.PingResult{AMIRoundTripMicros: int64(v)}, nil
				}, tunnel.ServeConfig{})
			}()
			ctrl, err := sess.Open(ctx, protocol.StreamControl)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ctrl.Write(goldenFrame(t, v, "hello")); err != nil {
				t.Fatal(err)
			}
			_ = ctrl.SetReadDeadline(time.Now().Add(5 * time.Second))
			var hdr [4]byte
			if _, err := io.ReadFull(ctrl, hdr[:]); err != nil {
				t.Fatal(err)
			}
			frame := make([]byte, 4+binary.BigEndian.Uint32(hdr[:]))
			copy(frame, hdr[:])
			if _, err := io.ReadFull(ctrl, frame[4:]); err != nil {
				t.Fatal(err)
			}
			if got, want := frameKeys(t, frame), frameKeys(t, goldenFrame(t, v, "welcome")); !slices.Equal(got, want) {
				t.Fatalf("welcome fields %v, want version %d's %v", got, v, want)
			}
			var w protocol.Welcome
			if err := protocol.ReadFrame(bytes.NewReader(frame), &w, 0); err != nil {
				t.Fatal(err)
			}
			if v >= 2 && (w.Protocol != v || w.ControlPlaneVersion != "9.9.9-test") {
				t.Fatalf("welcome %+v, want protocol %d from control plane 9.9.9-test", w, v)
			}

			waitFor(t, "registration", func() bool { _, ok := r.reg.Get(r.agent.ID); return ok })
			if c, _ := r.reg.Get(r.agent.ID); c.Protocol != v {
				t.Fatalf("registered with protocol %d, want %d", c.Protocol, v)
			}
			var ping protocol.PingResult
			cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
			defer ccancel()
			if err := r.reg.Call(cctx, r.agent.ID, protocol.OpPing, nil, &ping); err != nil || ping.AMIRoundTripMicros != int64(v) {
				t.Fatalf("ping: %+v, %v", ping, err)
			}
		})
	}
}

// A hello whose version is not the one the upgrade request agreed is a
// broken agent: the session ends unregistered.
func TestHelloMustMatchUpgradeVersion(t *testing.T) {
	if protocol.MinVersion == protocol.Version {
		t.Skip("one supported version: nothing to mismatch")
	}
	r := newRig(t)
	ctx := context.Background()
	sess, err := tunnel.Dial(ctx, tunnel.DialConfig{URL: r.url, Token: r.token, Protocol: protocol.MinVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	ctrl, err := sess.Open(ctx, protocol.StreamControl)
	if err != nil {
		t.Fatal(err)
	}
	if err := protocol.WriteFrame(ctrl, protocol.Hello{Protocol: protocol.Version, AgentVersion: "test", Hostname: "pbx"}); err != nil {
		select {
		case <-sess.Done(): // the gateway read the hello and ended the session before the write returned
		case <-time.After(5 * time.Second):
			t.Fatal(err)
		}
	}
	select {
	case <-sess.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("gateway kept a session whose hello contradicts its upgrade request")
	}
	if r.reg.Len() != 0 {
		t.Fatal("registered an agent whose hello contradicts its upgrade request")
	}
}

// An agent newer than this control plane is refused before the upgrade
// with our newest version, which lets it redial speaking that one.
// That is not an error on the control plane: it logs it at info.
func TestNewerAgentToldOurVersion(t *testing.T) {
	logs := &testio.Buffer{}
	r := newRigWith(t, func(c *gateway.Config) { c.Logger = slog.New(slog.NewTextHandler(logs, nil)) })
	req, _ := http.NewRequest(http.MethodGet, "http"+strings.TrimPrefix(r.url, "ws"), nil)
	req.Header.Set("Authorization", "Bearer "+r.token)
	req.Header.Set(protocol.VersionHeader, fmt.Sprint(protocol.Version+1))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || resp.Header.Get(protocol.VersionHeader) != fmt.Sprint(protocol.Version) ||
		!strings.Contains(string(body), fmt.Sprintf("unsupported protocol version %d", protocol.Version+1)) {
		t.Fatalf("answer %d, %s %q, body %q", resp.StatusCode, protocol.VersionHeader, resp.Header.Get(protocol.VersionHeader), body)
	}
	if want := fmt.Sprintf(`level=INFO msg="agent offers a newer protocol; told ours" component=gateway agent=%s offered=%d protocol=%d`,
		r.agent.ID, protocol.Version+1, protocol.Version); !strings.Contains(logs.String(), want) {
		t.Fatalf("log lacks %q:\n%s", want, logs)
	}
}
