package cluster

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/events"
	"github.com/switchboard-pbx/switchboard/controlplane/store"
)

// Bounds of the Broker.
const (
	// fetchQueue bounds the announced ranges waiting to be read from the
	// store; past it they are dropped and the next resync finds them.
	fetchQueue = 4096
	// fetchTimeout bounds one store read of announced events.
	fetchTimeout = 5 * time.Second
	// fetchPage is the most events one read takes (store.ListEvents's cap).
	fetchPage = 5000
)

// Broker is an events.Broker for several replicas. A batch stored here is
// published to this replica's subscribers at once and announced to the
// others (a NOTIFY of its enterprise and sequences, gathered over
// NotifyDelay); a batch another replica announces is read from the store
// and published here, when this replica has subscribers of its enterprise.
// Subscribers' streams put batches in sequence order and read any hole
// from the store (events.Service.Stream), so a batch that arrives late,
// twice or never (resync) costs a read, never an event.
type Broker struct {
	c   *Cluster
	hub *events.Hub

	mu sync.Mutex
	// high is, per enterprise, the highest sequence published here.
	high map[int64]int64

	fetch chan []eventRange
	once  sync.Once
}

var _ events.Broker = (*Broker)(nil)

// traceStage, set by benchmarks (export_test.go), is told when a replica
// moves an event range through a stage of the cross-replica path:
// "stored" (the holder committed it), "notified" (its NOTIFY is sent),
// "heard" (a replica's LISTEN got it), "read" (a subscriber's replica
// read it back and published it).
var traceStage atomic.Pointer[func(replica, stage string, rs []eventRange)]

func trace(replica, stage string, rs []eventRange) {
	if f := traceStage.Load(); f != nil {
		(*f)(replica, stage, rs)
	}
}

func newBroker(c *Cluster, hub *events.Hub) *Broker {
	return &Broker{c: c, hub: hub, high: map[int64]int64{}, fetch: make(chan []eventRange, fetchQueue)}
}

// Broker is the cluster's events broker; nil when not clustered (the
// events service then uses its own Hub).
func (c *Cluster) Broker() *Broker { return c.broker }

// Publish hands a batch stored on this replica to its subscribers and
// announces it to the other replicas.
func (b *Broker) Publish(batch events.Batch) {
	b.hub.Publish(batch)
	b.noteHigh(batch.EnterpriseID, batch.Last)
	r := eventRange{enterprise: batch.EnterpriseID, first: batch.First, last: batch.Last}
	trace(b.c.cfg.ID, "stored", []eventRange{r})
	b.c.pending.add(r)
}

// Subscribe subscribes on this replica's hub.
func (b *Broker) Subscribe(enterpriseID int64, f events.Filter, buffer int) (*events.Subscription, error) {
	return b.hub.Subscribe(enterpriseID, f, buffer)
}

// Hub is the broker's in-process hub (metrics, tests).
func (b *Broker) Hub() *events.Hub { return b.hub }

func (b *Broker) noteHigh(enterpriseID, seq int64) {
	b.mu.Lock()
	if seq > b.high[enterpriseID] {
		b.high[enterpriseID] = seq
	}
	b.mu.Unlock()
}

// remote queues ranges another replica announced. It never blocks the
// LISTEN loop: a full queue drops them (and the next resync reads them).
func (b *Broker) remote(ranges []eventRange) {
	select {
	case b.fetch <- ranges:
	default:
		b.c.log.Warn("announced events queue full; subscribers here catch up at the next resync", "ranges", len(ranges))
	}
}

// run reads announced ranges from the store and publishes them, until ctx
// ends. Ranges that queued up while it read are merged per enterprise,
// so a backlog costs one read per enterprise, not one per batch.
func (b *Broker) run(ctx context.Context) {
	for {
		var rs []eventRange
		select {
		case <-ctx.Done():
			return
		case rs = <-b.fetch:
		}
	drain:
		for len(rs) < fetchMerge {
			select {
			case more := <-b.fetch:
				rs = append(rs, more...)
			default:
				break drain
			}
		}
		for _, r := range mergeRanges(rs) {
			if b.hub.Subscribed(r.enterprise) {
				b.publishRange(ctx, r)
			} else {
				b.noteHigh(r.enterprise, r.last)
			}
		}
	}
}

// fetchMerge bounds the ranges merged into one round of reads.
const fetchMerge = 1024

// mergeRanges turns ranges into one per enterprise, from its lowest first
// to its highest last, in the order enterprises first appear. Reading the
// sequences in between (batches of other replicas, announced separately)
// is safe: every sequence below an announced one is committed, and a
// subscriber skips what it already has.
func mergeRanges(rs []eventRange) []eventRange {
	var out []eventRange
	at := map[int64]int{}
	for _, r := range rs {
		i, ok := at[r.enterprise]
		if !ok {
			at[r.enterprise] = len(out)
			out = append(out, r)
			continue
		}
		out[i].first, out[i].last = min(out[i].first, r.first), max(out[i].last, r.last)
	}
	return out
}

// publishRange reads r's events and publishes them as one batch per page.
func (b *Broker) publishRange(ctx context.Context, r eventRange) {
	for first := r.first; first <= r.last; {
		last := min(r.last, first+fetchPage-1)
		fctx, cancel := context.WithTimeout(ctx, fetchTimeout)
		evs, err := b.c.st.ListEvents(fctx, store.EventFilter{EnterpriseID: r.enterprise, After: first - 1, Limit: int(last - first + 1)})
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				b.c.log.Warn("read announced events; subscribers read them when the next batch shows the hole", "enterprise_id", r.enterprise, "first", first, "last", last, "err", err)
			}
			return
		}
		batch := events.Batch{EnterpriseID: r.enterprise, First: first, Last: last, Items: make([]events.Item, 0, len(evs))}
		for _, se := range evs {
			if se.Seq > last {
				break
			}
			data, err := events.EncodeEvent(se)
			if err != nil {
				continue // the subscriber reads it back from the store
			}
			batch.Items = append(batch.Items, events.Item{Seq: se.Seq, AgentID: se.AgentID, Type: se.Event.Type, JSON: data})
		}
		b.hub.Publish(batch)
		b.noteHigh(r.enterprise, last)
		trace(b.c.cfg.ID, "read", []eventRange{{enterprise: r.enterprise, first: first, last: last}})
		first = last + 1
	}
}

// resync compares each subscribed enterprise's latest stored sequence
// with the highest published here. Where the store is ahead, an
// announcement was missed (the LISTEN connection dropped, a replica died
// between storing a batch and announcing it): the latest event is
// published again, and every subscriber that lacks what came before it
// sees the hole and reads it from the store. Subscribers that have it
// skip it.
func (b *Broker) resync(ctx context.Context) {
	ents := b.hub.Enterprises()
	if len(ents) == 0 {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	latest, err := b.c.st.LastEventSeqs(rctx, ents)
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			b.c.log.Warn("resync event subscribers", "err", err)
		}
		return
	}
	var behind []eventRange
	b.mu.Lock()
	for _, e := range ents {
		if l := latest[e]; l > b.high[e] {
			behind = append(behind, eventRange{enterprise: e, first: l, last: l})
		}
	}
	// Enterprises nobody here subscribes to any more are forgotten.
	for e := range b.high {
		if _, ok := latest[e]; !ok && !b.hub.Subscribed(e) {
			delete(b.high, e)
		}
	}
	b.mu.Unlock()
	for _, r := range behind {
		b.publishRange(ctx, r)
	}
	if len(behind) > 0 {
		b.c.cfg.Observer.Resynced(len(behind))
	}
}
