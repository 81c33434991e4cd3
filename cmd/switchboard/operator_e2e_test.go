package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/internal/testio"
	"github.com/switchboard-pbx/switchboard/protocol"
	"github.com/switchboard-pbx/switchboard/protocol/ami/amitest"
)

// TestOperatorCommandsEndToEnd runs the real `switchboard serve` (API,
// event stream, call history, webhooks) and the real agent on a fake
// Asterisk, and drives them with the operator commands: a call placed
// and hung up is seen by `events tail --format table`, by `calls list`,
// and by `webhook listen` as a verified delivery.
func TestOperatorCommandsEndToEnd(t *testing.T) {
	binDir, err := bins.Dir()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	db := "sqlite:" + filepath.Join(dir, "switchboard.db")
	admin := func(args ...string) map[string]any {
		t.Helper()
		code, out, errOut := sh(append(args, "--db", db, "--json")...)
		var m map[string]any
		if code != 0 || json.Unmarshal([]byte(out), &m) != nil {
			t.Fatalf("switchboard %v: exit %d\n%s%s", args, code, out, errOut)
		}
		return m
	}
	admin("enterprise", "create", "--number", "0367", "--name", "june")
	ag := admin("agent", "create", "--enterprise", "0367", "--name", "pbx-june")
	keyFile := writeSecret(t, "key", admin("apikey", "create", "--enterprise", "0367")["key"].(string))
	readOnly := admin("apikey", "create", "--enterprise", "0367", "--scopes", "channels:read")["key"].(string)
	tokenFile := writeSecret(t, "agent.token", ag["token"].(string))
	amiSecret := writeSecret(t, "ami.secret", "switchboard-secret")

	pbx := amitest.NewServer(t)
	cpAddr := freeAddr(t)
	base := "http://" + cpAddr
	start(t, "switchboard serve", filepath.Join(binDir, "switchboard"), "serve", "--listen", cpAddr, "--db", db,
		"--heartbeat-seconds", "1", "--webhook-allow-private-targets")
	start(t, "switchboard-agent", filepath.Join(binDir, "switchboard-agent"), "run", "--server", "ws://"+cpAddr+protocol.ConnectPath,
		"--token-file", tokenFile, "--ami", pbx.Addr(), "--ami-user", "switchboard", "--ami-secret-file", amiSecret)
	eventually(t, 30*time.Second, "agent connected", func() bool {
		var v struct {
			Agents int `json:"agents_connected"`
		}
		code, err := getJSON(base+"/readyz", "", &v)
		return err == nil && code == 200 && v.Agents == 1
	})
	op := cli{t, []string{"--server", base, "--token-file", keyFile}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// A webhook receiver, and the webhook pointing at it, before any call.
	hookAddr := freeAddr(t)
	hookSecret := writeSecret(t, "whsec", "whsec-e2e-0123456789")
	var hookOut, hookErr testio.Buffer
	hookDone := make(chan int, 1)
	go func() {
		hookDone <- run(ctx, []string{"webhook", "listen", "--listen", hookAddr, "--secret-file", hookSecret}, &hookOut, &hookErr)
	}()
	eventually(t, 10*time.Second, "webhook listen started", func() bool { return strings.Contains(hookErr.String(), hookAddr) })
	var hook struct {
		ID string `json:"id"`
	}
	if err := postJSON(base+"/v1/webhooks", readFile(t, keyFile), map[string]any{
		"url": "http://" + hookAddr + "/hook", "event_types": []string{"call.ended"}, "secret": "whsec-e2e-0123456789",
	}, &hook); err != nil || hook.ID == "" {
		t.Fatalf("create webhook: %v %+v", err, hook)
	}

	// The live stream as a table, from the first event.
	var tailOut, tailErr testio.Buffer
	tailDone := make(chan int, 1)
	go func() {
		tailDone <- run(ctx, append([]string{"events", "tail", "--format", "table", "--after", "0"}, op.conn...), &tailOut, &tailErr)
	}()

	out := op.must("calls", "place", "--from", "150", "--to", "+375296254070")
	callID := regexp.MustCompile(`^Placed call (\S+) `).FindStringSubmatch(out)[1]
	eventually(t, 15*time.Second, "the call bridged, in the table", func() bool {
		return regexp.MustCompile(`(?m)\s+call\.bridged\s+` + regexp.QuoteMeta(callID) + `\s`).MatchString(tailOut.String())
	})
	op.must("calls", "hangup", callID, "--reason", "e2e")
	eventually(t, 15*time.Second, "call.ended in the table", func() bool {
		return regexp.MustCompile(`(?m)\s+call\.ended\s+` + regexp.QuoteMeta(callID) + `\s+150\s+\+375296254070\s+\S+\s+\d+ `).MatchString(tailOut.String())
	})
	if !strings.HasPrefix(tailOut.String(), "TIME ") || !regexp.MustCompile(`(?m)^\d\d:\d\d:\d\d\s+1\s+agt_\S+\s+call\.started\s+`+regexp.QuoteMeta(callID)).MatchString(tailOut.String()) {
		t.Fatalf("events tail --format table:\n%s", tailOut.String())
	}

	// The history: the call, ended, in the table and as JSON.
	table := op.eventuallyOut(regexp.MustCompile(`(?m)^\S+ \S+\s+`+regexp.QuoteMeta(callID)+`\s+agt_\S+\s+originate\s+150\s+\+375296254070\s+(completed|canceled)\s`), "calls", "list", "--since", "1h")
	if !strings.HasPrefix(table, "STARTED ") {
		t.Fatalf("calls list:\n%s", table)
	}
	var page struct {
		Calls []struct {
			CallID string `json:"call_id"`
		} `json:"calls"`
	}
	if err := json.Unmarshal([]byte(op.must("calls", "list", "--json", "--extension", "150", "--limit", "5")), &page); err != nil || len(page.Calls) == 0 || page.Calls[0].CallID != callID {
		t.Fatalf("calls list --json: %v %+v", err, page)
	}

	// The webhook got call.ended, signed with its secret.
	eventually(t, 20*time.Second, "the webhook delivery", func() bool {
		return regexp.MustCompile(`200 verified  ` + regexp.QuoteMeta(hook.ID) + `:\d+  attempt 1  call\.ended  seq \d+  call ` + regexp.QuoteMeta(callID)).MatchString(hookOut.String())
	})

	// A key without events:read: the server's reason, no retry.
	code, _, errOut := cli{t, []string{"--server", base, "--token", readOnly}}.run("events", "tail")
	if code != 1 || !strings.Contains(errOut, "GET /v1/events: ") || !strings.Contains(errOut, "(403 forbidden)") {
		t.Fatalf("events tail with a channels:read key: exit %d: %s", code, errOut)
	}

	cancel()
	for name, done := range map[string]chan int{"events tail": tailDone, "webhook listen": hookDone} {
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("%s exited %d after Ctrl-C", name, code)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("%s did not stop", name)
		}
	}
	t.Logf("events tail --format table:\n%s\ncalls list:\n%s\nwebhook listen:\n%s", tailOut.String(), table, hookOut.String())
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// postJSON POSTs v with a bearer token and decodes a 2xx answer.
func postJSON(url, bearer string, v, out any) error {
	b, _ := json.Marshal(v)
	req, _ := http.NewRequest("POST", url, strings.NewReader(string(b)))
	req.Header.Set("Authorization", "Bearer "+bearer)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return newAPIError("POST", url, resp, nil)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}
