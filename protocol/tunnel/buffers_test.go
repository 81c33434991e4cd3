package tunnel

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// hijackable is a ResponseWriter whose Hijack hands over conn with a
// reader that has already buffered some of conn's bytes, as net/http's
// does when the client sent data right behind its upgrade request.
type hijackable struct {
	http.ResponseWriter
	conn net.Conn
	brw  *bufio.ReadWriter
}

func (h hijackable) Hijack() (net.Conn, *bufio.ReadWriter, error) { return h.conn, h.brw, nil }

// TestSmallBuffersKeepBufferedBytes: the reader handed to the WebSocket
// library holds what net/http had buffered, and the library, which reads
// what is buffered and then resets the reader onto the connection (as
// coder/websocket's Accept does), reads everything in order.
func TestSmallBuffersKeepBufferedBytes(t *testing.T) {
	server, client := net.Pipe()
	defer server.Close()
	defer client.Close()
	go func() {
		_, _ = client.Write([]byte("already buffered|"))
		_, _ = client.Write([]byte("still on the wire"))
		_ = client.Close()
	}()
	br := bufio.NewReaderSize(server, 4096)
	if _, err := br.Peek(len("already buffered|")); err != nil {
		t.Fatal(err)
	}
	w := hijackable{ResponseWriter: httptest.NewRecorder(), conn: server, brw: bufio.NewReadWriter(br, bufio.NewWriterSize(server, 4096))}
	// The api wraps the ResponseWriter; Hijack must find it underneath.
	c, brw, err := smallBuffers{ResponseWriter: unwrapper{w}, read: 64, write: 128}.Hijack()
	if err != nil {
		t.Fatal(err)
	}
	if c != server {
		t.Fatalf("hijacked conn %v, want the server end", c)
	}
	if brw.Reader.Size() != 64 || brw.Writer.Size() != 128 {
		t.Fatalf("buffer sizes %d/%d, want 64/128", brw.Reader.Size(), brw.Writer.Size())
	}
	if n := brw.Reader.Buffered(); n != len("already buffered|") {
		t.Fatalf("%d bytes buffered, want net/http's %d", n, len("already buffered|"))
	}
	b, _ := brw.Reader.Peek(brw.Reader.Buffered())
	brw.Reader.Reset(io.MultiReader(bytes.NewReader(b), c))
	got, err := io.ReadAll(brw.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if want := "already buffered|still on the wire"; string(got) != want {
		t.Fatalf("read %q, want %q", got, want)
	}
}

// unwrapper is a middleware's ResponseWriter (like the api's recorder).
type unwrapper struct{ http.ResponseWriter }

func (u unwrapper) Unwrap() http.ResponseWriter { return u.ResponseWriter }

// TestAcceptConfigRefusesNegativeBuffers: a bad size is a config error.
func TestAcceptConfigRefusesNegativeBuffers(t *testing.T) {
	err := AcceptConfig{WriteBufferBytes: -1}.Validate()
	if err == nil || !strings.Contains(err.Error(), "buffer sizes") {
		t.Fatalf("Validate = %v, want a buffer size error", err)
	}
}
