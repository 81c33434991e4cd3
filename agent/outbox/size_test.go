package outbox

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/switchboard-pbx/switchboard/protocol"
)

// frameBytes is the real size of an EventBatch frame of evs.
func frameBytes(t *testing.T, evs []protocol.Event) int {
	t.Helper()
	b, err := json.Marshal(protocol.EventBatch{Events: evs})
	if err != nil {
		t.Fatal(err)
	}
	return 4 + len(b)
}

func sized(callID string, pad int) protocol.Event {
	e := ev(callID)
	e.From = strings.Repeat("1", pad)
	return e
}

// TestBatchByBytes: batches are cut by bytes as well as by count, never
// exceed the byte budget (unless one event alone does), and always make
// progress.
func TestBatchByBytes(t *testing.T) {
	t.Parallel()
	o, err := New(Config{MaxEventBytes: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 40 {
		o.Append(sized("c"+strings.Repeat("x", i%3), 900)) // about 1 KB each
	}
	for _, tc := range []struct {
		name             string
		maxEvents, bytes int
		wantEvents       int
	}{
		{"count bound", 5, 64 << 10, 5},
		{"byte bound", 100, 4 << 10, 4}, // about 1,005 bytes each
		{"no count bound", 0, 8 << 10, 8},
		{"one event over the budget still goes", 100, 100, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, n := o.Batch(0, tc.maxEvents, tc.bytes)
			if len(got) != tc.wantEvents {
				t.Fatalf("Batch = %d events (%d bytes), want %d", len(got), n, tc.wantEvents)
			}
			real := frameBytes(t, got)
			if n < real {
				t.Fatalf("Batch says %d bytes, the frame is %d", n, real)
			}
			if len(got) > 1 && n > tc.bytes {
				t.Fatalf("Batch of %d events is %d bytes, over %d", len(got), n, tc.bytes)
			}
		})
	}
	// Sizes stay right after acks: the next batch starts after the ack.
	o.Ack(10)
	got, _ := o.Batch(0, 0, 4<<10)
	if len(got) != 4 || got[0].Seq != 11 {
		t.Fatalf("after ack: %d events from seq %d", len(got), got[0].Seq)
	}
}

// TestTooLargeEventBecomesGap: an event whose encoding is over the limit
// even after the tracker cut its fields is replaced, under its own
// sequence number, by a gap event naming it; later events flow.
func TestTooLargeEventBecomesGap(t *testing.T) {
	t.Parallel()
	o, err := New(Config{MaxEventBytes: 2 << 10})
	if err != nil {
		t.Fatal(err)
	}
	o.Append(sized("a", 10))
	big := sized("1716212345.42", 1400<<10)
	big.Type = protocol.EventCallAnswered
	seq, ok := o.Append(big)
	if !ok || seq != 2 {
		t.Fatalf("Append(big) = %d, %v", seq, ok)
	}
	o.Append(sized("c", 10))
	got, n := o.Batch(0, 0, 64<<10)
	if len(got) != 3 || n > 64<<10 {
		t.Fatalf("batch = %d events, %d bytes", len(got), n)
	}
	g := got[1]
	if g.Type != protocol.EventGap || g.Seq != 2 || g.Lost != 1 || g.Dropped != protocol.EventCallAnswered ||
		g.CallID != "1716212345.42" || !strings.Contains(g.Reason, "over the 2048-byte limit") {
		t.Fatalf("replacement = %+v", g)
	}
	if st := o.Stats(); st.TooLarge != 1 || st.Gaps != 1 || st.Lost != 0 {
		t.Fatalf("stats = %+v", st)
	}
}

// TestShrink: after the control plane refused a frame, pending events over
// its limit are replaced in place; smaller ones and acknowledged ones are
// untouched.
func TestShrink(t *testing.T) {
	t.Parallel()
	o, err := New(Config{MaxEventBytes: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	o.Append(sized("a", 30<<10))
	o.Append(sized("b", 100))
	o.Append(sized("c", 30<<10))
	o.Append(sized("d", 100))
	if n := o.Shrink(1, 8<<10); n != 1 {
		t.Fatalf("Shrink replaced %d, want 1 (event 3; event 1 is before after=1)", n)
	}
	got, _ := o.Batch(0, 0, 1<<20)
	want := []string{protocol.EventCallStarted, protocol.EventCallStarted, protocol.EventGap, protocol.EventCallStarted}
	for i, e := range got {
		if e.Type != want[i] || e.Seq != uint64(i+1) {
			t.Fatalf("event %d = %s seq %d, want %s seq %d", i, e.Type, e.Seq, want[i], i+1)
		}
	}
	if got[2].CallID != "c" || got[2].Dropped != protocol.EventCallStarted {
		t.Fatalf("gap = %+v", got[2])
	}
	if _, n := o.Batch(1, 0, 1<<20); n > 2<<10 {
		t.Fatalf("after Shrink the rest is %d bytes", n)
	}
}

func TestTruncatedCounted(t *testing.T) {
	t.Parallel()
	o, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	e := ev("a")
	e.Truncated = []string{"from"}
	o.Append(e)
	o.Append(ev("b"))
	if st := o.Stats(); st.Truncated != 1 {
		t.Fatalf("Truncated = %d, want 1", st.Truncated)
	}
}

func TestConfigMaxEventBytes(t *testing.T) {
	t.Parallel()
	if _, err := New(Config{MaxEventBytes: 100}); err == nil || !strings.Contains(err.Error(), "MaxEventBytes 100") {
		t.Fatalf("New(MaxEventBytes 100) = %v", err)
	}
}
