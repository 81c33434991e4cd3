package flagfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func newFS() (*pflag.FlagSet, *string, *string, *int) {
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	fs.String("config", "", "")
	server := fs.String("server", "default-server", "")
	user := fs.String("ami-user", "switchboard", "")
	n := fs.Int("heartbeat", 15, "")
	return fs, server, user, n
}

func TestPrecedence(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "agent.conf")
	os.WriteFile(path, []byte("# comment\n\nserver = wss://file/agent/v1/connect\nami-user = \" from-file \"\nheartbeat = 5\n"), 0o600)

	fs, server, user, n := newFS()
	if err := fs.Parse([]string{"--heartbeat", "7"}); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SWITCHBOARD_AGENT_SERVER", "wss://env/agent/v1/connect")
	if err := Apply(fs, "SWITCHBOARD_AGENT", path); err != nil {
		t.Fatal(err)
	}
	if *server != "wss://env/agent/v1/connect" {
		t.Errorf("server = %q: environment must beat the file", *server)
	}
	if *user != " from-file " {
		t.Errorf("ami-user = %q: file value with quotes kept", *user)
	}
	if *n != 7 {
		t.Errorf("heartbeat = %d: command line must beat the file", *n)
	}
}

func TestErrors(t *testing.T) {
	tests := []struct{ name, file, want string }{
		{"unknown option", "servr = x\n", `:1: unknown option "servr"`},
		{"no equals", "server\n", "want `name = value`"},
		{"duplicate", "server = a\nserver = b\n", `:2: option "server" given twice`},
		{"bad value", "heartbeat = soon\n", "option heartbeat"},
		{"config inside config", "config = /x\n", "unknown option"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.conf")
			os.WriteFile(path, []byte(tc.file), 0o600)
			fs, _, _, _ := newFS()
			fs.Parse(nil)
			err := Apply(fs, "SB_TEST", path)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
	fs, _, _, _ := newFS()
	fs.Parse(nil)
	if err := Apply(fs, "SB_TEST", filepath.Join(t.TempDir(), "missing.conf")); err == nil {
		t.Fatal("missing config file accepted")
	}
}

func TestEnvName(t *testing.T) {
	if got := EnvName("SWITCHBOARD_AGENT", "ami-secret-file"); got != "SWITCHBOARD_AGENT_AMI_SECRET_FILE" {
		t.Fatal(got)
	}
}

func FuzzParse(f *testing.F) {
	f.Add("server = x\n# c\nami-user=\"y\"\n")
	f.Fuzz(func(t *testing.T, in string) {
		fs, _, _, _ := newFS()
		m, err := Parse(strings.NewReader(in), "f", fs)
		if err != nil {
			return
		}
		for k := range m {
			if fs.Lookup(k) == nil {
				t.Fatalf("accepted unknown option %q", k)
			}
		}
	})
}
