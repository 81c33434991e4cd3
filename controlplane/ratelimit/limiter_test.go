package ratelimit

import (
	"fmt"
	"hash/maphash"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *testClock { return &testClock{t: time.Unix(1_700_000_000, 0)} }

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newLimiter(t testing.TB, cfg Config) (*Limiter, *testClock) {
	t.Helper()
	clk := newClock()
	cfg.Now = clk.Now
	l, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l, clk
}

// step is one call to Allow after advancing the clock.
type step struct {
	advance   time.Duration
	cred      string
	ent       int64
	wantOK    bool
	wantRetry time.Duration
}

func run(t *testing.T, l *Limiter, clk *testClock, steps []step) {
	t.Helper()
	for i, s := range steps {
		clk.Advance(s.advance)
		ok, retry := l.Allow(s.cred, s.ent)
		if ok != s.wantOK || retry != s.wantRetry {
			t.Fatalf("step %d (%s, %d): Allow = %v, %v; want %v, %v", i, s.cred, s.ent, ok, retry, s.wantOK, s.wantRetry)
		}
	}
}

func TestAllow(t *testing.T) {
	tests := []struct {
		name  string
		cfg   Config
		steps []step
	}{
		{
			name: "credential burst then refill",
			cfg:  Config{PerCredential: 2, CredentialBurst: 3, PerEnterprise: rate.Inf},
			steps: []step{
				{0, "k", 1, true, 0}, {0, "k", 1, true, 0}, {0, "k", 1, true, 0},
				{0, "k", 1, false, 500 * time.Millisecond},
				{0, "k", 1, false, 500 * time.Millisecond}, // a refusal costs nothing
				{499 * time.Millisecond, "k", 1, false, time.Millisecond},
				{time.Millisecond, "k", 1, true, 0},
				{0, "other", 1, true, 0}, // credentials are independent
			},
		},
		{
			name: "enterprise shared by its credentials",
			cfg:  Config{PerCredential: 100, CredentialBurst: 100, PerEnterprise: 4, EnterpriseBurst: 3},
			steps: []step{
				{0, "a", 1, true, 0}, {0, "b", 1, true, 0}, {0, "c", 1, true, 0},
				{0, "d", 1, false, 250 * time.Millisecond},
				{0, "x", 2, true, 0}, // another enterprise is unaffected
				{250 * time.Millisecond, "d", 1, true, 0},
			},
		},
		{
			name: "refused by enterprise takes no credential token",
			cfg:  Config{PerCredential: 1, CredentialBurst: 2, PerEnterprise: 1, EnterpriseBurst: 1},
			steps: []step{
				{0, "k", 1, true, 0},
				{0, "k", 1, false, time.Second}, // enterprise 1 empty
				{0, "k", 2, true, 0},            // credential still had its second token
				{0, "k", 3, false, time.Second}, // now the credential is empty
			},
		},
		{
			name: "refused by credential takes no enterprise token",
			cfg:  Config{PerCredential: 1, CredentialBurst: 1, PerEnterprise: 1, EnterpriseBurst: 2},
			steps: []step{
				{0, "k", 1, true, 0},
				{0, "k", 1, false, time.Second},
				{0, "j", 1, true, 0}, // enterprise still had its second token
				{0, "i", 1, false, time.Second},
			},
		},
		{
			name: "retry-after is the longer wait of the two",
			cfg:  Config{PerCredential: 1, CredentialBurst: 1, PerEnterprise: 10, EnterpriseBurst: 1},
			steps: []step{
				{0, "k", 1, true, 0},
				{0, "k", 1, false, time.Second},
				{100 * time.Millisecond, "j", 1, true, 0},
				{0, "k", 1, false, 900 * time.Millisecond},
			},
		},
		{
			name: "enterprise 0 skips the enterprise bucket",
			cfg:  Config{PerCredential: 10, CredentialBurst: 2, PerEnterprise: 1, EnterpriseBurst: 1},
			steps: []step{
				{0, "op:root", 0, true, 0}, {0, "op:root", 0, true, 0},
				{0, "op:root", 0, false, 100 * time.Millisecond},
			},
		},
		{
			name: "rate.Inf switches a tier off",
			cfg:  Config{PerCredential: rate.Inf, PerEnterprise: 1, EnterpriseBurst: 1},
			steps: []step{
				{0, "a", 1, true, 0}, {0, "b", 1, false, time.Second}, {0, "c", 0, true, 0}, {0, "c", 0, true, 0},
			},
		},
		{
			name: "defaults: 40 per credential at once, then 20/s",
			cfg:  Config{},
			steps: append(repeat(step{0, "k", 1, true, 0}, DefaultCredentialBurst),
				step{0, "k", 1, false, 50 * time.Millisecond},
				step{50 * time.Millisecond, "k", 1, true, 0}),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, clk := newLimiter(t, tc.cfg)
			run(t, l, clk, tc.steps)
		})
	}
}

