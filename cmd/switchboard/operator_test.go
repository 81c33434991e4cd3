package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/internal/systemtest"
)

// cli runs one command in process; conn are the connection flags.
type cli struct {
	t    *testing.T
	conn []string
}

func (c cli) run(args ...string) (code int, stdout, stderr string) {
	c.t.Helper()
	var out, errw bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code = run(ctx, append(args, c.conn...), &out, &errw)
	return code, out.String(), errw.String()
}

// must runs a command that must succeed and returns its stdout.
func (c cli) must(args ...string) string {
	c.t.Helper()
	code, out, errOut := c.run(args...)
	if code != 0 {
		c.t.Fatalf("switchboard %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// eventuallyOut reruns a command until its stdout matches re.
func (c cli) eventuallyOut(re *regexp.Regexp, args ...string) string {
	c.t.Helper()
	var out string
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		out = c.must(args...)
		if re.MatchString(out) {
			return out
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.t.Fatalf("switchboard %s never printed %s; last:\n%s", strings.Join(args, " "), re, out)
	return ""
}

func writeSecret(t *testing.T, name, value string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(value+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestOperatorCommands drives calls place|hangup, channels and monitor
// against a real control plane with a real agent and a fake Asterisk.
func TestOperatorCommands(t *testing.T) {
	cp := systemtest.New(t, systemtest.Options{})
	cp.Enterprise(t, "0367", "june")
	pbx := cp.AddPBX(t, "0367", systemtest.PBXOptions{Name: "pbx-june"})
	key := cp.APIKey(t, "0367")
	keyFile := writeSecret(t, "key", key)
	sup := cli{t, []string{"--server", cp.URL, "--token", cp.JWT(t, "0367", "sup-1", "supervisor")}}
	op := cli{t, []string{"--server", cp.URL, "--token-file", keyFile}}

	// A call nobody placed through the API: the target of monitoring.
	if _, err := pbx.AMI.StartCall("150", "+375296254070"); err != nil {
		t.Fatal(err)
	}
	table := op.eventuallyOut(regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(pbx.ID)+`\s+Local/150@inoffice-\S+\s+Up\s`), "channels")
	t.Logf("channels:\n%s", table)
	if !strings.HasPrefix(table, "PBX ") || !strings.Contains(table, "UP FOR") {
		t.Fatalf("channels table has no header:\n%s", table)
	}
	var chans struct {
		Channels []struct{ Channel, UniqueID string } `json:"channels"`
	}
	if err := json.Unmarshal([]byte(op.must("channels", "--json", "--pbx", pbx.ID)), &chans); err != nil || len(chans.Channels) == 0 {
		t.Fatalf("channels --json: %v %+v", err, chans)
	}

	t.Run("place and hang up by id", func(t *testing.T) {
		out := op.must("calls", "place", "--from", "101", "--to", "+375296254070", "--caller-id", "Desk 101 <101>",
			"--var", "CRM_ID=42", "--idempotency-key", "cli-test-1")
		m := regexp.MustCompile(`^Placed call (\S+) on ` + regexp.QuoteMeta(pbx.ID) + `: 101 rings, then dials \+375296254070 \(queued\)\.\nEnd it with: switchboard calls hangup (\S+)\n$`).FindStringSubmatch(out)
		if m == nil || m[1] != m[2] {
			t.Fatalf("calls place printed:\n%s", out)
		}
		// The same idempotency key places nothing new: the same call comes back.
		if again := op.must("calls", "place", "--from", "101", "--to", "+375296254070", "--caller-id", "Desk 101 <101>",
			"--var", "CRM_ID=42", "--idempotency-key", "cli-test-1", "--json"); !strings.Contains(again, `"call_id": "`+m[1]+`"`) {
			t.Fatalf("retry with the same key: %s", again)
		}
		op.eventuallyOut(regexp.MustCompile(regexp.QuoteMeta(m[1])), "channels")
		out = op.must("calls", "hangup", m[1], "--reason", "cli test")
		if !regexp.MustCompile(`^Hung up \d+ channel\(s\) on ` + regexp.QuoteMeta(pbx.ID) + `\.\nCHANNEL\s+UNIQUEID\s+UP FOR\n`).MatchString(out) {
			t.Fatalf("calls hangup printed:\n%s", out)
		}
	})

	t.Run("monitor", func(t *testing.T) {
		out := sup.must("monitor", "--target", "150", "--from", "151", "--mode", "whisper")
		if !regexp.MustCompile(`^151 rings; once answered it joins 150's call \(Local/150@inoffice-\S+\) on ` + regexp.QuoteMeta(pbx.ID) + ` in whisper mode\.\nEnd it with: switchboard calls hangup \S+\n$`).MatchString(out) {
			t.Fatalf("monitor printed:\n%s", out)
		}
	})

	t.Run("hang up a channel by name", func(t *testing.T) {
		out := sup.must("calls", "hangup", "--channel", chans.Channels[0].Channel, "--reason", "cli test", "--json")
		var res struct {
			Count int `json:"count"`
		}
		if err := json.Unmarshal([]byte(out), &res); err != nil || res.Count != 1 {
			t.Fatalf("calls hangup --channel --json: %v\n%s", err, out)
		}
	})

	// Every failure the server explains is shown with its own message.
	errors := []struct {
		name string
		c    cli
		args []string
		code int
		want []string
	}{
		{"unknown call", op, []string{"calls", "hangup", "sb-nope"}, 1,
			[]string{"DELETE /v1/calls/sb-nope: not found: no live channel with uniqueid sb-nope (404 not_found) [request "}},
		{"scope missing", cli{t, []string{"--server", cp.URL, "--token", cp.APIKey(t, "0367", "channels:read")}},
			[]string{"monitor", "--target", "150", "--from", "151"}, 1, []string{"POST /v1/monitor: ", "(403 forbidden)"}},
		{"target not on a call", sup, []string{"monitor", "--target", "199", "--from", "151"}, 1, []string{"199", "(404 not_found)"}},
		{"bad number", op, []string{"calls", "place", "--from", "101", "--to", "call-me"}, 1,
			[]string{`POST /v1/calls: field "to" must be digits`, "(400 invalid_request)"}},
		{"bad credential", cli{t, []string{"--server", cp.URL, "--token", "sbk_key_nope"}}, []string{"channels"}, 1, []string{"GET /v1/channels: ", "(401 "}},
		{"no credential", cli{t, []string{"--server", cp.URL}}, []string{"channels"}, 2, []string{"API key or operator JWT is required"}},
		{"two targets", op, []string{"calls", "hangup", "sb-1", "--all"}, 2, []string{"exactly one of a call ID, --channel or --all"}},
		{"bad variable", op, []string{"calls", "place", "--from", "1", "--to", "2", "--var", "novalue"}, 2, []string{"--var: want NAME=VALUE"}},
		{"bad server", cli{t, []string{"--server", "ftp://x", "--token", "x"}}, []string{"channels"}, 2, []string{"--server: want an http:// or https:// URL"}},
	}
	for _, tc := range errors {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := tc.c.run(tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\n%s%s", code, tc.code, out, errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr lacks %q: %s", w, errOut)
				}
			}
			for _, bad := range []string{"Not Found:", "Forbidden:", `{"error"`} {
				if strings.Contains(errOut, bad) {
					t.Errorf("stderr shows the raw answer (%q): %s", bad, errOut)
				}
			}
		})
	}

	t.Run("connection from the environment, hang up everything", func(t *testing.T) {
		t.Setenv("SWITCHBOARD_SERVER", cp.URL)
		t.Setenv("SWITCHBOARD_TOKEN_FILE", keyFile)
		if _, err := pbx.AMI.StartCall("102", "103"); err != nil {
			t.Fatal(err)
		}
		env := cli{t, nil}
		env.eventuallyOut(regexp.MustCompile(`Local/102@`), "channels")
		out := env.must("calls", "hangup", "--all", "--reason", "end of test")
		if !strings.HasPrefix(out, "Hung up ") || !strings.Contains(out, "Local/102@") {
			t.Fatalf("calls hangup --all:\n%s", out)
		}
	})
}
