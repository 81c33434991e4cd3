package systemd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// listen opens a real unixgram socket like the one systemd gives a service
// and points $NOTIFY_SOCKET at it. abstract selects the Linux abstract
// namespace ("@name"), which is what systemd itself uses.
func listen(t *testing.T, abstract bool) *net.UnixConn {
	t.Helper()
	var name string
	if abstract {
		name = fmt.Sprintf("@switchboard-systemd-test-%d-%d", os.Getpid(), time.Now().UnixNano())
	} else {
		// t.TempDir can exceed the 108-byte sun_path limit on deep
		// runners; a short MkdirTemp under the default TMPDIR cannot.
		dir, err := os.MkdirTemp("", "sdn")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		name = filepath.Join(dir, "notify")
	}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatalf("listen %q: %v", name, err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv("NOTIFY_SOCKET", name)
	return conn
}

// receive reads one datagram or fails the test after a deadline.
func receive(t *testing.T, conn *net.UnixConn) string {
	t.Helper()
	if err := conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("read notify datagram: %v", err)
	}
	return string(buf[:n])
}

func TestNotifySends(t *testing.T) {
	helpers := []struct {
		name string
		call func() (bool, error)
		want string
	}{
		{"Ready", Ready, "READY=1"},
		{"Stopping", Stopping, "STOPPING=1"},
		{"Watchdog", Watchdog, "WATCHDOG=1"},
		{"Status", func() (bool, error) { return Status("42 agents connected") }, "STATUS=42 agents connected"},
		{"Notify multi-line", func() (bool, error) { return Notify("READY=1\nSTATUS=up") }, "READY=1\nSTATUS=up"},
	}
	for _, socket := range []struct {
		name     string
		abstract bool
	}{{"path", false}, {"abstract", true}} {
		t.Run(socket.name, func(t *testing.T) {
			conn := listen(t, socket.abstract)
			for _, h := range helpers {
				t.Run(h.name, func(t *testing.T) {
					sent, err := h.call()
					if err != nil || !sent {
						t.Fatalf("got sent=%v err=%v, want sent=true err=nil", sent, err)
					}
					if got := receive(t, conn); got != h.want {
						t.Fatalf("datagram %q, want %q", got, h.want)
					}
				})
			}
		})
	}
}

func TestNotifyNotUnderSystemd(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	for name, call := range map[string]func() (bool, error){
		"Ready": Ready, "Stopping": Stopping, "Watchdog": Watchdog,
	} {
		t.Run(name, func(t *testing.T) {
			sent, err := call()
			if sent || err != nil {
				t.Fatalf("got sent=%v err=%v, want false, nil", sent, err)
			}
		})
	}
}

func TestNotifyErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "gone")
	tests := []struct {
		name   string
		socket string
		state  string
		is     error // nil: any non-nil error
	}{
		{"empty state", "/run/systemd/notify", "", ErrInvalidState},
		{"vsock address", "vsock:2:1234", "READY=1", ErrUnsupportedSocket},
		{"relative path", "notify.sock", "READY=1", ErrUnsupportedSocket},
		{"socket gone", missing, "READY=1", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("NOTIFY_SOCKET", tc.socket)
			sent, err := Notify(tc.state)
			if sent || err == nil {
				t.Fatalf("got sent=%v err=%v, want an error", sent, err)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Fatalf("error %v is not %v", err, tc.is)
			}
		})
	}
}

func TestStatusRejectsInjection(t *testing.T) {
	conn := listen(t, false)
	for _, msg := range []string{"ok\nREADY=1", "ok\x00"} {
		sent, err := Status(msg)
		if sent || !errors.Is(err, ErrInvalidState) {
			t.Fatalf("Status(%q): sent=%v err=%v, want ErrInvalidState", msg, sent, err)
		}
	}
	// Nothing may have reached the socket: prove it with a sentinel.
	if _, err := Ready(); err != nil {
		t.Fatal(err)
	}
	if got := receive(t, conn); got != "READY=1" {
		t.Fatalf("first datagram %q, want the READY=1 sentinel", got)
	}
}

func TestNotifyContextHonoursCancel(t *testing.T) {
	listen(t, false)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	sent, err := NotifyContext(ctx, "READY=1")
	if sent || !errors.Is(err, context.Canceled) {
		t.Fatalf("got sent=%v err=%v, want context.Canceled", sent, err)
	}
}

func TestCredential(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte("s3cret"), 0o400); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "adir"), 0o700); err != nil {
		t.Fatal(err)
	}
	// A secret outside the directory that a crafted name must not reach.
	if err := os.WriteFile(filepath.Join(filepath.Dir(dir), "outside"), nil, 0o400); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(filepath.Join(filepath.Dir(dir), "outside")) })

	tests := []struct {
		name   string
		env    string
		cred   string
		wantOK bool
	}{
		{"present", dir, "token", true},
		{"absent", dir, "ami-secret", false},
		{"directory is not a credential", dir, "adir", false},
		{"no credentials directory", "", "token", false},
		{"empty name", dir, "", false},
		{"dot", dir, ".", false},
		{"dotdot", dir, "..", false},
		{"traversal", dir, "../outside", false},
		{"absolute", dir, "/etc/passwd", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("CREDENTIALS_DIRECTORY", tc.env)
			path, ok := Credential(tc.cred)
			if ok != tc.wantOK {
				t.Fatalf("Credential(%q) ok=%v, want %v (path %q)", tc.cred, ok, tc.wantOK, path)
			}
			if !ok {
				if path != "" {
					t.Fatalf("path %q returned with ok=false", path)
				}
				return
			}
			if want := filepath.Join(dir, tc.cred); path != want {
				t.Fatalf("path %q, want %q", path, want)
			}
			if b, err := os.ReadFile(path); err != nil || !strings.HasPrefix(string(b), "s3cret") {
				t.Fatalf("read %q: %q, %v", path, b, err)
			}
		})
	}
}
