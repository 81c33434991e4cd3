package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/controlplane/events"
	"github.com/switchboard-pbx/switchboard/internal/testio"
)

const testEvent = `{"seq":42,"pbx":"agt_1","type":"call.ended","time":"2026-11-24T10:42:20Z","call_id":"sb-1","from":"150","to":"+375296254070","status":"completed","cause":16,"cause_text":"Normal Clearing","duration_s":13,"billsec_s":11}`

// post sends one delivery as the control plane would, with sig as the
// signature header ("" for none).
func post(t *testing.T, url, method, sig, body string) int {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if sig != "" {
		req.Header.Set(events.SignatureHeader, sig)
	}
	req.Header.Set(events.DeliveryHeader, "whk_1:42")
	req.Header.Set(events.EventHeader, "call.ended")
	req.Header.Set(events.AttemptHeader, "2")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func TestWebhookReceiver(t *testing.T) {
	now := time.Date(2026, 11, 24, 10, 42, 21, 0, time.UTC)
	good := events.Sign("s3cret", now, []byte(testEvent))
	tests := []struct {
		name   string
		method string
		sig    string
		body   string
		status int
		line   string // a regexp of the printed line
	}{
		{"verified", "POST", good, testEvent, 200,
			`^\d\d:\d\d:\d\d  200 verified  whk_1:42  attempt 2  call\.ended  seq 42  call sb-1  150 → \+375296254070  completed  16 Normal Clearing, 13s \(billed 11s\)$`},
		{"wrong secret", "POST", events.Sign("other", now, []byte(testEvent)), testEvent, 401,
			`^\d\d:\d\d:\d\d  401 REJECTED  whk_1:42  attempt 2  call\.ended  webhook signature does not match$`},
		{"body changed", "POST", good, strings.Replace(testEvent, "150", "151", 1), 401, `401 REJECTED .*signature does not match$`},
		{"replayed an hour later", "POST", events.Sign("s3cret", now.Add(-time.Hour), []byte(testEvent)), testEvent, 401, `401 REJECTED .*outside tolerance$`},
		{"no signature", "POST", "", testEvent, 401, `401 REJECTED .*no Switchboard-Signature header$`},
		{"malformed signature", "POST", "v1=zz", testEvent, 401, `401 REJECTED .*malformed header$`},
		{"not a POST", "GET", good, "", 405, `405 REJECTED .*GET is not a delivery`},
		{"too big", "POST", good, strings.Repeat("x", 1001), 413, `413 REJECTED .*larger than 1000 bytes \(--max-body-bytes\)$`},
		{"verified, not JSON", "POST", events.Sign("s3cret", now, []byte("hello")), "hello", 200, `200 verified .*\(the body is not a JSON event\)$`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out testio.Buffer
			srv := httptest.NewServer(&receiver{secret: "s3cret", tolerance: 5 * time.Minute, maxBody: 1000, now: func() time.Time { return now }, out: &out})
			defer srv.Close()
			if got := post(t, srv.URL+"/hook", tc.method, tc.sig, tc.body); got != tc.status {
				t.Fatalf("answered %d, want %d", got, tc.status)
			}
			line := strings.TrimSuffix(out.String(), "\n")
			if strings.Count(out.String(), "\n") != 1 || !regexp.MustCompile(tc.line).MatchString(line) {
				t.Fatalf("printed %q, want one line matching %s", out.String(), tc.line)
			}
		})
	}
}

func TestWebhookReceiverJSON(t *testing.T) {
	now := time.Now()
	var out testio.Buffer
	srv := httptest.NewServer(&receiver{secret: "s3cret", tolerance: time.Minute, maxBody: defaultWebhookBodyLimit, now: time.Now, out: &out, json: true})
	defer srv.Close()
	post(t, srv.URL, "POST", events.Sign("s3cret", now, []byte(testEvent)), testEvent)
	post(t, srv.URL, "POST", events.Sign("nope", now, []byte(testEvent)), testEvent)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("printed %q, want two lines", out.String())
	}
	var ok, bad struct {
		Status   int             `json:"status"`
		Verified bool            `json:"verified"`
		Error    string          `json:"error"`
		Delivery string          `json:"delivery"`
		Event    json.RawMessage `json:"event"`
	}
	if json.Unmarshal([]byte(lines[0]), &ok) != nil || !ok.Verified || ok.Status != 200 || ok.Delivery != "whk_1:42" || !bytes.Equal(ok.Event, []byte(testEvent)) {
		t.Fatalf("verified delivery as JSON: %s", lines[0])
	}
	if json.Unmarshal([]byte(lines[1]), &bad) != nil || bad.Verified || bad.Status != 401 || bad.Error == "" || bad.Event != nil {
		t.Fatalf("rejected delivery as JSON: %s", lines[1])
	}
}

// The command itself: listens, prints where, serves until Ctrl-C.
func TestWebhookListenCommand(t *testing.T) {
	secretFile := writeSecret(t, "whsec", "s3cret")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr testio.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"webhook", "listen", "--listen", "127.0.0.1:0", "--secret-file", secretFile}, &stdout, &stderr)
	}()
	addr := regexp.MustCompile(`on (http://127\.0\.0\.1:\d+)/ \(Ctrl-C stops\)`)
	deadline := time.Now().Add(10 * time.Second)
	for !addr.MatchString(stderr.String()) {
		if time.Now().After(deadline) {
			t.Fatalf("never said where it listens: %q", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	base := addr.FindStringSubmatch(stderr.String())[1]
	if got := post(t, base+"/", "POST", events.Sign("s3cret", time.Now(), []byte(testEvent)), testEvent); got != 200 {
		t.Fatalf("a good delivery answered %d", got)
	}
	if !strings.Contains(stdout.String(), "200 verified  whk_1:42") {
		t.Fatalf("stdout: %q", stdout.String())
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d after Ctrl-C: %s", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("did not stop")
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"webhook", "listen"}, "the webhook's secret is required"},
		{[]string{"webhook", "listen", "--secret", "a", "--secret-file", secretFile}, "exclude each other"},
		{[]string{"webhook", "listen", "--secret", "a", "--tolerance", "0s"}, "--tolerance must be positive"},
		{[]string{"webhook", "listen", "--secret", "a", "--max-body-bytes", "0"}, "--max-body-bytes must be positive"},
	} {
		code, _, errOut := sh(tc.args...)
		if code != 2 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, %q; want 2 and %q", tc.args, code, errOut, tc.want)
		}
	}
}
