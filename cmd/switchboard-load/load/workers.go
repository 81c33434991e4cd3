package load

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// workerStopTimeout bounds a worker's clean exit (agents and fakes close).
const workerStopTimeout = 60 * time.Second

// workerHandle is the coordinator's side of one worker, a child process
// or a goroutine behind pipes; both speak the same JSON lines.
type workerHandle struct {
	index   int
	agents  int
	enc     *json.Encoder
	dec     *json.Decoder
	closeIn func() error
	done    chan struct{}
	err     error // valid after done
	kill    func()
}

// startWorkerProcess runs `self worker` and sends it spec.
func startWorkerProcess(self string, spec WorkerSpec, stderrPath string) (*workerHandle, error) {
	cmd := exec.Command(self, "worker")
	cmd.Env = childEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	ef, err := os.Create(stderrPath)
	if err != nil {
		return nil, fmt.Errorf("worker stderr: %w", err)
	}
	cmd.Stderr = ef
	if err := cmd.Start(); err != nil {
		ef.Close()
		return nil, fmt.Errorf("start worker %d: %w", spec.Index, err)
	}
	h := &workerHandle{
		index: spec.Index, agents: len(spec.Agents),
		enc: json.NewEncoder(stdin), dec: json.NewDecoder(stdout),
		closeIn: stdin.Close, done: make(chan struct{}),
		kill: func() { _ = cmd.Process.Kill() },
	}
	go func() { h.err = cmd.Wait(); ef.Close(); close(h.done) }()
	if err := h.enc.Encode(spec); err != nil {
		h.stop()
		return nil, fmt.Errorf("worker %d: send spec: %w", spec.Index, err)
	}
	return h, nil
}

// startWorkerInProcess runs RunWorker in a goroutine behind pipes.
func startWorkerInProcess(ctx context.Context, spec WorkerSpec) (*workerHandle, error) {
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	wctx, cancel := context.WithCancel(ctx)
	h := &workerHandle{
		index: spec.Index, agents: len(spec.Agents),
		enc: json.NewEncoder(inW), dec: json.NewDecoder(outR),
		closeIn: inW.Close, done: make(chan struct{}),
		kill: cancel,
	}
	go func() {
		defer close(h.done)
		defer cancel()
		h.err = RunWorker(wctx, inR, outW)
		outW.CloseWithError(io.EOF)
		inR.Close()
	}()
	if err := h.enc.Encode(spec); err != nil {
		h.stop()
		return nil, fmt.Errorf("worker %d: send spec: %w", spec.Index, err)
	}
	return h, nil
}

// reply reads the next reply, bounded by ctx.
func (h *workerHandle) reply(ctx context.Context) (WorkerStats, error) {
	type res struct {
		r   workerReply
		err error
	}
	ch := make(chan res, 1)
	go func() {
		var r workerReply
		err := h.dec.Decode(&r)
		ch <- res{r, err}
	}()
	select {
	case <-ctx.Done():
		// The decoder goroutine ends when stop closes the stream.
		return WorkerStats{}, fmt.Errorf("worker %d: %w", h.index, ctx.Err())
	case x := <-ch:
		if x.err != nil {
			return WorkerStats{}, fmt.Errorf("worker %d: read reply: %w", h.index, x.err)
		}
		if !x.r.OK {
			return x.r.Stats, fmt.Errorf("worker %d: %s", h.index, x.r.Error)
		}
		return x.r.Stats, nil
	}
}

// do sends one command and waits for its reply.
func (h *workerHandle) do(ctx context.Context, cmd string) (WorkerStats, error) {
	if err := h.enc.Encode(workerCmd{Cmd: cmd}); err != nil {
		return WorkerStats{}, fmt.Errorf("worker %d: send %s: %w", h.index, cmd, err)
	}
	return h.reply(ctx)
}

// stop closes the worker's input (it stops its agents and fakes and
// exits) and waits, killing it past workerStopTimeout.
func (h *workerHandle) stop() error {
	_ = h.closeIn()
	select {
	case <-h.done:
	case <-time.After(workerStopTimeout):
		h.kill()
		<-h.done
		return fmt.Errorf("worker %d did not stop within %v: killed", h.index, workerStopTimeout)
	}
	if h.err != nil {
		return fmt.Errorf("worker %d: %w", h.index, h.err)
	}
	return nil
}
