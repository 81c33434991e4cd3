package outbox

import (
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/protocol"
)

func ev(callID string) protocol.Event {
	return protocol.Event{Type: protocol.EventCallStarted, CallID: callID}
}

// step is one operation on an outbox and what it must return.
type step struct {
	append string // call id to append
	ok     bool   // Append's ok
	ack    uint64 // Ack(seq) when > 0
	rebase *uint64
}

func appendOK(id string) step   { return step{append: id, ok: true} }
func appendLost(id string) step { return step{append: id, ok: false} }
func ack(seq uint64) step       { return step{ack: seq} }
func rebase(seq uint64) step    { return step{rebase: &seq} }

// summary renders pending events as "seq:callid" or "seq:gap(n)".
func summary(evs []protocol.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		s := e.CallID
		if e.Type == protocol.EventGap {
			s = "gap(" + string(rune('0'+e.Lost)) + ")"
		}
		out[i] = string(rune('0'+e.Seq)) + ":" + s
	}
	return out
}

func TestOutbox(t *testing.T) {
	cases := []struct {
		name    string
		max     int
		steps   []step
		pending []string
		stats   Stats
	}{
		{
			name:    "numbers from one",
			max:     10,
			steps:   []step{appendOK("a"), appendOK("b"), appendOK("c")},
			pending: []string{"1:a", "2:b", "3:c"},
			stats:   Stats{Pending: 3, NextSeq: 4},
		},
		{
			name:    "ack drops up to seq",
			max:     10,
			steps:   []step{appendOK("a"), appendOK("b"), appendOK("c"), ack(2), ack(1)},
			pending: []string{"3:c"},
			stats:   Stats{Pending: 1, NextSeq: 4, LastAcked: 2},
		},
		{
			name:    "ack beyond numbered acks all",
			max:     10,
			steps:   []step{appendOK("a"), ack(9), appendOK("b")},
			pending: []string{"2:b"},
			stats:   Stats{Pending: 1, NextSeq: 3, LastAcked: 1},
		},
		{
			name: "overflow then gap when acked",
			max:  3,
			steps: []step{appendOK("a"), appendOK("b"), appendOK("c"),
				appendLost("d"), appendLost("e"), ack(1)},
			pending: []string{"2:b", "3:c", "4:gap(2)"},
			stats:   Stats{Pending: 3, NextSeq: 5, LastAcked: 1, Lost: 2, Gaps: 1},
		},
		{
			name: "gap precedes the next event",
			max:  3,
			steps: []step{appendOK("a"), appendOK("b"), appendOK("c"),
				appendLost("d"), ack(2), appendOK("e")},
			pending: []string{"3:c", "4:gap(1)", "5:e"},
			stats:   Stats{Pending: 3, NextSeq: 6, LastAcked: 2, Lost: 1, Gaps: 1},
		},
		{
			name: "gap fills the only free slot, next event is lost again",
			max:  2,
			steps: []step{appendOK("a"), appendOK("b"), appendLost("c"),
				ack(1), appendLost("d"), ack(3), appendOK("e")},
			pending: []string{"4:gap(1)", "5:e"},
			stats:   Stats{Pending: 2, NextSeq: 6, LastAcked: 3, Lost: 2, Gaps: 2},
		},
		{
			name:    "first rebase renumbers after the control plane's ack",
			max:     10,
			steps:   []step{appendOK("a"), appendOK("b"), rebase(5), appendOK("c")},
			pending: []string{"6:a", "7:b", "8:c"},
			stats:   Stats{Pending: 3, NextSeq: 9, LastAcked: 5},
		},
		{
			name: "first rebase renumbers even when the ack is inside our range",
			max:  10,
			// A restarted agent numbered a..c 1..3; the control plane
			// stored 2 events of the previous process. None of a..c was
			// ever delivered: none may be dropped.
			steps:   []step{appendOK("a"), appendOK("b"), appendOK("c"), rebase(2)},
			pending: []string{"3:a", "4:b", "5:c"},
			stats:   Stats{Pending: 3, NextSeq: 6, LastAcked: 2},
		},
		{
			name:    "later rebase acks what the control plane stored",
			max:     10,
			steps:   []step{rebase(0), appendOK("a"), appendOK("b"), appendOK("c"), rebase(2)},
			pending: []string{"3:c"},
			stats:   Stats{Pending: 1, NextSeq: 4, LastAcked: 2},
		},
		{
			name:    "later rebase with nothing stored resends all",
			max:     10,
			steps:   []step{rebase(0), appendOK("a"), appendOK("b"), rebase(0)},
			pending: []string{"1:a", "2:b"},
			stats:   Stats{Pending: 2, NextSeq: 3},
		},
		{
			name:    "later rebase behind our acks keeps numbers",
			max:     10,
			steps:   []step{rebase(0), appendOK("a"), appendOK("b"), appendOK("c"), ack(2), rebase(1)},
			pending: []string{"3:c"},
			stats:   Stats{Pending: 1, NextSeq: 4, LastAcked: 2},
		},
		{
			name:    "later rebase ahead of our numbering renumbers",
			max:     10,
			steps:   []step{rebase(0), appendOK("a"), rebase(7)},
			pending: []string{"8:a"},
			stats:   Stats{Pending: 1, NextSeq: 9, LastAcked: 7},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o, err := New(Config{MaxPending: tc.max})
			if err != nil {
				t.Fatal(err)
			}
			for i, s := range tc.steps {
				switch {
				case s.append != "":
					if _, ok := o.Append(ev(s.append)); ok != s.ok {
						t.Fatalf("step %d: Append(%s) ok=%v, want %v", i, s.append, ok, s.ok)
					}
				case s.ack > 0:
					o.Ack(s.ack)
				case s.rebase != nil:
					o.Rebase(*s.rebase)
				}
			}
			got := summary(pending(o, 0, 0))
			if !slices.Equal(got, tc.pending) {
				t.Errorf("pending %v, want %v", got, tc.pending)
			}
			if st := o.Stats(); st != tc.stats {
				t.Errorf("stats %+v, want %+v", st, tc.stats)
			}
		})
	}
}

