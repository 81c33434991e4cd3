package ami

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

// FuzzRoute feeds arbitrary server output to the routing of a session with
// one plain, one list and one originate call waiting: nothing panics, each
// call gets at most one reply (a second would block the reader forever), a
// list is only delivered complete, and failAll empties the table.
func FuzzRoute(f *testing.F) {
	for _, name := range []string{"05-coreshowchannels.recv.raw", "03-originate-dial-bridge.recv.raw"} {
		if raw, err := os.ReadFile(filepath.Join(transcriptDir, name)); err == nil {
			f.Add(raw[:min(len(raw), 4096)])
		}
	}
	f.Add([]byte("Response: Success\r\nActionID: sb-f-2\r\nEventList: start\r\n\r\n" +
		"Event: Status\r\nChannel: x\r\nActionID: sb-f-2\r\n\r\nEvent: StatusComplete\r\nActionID: sb-f-2\r\nEventList: Complete\r\n\r\n" +
		"Response: Success\r\nActionID: sb-f-3\r\n\r\nEvent: OriginateResponse\r\nActionID: sb-f-3\r\nResponse: Failure\r\nReason: 5\r\n\r\n" +
		"Response: Error\r\nActionID: sb-f-1\r\nMessage: x\r\n\r\nResponse: Success\r\nActionID: sb-f-1\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c := &Client{idPrefix: "sb-f-", log: slog.New(slog.DiscardHandler)}
		c.subs.Store(&[]*Subscription{})
		s := &session{c: c, pending: map[uint64]*call{}}
		calls := []*call{
			{kind: kindPlain, ch: make(chan reply, 1)},
			{kind: kindList, ch: make(chan reply, 1), list: &ListResult{}},
			{kind: kindOriginate, ch: make(chan reply, 1), orig: &Originating{done: make(chan struct{})}},
		}
		for i, cl := range calls {
			s.pending[uint64(i+1)] = cl
		}
		r := NewReader(bytes.NewReader(data))
		r.MaxMessageBytes = 4096
		for i := 0; i < 200; i++ {
			m, err := r.ReadMessage()
			if errors.Is(err, ErrLineTooLong) || errors.Is(err, ErrMessageTooLarge) {
				s.onOversized(m, err)
				continue
			}
			if err != nil {
				break
			}
			if len(m.Headers) > 0 {
				s.route(m)
			}
		}
		for _, cl := range calls {
			select {
			case r := <-cl.ch:
				if r.list != nil && r.list.Complete == nil {
					t.Fatalf("list delivered without its Complete event")
				}
			default:
			}
		}
		s.failAll(ErrDisconnected)
		if len(s.pending) != 0 {
			t.Fatalf("%d calls left after failAll", len(s.pending))
		}
	})
}
