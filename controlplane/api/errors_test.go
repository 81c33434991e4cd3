package api

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/switchboard-pbx/switchboard/protocol"
)

// The fleet refuses an op newer than the agent; the API says so as a
// 409 the caller can act on, naming the PBX and keeping fleet's words.
func TestAgentErrorAgentTooOld(t *testing.T) {
	err := fmt.Errorf("call transfer on agent pbx-1: %w", &protocol.Error{Code: protocol.ErrCodeAgentTooOld,
		Message: "agent 1.2.0 speaks protocol 1; transfer needs protocol 3: upgrade the agent"})
	got := agentError("pbx-1", "4s", err)
	want := "PBX pbx-1: agent 1.2.0 speaks protocol 1; transfer needs protocol 3: upgrade the agent"
	if got.Status != http.StatusConflict || got.Code != CodeAgentTooOld || got.Message != want {
		t.Fatalf("agentError = %d %s %q, want 409 %s %q", got.Status, got.Code, got.Message, CodeAgentTooOld, want)
	}
}