func TestPendingWindow(t *testing.T) {
	o, _ := New(Config{})
	for _, id := range []string{"a", "b", "c", "d", "e"} {
		o.Append(ev(id))
	}
	o.Ack(1)
	cases := []struct {
		after uint64
		max   int
		want  []string
	}{
		{0, 0, []string{"2:b", "3:c", "4:d", "5:e"}},
		{0, 2, []string{"2:b", "3:c"}},
		{3, 0, []string{"4:d", "5:e"}},
		{3, 1, []string{"4:d"}},
		{5, 0, []string{}},
		{9, 0, []string{}},
	}
	for _, tc := range cases {
		if got := summary(pending(o, tc.after, tc.max)); !slices.Equal(got, tc.want) {
			t.Errorf("Batch(%d, %d) = %v, want %v", tc.after, tc.max, got, tc.want)
		}
	}
}

func TestChangedSignals(t *testing.T) {
	o, _ := New(Config{MaxPending: 2})
	ch := o.Changed()
	select {
	case <-ch:
		t.Fatal("Changed closed before any append")
	default:
	}
	o.Append(ev("a"))
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("Changed not closed by Append")
	}
	// A gap appended by Ack also wakes the sender.
	o.Append(ev("b"))
	o.Append(ev("c")) // lost
	ch = o.Changed()
	o.Ack(1)
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("Changed not closed by the gap an Ack appended")
	}
}

func TestConfigValidate(t *testing.T) {
	if _, err := New(Config{MaxPending: 1}); err == nil {
		t.Error("MaxPending 1 accepted")
	}
	o, err := New(Config{})
	if err != nil || o.max != DefaultMaxPending {
		t.Errorf("default outbox: %v, max %d", err, o.max)
	}
}

// TestConcurrentAppendAck runs producers against a sender that acks what it
// reads, under -race: every append is either delivered exactly once, in
// sequence order with no holes, or counted in a gap event.
func TestConcurrentAppendAck(t *testing.T) {
	const producers, perProducer = 4, 2000
	o, _ := New(Config{MaxPending: 64})
	o.Rebase(0)
	var wg sync.WaitGroup
	var accepted sync.Map
	for p := range producers {
		wg.Go(func() {
			for i := range perProducer {
				if seq, ok := o.Append(ev("p")); ok {
					accepted.Store(seq, p*perProducer+i)
				}
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()

	var delivered, lost uint64
	var last uint64
	finished := false
	deadline := time.After(20 * time.Second)
	for {
		ch := o.Changed()
		batch := pending(o, last, 50)
		for _, e := range batch {
			if e.Seq != last+1 {
				t.Fatalf("sequence hole: got %d after %d", e.Seq, last)
			}
			last = e.Seq
			if e.Type == protocol.EventGap {
				lost += e.Lost
			} else {
				delivered++
			}
		}
		if len(batch) > 0 {
			o.Ack(last)
			continue
		}
		if finished {
			break
		}
		select {
		case <-ch:
		case <-done:
			finished = true
		case <-deadline:
			t.Fatal("sender starved")
		}
	}
	st := o.Stats()
	if st.Lost != lost+o.lost {
		t.Errorf("stats lost %d, gap events reported %d (+%d not yet reported)", st.Lost, lost, o.lost)
	}
	if delivered+lost+o.lost != producers*perProducer {
		t.Errorf("delivered %d + lost %d + unreported %d != appended %d", delivered, lost, o.lost, producers*perProducer)
	}
	if st.Pending != 0 {
		t.Errorf("%d events pending at the end", st.Pending)
	}
}

func BenchmarkAppendAck(b *testing.B) {
	o, _ := New(Config{})
	e := ev("sb-1-0001")
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		seq, _ := o.Append(e)
		if i%100 == 99 {
			o.Ack(seq)
		}
	}
}

// pending is Batch without a byte limit: the events after `after`, at
// most max of them (<= 0: all).
func pending(o *Outbox, after uint64, max int) []protocol.Event {
	b, _ := o.Batch(after, max, math.MaxInt)
	return b
}
