package amitest

import (
	"bufio"
	"fmt"
	"net"
	"runtime"
	"testing"

	"github.com/switchboard-pbx/switchboard/protocol/ami"
)

// benchConn is a bare logged-in connection, so the numbers are the
// server's, not a client library's.
func benchConn(b *testing.B, srv *Server) (net.Conn, *ami.Reader, *bufio.Writer) {
	b.Helper()
	conn, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	rd := ami.NewReader(conn)
	if _, err := rd.ReadBanner(); err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(conn)
	fmt.Fprint(w, "Action: Login\r\nUsername: switchboard\r\nSecret: switchboard-secret\r\nEvents: off\r\n\r\n")
	w.Flush()
	if m, err := rd.ReadMessage(); err != nil || m.Get("Message") != "Authentication accepted" {
		b.Fatalf("login: %v %v", m, err)
	}
	return conn, rd, w
}

// BenchmarkPing is one Ping round trip at a time over loopback.
func BenchmarkPing(b *testing.B) {
	srv := NewServer(b)
	_, rd, w := benchConn(b, srv)
	ping := []byte("Action: Ping\r\nActionID: b\r\n\r\n")
	b.ReportAllocs()
	for b.Loop() {
		w.Write(ping)
		w.Flush()
		if _, err := rd.ReadMessage(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPingPipelined keeps 64 Pings in flight on one connection.
func BenchmarkPingPipelined(b *testing.B) {
	srv := NewServer(b)
	_, rd, w := benchConn(b, srv)
	const inFlight = 64
	ping := []byte("Action: Ping\r\nActionID: b\r\n\r\n")
	done := make(chan error, 1)
	b.ReportAllocs()
	b.ResetTimer()
	go func() {
		for i := 0; i < b.N; i++ {
			if _, err := rd.ReadMessage(); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	sem := make(chan struct{}, inFlight)
	for i := 0; i < b.N; i++ {
		sem <- struct{}{}
		w.Write(ping)
		if len(sem) == inFlight || i == b.N-1 {
			w.Flush()
			for len(sem) > 0 {
				<-sem
			}
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}

// BenchmarkCall is a whole async Originate → Dial → bridge → hangup, with
// every event delivered to one logged-in client.
func BenchmarkCall(b *testing.B) {
	srv := NewServer(b)
	conn, rd, w := benchConn(b, srv)
	fmt.Fprint(w, "Action: Events\r\nEventMask: call\r\n\r\n")
	w.Flush()
	if _, err := rd.ReadMessage(); err != nil {
		b.Fatal(err)
	}
	_ = conn
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		id := fmt.Sprintf("call-%d", i)
		fmt.Fprintf(w, "Action: Originate\r\nChannel: Local/150@inoffice\r\nApplication: Dial\r\nData: Local/151@inoffice\r\nAsync: true\r\nChannelId: %s\r\n\r\n"+
			"Action: Hangup\r\nChannel: %s\r\n\r\n", id, id)
		w.Flush()
		for hangups := 0; hangups < 4; {
			m, err := rd.ReadMessage()
			if err != nil {
				b.Fatal(err)
			}
			if m.Event() == "Hangup" {
				hangups++
			}
		}
	}
}

// BenchmarkIdleServer measures what one idle fake PBX costs, for load
// tests that run thousands: heap bytes and goroutines per Start.
func BenchmarkIdleServer(b *testing.B) {
	var servers []*Server
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	g0 := runtime.NumGoroutine()
	for b.Loop() {
		s, err := New(Config{})
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Start(); err != nil {
			b.Fatal(err)
		}
		servers = append(servers, s)
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(len(servers)), "heapB/server")
	b.ReportMetric(float64(runtime.NumGoroutine()-g0)/float64(len(servers)), "goroutines/server")
	for _, s := range servers {
		s.Close()
	}
}