func repeat(s step, n int) []step {
	out := make([]step, n)
	for i := range out {
		out[i] = s
	}
	return out
}

func TestDefaultEnterpriseLimit(t *testing.T) {
	l, _ := newLimiter(t, Config{})
	allowed := 0
	for i := range 1000 {
		if ok, _ := l.Allow(fmt.Sprintf("key:%d", i), 1); ok {
			allowed++
		}
	}
	if allowed != DefaultEnterpriseBurst {
		t.Fatalf("1000 credentials of one enterprise at once: %d allowed, want %d", allowed, DefaultEnterpriseBurst)
	}
}

func TestIdleBucketsDropped(t *testing.T) {
	l, clk := newLimiter(t, Config{IdleTTL: 10 * time.Second})
	for i := range 500 {
		l.Allow(fmt.Sprintf("old:%d", i), int64(i+1))
	}
	clk.Advance(5 * time.Second)
	l.Allow("kept", 1) // used again halfway: must survive
	clk.Advance(5 * time.Second)
	// 1000 new keys touch every shard with near certainty (the chance of
	// missing one of 32 shards is below 1e-12); each touch drops the
	// shard's idle buckets.
	for i := range 1000 {
		l.Allow(fmt.Sprintf("new:%d", i), int64(1000+i))
	}
	creds, ents := l.Buckets()
	if creds != 1001 || ents != 1001 {
		t.Fatalf("buckets: %d credentials, %d enterprises; want 1001 each (old ones idle for 10 s)", creds, ents)
	}
}

// sameShard returns n distinct keys that land in one shard of tab.
func sameShard(tab *table[string], n int) []string {
	var keys []string
	want := -1
	for i := 0; len(keys) < n; i++ {
		k := fmt.Sprintf("key:%d", i)
		s := int(maphash.Comparable(tab.seed, k) % shardCount)
		if want == -1 {
			want = s
		}
		if s == want {
			keys = append(keys, k)
		}
	}
	return keys
}

