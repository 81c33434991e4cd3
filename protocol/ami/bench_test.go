package ami_test

import (
	"context"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/switchboard-pbx/switchboard/protocol/ami"
	"github.com/switchboard-pbx/switchboard/protocol/ami/amitest"
)

// Ping round trips over loopback against amitest, through the client and
// through a bare socket, so the client's own cost is the difference:
//
//	go test -run XXX -bench Ping -benchtime 3s -count 3 ./protocol/ami/
//
// Both log in with Events: off so only pings cross the wire.

const inFlight = 64

func benchServer(b *testing.B) *amitest.Server {
	return amitest.NewServer(b, func(c *amitest.Config) { c.MaxRecordedActions = -1 })
}

func benchClient(b *testing.B) *ami.Client {
	srv := benchServer(b)
	cfg := config(srv.Addr(), nil)
	cfg.Events = "off"
	c, err := ami.Dial(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}

func BenchmarkPingClient(b *testing.B) {
	c := benchClient(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.Ping(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// 64 goroutines share one client, so 64 pings are in flight at once.
func BenchmarkPingClient64(b *testing.B) {
	c := benchClient(b)
	ctx := context.Background()
	var left atomic.Int64
	left.Store(int64(b.N))
	b.ReportAllocs()
	b.ResetTimer()
	var wg sync.WaitGroup
	for g := 0; g < inFlight; g++ {
		wg.Go(func() {
			for left.Add(-1) >= 0 {
				if _, err := c.Ping(ctx); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// bareConn logs in by hand on a raw socket.
func bareConn(b *testing.B) (net.Conn, *ami.Reader) {
	srv := benchServer(b)
	conn, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	r := ami.NewReader(conn)
	if _, err := r.ReadBanner(); err != nil {
		b.Fatal(err)
	}
	login := "Action: Login\r\nActionID: l\r\nUsername: " + amitest.DefaultUsername + "\r\nSecret: " + amitest.DefaultSecret + "\r\nEvents: off\r\n\r\n"
	if _, err := conn.Write([]byte(login)); err != nil {
		b.Fatal(err)
	}
	if m, err := r.ReadMessage(); err != nil || m.Response() != "Success" {
		b.Fatalf("login: %v %v", m, err)
	}
	return conn, r
}

func appendPing(buf []byte, n int) []byte {
	buf = append(buf[:0], "Action: Ping\r\nActionID: "...)
	buf = strconv.AppendInt(buf, int64(n), 10)
	return append(buf, "\r\n\r\n"...)
}

func BenchmarkPingBare(b *testing.B) {
	conn, r := bareConn(b)
	buf := make([]byte, 0, 64)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := conn.Write(appendPing(buf, i)); err != nil {
			b.Fatal(err)
		}
		if _, err := r.ReadMessage(); err != nil {
			b.Fatal(err)
		}
	}
}

// One writer keeps 64 pings outstanding (one write each), one reader
// takes the replies: the bare socket's best case at the same depth.
func BenchmarkPingBare64(b *testing.B) {
	conn, r := bareConn(b)
	window := make(chan struct{}, inFlight)
	readErr := make(chan error, 1)
	b.ReportAllocs()
	b.ResetTimer()
	go func() {
		for i := 0; i < b.N; i++ {
			if _, err := r.ReadMessage(); err != nil {
				readErr <- err
				return
			}
			<-window
		}
		readErr <- nil
	}()
	buf := make([]byte, 0, 64)
	for i := 0; i < b.N; i++ {
		window <- struct{}{}
		if _, err := conn.Write(appendPing(buf, i)); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-readErr; err != nil {
		b.Fatal(err)
	}
}
