package protocol

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// callControlFrames are protocol 3's call-control messages as they go on
// the wire: requests with their arguments, responses and events. Like
// goldenFrames, they are frozen once another version ships.
func callControlFrames(t *testing.T) []golden {
	raw := func(v any) json.RawMessage {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	deadline := time.Date(2026, 12, 7, 10, 0, 4, 0, time.UTC)
	at := time.Date(2026, 12, 7, 10, 0, 1, 500_000_000, time.UTC)
	return []golden{
		{3, "transfer-request", Request{ID: "req-1", Op: OpTransfer, Deadline: deadline,
			Args: raw(TransferArgs{CallID: "sb-1796529630-0123456789abcdef", Transferer: "150", To: "160", Mode: TransferAttended, By: "key_0367a"})}},
		{3, "transfer-response", Response{ID: "req-1", Result: raw(TransferResult{CallID: "sb-1796529630-0123456789abcdef", Mode: TransferAttended,
			To: "160", Status: TransferConsulting, TransfererChannel: "Local/150@inoffice-00000013;1", TransfereeChannel: "Local/+375296254070@inoffice-00000014;1"})}},
		{3, "dtmf-request", Request{ID: "req-2", Op: OpDTMF, Deadline: deadline,
			Args: raw(DTMFArgs{CallID: "1796529803.98", Party: "+375296254070", Digits: "12#", DurationMS: 100})}},
		{3, "park-request", Request{ID: "req-3", Op: OpPark, Deadline: deadline,
			Args: raw(ParkArgs{CallID: "1796529817.102", Parker: "150", Lot: "default", TimeoutS: 45, By: "op-17"})}},
		{3, "not-confirmed-response", Response{ID: "req-4", Error: &Error{Code: ErrCodeNotConfirmed,
			Message: "Asterisk accepted BlindTransfer but sent no BlindTransfer event within 3s"}}},
		{3, "transferred-event", EventBatch{Events: []Event{{Seq: 7, Type: EventCallTransferred, Time: at, CallID: "1796529592.12",
			LinkedID: "1796529592.12", Direction: "originate", From: "150", To: "+375296254070", Status: CallInProgress,
			Transfer: &TransferInfo{Mode: TransferBlind, To: "160", By: "key_0367a", Transferer: "150", TransfererChannel: "Local/150@inoffice-00000006;1"}}}}},
		{3, "parked-event", EventBatch{Events: []Event{{Seq: 8, Type: EventCallParked, Time: at, CallID: "1796529817.102",
			LinkedID: "1796529817.102", Status: CallInProgress,
			Park: &ParkInfo{Lot: "default", Space: "701", TimeoutS: 45, Channel: "Local/+375296254070@inoffice-00000034;1", Parker: "150"}}}}},
	}
}

func TestGoldenCallControlFrames(t *testing.T) {
	for _, g := range callControlFrames(t) {
		t.Run(g.path(), func(t *testing.T) { checkGolden(t, g) })
	}
}

// TestCallControlOpsVersioned: every call-control op came with protocol 3,
// so a control plane refuses it for an agent of protocol 2 (agent_too_old)
// without sending it.
func TestCallControlOpsVersioned(t *testing.T) {
	for _, op := range []string{OpTransfer, OpTransferComplete, OpTransferCancel, OpDTMF, OpPark, OpParked, OpParkedPickup, OpMute} {
		if got := OpMinVersion(op); got != 3 {
			t.Errorf("OpMinVersion(%s) = %d, want 3", op, got)
		}
	}
}

// TestEventWithoutCallControlFields: an event of the earlier kinds encodes
// exactly as before (the new fields are omitted), so the frames of
// protocol 1 and 2 peers do not change.
func TestEventWithoutCallControlFields(t *testing.T) {
	b, err := json.Marshal(Event{Seq: 1, Type: EventCallEnded, CallID: "1.1"})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte("transfer")) || bytes.Contains(b, []byte("park")) {
		t.Fatalf("an event with no call-control facts carries their fields: %s", b)
	}
}
