package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		check func(t *testing.T, rate, fleet int, settle time.Duration, workers int)
		err   string
	}{
		{name: "defaults", check: func(t *testing.T, rate, fleet int, settle time.Duration, workers int) {
			if rate != 1000 || fleet != 100 || settle != 20*time.Second || workers != -1 {
				t.Fatalf("rate %d fleet %d settle %v workers %d", rate, fleet, settle, workers)
			}
		}},
		{name: "zero skips", args: []string{"--rate", "0", "--fleet-queries", "0"}, check: func(t *testing.T, rate, fleet int, _ time.Duration, _ int) {
			if rate >= 0 || fleet >= 0 {
				t.Fatalf("rate %d fleet %d: want negative (skip)", rate, fleet)
			}
		}},
		{name: "unknown flag", args: []string{"--agnets", "3"}, err: "unknown flag"},
		{name: "stray argument", args: []string{"10000"}, err: "unexpected argument"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			c, err := parse(tc.args, &out, &errb)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c.OriginateRate, c.FleetQueries, c.Settle, c.Workers)
		})
	}
}

func TestUsageAndBadConfig(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"--help"}, nil, &out, &errb); code != 0 || !strings.Contains(out.String(), "--agents") {
		t.Fatalf("help: exit %d, %q", code, out.String())
	}
	out.Reset()
	if code := run(context.Background(), []string{"--agents", "-5"}, nil, &out, &errb); code != 1 || !strings.Contains(errb.String(), "agents -5") {
		t.Fatalf("bad config: exit %d, %q", code, errb.String())
	}
}

func TestCommandLine(t *testing.T) {
	if got := commandLine([]string{"-n", "10000", "--dir", "/tmp/a b"}); got != "switchboard-load -n 10000 --dir '/tmp/a b'" {
		t.Fatalf("commandLine = %q", got)
	}
}
