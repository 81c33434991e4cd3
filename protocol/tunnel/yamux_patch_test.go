package tunnel

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/yamux"
)

// slowCloseConn is a connection whose Close takes a while, like a
// WebSocket waiting for its peer's close frame, or a process so busy that
// the goroutine closing it waits for a core.
type slowCloseConn struct {
	net.Conn
	delay time.Duration
}

func (c slowCloseConn) Close() error {
	time.Sleep(c.delay)
	return c.Conn.Close()
}

// A stream blocked in Read when its session shuts down returns at once
// (third_party/yamux's patch). Upstream v0.1.2 keeps it looping, spinning
// a core, until Session.Close has closed the connection and only then
// closes the streams: here, after the connection's slow Close.
func TestYamuxReadEndsWhenSessionShutsDown(t *testing.T) {
	const closeDelay = time.Second
	a, b := net.Pipe()
	cfg := yamux.DefaultConfig()
	cfg.EnableKeepAlive = false
	cfg.LogOutput = discard{}
	server, err := yamux.Server(slowCloseConn{a, closeDelay}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	client, err := yamux.Client(b, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	cs, err := client.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.Write([]byte{1}); err != nil {
		t.Fatal(err)
	}
	ss, err := server.AcceptStream()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ss.Read(make([]byte, 1)); err != nil {
		t.Fatal(err)
	}

	readDone := make(chan error, 1)
	go func() {
		_, err := ss.Read(make([]byte, 1)) // nothing more comes
		readDone <- err
	}()
	time.Sleep(50 * time.Millisecond) // let it block
	start := time.Now()
	go server.Close()
	select {
	case err := <-readDone:
		if !errors.Is(err, yamux.ErrSessionShutdown) {
			t.Fatalf("Read after shutdown: %v, want ErrSessionShutdown", err)
		}
		if took := time.Since(start); took >= closeDelay/2 {
			t.Fatalf("Read returned %v after the shutdown: it waited for the connection to close", took)
		}
	case <-time.After(5 * closeDelay):
		t.Fatal("Read still blocked after the session shut down")
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
