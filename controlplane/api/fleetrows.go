package api

import (
	"strconv"
	"sync"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/fleet"
	"github.com/switchboard-pbx/switchboard/controlplane/store"
	"github.com/switchboard-pbx/switchboard/protocol"
)

// fleetRows keeps each agent's encoded row of GET /v1/fleet. Encoding
// 10,000 rows with reflection on every request was most of its time and
// 21 MB of garbage per request (a heap profile of the 10,000-PBX run); a
// row only changes when its store row, its connection or its last status
// does, and an idle agent reports once per heartbeat, so most rows of a
// request are the previous request's bytes.
type fleetRows struct {
	mu sync.Mutex
	m  map[string]*fleetRow
}

// fleetRow is one agent's row and what it was encoded from.
type fleetRow struct {
	ag       store.Agent
	conn     *fleet.Conn
	statusAt time.Time
	json     []byte
}

// fresh reports whether r still shows ag on conn with the status of at.
func (r *fleetRow) fresh(ag store.Agent, conn *fleet.Conn, at time.Time) bool {
	return r.conn == conn && r.statusAt.Equal(at) && r.ag.ID == ag.ID && r.ag.EnterpriseNumber == ag.EnterpriseNumber &&
		r.ag.Name == ag.Name && r.ag.Context == ag.Context && r.ag.RevokedAt.Equal(ag.RevokedAt) && r.ag.LastSeenAt.Equal(ag.LastSeenAt)
}

// row returns the encoded row of ag (conn nil: not connected); the slice
// must not be modified.
func (f *fleetRows) row(ag store.Agent, conn *fleet.Conn) ([]byte, error) {
	var st protocol.Status
	var at time.Time
	if conn != nil {
		st, at = conn.Status()
	}
	f.mu.Lock()
	r := f.m[ag.ID]
	f.mu.Unlock()
	if r != nil && r.fresh(ag, conn, at) {
		return r.json, nil
	}
	b, err := marshalNoHTML(fleetAgent{Enterprise: ag.EnterpriseNumber, Revoked: ag.Revoked(), pbxView: viewPBXAt(ag, conn, st, at)})
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	if f.m == nil {
		f.m = map[string]*fleetRow{}
	}
	f.m[ag.ID] = &fleetRow{ag: ag, conn: conn, statusAt: at, json: b}
	f.mu.Unlock()
	return b, nil
}

// prune drops the rows of agents no longer in the fleet (deleted), once
// they are as many as the live ones.
func (f *fleetRows) prune(all []store.Agent) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.m) <= 2*len(all) {
		return
	}
	keep := make(map[string]*fleetRow, len(all))
	for _, ag := range all {
		if r, ok := f.m[ag.ID]; ok {
			keep[ag.ID] = r
		}
	}
	f.m = keep
}

// fleetBufs are the response buffers of GET /v1/fleet (3.6 MB for
// 10,000 rows), reused instead of allocated per request. Not a
// sync.Pool: the GC empties that, and under load it runs between two
// requests. Requests beyond the kept buffers allocate their own.
var fleetBufs = make(chan *[]byte, 2)

func getFleetBuf() *[]byte {
	select {
	case b := <-fleetBufs:
		return b
	default:
		return new([]byte)
	}
}

func putFleetBuf(b *[]byte) {
	select {
	case fleetBufs <- b:
	default:
	}
}

// fleetPick is an agent on the requested page (ag points into the
// shared agent list).
type fleetPick struct {
	ag   *store.Agent
	conn *fleet.Conn
}

// replyFleet sets the reply: the same JSON encode gives fleetResponse,
// written from cached rows into a pooled buffer that is reused once the
// reply is flushed.
func (a *API) replyFleet(c *call, totals fleetTotals, matched int, page []fleetPick, next string) error {
	if !c.authorized {
		panic("api: route " + c.rt.pattern() + " replied without authorizing")
	}
	bp := getFleetBuf()
	b := append((*bp)[:0], `{"totals":`...)
	t, err := marshalNoHTML(totals)
	if err != nil {
		return err
	}
	b = append(b, t...)
	b = append(b, `,"matched":`...)
	b = strconv.AppendInt(b, int64(matched), 10)
	b = append(b, `,"agents":[`...)
	for i, p := range page {
		if i > 0 {
			b = append(b, ',')
		}
		row, err := a.fleetRows.row(*p.ag, p.conn)
		if err != nil {
			return err
		}
		b = append(b, row...)
	}
	b = append(b, ']')
	if next != "" {
		cur, err := marshalNoHTML(next)
		if err != nil {
			return err
		}
		b = append(append(b, `,"next_cursor":`...), cur...)
	}
	b = append(b, "}\n"...)
	c.status, c.body = 200, b
	c.release = func() {
		*bp = b[:0]
		putFleetBuf(bp)
	}
	return nil
}
