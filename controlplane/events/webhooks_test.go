package events_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/api"
	"github.com/switchboard-pbx/switchboard/controlplane/auth"
	"github.com/switchboard-pbx/switchboard/controlplane/events"
	"github.com/switchboard-pbx/switchboard/controlplane/store"
	"github.com/switchboard-pbx/switchboard/controlplane/store/storetest"
	"github.com/switchboard-pbx/switchboard/protocol"
)

// receiver is a webhook endpoint that can be stopped and restarted on
// the same address, answers 500 to its first failFirst requests, and
// checks every signature the way a real receiver would.
type receiver struct {
	t      testing.TB
	secret string
	addr   string

	mu        sync.Mutex
	srv       *http.Server
	done      chan struct{}
	failFirst int
	requests  int
	badSig    int
	// byID: every request body per Switchboard-Delivery id, in order.
	byID     map[string][][]byte
	attempts map[string][]string
}

func newReceiver(t testing.TB, failFirst int) *receiver {
	t.Helper()
	r := &receiver{t: t, failFirst: failFirst, byID: map[string][][]byte{}, attempts: map[string][]string{}}
	r.start()
	t.Cleanup(r.stop)
	return r
}

func (r *receiver) url() string { return "http://" + r.addr + "/hook" }

func (r *receiver) setSecret(s string) {
	r.mu.Lock()
	r.secret = s
	r.mu.Unlock()
}

