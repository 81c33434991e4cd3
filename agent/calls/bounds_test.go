package calls

import (
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/switchboard-pbx/switchboard/protocol"
	"github.com/switchboard-pbx/switchboard/protocol/ami"
)

func TestTruncateUTF8(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, in string
		max      int
		want     string
	}{
		{"short", "150", 8, "150"},
		{"exact", "12345678", 8, "12345678"},
		{"ascii", "123456789", 8, "12345678"},
		{"two-byte char across the limit", "1234567é", 8, "1234567"},
		{"two-byte char before the limit", "123456é9", 8, "123456é"},
		{"four-byte char across the limit", "12345😀", 8, "12345"},
		{"invalid bytes are cut anywhere", "1234567\xff\xff", 8, "1234567\xff"},
		{"stray continuation bytes", "\x80\x80\x80\x80\x80\x80\x80\x80\x80", 8, "\x80\x80\x80\x80\x80\x80\x80\x80"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := truncateUTF8(tc.in, tc.max)
			if got != tc.want {
				t.Fatalf("truncateUTF8(%q, %d) = %q, want %q", tc.in, tc.max, got, tc.want)
			}
			if len(got) > tc.max || !strings.HasPrefix(tc.in, got) {
				t.Fatalf("%q is not a prefix of at most %d bytes", got, tc.max)
			}
		})
	}
}

func TestBoundFields(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("7", 200<<10)
	e := protocol.Event{Type: protocol.EventCallStarted, CallID: "1716212345.42", From: long, Channel: "PJSIP/" + long, To: "150"}
	if !boundFields(&e, 1024) {
		t.Fatal("nothing cut")
	}
	if len(e.From) != 1024 || len(e.Channel) != 1024 || e.To != "150" || e.CallID != "1716212345.42" {
		t.Fatalf("fields after the cut: from %d bytes, channel %d bytes, to %q, call %q", len(e.From), len(e.Channel), e.To, e.CallID)
	}
	if !slices.Equal(e.Truncated, []string{"from", "channel"}) {
		t.Fatalf("Truncated = %v, want [from channel]", e.Truncated)
	}
	short := protocol.Event{Type: protocol.EventCallEnded, From: "101"}
	if boundFields(&short, 1024) || short.Truncated != nil {
		t.Fatalf("a short event was marked: %+v", short)
	}
}

// TestTrackerBoundsFields replays the review's attack: a PBX whose caller
// sends a 200 KB caller id. Every event of the call carries a bounded,
// valid prefix and says which fields were cut.
func TestTrackerBoundsFields(t *testing.T) {
	t.Parallel()
	huge := strings.Repeat("é", 100<<10) // 200 KB of two-byte characters
	clk := newClock()
	tr := NewTracker(Config{Now: clk.Now, MaxFieldBytes: 101})
	newch := (&ami.Message{}).Add("Event", "Newchannel").Add("Channel", "PJSIP/trunk-00000001").
		Add("ChannelState", "4").Add("CallerIDNum", huge).Add("Exten", "150").
		Add("Uniqueid", "1716212345.1").Add("Linkedid", "1716212345.1")
	hangup := (&ami.Message{}).Add("Event", "Hangup").Add("Channel", "PJSIP/trunk-00000001").
		Add("Uniqueid", "1716212345.1").Add("Linkedid", "1716212345.1").Add("Cause", "16")
	evs := feed(tr, clk, []*ami.Message{newch, hangup})
	if len(evs) == 0 {
		t.Fatal("no events")
	}
	for _, e := range evs {
		if len(e.From) > 101 || !utf8.ValidString(e.From) || !strings.HasPrefix(huge, e.From) {
			t.Fatalf("%s: from is %d bytes (valid UTF-8: %v)", e.Type, len(e.From), utf8.ValidString(e.From))
		}
		if !slices.Contains(e.Truncated, "from") {
			t.Fatalf("%s: Truncated = %v, want from named", e.Type, e.Truncated)
		}
	}
}

func TestConfigMaxFieldBytes(t *testing.T) {
	t.Parallel()
	if err := (Config{MaxFieldBytes: 10}).Validate(); err == nil || !strings.Contains(err.Error(), "MaxFieldBytes is 10") {
		t.Fatalf("Validate(MaxFieldBytes 10) = %v", err)
	}
	if err := (Config{MaxFieldBytes: 64}).Validate(); err != nil {
		t.Fatalf("Validate(MaxFieldBytes 64) = %v", err)
	}
}