func TestMaxKeys(t *testing.T) {
	t.Run("hard cap", func(t *testing.T) {
		l, _ := newLimiter(t, Config{MaxKeys: 5})
		for i := range 200 {
			l.Allow(fmt.Sprintf("k%d", i), int64(i+1))
		}
		if c, e := l.Buckets(); c != 5 || e != 5 {
			t.Fatalf("buckets %d, %d; want 5, 5", c, e)
		}
	})
	t.Run("least recently used goes first", func(t *testing.T) {
		l, _ := newLimiter(t, Config{PerCredential: 1, CredentialBurst: 1, PerEnterprise: rate.Inf, MaxKeys: 2})
		k := sameShard(l.creds, 3)
		mustAllow := func(key string, want bool) {
			t.Helper()
			if ok, _ := l.Allow(key, 1); ok != want {
				t.Fatalf("Allow(%s) = %v, want %v", key, ok, want)
			}
		}
		mustAllow(k[0], true)  // k0 drained
		mustAllow(k[1], true)  // k1 drained
		mustAllow(k[0], false) // k0 used again: k1 is now least recent
		mustAllow(k[2], true)  // over the cap: k1 dropped
		mustAllow(k[0], false) // k0 kept its state
		mustAllow(k[1], true)  // k1 came back with a fresh bucket (k2 dropped)
		if c, _ := l.Buckets(); c != 2 {
			t.Fatalf("%d buckets, want 2", c)
		}
	})
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		cfg  Config
		want string
	}{
		{Config{PerCredential: -1}, "credential rate -1 is negative"},
		{Config{EnterpriseBurst: -1}, "enterprise burst -1 is negative"},
		{Config{MaxKeys: -1}, "MaxKeys -1 is negative"},
		{Config{IdleTTL: time.Second}, "IdleTTL 1s is shorter than the credential bucket's refill time 2s"},
		{Config{PerCredential: rate.Inf, IdleTTL: time.Second, PerEnterprise: 1, EnterpriseBurst: 5}, "enterprise bucket's refill time 5s"},
	}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			if _, err := New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New error %v, want %q", err, tc.want)
			}
		})
	}
	if _, err := New(Config{PerCredential: rate.Inf, PerEnterprise: rate.Inf, IdleTTL: time.Nanosecond}); err != nil {
		t.Fatalf("both tiers off: %v", err)
	}
}

// TestConcurrentExact: with the clock stopped, however many goroutines
// race, exactly burst requests pass per bucket, and the enterprise bucket
// is never drained by refused requests.
func TestConcurrentExact(t *testing.T) {
	l, clk := newLimiter(t, Config{PerCredential: 1, CredentialBurst: 10, PerEnterprise: 1, EnterpriseBurst: 25, MaxKeys: 1000})
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				if ok, _ := l.Allow(fmt.Sprintf("k%d", (g+i)%4), 1); ok {
					allowed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	// 4 credentials × 10 = 40 > 25: the enterprise is the limit.
	if allowed.Load() != 25 {
		t.Fatalf("%d allowed, want 25", allowed.Load())
	}
	// No debt was left behind: after exactly one refill interval per
	// token, the enterprise has exactly that many tokens again.
	clk.Advance(3 * time.Second)
	got := 0
	for i := range 10 {
		if ok, _ := l.Allow(fmt.Sprintf("fresh%d", i), 1); ok {
			got++
		}
	}
	if got != 3 {
		t.Fatalf("after 3 s at 1/s: %d allowed, want 3", got)
	}
}

func TestConcurrentEviction(t *testing.T) {
	l, clk := newLimiter(t, Config{MaxKeys: 16, IdleTTL: 10 * time.Second})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				l.Allow(fmt.Sprintf("g%d-k%d", g, i%97), int64(i%13+1))
				if i%500 == 0 {
					clk.Advance(time.Second)
				}
			}
		})
	}
	wg.Wait()
	c, e := l.Buckets()
	if c > 16 || e > 13 || c < 1 {
		t.Fatalf("buckets %d, %d: want ≤ 16 credentials and ≤ 13 enterprises", c, e)
	}
	// The recency lists agree with the maps after all that.
	for name, n := range map[string]int{"creds": checkTable(t, l.creds), "ents": checkTable(t, l.ents)} {
		if (name == "creds" && n != c) || (name == "ents" && n != e) {
			t.Fatalf("%s: lists hold %d, count says otherwise", name, n)
		}
	}
}

func checkTable[K comparable](t *testing.T, tab *table[K]) int {
	t.Helper()
	total := 0
	for i := range tab.shards {
		s := &tab.shards[i]
		s.mu.Lock()
		n := 0
		var prev *node[K]
		for e := s.head; e != nil; e = e.next {
			if e.prev != prev || s.m[e.key] != e {
				t.Errorf("shard %d: list and map disagree", i)
			}
			prev = e
			n++
		}
		if s.tail != prev || n != len(s.m) {
			t.Errorf("shard %d: %d in list, %d in map", i, n, len(s.m))
		}
		s.mu.Unlock()
		total += n
	}
	return total
}