func (r *receiver) start() {
	r.t.Helper()
	addr := r.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var ln net.Listener
	var err error
	deadline := time.Now().Add(waitTimeout)
	for {
		if ln, err = net.Listen("tcp", addr); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(pollEvery)
	}
	if err != nil {
		r.t.Fatal(err)
	}
	r.addr = ln.Addr().String()
	srv := &http.Server{Handler: http.HandlerFunc(r.serve), ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	r.mu.Lock()
	r.srv, r.done = srv, done
	r.mu.Unlock()
}

// stop closes the listener and every connection: deliveries fail with
// "connection refused" until start.
func (r *receiver) stop() {
	r.mu.Lock()
	srv, done := r.srv, r.done
	r.srv = nil
	r.mu.Unlock()
	if srv != nil {
		srv.Close()
		<-done
	}
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests++
	if events.Verify(r.secret, req.Header.Get(events.SignatureHeader), body, time.Now(), 5*time.Minute) != nil {
		r.badSig++
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	id := req.Header.Get(events.DeliveryHeader)
	r.byID[id] = append(r.byID[id], body)
	r.attempts[id] = append(r.attempts[id], req.Header.Get(events.AttemptHeader))
	if r.requests <= r.failFirst {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// delivered reports the ids answered 2xx: with failFirst, an id's last
// request succeeded when it came after the failures.
func (r *receiver) snapshot() (ids map[string][][]byte, badSig, requests int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ids = make(map[string][][]byte, len(r.byID))
	for k, v := range r.byID {
		ids[k] = v
	}
	return ids, r.badSig, r.requests
}

type deliveriesPage struct {
	Deliveries []struct {
		ID             string `json:"id"`
		Seq            int64  `json:"seq"`
		EventType      string `json:"event_type"`
		Status         string `json:"status"`
		Attempts       int    `json:"attempts"`
		LastStatusCode int    `json:"last_status_code"`
		LastError      string `json:"last_error"`
		AttemptLog     []struct {
			Attempt    int    `json:"attempt"`
			StatusCode int    `json:"status_code"`
			Error      string `json:"error"`
		} `json:"attempt_log"`
	} `json:"deliveries"`
	NextCursor string `json:"next_cursor"`
}

func (e *env) deliveries(t *testing.T, key, id string) deliveriesPage {
	t.Helper()
	r := e.do(t, "GET", "/v1/webhooks/"+id+"/deliveries", key, nil)
	if r.status != 200 {
		t.Fatalf("deliveries = %d %s", r.status, r.body)
	}
	var p deliveriesPage
	r.decode(t, &p)
	return p
}

var fastRetries = events.Config{RetryInitial: 30 * time.Millisecond, RetryMax: 150 * time.Millisecond,
	DeliveryPollInterval: 20 * time.Millisecond, AttemptTimeout: 2 * time.Second, MaxAttempts: 50}

// TestWebhooks: signed deliveries a receiver can verify, retried after
// 500s and while the receiver is down, the same delivery id on every
// attempt, and the attempts listed.
func TestWebhooks(t *testing.T) {
	t.Parallel()
	for _, engine := range storetest.Engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOptions{engine: engine, quiet: true, cfg: fastRetries})
			tn := e.tenant(t, "0367")
			other := e.tenant(t, "0420")
			p := e.addPBX(t, "0367")
			rcv := newReceiver(t, 2)

			r := e.do(t, "POST", "/v1/webhooks", tn.key, map[string]any{"url": rcv.url(),
				"event_types": []string{protocol.EventCallStarted, protocol.EventCallEnded}, "description": "CRM"})
			if r.status != 201 {
				t.Fatalf("create = %d %s", r.status, r.body)
			}
			var wh struct {
				ID, Secret string
				EventTypes []string `json:"event_types"`
			}
			r.decode(t, &wh)
			if !strings.HasPrefix(wh.Secret, "whsec_") || len(wh.EventTypes) != 2 || r.header.Get("Location") != "/v1/webhooks/"+wh.ID {
				t.Fatalf("created = %s", r.body)
			}
			rcv.setSecret(wh.Secret)
			// The secret is shown once.
			if r := e.do(t, "GET", "/v1/webhooks/"+wh.ID, tn.key, nil); r.status != 200 || strings.Contains(string(r.body), wh.Secret) {
				t.Fatalf("GET webhook = %d %s", r.status, r.body)
			}
			if r := e.do(t, "GET", "/v1/webhooks", tn.key, nil); r.status != 200 || strings.Contains(string(r.body), "secret") || !strings.Contains(string(r.body), wh.ID) {
				t.Fatalf("list = %d %s", r.status, r.body)
			}

			// A call: started and ended are wanted, answered and bridged not.
			id, err := p.AMI.StartCall("150", "151")
			if err != nil {
				t.Fatal(err)
			}
			eventually(t, "call answered", func() bool {
				_, err := e.store().CallByID(context.Background(), tn.ent.ID, "", id)
				return err == nil
			})
			if err := p.AMI.Hangup(id, 16); err != nil {
				t.Fatal(err)
			}
			eventually(t, "both deliveries succeed after two 500s", func() bool {
				d := e.deliveries(t, tn.key, wh.ID)
				return len(d.Deliveries) == 2 && d.Deliveries[0].Status == "delivered" && d.Deliveries[1].Status == "delivered"
			})
			ids, bad, _ := rcv.snapshot()
			if bad != 0 || len(ids) != 2 {
				t.Fatalf("receiver: %d ids, %d bad signatures", len(ids), bad)
			}
			retried := 0
			for did, bodies := range ids {
				var ev events.Event
				if err := json.Unmarshal(bodies[0], &ev); err != nil {
					t.Fatal(err)
				}
				if did != events.DeliveryID(wh.ID, ev.Seq) || ev.CallID != id || ev.PBX != p.ID ||
					(ev.Type != protocol.EventCallStarted && ev.Type != protocol.EventCallEnded) {
					t.Fatalf("delivery %s carried %s", did, bodies[0])
				}
				for _, b := range bodies[1:] {
					if string(b) != string(bodies[0]) {
						t.Fatalf("delivery %s: a retry sent another body", did)
					}
				}
				if len(bodies) > 1 {
					retried++
				}
			}
			if retried == 0 {
				t.Fatal("no delivery was retried after the 500s")
			}
			d := e.deliveries(t, tn.key, wh.ID)
			saw500 := false
			for _, dl := range d.Deliveries {
				for _, a := range dl.AttemptLog {
					saw500 = saw500 || (a.StatusCode == 500 && a.Error == "HTTP 500")
				}
				if dl.LastStatusCode != 204 || dl.Attempts != len(dl.AttemptLog) {
					t.Fatalf("delivery = %+v", dl)
				}
			}
			if !saw500 {
				t.Fatalf("attempt log lacks the 500s: %+v", d)
			}
			// The same attempts, as /metrics counts them.
			okN, errN, retries := e.metric(t, `switchboard_webhook_deliveries_total{result="ok"}`),
				e.metric(t, `switchboard_webhook_deliveries_total{result="error"}`), e.metric(t, "switchboard_webhook_retries_total")
			attempts := 0
			for _, dl := range d.Deliveries {
				attempts += dl.Attempts
			}
			if okN != 2 || errN != float64(attempts-2) || retries != float64(attempts-2) ||
				e.metric(t, `switchboard_events_delivered_total{sink="webhook"}`) != 2 {
				t.Fatalf("metrics: ok %v, error %v, retries %v; want 2, %d, %d", okN, errN, retries, attempts-2, attempts-2)
			}

			// The receiver goes down: attempts fail and are retried; it comes
			// back and gets the events.
			rcv.stop()
			id2, err := p.AMI.StartCall("150", "152")
			if err != nil {
				t.Fatal(err)
			}
			eventually(t, "an attempt failed against the stopped receiver", func() bool {
				for _, dl := range e.deliveries(t, tn.key, wh.ID).Deliveries {
					if dl.Status == "pending" && dl.Attempts >= 1 && dl.LastError != "" {
						return true
					}
				}
				return false
			})
			rcv.start()
			if err := p.AMI.Hangup(id2, 16); err != nil {
				t.Fatal(err)
			}
			eventually(t, "deliveries after the receiver came back", func() bool {
				d := e.deliveries(t, tn.key, wh.ID)
				if len(d.Deliveries) != 4 {
					return false
				}
				for _, dl := range d.Deliveries {
					if dl.Status != "delivered" {
						return false
					}
				}
				return true
			})
			if ids, bad, _ := rcv.snapshot(); len(ids) != 4 || bad != 0 {
				t.Fatalf("receiver has %d ids, %d bad signatures", len(ids), bad)
			}

			// Tenancy, and deletion.
			for _, path := range []string{"/v1/webhooks/" + wh.ID, "/v1/webhooks/" + wh.ID + "/deliveries"} {
				if r := e.do(t, "GET", path, other.key, nil); r.status != 404 {
					t.Fatalf("other enterprise GET %s = %d", path, r.status)
				}
			}
			if r := e.do(t, "DELETE", "/v1/webhooks/"+wh.ID, other.key, nil); r.status != 404 {
				t.Fatalf("other enterprise DELETE = %d", r.status)
			}
			if r := e.do(t, "DELETE", "/v1/webhooks/"+wh.ID, tn.key, nil); r.status != 204 {
				t.Fatalf("DELETE = %d %s", r.status, r.body)
			}
			if r := e.do(t, "GET", "/v1/webhooks/"+wh.ID, tn.key, nil); r.status != 404 {
				t.Fatalf("GET after delete = %d", r.status)
			}
			// The audit rows are written just after the replies.
			var audit []store.AuditEntry
			eventually(t, "both audit rows", func() bool {
				audit, _, _ = e.store().ListAudit(context.Background(), tn.ent.ID, "", 10)
				return len(audit) >= 2
			})
			if len(audit) != 2 || audit[0].Action != api.AuditWebhookDelete || audit[1].Action != api.AuditWebhookCreate {
				t.Fatalf("audit = %+v", audit)
			}
		})
	}
}

