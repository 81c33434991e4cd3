package tunnel

import (
	"bytes"
	"encoding/binary"
	"net"
	"testing"
)

// recordConn records each Write as one message.
type recordConn struct {
	net.Conn
	msgs [][]byte
}

func (r *recordConn) Write(p []byte) (int, error) {
	r.msgs = append(r.msgs, bytes.Clone(p))
	return len(p), nil
}

func hdr(typ byte, length uint32) []byte {
	h := make([]byte, yamuxHeaderBytes)
	h[1] = typ
	binary.BigEndian.PutUint32(h[8:], length)
	return h
}

func TestCoalescer(t *testing.T) {
	const typeWindowUpdate = 1
	big := bytes.Repeat([]byte("b"), coalesceMaxBody+1)
	tests := []struct {
		name   string
		writes [][]byte
		want   []int // sizes of the resulting messages
	}{
		{"data header and body merge", [][]byte{hdr(yamuxTypeData, 5), []byte("hello")}, []int{17}},
		{"window update passes through", [][]byte{hdr(typeWindowUpdate, 5), []byte("hello")}, []int{12, 5}},
		{"empty data frame passes through", [][]byte{hdr(yamuxTypeData, 0)}, []int{12}},
		{"body in pieces", [][]byte{hdr(yamuxTypeData, 4), []byte("ab"), []byte("cd")}, []int{16}},
		{"body then more bytes", [][]byte{hdr(yamuxTypeData, 2), []byte("abXYZ")}, []int{14, 3}},
		{"large body not merged", [][]byte{hdr(yamuxTypeData, uint32(len(big))), big}, []int{12, len(big)}},
		{"two frames", [][]byte{hdr(yamuxTypeData, 1), []byte("a"), hdr(typeWindowUpdate, 0), hdr(yamuxTypeData, 1), []byte("b")}, []int{13, 12, 13}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recordConn{}
			c := newCoalescer(rec)
			var in []byte
			for _, w := range tc.writes {
				n, err := c.Write(w)
				if err != nil || n != len(w) {
					t.Fatalf("Write(%d bytes) = %d, %v", len(w), n, err)
				}
				in = append(in, w...)
			}
			var sizes []int
			var out []byte
			for _, m := range rec.msgs {
				sizes = append(sizes, len(m))
				out = append(out, m...)
			}
			if !bytes.Equal(in, out) {
				t.Fatal("byte stream changed")
			}
			if len(sizes) != len(tc.want) {
				t.Fatalf("messages %v, want %v", sizes, tc.want)
			}
			for i := range sizes {
				if sizes[i] != tc.want[i] {
					t.Fatalf("messages %v, want %v", sizes, tc.want)
				}
			}
		})
	}
}
