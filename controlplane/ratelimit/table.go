package ratelimit

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// shardCount spreads buckets over independently locked shards so that
// concurrent requests from different credentials rarely contend.
const shardCount = 32

// table holds one token bucket per key, bounded in two ways: a bucket idle
// for longer than idle is dropped, and past max buckets the least recently
// used one of the inserting shard is dropped ("LRU-ish": exact per shard,
// approximate across shards).
type table[K comparable] struct {
	limit  rate.Limit
	burst  int
	max    int64
	idle   time.Duration
	seed   maphash.Seed
	count  atomic.Int64
	shards [shardCount]shard[K]
}

type shard[K comparable] struct {
	mu sync.Mutex
	m  map[K]*node[K]
	// Recency list: head is the most recently used, tail the least.
	head, tail *node[K]
}

// node is a bucket's place in its shard: map key and recency links, all
// guarded by the shard's lock.
type node[K comparable] struct {
	entry
	key        K
	lastUsed   time.Time
	prev, next *node[K]
}

// entry is a bucket. mu serialises check-then-take on lim across the two
// tiers (see Limiter.Allow); it is taken only after every shard lock has
// been released, so shard and entry locks never nest.
type entry struct {
	mu    sync.Mutex
	lim   *rate.Limiter
	limit rate.Limit // lim's, copied to avoid taking lim's lock to read it
	// base and baseBurst are the tier's rate and burst; share divides
	// them (the live replicas, each enforcing its part of a cluster-wide
	// limit).
	base      rate.Limit
	baseBurst int
	share     int
}

// setShare makes the bucket enforce 1/share of its tier's rate and burst
// (at least one token of burst), keeping the tokens it holds. Call it
// with e.mu held.
func (e *entry) setShare(share int, now time.Time) {
	if share == e.share {
		return
	}
	e.share = share
	e.limit = e.base / rate.Limit(share)
	e.lim.SetLimitAt(now, e.limit)
	e.lim.SetBurstAt(now, max(1, e.baseBurst/share))
}

func newTable[K comparable](limit rate.Limit, burst, max int, idle time.Duration) *table[K] {
	t := &table[K]{limit: limit, burst: burst, max: int64(max), idle: idle, seed: maphash.MakeSeed()}
	for i := range t.shards {
		t.shards[i].m = make(map[K]*node[K])
	}
	return t
}

// get returns key's bucket, creating it if needed, and marks it used at now.
func (t *table[K]) get(key K, now time.Time) *entry {
	i := int(maphash.Comparable(t.seed, key) % shardCount)
	s := &t.shards[i]
	s.mu.Lock()
	t.dropIdleLocked(s, now)
	if e := s.m[key]; e != nil {
		e.lastUsed = now
		s.moveToFront(e)
		s.mu.Unlock()
		return &e.entry
	}
	e := &node[K]{entry: entry{lim: rate.NewLimiter(t.limit, t.burst), limit: t.limit, base: t.limit, baseBurst: t.burst, share: 1}, key: key, lastUsed: now}
	s.m[key] = e
	s.pushFront(e)
	s.mu.Unlock()
	if t.count.Add(1) > t.max {
		t.evictOne(i, e)
	}
	return &e.entry
}

// dropIdleLocked removes buckets unused for t.idle from the tail; the list
// is in recency order, so it stops at the first one still in use and costs
// O(1) per call plus O(1) per bucket dropped.
func (t *table[K]) dropIdleLocked(s *shard[K], now time.Time) {
	cutoff := now.Add(-t.idle)
	for s.tail != nil && !s.tail.lastUsed.After(cutoff) {
		t.removeLocked(s, s.tail)
	}
}

// evictOne drops the least recently used bucket of shard start, or of the
// next shard holding one, never keep (the bucket just created). Shards are
// locked one at a time, so there is no lock ordering to get wrong.
func (t *table[K]) evictOne(start int, keep *node[K]) {
	for j := range shardCount {
		s := &t.shards[(start+j)%shardCount]
		s.mu.Lock()
		victim := s.tail
		if victim == keep {
			victim = keep.prev
		}
		if victim != nil {
			t.removeLocked(s, victim)
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
	}
}

func (t *table[K]) removeLocked(s *shard[K], e *node[K]) {
	s.unlink(e)
	delete(s.m, e.key)
	t.count.Add(-1)
}

func (t *table[K]) len() int { return int(t.count.Load()) }

func (s *shard[K]) pushFront(e *node[K]) {
	e.prev, e.next = nil, s.head
	if s.head != nil {
		s.head.prev = e
	}
	s.head = e
	if s.tail == nil {
		s.tail = e
	}
}

func (s *shard[K]) unlink(e *node[K]) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		s.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		s.tail = e.prev
	}
	e.prev, e.next = nil, nil
}

func (s *shard[K]) moveToFront(e *node[K]) {
	if s.head == e {
		return
	}
	s.unlink(e)
	s.pushFront(e)
}