// TestWebhookRequests: what creation refuses, and who may manage.
func TestWebhookRequests(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{quiet: true})
	tn := e.tenant(t, "0367")
	e.tenant(t, "0420")
	foreign := e.injector(t, "0420")
	operator := e.jwt(t, "0367", "op-1", auth.RoleOperator)
	supervisor := e.jwt(t, "0367", "sup-1", auth.RoleSupervisor)
	noEvents := e.apiKey(t, "0367", auth.ScopeOriginate)
	for _, tc := range []struct {
		name, token string
		body        any
		status      int
		says        string
	}{
		{"not http", tn.key, map[string]any{"url": "ftp://example.com/"}, 400, "scheme"},
		{"no url", tn.key, map[string]any{}, 400, "url is required"},
		{"credentials in url", tn.key, map[string]any{"url": "https://u:p@example.com/"}, 400, "credentials"},
		{"unknown type", tn.key, map[string]any{"url": "https://example.com/", "event_types": []string{"call.exploded"}}, 400, "unknown event type"},
		{"unknown field", tn.key, map[string]any{"url": "https://example.com/", "retries": 3}, 400, "unknown field"},
		{"short secret", tn.key, map[string]any{"url": "https://example.com/", "secret": "short"}, 400, "secret"},
		{"not json", tn.key, "{", 400, "JSON"},
		{"pbx of another enterprise", tn.key, map[string]any{"url": "https://example.com/", "pbx": foreign.ag.ID}, 404, "not found"},
		{"operator role", operator, map[string]any{"url": "https://example.com/"}, 403, "supervisor"},
		{"no events:read", noEvents, map[string]any{"url": "https://example.com/"}, 403, "events:read"},
		{"supervisor", supervisor, map[string]any{"url": "https://example.com/", "secret": "0123456789abcdef"}, 201, `"secret":"0123456789abcdef"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(t, "POST", "/v1/webhooks", tc.token, tc.body)
			if r.status != tc.status || !strings.Contains(string(r.body), tc.says) {
				t.Fatalf("POST = %d %s, want %d containing %q", r.status, r.body, tc.status, tc.says)
			}
		})
	}
}

// TestWebhookSSRF: with private targets refused (the default), URLs that
// name or resolve to internal addresses are refused at creation.
func TestWebhookSSRF(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{quiet: true, strictTargets: true})
	tn := e.tenant(t, "0367")
	for _, u := range []string{"http://127.0.0.1:8080/", "http://localhost/", "http://10.1.2.3/", "http://[::1]/",
		"http://169.254.169.254/latest/meta-data/", "http://192.168.0.1/", "http://[::ffff:127.0.0.1]/", "http://0.0.0.0/"} {
		r := e.do(t, "POST", "/v1/webhooks", tn.key, map[string]any{"url": u})
		if r.status != 400 {
			t.Errorf("POST %s = %d %s, want 400", u, r.status, r.body)
		}
	}
}
