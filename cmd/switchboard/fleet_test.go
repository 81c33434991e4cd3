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

func TestFleetStatus(t *testing.T) {
	cp := systemtest.New(t, systemtest.Options{})
	cp.Enterprise(t, "0367", "june")
	cp.Enterprise(t, "0368", "july")
	online := cp.AddPBX(t, "0367", systemtest.PBXOptions{Name: "pbx-june"})
	gone := cp.AddPBX(t, "0368", systemtest.PBXOptions{Name: "pbx-july"})
	gone.Stop()
	ctx := context.Background()
	never, _, err := cp.Store().CreateAgent(ctx, "0368", "pbx-never", "inoffice")
	if err != nil {
		t.Fatal(err)
	}
	revoked, _, err := cp.Store().CreateAgent(ctx, "0368", "pbx-old", "inoffice")
	if err != nil {
		t.Fatal(err)
	}
	if err := cp.Store().RevokeAgent(ctx, revoked.ID); err != nil {
		t.Fatal(err)
	}
	admin := cp.JWT(t, "", "ops-1", "platform_admin")
	tokenFile := filepath.Join(t.TempDir(), "jwt")
	if err := os.WriteFile(tokenFile, []byte(admin+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	operator := cp.JWT(t, "0367", "op-1", "supervisor")

	row := func(id, rest string) *regexp.Regexp {
		return regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(id) + `\s+` + rest)
	}
	base := []string{"fleet", "status", "--server", cp.URL}
	tests := []struct {
		name    string
		args    []string
		code    int
		rows    []*regexp.Regexp
		notRows []string
		want    []string
	}{
		{
			name: "table",
			args: append(base, "--token-file", tokenFile),
			rows: []*regexp.Regexp{
				row(online.ID, `pbx-june\s+0367\s+online\s+for \d+s\s+test\s+22\.10\.1\s+up\s+0$`),
				row(gone.ID, `pbx-july\s+0368\s+offline\s+\d+s ago\s+-\s+-\s+unknown\s+-$`),
				row(never.ID, `pbx-never\s+0368\s+offline\s+never seen\s+-\s+-\s+unknown\s+-$`),
			},
			notRows: []string{revoked.ID},
			want:    []string{"PBX  ", "3 PBXs: 1 online, 2 offline · AMI 1 up, 0 down · 0 live calls, 0 channels"},
		},
		{
			name:    "offline of one enterprise, token on the command line, paged",
			args:    append(base, "--token", admin, "--offline", "--enterprise", "0368", "--page-size", "1"),
			rows:    []*regexp.Regexp{row(gone.ID, `pbx-july`), row(never.ID, `pbx-never`)},
			notRows: []string{online.ID, revoked.ID},
			want:    []string{"2 shown (filtered)"},
		},
		{
			name:    "revoked",
			args:    append(base, "--token", admin, "--revoked"),
			rows:    []*regexp.Regexp{row(revoked.ID, `pbx-old\s+0368\s+revoked`)},
			notRows: []string{online.ID},
		},
		{
			name: "operator is forbidden",
			args: append(base, "--token", operator),
			code: 1,
			want: []string{"403", "forbidden", "platform_admin"},
		},
		{
			name: "no token",
			args: base,
			code: 2,
			want: []string{"platform_admin JWT is required"},
		},
		{
			name: "bad filter reported by the server",
			args: append(base, "--token", admin, "--ami", "sideways"),
			code: 1,
			want: []string{"400", "invalid_request", `"ami"`},
		},
		{
			name: "online and offline",
			args: append(base, "--token", admin, "--online", "--offline"),
			code: 2,
			want: []string{"exclude each other"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(ctx, tc.args, &stdout, &stderr)
			out := stdout.String() + stderr.String()
			if code != tc.code {
				t.Fatalf("exit %d, want %d:\n%s", code, tc.code, out)
			}
			for _, re := range tc.rows {
				if !re.MatchString(stdout.String()) {
					t.Errorf("no row matching %s in\n%s", re, out)
				}
			}
			for _, id := range tc.notRows {
				if strings.Contains(stdout.String(), id) {
					t.Errorf("row %s shown:\n%s", id, out)
				}
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			if strings.Contains(stderr.String(), admin) {
				t.Fatal("the token leaked into the output")
			}
		})
	}

	t.Run("json", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		if code := run(ctx, append(base, "--token", admin, "--json", "--page-size", "2"), &stdout, &stderr); code != 0 {
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
		var got struct {
			Totals  map[string]int   `json:"totals"`
			Matched int              `json:"matched"`
			Agents  []map[string]any `json:"agents"`
		}
		if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, stdout.String())
		}
		if got.Totals["agents"] != 3 || got.Totals["connected"] != 1 || got.Matched != 3 || len(got.Agents) != 3 {
			t.Fatalf("totals %v matched %d agents %d", got.Totals, got.Matched, len(got.Agents))
		}
		for _, a := range got.Agents {
			if a["id"] == online.ID && (a["hostname"] != "pbx-june" || a["connected"] != true) {
				t.Fatalf("online agent as JSON: %v", a)
			}
		}
	})
}

func TestAge(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{-time.Second, "0s"},
		{1500 * time.Millisecond, "2s"},
		{59 * time.Second, "59s"},
		{61 * time.Second, "1m01s"},
		{2*time.Hour + 13*time.Minute + 40*time.Second, "2h13m"},
		{50 * time.Hour, "2d02h"},
	}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			if got := age(tc.d); got != tc.want {
				t.Fatalf("age(%v) = %q, want %q", tc.d, got, tc.want)
			}
		})
	}
}

// TestFleetStatusClustered: asked of any replica, the table shows each
// PBX once with the replica holding its tunnel.
func TestFleetStatusClustered(t *testing.T) {
	c := systemtest.NewCluster(t, 2, systemtest.Options{})
	r0, r1 := c.Replicas[0], c.Replicas[1]
	r0.Enterprise(t, "0367", "june")
	p0 := r0.AddPBX(t, "0367", systemtest.PBXOptions{Name: "pbx-a"})
	p1 := r1.AddPBX(t, "0367", systemtest.PBXOptions{Name: "pbx-b"})
	admin := r0.JWT(t, "", "ops-1", "platform_admin")
	for _, s := range c.Replicas {
		var out string
		deadline := time.Now().Add(10 * time.Second)
		for {
			var stdout, stderr bytes.Buffer
			if code := run(context.Background(), []string{"fleet", "status", "--server", s.URL, "--token", admin}, &stdout, &stderr); code != 0 {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
			out = stdout.String()
			if strings.Contains(out, "2 PBXs: 2 online") || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		for _, want := range []*regexp.Regexp{
			regexp.MustCompile(`(?m)^PBX\s+NAME.*CALLS\s+REPLICA$`),
			regexp.MustCompile(`(?m)^` + p0.ID + `\s+pbx-a\s+0367\s+online.*\s+` + regexp.QuoteMeta(r0.URL) + `$`),
			regexp.MustCompile(`(?m)^` + p1.ID + `\s+pbx-b\s+0367\s+online.*\s+` + regexp.QuoteMeta(r1.URL) + `$`),
		} {
			if !want.MatchString(out) {
				t.Fatalf("fleet status via %s lacks %s:\n%s", s.URL, want, out)
			}
		}
	}
}
