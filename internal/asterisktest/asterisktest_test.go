package asterisktest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestParseChannels(t *testing.T) {
	for _, tc := range []struct {
		name    string
		out     string
		want    []Channel
		wantErr string
	}{
		{name: "none", out: "", want: nil},
		{
			// Captured from the lab with an originated 150 -> +375296254070.
			name: "originated call",
			out: "Local/+375296254070@inoffice-00000001;1!inoffice!!1!Up!AppDial!(Outgoing Line)!150!!!3!0!439dbbd2-3897-46c6-9257-a3d22fc76a88!1796533650.2\n" +
				"Local/150@inoffice-00000000;1!inoffice!150!1!Up!Dial!Local/+375296254070@inoffice!!!!3!0!439dbbd2-3897-46c6-9257-a3d22fc76a88!1796533650.0\n",
			want: []Channel{
				{Name: "Local/+375296254070@inoffice-00000001;1", Context: "inoffice", Priority: "1", State: "Up", Application: "AppDial",
					Data: "(Outgoing Line)", CallerID: "150", BridgeID: "439dbbd2-3897-46c6-9257-a3d22fc76a88", UniqueID: "1796533650.2"},
				{Name: "Local/150@inoffice-00000000;1", Context: "inoffice", Exten: "150", Priority: "1", State: "Up", Application: "Dial",
					Data: "Local/+375296254070@inoffice", BridgeID: "439dbbd2-3897-46c6-9257-a3d22fc76a88", UniqueID: "1796533650.0"},
			},
		},
		{
			name: "bang in data",
			out:  "Local/151@inoffice-00000004;2!inoffice!151!2!Up!ChanSpy!a!b,bq!!!!3!1!!1796533650.9\r\n",
			want: []Channel{{Name: "Local/151@inoffice-00000004;2", Context: "inoffice", Exten: "151", Priority: "2", State: "Up",
				Application: "ChanSpy", Data: "a!b,bq", UniqueID: "1796533650.9"}},
		},
		{name: "not concise", out: "Channel   Location   State\n", wantErr: "fields"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseChannels(tc.out)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func FuzzParseChannels(f *testing.F) {
	f.Add("Local/150@inoffice-00000000;1!inoffice!150!1!Up!Dial!Local/+375296254070@inoffice!!!!3!0!b!1.0\n")
	f.Add("a!b!c\n!!!!!!!!!!!!!\n")
	f.Fuzz(func(t *testing.T, out string) {
		chans, err := ParseChannels(out)
		if err != nil {
			return
		}
		for _, c := range chans {
			if strings.ContainsAny(c.Name+c.UniqueID+c.BridgeID, "!\n") {
				t.Fatalf("field holds a separator: %+v", c)
			}
		}
	})
}

func TestConfigValidate(t *testing.T) {
	exe := filepath.Join(t.TempDir(), "asterisk")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"nothing", Config{}, "neither"},
		{"both", Config{Lab: exe, Binary: exe}, "choose one"},
		{"missing", Config{Lab: "/nonexistent/asterisk-lab"}, "no such file"},
		{"directory", Config{Binary: t.TempDir()}, "not an executable"},
		{"port", Config{Binary: exe, AMIPort: 70000}, "not a TCP port"},
		{"ok", Config{Binary: exe}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("Validate() = %v, want %q", err, tc.want)
			}
		})
	}
}

// recordTB records how Require ended the test; Skip and Fatalf end the
// goroutine as the real ones do.
type recordTB struct {
	testing.TB
	skipped, failed string
}

func (r *recordTB) Helper()                   {}
func (r *recordTB) Skip(args ...any)          { r.skipped = fmt.Sprint(args...); runtime.Goexit() }
func (r *recordTB) Fatalf(f string, a ...any) { r.failed = fmt.Sprintf(f, a...); runtime.Goexit() }

func runRequire(tb testing.TB) *recordTB {
	r := &recordTB{TB: tb}
	done := make(chan struct{})
	go func() {
		defer close(done)
		Require(r)
	}()
	<-done
	return r
}

