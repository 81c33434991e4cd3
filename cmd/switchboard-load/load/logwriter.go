package load

import (
	"fmt"
	"io"
	"sync/atomic"
)

// logQueueLines bounds the log lines waiting to be written.
const logQueueLines = 1 << 16

// asyncLog is the log writer of a worker's agents. Thousands of agents in
// one process share one slog handler, whose mutex is held across Write;
// when they all log at once (a control plane restart) a file write under
// that mutex made the lock the whole worker's bottleneck and agents
// stalled in it for minutes instead of redialling. Here Write only queues
// a copy; a full queue drops the line and counts it, so logging can never
// slow the agents down. (A real PBX runs one agent per process.)
type asyncLog struct {
	out     io.WriteCloser
	lines   chan []byte
	done    chan struct{}
	dropped atomic.Int64
}

func newAsyncLog(out io.WriteCloser) *asyncLog {
	l := &asyncLog{out: out, lines: make(chan []byte, logQueueLines), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		for b := range l.lines {
			_, _ = l.out.Write(b)
		}
	}()
	return l
}

func (l *asyncLog) Write(p []byte) (int, error) {
	select {
	case l.lines <- append([]byte(nil), p...):
	default:
		l.dropped.Add(1)
	}
	return len(p), nil
}

// Close writes what is queued, notes the drops and closes the file. No
// Write may follow.
func (l *asyncLog) Close() error {
	close(l.lines)
	<-l.done
	if n := l.dropped.Load(); n > 0 {
		fmt.Fprintf(l.out, "switchboard-load: %d log lines dropped (the log queue of %d lines was full)\n", n, logQueueLines)
	}
	return l.out.Close()
}
