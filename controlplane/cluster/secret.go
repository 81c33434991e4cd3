package cluster

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Headers of an internal call between replicas.
const (
	// ReplicaHeader names the calling replica.
	ReplicaHeader = "Switchboard-Replica"
	// SignatureHeader is "t=<unix seconds>,v1=<hex HMAC-SHA256>" over the
	// time, the method, the path, the caller and the body's SHA-256.
	SignatureHeader = "Switchboard-Signature"
)

// ErrUnauthenticated: an internal call whose signature is missing, stale,
// replayed or made with another cluster secret.
var ErrUnauthenticated = errors.New("internal call not authenticated")

// deriveKey gives each use of the cluster secret its own key, so a key
// that leaks from one use (say a ticket's MAC) says nothing of the others.
func deriveKey(secret []byte, purpose string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("switchboard cluster key v1\x00" + purpose))
	return m.Sum(nil)
}

// signer signs and verifies internal calls. Each signature is accepted
// once within the window, so a call captured on the wire cannot be played
// again (an originate would dial twice).
type signer struct {
	key    []byte
	window time.Duration
	now    func() time.Time

	mu   sync.Mutex
	seen map[string]time.Time // signature → when it may be forgotten
	next time.Time            // when seen is pruned next
}

func newSigner(secret []byte, window time.Duration, now func() time.Time) *signer {
	return &signer{key: deriveKey(secret, "replica-call"), window: window, now: now, seen: map[string]time.Time{}}
}

func (s *signer) mac(t int64, method, path, from string, body []byte) string {
	sum := sha256.Sum256(body)
	m := hmac.New(sha256.New, s.key)
	fmt.Fprintf(m, "%d\n%s\n%s\n%s\n%x", t, method, path, from, sum)
	return hex.EncodeToString(m.Sum(nil))
}

// sign sets the headers of a call from replica `from`.
func (s *signer) sign(h http.Header, method, path, from string, body []byte) {
	t := s.now().Unix()
	h.Set(ReplicaHeader, from)
	h.Set(SignatureHeader, "t="+strconv.FormatInt(t, 10)+",v1="+s.mac(t, method, path, from, body))
}

// verify checks a call's headers and body, and remembers the signature.
func (s *signer) verify(h http.Header, method, path string, body []byte) (from string, err error) {
	from = h.Get(ReplicaHeader)
	sig := h.Get(SignatureHeader)
	if from == "" || sig == "" {
		return "", fmt.Errorf("%w: no %s or %s header", ErrUnauthenticated, ReplicaHeader, SignatureHeader)
	}
	ts, mac, ok := strings.Cut(sig, ",")
	ts, okT := strings.CutPrefix(ts, "t=")
	mac, okV := strings.CutPrefix(mac, "v1=")
	t, err := strconv.ParseInt(ts, 10, 64)
	if !ok || !okT || !okV || err != nil {
		return "", fmt.Errorf("%w: malformed %s", ErrUnauthenticated, SignatureHeader)
	}
	now := s.now()
	if d := now.Sub(time.Unix(t, 0)); d > s.window || d < -s.window {
		return "", fmt.Errorf("%w: signed %v away from this replica's clock (window %v): check the replicas' clocks", ErrUnauthenticated, d.Round(time.Second), s.window)
	}
	if !hmac.Equal([]byte(mac), []byte(s.mac(t, method, path, from, body))) {
		return "", fmt.Errorf("%w: bad signature from %q: do the replicas share one --cluster-secret-file?", ErrUnauthenticated, from)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if now.After(s.next) {
		for k, until := range s.seen {
			if now.After(until) {
				delete(s.seen, k)
			}
		}
		s.next = now.Add(s.window)
	}
	if _, dup := s.seen[mac]; dup {
		return "", fmt.Errorf("%w: replayed signature from %q", ErrUnauthenticated, from)
	}
	s.seen[mac] = time.Unix(t, 0).Add(2 * s.window)
	return from, nil
}
