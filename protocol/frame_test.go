package protocol

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

func sampleHello() Hello {
	return Hello{
		Protocol:        Version,
		AgentVersion:    "0.2.0",
		Hostname:        "pbx-0367",
		AsteriskVersion: "22.1.0",
		AMI:             AMIUp,
		Context:         "inoffice",
	}
}

func frameBytes(body string) []byte {
	b := make([]byte, 4+len(body))
	binary.BigEndian.PutUint32(b, uint32(len(body)))
	copy(b[4:], body)
	return b
}

func TestReadFrame(t *testing.T) {
	tests := []struct {
		name    string
		in      []byte
		max     int
		want    Ack
		wantErr func(error) bool
	}{
		{name: "ok", in: frameBytes(`{"seq":42}`), want: Ack{Seq: 42}},
		{name: "exactly max", in: frameBytes(`{"seq":7}`), max: 9, want: Ack{Seq: 7}},
		{name: "unknown fields are ignored", in: frameBytes(`{"seq":1,"future":true}`), want: Ack{Seq: 1}},
		{name: "clean EOF", in: nil, wantErr: func(err error) bool { return err == io.EOF }},
		{name: "short header", in: []byte{0, 0}, wantErr: func(err error) bool { return errors.Is(err, io.ErrUnexpectedEOF) }},
		{name: "zero length", in: []byte{0, 0, 0, 0}, wantErr: func(err error) bool { return errors.Is(err, ErrEmptyFrame) }},
		{name: "too large", in: frameBytes(`{"seq":7}`), max: 8, wantErr: func(err error) bool {
			var tl *FrameTooLargeError
			return errors.As(err, &tl) && tl.Size == 9 && tl.Max == 8
		}},
		{name: "huge announced", in: []byte{0xff, 0xff, 0xff, 0xff}, wantErr: func(err error) bool {
			var tl *FrameTooLargeError
			return errors.As(err, &tl) && tl.Size == 1<<32-1 && tl.Max == DefaultMaxFrameBytes
		}},
		{name: "truncated body", in: frameBytes(`{"seq":7}`)[:8], wantErr: func(err error) bool { return errors.Is(err, io.ErrUnexpectedEOF) }},
		{name: "bad json", in: frameBytes(`{"seq":`), wantErr: func(err error) bool { return err != nil && strings.Contains(err.Error(), "decode frame") }},
		{name: "trailing garbage", in: frameBytes(`{"seq":1}x`), wantErr: func(err error) bool { return err != nil }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got Ack
			err := ReadFrame(bytes.NewReader(tc.in), &got, tc.max)
			if tc.wantErr != nil {
				if !tc.wantErr(err) {
					t.Fatalf("err = %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestFrameTooLargeReadsNoBody(t *testing.T) {
	in := bytes.NewReader(append(frameBytes(`{"seq":123456}`), frameBytes(`{"seq":1}`)...))
	var a Ack
	err := ReadFrame(in, &a, 5)
	var tl *FrameTooLargeError
	if !errors.As(err, &tl) {
		t.Fatalf("err = %v", err)
	}
	if consumed := in.Size() - int64(in.Len()); consumed != 4 {
		t.Fatalf("consumed %d bytes, want only the 4-byte header", consumed)
	}
}

// A peer that announces a maximal frame and sends a few bytes must not make
// the reader allocate the announced size.
func TestReadFrameAllocationFollowsData(t *testing.T) {
	const max = 16 << 20
	in := io.MultiReader(bytes.NewReader([]byte{0x00, 0xff, 0xff, 0xff}), strings.NewReader(`{"seq":`))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	err := ReadFrame(in, &Ack{}, max)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("err = %v", err)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 4*readChunkBytes {
		t.Fatalf("allocated %d bytes for a 7-byte body announced as 16 MiB", got)
	}
}

func TestReadFrameLargeBodyWithinMax(t *testing.T) {
	payload := strings.Repeat("x", 700<<10)
	var buf bytes.Buffer
	if err := WriteFrame(&buf, map[string]string{"p": payload}); err != nil {
		t.Fatal(err)
	}
	var got map[string]string
	if err := ReadFrame(&buf, &got, DefaultMaxFrameBytes); err != nil {
		t.Fatal(err)
	}
	if got["p"] != payload {
		t.Fatal("payload mismatch")
	}
}

func TestWriteFrame(t *testing.T) {
	tests := []struct {
		name    string
		v       any
		want    []byte
		wantErr bool
	}{
		{name: "ack", v: Ack{Seq: 3}, want: frameBytes(`{"seq":3}`)},
		{name: "no html escaping", v: map[string]string{"c": "<sip:150>&"}, want: frameBytes(`{"c":"<sip:150>&"}`)},
		{name: "unencodable", v: make(chan int), wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var w countingWriter
			err := WriteFrame(&w, tc.v)
			if tc.wantErr {
				if err == nil {
					t.Fatal("want error")
				}
				if w.calls != 0 {
					t.Fatal("wrote bytes for a failed encode")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if w.calls != 1 {
				t.Fatalf("%d Write calls, want exactly 1", w.calls)
			}
			if !bytes.Equal(w.buf.Bytes(), tc.want) {
				t.Fatalf("got %q, want %q", w.buf.Bytes(), tc.want)
			}
		})
	}
}

type countingWriter struct {
	buf   bytes.Buffer
	calls int
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.calls++
	return w.buf.Write(p)
}

// Frames written concurrently by several goroutines onto one writer that
// serialises Write calls must come out whole.
func TestWriteFrameConcurrentWholeFrames(t *testing.T) {
	var mu sync.Mutex
	var buf bytes.Buffer
	w := writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(p)
	})
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			if err := WriteFrame(w, Ack{Seq: uint64(i)}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	seen := map[uint64]bool{}
	for {
		var a Ack
		err := ReadFrame(&buf, &a, 0)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		seen[a.Seq] = true
	}
	if len(seen) != 50 {
		t.Fatalf("decoded %d distinct frames, want 50", len(seen))
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestKind(t *testing.T) {
	tests := []struct {
		name    string
		in      []byte
		want    StreamKind
		wantErr func(error) bool
	}{
		{name: "control", in: []byte{1}, want: StreamControl},
		{name: "request", in: []byte{2}, want: StreamRequest},
		{name: "events", in: []byte{3}, want: StreamEvents},
		{name: "unknown", in: []byte{9}, want: 9, wantErr: func(err error) bool {
			var uk *UnknownKindError
			return errors.As(err, &uk) && uk.Kind == 9
		}},
		{name: "zero", in: []byte{0}, want: 0, wantErr: func(err error) bool {
			var uk *UnknownKindError
			return errors.As(err, &uk)
		}},
		{name: "eof", in: nil, wantErr: func(err error) bool { return errors.Is(err, io.EOF) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReadKind(bytes.NewReader(tc.in))
			if tc.wantErr != nil {
				if !tc.wantErr(err) {
					t.Fatalf("err = %v", err)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("kind = %v, want %v", got, tc.want)
			}
			if tc.wantErr == nil {
				var buf bytes.Buffer
				if err := WriteKind(&buf, got); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(buf.Bytes(), tc.in) {
					t.Fatalf("WriteKind wrote %v, want %v", buf.Bytes(), tc.in)
				}
			}
		})
	}
}

func TestRoundTripMessages(t *testing.T) {
	now := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	msgs := []struct {
		name string
		in   any
		out  any
	}{
		{"hello", sampleHello(), &Hello{}},
		{"welcome", Welcome{SessionID: "s1", HeartbeatSeconds: 15, LastAckedSeq: 9}, &Welcome{}},
		{"request", Request{ID: "r1", Op: OpPing, Deadline: now, Args: []byte(`{}`)}, &Request{}},
		{"response error", Response{ID: "r1", Error: &Error{Code: ErrCodeNotFound, Message: "no such channel"}}, &Response{}},
		{"event batch", EventBatch{Events: []Event{{Seq: 1, Type: EventCallStarted, Time: now}}}, &EventBatch{}},
	}
	for _, tc := range msgs {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := WriteFrame(&buf, tc.in); err != nil {
				t.Fatal(err)
			}
			if err := ReadFrame(&buf, tc.out, 0); err != nil {
				t.Fatal(err)
			}
			var again bytes.Buffer
			if err := WriteFrame(&again, tc.out); err != nil {
				t.Fatal(err)
			}
			var first bytes.Buffer
			_ = WriteFrame(&first, tc.in)
			if !bytes.Equal(first.Bytes(), again.Bytes()) {
				t.Fatalf("round trip changed bytes:\n%q\n%q", first.Bytes(), again.Bytes())
			}
		})
	}
}

func FuzzReadFrame(f *testing.F) {
	f.Add(frameBytes(`{"protocol":1,"hostname":"pbx"}`), 64)
	f.Add([]byte{0, 0, 0, 0}, 10)
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1}, 1<<20)
	f.Add(frameBytes(`{"id":"x","op":"ping","deadline":"2026-11-24T10:00:00Z"}`), 0)
	f.Fuzz(func(t *testing.T, in []byte, max int) {
		max %= 1 << 16
		var req Request
		err := ReadFrame(bytes.NewReader(in), &req, max)
		if err != nil {
			var tl *FrameTooLargeError
			if errors.As(err, &tl) {
				limit := max
				if limit <= 0 {
					limit = DefaultMaxFrameBytes
				}
				if tl.Size <= int64(limit) {
					t.Fatalf("FrameTooLargeError for size %d within limit %d", tl.Size, limit)
				}
			}
			return
		}
		// Whatever decoded must survive a write/read round trip.
		var buf bytes.Buffer
		if err := WriteFrame(&buf, req); err != nil {
			t.Fatal(err)
		}
		var again Request
		if err := ReadFrame(&buf, &again, 0); err != nil {
			t.Fatalf("re-read of %q: %v", buf.Bytes(), err)
		}
		if again.ID != req.ID || again.Op != req.Op || !again.Deadline.Equal(req.Deadline) {
			t.Fatalf("round trip changed request: %+v vs %+v", req, again)
		}
	})
}

func FuzzReadKind(f *testing.F) {
	f.Add([]byte{2})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		k, err := ReadKind(bytes.NewReader(in))
		if err == nil && !k.Known() {
			t.Fatalf("unknown kind %d without error", k)
		}
		if len(in) > 0 && k != StreamKind(in[0]) {
			t.Fatalf("kind %d, first byte %d", k, in[0])
		}
	})
}

func BenchmarkFrameRoundTrip(b *testing.B) {
	req := Request{ID: "0123456789abcdef", Op: OpPing, Deadline: time.Now(), Args: []byte(`{"from":"150","to":"+375296254070"}`)}
	var buf bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		if err := WriteFrame(&buf, req); err != nil {
			b.Fatal(err)
		}
		var got Request
		if err := ReadFrame(&buf, &got, 0); err != nil {
			b.Fatal(err)
		}
	}
}
