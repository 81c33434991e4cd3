package ratelimit

import (
	"strconv"
	"sync/atomic"
	"testing"

	"golang.org/x/time/rate"
)

// BenchmarkAllow: one credential of one enterprise, limits high enough
// that every call passes (the common case).
func BenchmarkAllow(b *testing.B) {
	l, err := New(Config{PerCredential: rate.Limit(1e12), CredentialBurst: 1 << 30, PerEnterprise: rate.Limit(1e12), EnterpriseBurst: 1 << 30})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		l.Allow("key:abc123", 7)
	}
}

// BenchmarkAllowParallel: 10,000 credentials over 100 enterprises from all
// CPUs at once, mostly refused once the buckets drain (refusal is the path
// an abusive client exercises).
func BenchmarkAllowParallel(b *testing.B) {
	l, err := New(Config{})
	if err != nil {
		b.Fatal(err)
	}
	keys := make([]string, 10_000)
	for i := range keys {
		keys[i] = "key:" + strconv.Itoa(i)
	}
	var next atomic.Uint64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := next.Add(7919)
		for pb.Next() {
			i++
			k := i % uint64(len(keys))
			l.Allow(keys[k], int64(k%100)+1)
		}
	})
}

// BenchmarkAllowChurn: every call a new credential with MaxKeys small, so
// each one creates a bucket and evicts another.
func BenchmarkAllowChurn(b *testing.B) {
	l, err := New(Config{MaxKeys: 1000})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		l.Allow("key:"+strconv.Itoa(i), 1)
	}
}
