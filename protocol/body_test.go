package protocol

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
)

func TestBodyRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, MaxChunkBytes - 1, MaxChunkBytes, MaxChunkBytes + 1, 3*MaxChunkBytes + 5} {
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(i % 253)
		}
		for _, how := range []string{"write", "readfrom"} {
			var wire bytes.Buffer
			bw := NewBodyWriter(&wire)
			var err error
			if how == "write" {
				_, err = bw.Write(data)
			} else {
				_, err = bw.ReadFrom(bytes.NewReader(data))
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := bw.Close(); err != nil {
				t.Fatal(err)
			}
			// Every chunk is at most MaxChunkBytes, the last is empty.
			for rest := wire.Bytes(); ; {
				c := binary.BigEndian.Uint32(rest)
				if c > MaxChunkBytes {
					t.Fatalf("%s %d: chunk of %d bytes", how, n, c)
				}
				rest = rest[4+c:]
				if c == 0 {
					if len(rest) != 0 {
						t.Fatalf("%s %d: %d bytes after the final chunk", how, n, len(rest))
					}
					break
				}
			}
			got, err := io.ReadAll(NewBodyReader(&wire))
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("%s %d: read %d bytes, %v", how, n, len(got), err)
			}
		}
	}
}

func TestBodyReaderErrors(t *testing.T) {
	chunk := func(n uint32, payload string) []byte {
		b := binary.BigEndian.AppendUint32(nil, n)
		return append(b, payload...)
	}
	cases := []struct {
		name string
		wire []byte
		want error
	}{
		{"no final chunk", chunk(3, "abc"), io.ErrUnexpectedEOF},
		{"cut inside a chunk", chunk(5, "ab"), io.ErrUnexpectedEOF},
		{"cut inside a length", []byte{0, 0}, io.ErrUnexpectedEOF},
		{"nothing at all", nil, io.ErrUnexpectedEOF},
		{"chunk too large", chunk(MaxChunkBytes+1, "x"), ErrChunkTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := io.ReadAll(NewBodyReader(bytes.NewReader(tc.wire)))
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestBodyKind(t *testing.T) {
	k, err := ReadKind(bytes.NewReader([]byte{4}))
	if err != nil || k != StreamBody || k.String() != "body" {
		t.Fatalf("ReadKind(4) = %v, %v", k, err)
	}
}

// FuzzBodyReader: any bytes end in io.EOF after a final chunk, or in an
// error; never a panic, never more bytes than the wire carried.
func FuzzBodyReader(f *testing.F) {
	f.Add([]byte{0, 0, 0, 3, 'a', 'b', 'c', 0, 0, 0, 0})
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, wire []byte) {
		got, err := io.ReadAll(NewBodyReader(bytes.NewReader(wire)))
		if len(got) > len(wire) {
			t.Fatalf("read %d bytes from %d", len(got), len(wire))
		}
		if err == nil {
			// A clean end: re-encoding gives a prefix of the wire.
			var re bytes.Buffer
			bw := NewBodyWriter(&re)
			if _, werr := bw.Write(got); werr != nil {
				t.Fatal(werr)
			}
			_ = bw.Close()
			if len(got) > 0 && re.Len() > len(wire) {
				t.Fatalf("clean body of %d bytes from %d wire bytes", len(got), len(wire))
			}
		}
	})
}

// After Close the body has ended on the wire: neither Write nor ReadFrom
// (io.Copy's path from a reader without WriteTo) may put a chunk after
// the final empty one.
func TestBodyWriterClosed(t *testing.T) {
	var wire bytes.Buffer
	bw := NewBodyWriter(&wire)
	if err := bw.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := bw.Write([]byte("late")); err == nil {
		t.Error("Write after Close succeeded")
	}
	if _, err := bw.ReadFrom(bytes.NewReader([]byte("late"))); err == nil {
		t.Error("ReadFrom after Close succeeded")
	}
	if got := wire.Bytes(); !bytes.Equal(got, []byte{0, 0, 0, 0}) {
		t.Fatalf("wire after Close and late writes: %q, want only the final empty chunk", got)
	}
}