// TestRequireSkipsOrFails: with nothing asked for, Require skips and says
// how to run; asked for and unable to start, it fails, never skips.
func TestRequireSkipsOrFails(t *testing.T) {
	t.Setenv(EnvLab, "")
	t.Setenv(EnvBinary, "")
	r := runRequire(t)
	if r.failed != "" || !strings.Contains(r.skipped, EnvLab) || !strings.Contains(r.skipped, EnvBinary) {
		t.Fatalf("nothing asked for: skipped %q, failed %q", r.skipped, r.failed)
	}

	t.Setenv(EnvLab, "/nonexistent/asterisk-lab")
	r = runRequire(t)
	if r.skipped != "" || !strings.Contains(r.failed, "did not start") {
		t.Fatalf("lab asked for but missing: skipped %q, failed %q", r.skipped, r.failed)
	}

	// An "asterisk" that exits at once.
	t.Setenv(EnvLab, "")
	bin := filepath.Join(t.TempDir(), "asterisk")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\necho 'Unable to load config' >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvBinary, bin)
	r = runRequire(t)
	if r.skipped != "" || !strings.Contains(r.failed, "exited during start") || !strings.Contains(r.failed, "Unable to load config") {
		t.Fatalf("binary asked for but broken: skipped %q, failed %q", r.skipped, r.failed)
	}
}

// TestStartRestart runs the configured Asterisk: the CLI answers, the
// dialplan and queue are the lab's, and a restart on the same port works.
// With the lab, it then runs the lab's own binary the way an installed
// Asterisk is run (EnvBinary): our configuration from testdata, `asterisk
// -f` as our child, beside the lab's instance. One test, so the lab's
// tarball is unpacked once.
func TestStartRestart(t *testing.T) {
	lab := Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	checkLab(ctx, t, lab)
	if err := lab.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	checkLab(ctx, t, lab)
	if lab.cfg.Lab == "" {
		return
	}

	install := filepath.Join(lab.Dir(), "install")
	t.Setenv("LD_LIBRARY_PATH", filepath.Join(install, "lib"))
	p, err := Start(ctx, Config{
		Binary:  filepath.Join(install, "sbin", "asterisk"),
		Modules: filepath.Join(install, "lib", "asterisk", "modules"),
		Data:    filepath.Join(install, "var", "lib", "asterisk"),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if t.Failed() {
			t.Logf("console:\n%s", p.ConsoleLog(8192))
		}
		if err := p.Close(); err != nil {
			t.Error(err)
		}
		if _, err := os.Stat(p.Dir()); !os.IsNotExist(err) {
			t.Errorf("instance dir %s left behind (%v)", p.Dir(), err)
		}
	}()
	if p.AMIAddr() == lab.AMIAddr() {
		t.Fatalf("both instances on %s", p.AMIAddr())
	}
	checkLab(ctx, t, p)
	if err := p.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	checkLab(ctx, t, p)
}

func checkLab(ctx context.Context, t *testing.T, p *PBX) {
	t.Helper()
	out, err := p.CLI(ctx, "queue show inbound")
	if err != nil || !strings.Contains(out, "Local/101@from-queue/n") || !strings.Contains(out, "Local/102@from-queue/n") {
		t.Fatalf("queue show inbound: %v\n%s", err, out)
	}
	if _, err := p.CLI(ctx, "channel originate Local/150@inoffice application Wait 600"); err != nil {
		t.Fatal(err)
	}
	chans, err := p.WaitChannels(ctx, func(c []Channel) bool { return len(c) == 2 })
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := Find(chans, func(c Channel) bool { return c.Exten == "150" && c.Application == "Wait" && c.State == "Up" }); !ok {
		t.Fatalf("no answered Local/150 in Wait: %s", Names(chans))
	}
	if err := p.HangupAll(ctx); err != nil {
		t.Fatal(err)
	}
}
