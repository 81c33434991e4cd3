package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-pbx/switchboard/internal/testio"
)

// TestDemoCommandsWorkAsPrinted boots `switchboard demo` (control plane,
// simulated PBX, real agent through the real tunnel) and runs, in one
// shell, exactly the commands it prints.
func TestDemoCommandsWorkAsPrinted(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatal("curl is needed to run the demo's printed commands: apt-get install curl")
	}
	// The printed `events tail` runs the real binary.
	bin, err := bins.Dir()
	if err != nil {
		t.Fatal(err)
	}
	defer func(prev func() string) { selfCommand = prev }(selfCommand)
	selfCommand = func() string { return filepath.Join(bin, "switchboard") }
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	var stderr testio.Buffer // the demo's own log, at its default level
	go func() {
		code := run(ctx, []string{"demo", "--listen", "127.0.0.1:0", "--traffic=false"}, pw, &stderr)
		pw.Close()
		done <- code
	}()

	var exports, cmds, links []string
	linkRE := regexp.MustCompile(`http://127\.0\.0\.1:\d+/#link=(sbl_lnk_[a-z0-9_]+)`)
	sc := bufio.NewScanner(pr)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	inCommands := false
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case !inCommands && linkRE.MatchString(line):
			links = append(links, linkRE.FindStringSubmatch(line)[1])
		case strings.HasPrefix(line, "export "):
			exports = append(exports, line)
		case strings.HasPrefix(line, "Try, in another terminal"):
			inCommands = true
		case inCommands && line != "" && !strings.HasPrefix(line, "#") && !strings.HasPrefix(line, "export "):
			cmds = append(cmds, line)
		}
		if inCommands && len(cmds) == len(demoCommands(demoInfo{})) {
			break
		}
	}
	go io.Copy(io.Discard, pr)
	if len(exports) != 2 || len(cmds) != len(demoCommands(demoInfo{})) {
		t.Fatalf("demo printed exports %q and commands %q", exports, cmds)
	}

	// The monitor target: extension 150 on a call, as the demo's traffic
	// would have it; here traffic is off, so the test places that call.
	script := strings.Join(exports, "\n") + "\nset -e\n" +
		`curl -s --fail-with-body -X POST $SB/v1/calls -H "Authorization: Bearer $KEY" -d '{"from":"150","to":"+375296254070"}' >/dev/null` + "\nsleep 0.5\n"
	for i, c := range cmds {
		switch {
		case strings.Contains(c, " events tail "):
			// It streams until Ctrl-C: give it 3 s (timeout's 124 is success).
			c = "timeout -s INT 3 env " + c + " || [ $? = 124 ]"
		case strings.Contains(c, " webhook listen "):
			// It receives until stopped: meanwhile a call ends, and its
			// call.ended is delivered to it, signed. (TERM: a background
			// job of a script ignores INT.)
			c = "timeout -k 2 8 " + c + " & L=$!; sleep 0.5\n" +
				`C2=$(curl -s --fail-with-body -X POST $SB/v1/calls -H "Authorization: Bearer $KEY" -H "Content-Type: application/json" -d '{"from":"103","to":"+375296254071"}' | sed -n 's/.*"call_id":"\([^"]*\)".*/\1/p')` + "\n" +
				"sleep 0.5; curl -s --fail-with-body -X DELETE $SB/v1/calls/$C2 -H \"Authorization: Bearer $KEY\" >/dev/null\n" +
				"wait $L || [ $? = 124 ]"
		}
		script += "echo '### " + strconv.Itoa(i) + "'\n" + c + "\necho\n"
	}
	// A refused credential: the demo says why at its default level.
	script += `curl -s $SB/v1/pbxs -H "Authorization: Bearer sbk_key_aaaaaaaaaaaaaaaa_cccccccccccccccccccccccccccc" >/dev/null` + "\n"
	out, err := exec.CommandContext(ctx, "bash", "-c", script).CombinedOutput()
	if err != nil {
		t.Fatalf("printed commands failed: %v\n%s\ndemo's log:\n%s", err, out, stderr.String())
	}
	text := string(out)
	t.Logf("printed commands ran:\n%s", text)
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`"status":"ready"`),
		regexp.MustCompile(`"connected":true`),
		regexp.MustCompile(`call sb-\S+`),
		regexp.MustCompile(`"channels":\[\{`),
		regexp.MustCompile(`"target_channel":"Local/150@inoffice-`),
		regexp.MustCompile(`"hungup":\[\{`),
		regexp.MustCompile(`"success":true,"message":"Call initiated successfully: 102 -> \+375296254070"`),
		regexp.MustCompile(`asterisk_originate_call`),
		regexp.MustCompile(`"events":\[\{"seq":1,`),
		regexp.MustCompile(`"calls":\[\{"call_id":`),
		regexp.MustCompile(`"id":"whk_[a-z0-9]+","url":"http://127.0.0.1:9999/hook"`),
		// webhook listen: the call.ended of the call that ended meanwhile,
		// its signature checked.
		regexp.MustCompile(`(?m)^\S+  200 verified  whk_[a-z0-9]+:\d+  attempt 1  call\.ended  seq \d+  call sb-`),
		// events tail: the first stored event, then the stream goes live.
		regexp.MustCompile(`(?m)^\{"seq":1,"pbx":"agt_[a-z0-9]+",.*"type":"call.started"`),
		regexp.MustCompile(`events tail: stream.live \(seq \d+\)`),
	} {
		if !want.MatchString(text) {
			t.Errorf("output lacks %v:\n%s", want, text)
		}
	}
	// The web console's sign-in links: two in the header, two made by the
	// printed console-link commands; each signs a browser in once.
	for _, m := range linkRE.FindAllStringSubmatch(text, -1) {
		links = append(links, m[1])
	}
	if len(links) != 4 {
		t.Errorf("%d console sign-in links printed, want 4 (supervisor and platform admin, at start and by console-link)", len(links))
	}
	base := strings.TrimPrefix(strings.Fields(exports[0])[1], "SB=")
	for i, link := range links {
		for try, want := range []int{201, 401} {
			req, _ := http.NewRequestWithContext(ctx, "POST", base+"/v1/session", nil)
			req.Header.Set("Authorization", "Bearer "+link)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Errorf("link %d, use %d: %d %s, want %d", i, try+1, resp.StatusCode, body, want)
			}
			if try == 0 && !strings.Contains(string(body), map[bool]string{true: `"roles":["supervisor"]`, false: `"roles":["platform_admin"]`}[i%2 == 0]) {
				t.Errorf("link %d signed in as %s", i, body)
			}
		}
	}
	// jwt mint, once per role.
	if n := len(regexp.MustCompile(`(?m)^eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$`).FindAllString(text, -1)); n != 4 {
		t.Errorf("%d minted tokens printed, want 4", n)
	}
	if log := stderr.String(); !strings.Contains(log, "credentials refused") || !strings.Contains(log, "unknown api key") {
		t.Errorf("the demo's log at its default level lacks the refused credential's reason:\n%s", log)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("demo exited %d after Ctrl-C, want 0", code)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("demo did not stop")
	}
}
